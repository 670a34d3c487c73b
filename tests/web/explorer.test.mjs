// The web explorer in headless Chromium (puppeteer-core driving Debian's /usr/bin/chromium).
// usage: node explorer.test.mjs BASE_URL ARTIFACT_DIR [API_KEY [AUTOINTERP_JSON]]
// Against a running `glassbox serve --sae --db [--api-key]`: loads the explorer (entering the API
// key in the form a 401 brings up, when one is given), searches features by text and
// by token (checking the list is filtered exactly as /api/features filters), opens a feature
// (histogram SVG, example tokens coloured by activation, logit tables), runs text (tokens coloured
// as /api/run reports, top features per token), generates text, shows explanations and scores
// (list columns, sorting by score and search in explanations as the API does, the feature page's
// explanation cards; AUTOINTERP_JSON names the features ui_test.py gave explanations), shows an
// API error; a screenshot of each step lands in ARTIFACT_DIR. Exit 0 = all passed, 1 = a check
// failed (message printed).
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [BASE, ARTIFACTS, KEY, AUTOINTERP] = process.argv.slice(2);
if (!BASE || !ARTIFACTS) {
  console.error("usage: node explorer.test.mjs BASE_URL ARTIFACT_DIR [API_KEY]");
  process.exit(2);
}
const base = BASE.replace(/\/$/, "");
fs.mkdirSync(ARTIFACTS, { recursive: true });

let failures = 0;
function check(label, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${label}${detail ? `: ${detail}` : ""}`);
  if (!ok) failures++;
  return ok;
}
class Fatal extends Error {}
function must(label, ok, detail) {
  if (!check(label, ok, detail)) throw new Fatal(label);
}

async function api(p, body) {
  const headers = KEY ? { Authorization: `Bearer ${KEY}` } : {};
  const res = await fetch(base + p, body === undefined ? { headers } : {
    method: "POST", headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// The same mapping as web/ui.js tokenText (display piece -> visible text).
const tokenText = (p) => String(p).replace(/▁/g, " ")
  .replace(/<0x([0-9A-Fa-f]{2})>/g, (_, x) => String.fromCharCode(parseInt(x, 16)))
  .replace(/\n/g, "↵").replace(/\t/g, "→");
const decode = (pieces) => pieces.filter((p) => !/^<\/?s>$/.test(p)).map((p) => String(p)
  .replace(/▁/g, " ").replace(/<0x([0-9A-Fa-f]{2})>/g,
    (_, x) => String.fromCharCode(parseInt(x, 16)))).join("").trim();

// The same formatting as web/ui.js fmt (numbers in tables).
function fmt(x, digits = 3) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}
const SCORE_METHODS = ["detection", "fuzzing", "intervention"];
const WARNING = "amplifying this feature moves generations away from the explanation";

const TRANSPARENT = new Set(["transparent", "rgba(0, 0, 0, 0)"]);

// [{act, bg}] of the .tok spans under selector.
const tokenColours = (page, selector) => page.$$eval(`${selector} .tok`, (spans) =>
  spans.map((s) => ({ act: parseFloat(s.dataset.act), bg: getComputedStyle(s).backgroundColor,
    text: s.textContent, center: s.classList.contains("center") })));

function checkColours(label, toks) {
  const firing = toks.filter((t) => t.act > 0);
  const badOn = firing.filter((t) => TRANSPARENT.has(t.bg));
  const badOff = toks.filter((t) => !(t.act > 0) && !TRANSPARENT.has(t.bg));
  check(`${label}: some tokens have a positive data-act`, firing.length > 0,
    `${firing.length} of ${toks.length}`);
  check(`${label}: every token with act > 0 has a coloured background`, badOn.length === 0,
    JSON.stringify(badOn.slice(0, 3)));
  check(`${label}: tokens with act 0 are not coloured`, badOff.length === 0,
    JSON.stringify(badOff.slice(0, 3)));
}

// A text query for ?q= that the database filters non-trivially (0 < matches < all), picked from
// the words of real top examples; null when none of the candidates does.
async function pickTextQuery(all, details) {
  const seen = new Set();
  for (const d of details) {
    for (const ex of d.top_examples || []) {
      // The centre token's word first, then whole words of the window (not its cut ends).
      const inner = decode(ex.tokens).split(/\s+/).slice(1, -1).join(" ");
      const words = decode([ex.tokens[ex.center]]).split(/[^A-Za-z]+/)
        .concat(inner.split(/[^A-Za-z]+/));
      for (const w of words) {
        const word = w.toLowerCase();
        if (word.length < 4 || seen.has(word)) continue;
        seen.add(word);
        if (seen.size > 40) return null;
        const r = await api(`/api/features?q=${encodeURIComponent(word)}&limit=500`);
        if (r.total > 0 && r.total < all.total) return { word, result: r };
      }
    }
  }
  return null;
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let page;
// Until the generate view's status line says done or shows an error.
const genDone = () => page.waitForFunction(() => {
  const s = document.querySelector("#gen-status");
  return s.textContent.startsWith("done") || s.querySelector(".error");
});
// Submits the feature search form (or does `action`, which submits it) and waits for the list it
// brings (not the one before it).
async function submitSearch(action) {
  await page.waitForSelector("#feature-table");  // the list before (the form renders first)
  await page.$eval("#feature-table", (t) => { t.dataset.stale = "1"; });
  if (action) await action();
  else await page.click("#feature-search button[type=submit]");
  await page.waitForFunction(() => {
    if (document.querySelector("#view .error")) return true;
    const fresh = !document.querySelector("#feature-table[data-stale]");
    return fresh && document.querySelector("#count");
  });
}
const rowIds = () => page.$$eval("tr.feature-row", (rs) => rs.map((r) => r.dataset.id));
const apiIds = (r) => r.features.slice(0, 50).map((f) => String(f.id));

// The list's explanation and score columns, sorting by score, search in explanations, and the
// feature page's explanation cards, each against the API.
async function checkAutointerp(fx) {
  await page.goto(`${base}/#/features`, { waitUntil: "networkidle0" });
  await page.waitForSelector("tr.feature-row td.explanation");
  const listed = await api("/api/features?limit=50");
  check("autointerp: the API says the database has explanations and scores",
    listed.has_explanations === true && listed.has_scores === true);
  const cells = await page.$$eval("tr.feature-row", (rs) => rs.map((r) => ({
    id: r.dataset.id,
    title: r.querySelector("td.explanation").title,
    text: r.querySelector("td.explanation").textContent,
    scores: Object.fromEntries([...r.querySelectorAll("td.score")].map((c) =>
      [c.dataset.method, { value: c.dataset.value, text: c.textContent }])),
  })));
  const byId = new Map(listed.features.map((f) => [String(f.id), f]));
  const wrong = cells.filter((c) => {
    const f = byId.get(c.id);
    const text = f.explanation || "";
    const shown = text.length > 90 ? c.text.endsWith("…") && text.startsWith(c.text.slice(0, -1))
      : c.text === (text || "–");
    return c.title !== text || !shown || SCORE_METHODS.some((m) => !c.scores[m] ||
      c.scores[m].value !== (f.scores[m] === null ? "" : String(f.scores[m])) ||
      c.scores[m].text !== fmt(f.scores[m], 2));
  });
  check("autointerp list: every row shows its explanation and three scores as the API gives them",
    cells.length === listed.features.length && wrong.length === 0, JSON.stringify(wrong[0]));
  const explained = cells.filter((c) => c.title !== "").map((c) => Number(c.id));
  check("autointerp list: the explained features show their explanation",
    fx.explained.every((id) => explained.includes(id)) && explained.length === fx.explained.length,
    `${explained} vs ${fx.explained}`);
  const long = cells.find((c) => c.id === String(fx.long));
  check("autointerp list: a long explanation is cut", long && long.text.length <= 90 &&
    long.text.endsWith("…") && long.title.length > 90, JSON.stringify(long));
  check("autointerp list: explanation HTML is shown as text",
    (await page.$$eval("#feature-table img, #feature-table b", (e) => e.length)) === 0 &&
    cells.find((c) => c.id === String(fx.html)).title.startsWith("<img"));
  await shot("03a-explanations-list.png");

  // Sorting by a score: the API's order, the scored features first, then the rest by id.
  for (const order of ["desc", "asc"]) {
    const want = await api(`/api/features?sort=detection&order=${order}&limit=50`);
    await page.$eval("#order", (e, v) => { e.value = v; }, order);
    await submitSearch(() => page.select("#sort", "detection"));  // its change event submits
    const ids = await rowIds();
    check(`autointerp: sort by detection (${order}) lists what the API lists`,
      page.url().includes("sort=detection") && ids.join() === apiIds(want).join(),
      `${ids.slice(0, 8)} vs ${apiIds(want).slice(0, 8)}`);
    const scored = order === "desc" ? fx.detection_order : [...fx.detection_order].reverse();
    check(`autointerp: sort by detection (${order}): scored features first, by score`,
      ids.slice(0, scored.length).join() === scored.join(), `${ids.slice(0, 6)} vs ${scored}`);
    const rest = ids.slice(scored.length).map(Number);
    check(`autointerp: sort by detection (${order}): unscored features last, by id`,
      rest.join() === [...rest].sort((a, b) => a - b).join());
  }
  await shot("03b-sort-detection.png");

  // Text search finds a word that only an explanation holds.
  const found = await api(`/api/features?q=${fx.search_word}&limit=50`);
  await page.$eval("#search-q", (e) => { e.value = ""; });
  await page.type("#search-q", fx.search_word);
  await submitSearch();
  const hits = await rowIds();
  check(`autointerp: search "${fx.search_word}" finds the feature whose explanation has it`,
    hits.join() === apiIds(found).join() && hits.join() === String(fx.search_hit),
    `page ${hits} api ${apiIds(found)}`);

  // The feature page: every explanation with its scores, the offline label, the warning.
  await page.goto(`${base}/#/feature/${fx.negative}`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#explanations .explanation-card");
  const d = await api(`/api/features/${fx.negative}`);
  const cards = await page.$$eval("#explanations .explanation-card", (cs) => cs.map((c) => ({
    explainer: c.dataset.explainer,
    label: c.querySelector(".explainer-label").textContent,
    text: c.querySelector(".explanation-text").textContent,
    warning: (() => {
      const w = c.querySelector(".intervention-warning");
      return w && w.offsetParent !== null ? w.textContent : null;
    })(),
    rows: [...c.querySelectorAll("tr.score-row")].map((r) => ({
      method: r.dataset.method, judge: r.dataset.judge,
      cells: [...r.querySelectorAll("td")].map((td) => td.textContent),
    })),
  })));
  check("feature page: one card per explanation, primary first", cards.length ===
    d.explanations.length && cards.map((c) => c.explainer).join() ===
    d.explanations.map((x) => x.explainer).join() && cards.length === 2,
  cards.map((c) => c.explainer).join());
  const offline = cards.find((c) => c.explainer === "offline");
  check("feature page: the offline explainer is labelled \"offline (statistical)\"",
    offline && offline.label === "offline (statistical)", offline && offline.label);
  check("feature page: explanation texts as the API gives them",
    cards.every((c, i) => c.text === d.explanations[i].explanation));
  const primary = cards[0];
  check("feature page: the primary explanation shows all three scores",
    SCORE_METHODS.every((m) => primary.rows.some((r) => r.method === m)),
    JSON.stringify(primary.rows.map((r) => r.method)));
  const cellsOk = d.explanations.every((x, i) => x.scores.length === cards[i].rows.length &&
    x.scores.every((s, j) => {
      const c = cards[i].rows[j].cells;  // method, judge, value, accuracy, balanced, AUROC, n
      return c[0] === s.method && c[2] === fmt(s.value) && c[3] === fmt(s.accuracy) &&
        c[4] === fmt(s.balanced_accuracy) && c[5] === fmt(s.auroc) && c[6] === String(s.n);
    }));
  check("feature page: value, accuracy, balanced accuracy and AUROC of every score", cellsOk,
    JSON.stringify(cards.map((c) => c.rows)));
  const negative = d.explanations[0].scores.find((s) => s.method === "intervention");
  check("feature page: a negative intervention score shows the warning",
    negative && negative.value < 0 && primary.warning !== null &&
    primary.warning.includes(WARNING), String(primary.warning));
  check("feature page: the warning is only on the explanation it concerns",
    cards.slice(1).every((c) => c.warning === null));
  await shot("03c-feature-explanations.png");

  await page.goto(`${base}/#/feature/${fx.positive}`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#explanations .explanation-card");
  check("feature page: no warning for a positive intervention score",
    (await page.$$(".intervention-warning")).length === 0);
  await page.goto(`${base}/#/feature/${fx.html}`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#explanations .explanation-card");
  const xd = await api(`/api/features/${fx.html}`);
  check("feature page: explanation HTML is shown as text, never parsed",
    (await page.$eval("#explanations .explanation-text", (e) => e.textContent)) ===
      xd.explanations[0].explanation &&
    (await page.$$("#explanations img, #explanations b")).length === 0 &&
    (await page.evaluate(() => window.__xss)) === undefined);
}

const shot = async (name) => {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`     screenshot ${file}`);
};
try {
  page = await browser.newPage();
  page.setDefaultTimeout(60000);  // a bound for waits that normally take well under a second, ASan and a busy machine included
  await page.setViewport({ width: 1200, height: 900 });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // (The browser logs each 4xx response, which step 7 causes on purpose, as a console error.)
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      pageErrors.push(m.text());
    }
  });
  const external = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) external.push(r.url());
  });

  // Data to compare the page with, straight from the API.
  const all = await api("/api/features?limit=500");
  must("the database lists features", all.total > 0 && all.features.length > 0,
    `total ${all.total}`);
  const alive = all.features.filter((f) => f.n_fires > 0);
  must("some features fire", alive.length > 0);
  const details = [];
  for (const f of alive.slice(0, 8)) details.push(await api(`/api/features/${f.id}`));

  // 1. The explorer loads and lists features (after asking for the API key the server needs).
  await page.goto(`${base}/`, { waitUntil: "networkidle0" });
  if (KEY) {
    await page.waitForSelector("#api-key-input");
    check("a 401 shows the server's message and asks for the key",
      (await page.$eval(".error", (e) => e.textContent)).length > "This server needs".length);
    await shot("00-api-key.png");
    await page.type("#api-key-input", KEY);
    await page.click("#api-key-form button[type=submit]");
  }
  await page.waitForSelector("#feature-table tbody tr.feature-row");
  const firstPage = await page.$$eval("tr.feature-row", (rs) => rs.map((r) => r.dataset.id));
  check("feature list shows the first page", firstPage.length === Math.min(50, all.total),
    `${firstPage.length} rows`);
  check("feature list is in the API's order (freq desc)",
    firstPage.join() === all.features.slice(0, firstPage.length).map((f) => String(f.id)).join());
  check("count line shows the total", (await page.$eval("#count", (e) => e.textContent))
    .includes(String(all.total)));
  check("model line is filled", (await page.$eval("#model-info", (e) => e.textContent)).length > 0);
  await shot("01-features.png");

  // 2. Text search: the list shows exactly what /api/features?q= returns.
  const picked = await pickTextQuery(all, details);
  must("found a word from top examples that filters the list", picked !== null);
  await page.type("#search-q", picked.word);
  await submitSearch();
  check("text search goes into the address", page.url().includes(`q=${picked.word}`), page.url());
  check("text search: count line shows the filtered total",
    (await page.$eval("#count", (e) => e.textContent)).includes(`of ${picked.result.total}`));
  const searched = await page.$$eval("tr.feature-row", (rs) => rs.map((r) => r.dataset.id));
  const wantIds = picked.result.features.slice(0, 50).map((f) => String(f.id));
  check(`text search "${picked.word}" filters the list (${picked.result.total} of ${all.total})`,
    searched.join() === wantIds.join(), `page ${searched.join()} vs api ${wantIds.join()}`);
  await shot("02-search-text.png");

  // 3. Token search with a real max token.
  const tokenFeature = alive.find((f) => f.max_token);
  if (check("a feature has a max token", tokenFeature !== undefined)) {
    const tok = tokenFeature.max_token;
    const want = await api(`/api/features?token=${encodeURIComponent(tok)}&limit=500`);
    await page.goto(`${base}/#/features`, { waitUntil: "networkidle0" });
    await page.waitForSelector("#search-token");
    await page.type("#search-token", tok);
    await submitSearch();
    const ids = await page.$$eval("tr.feature-row", (rs) => rs.map((r) => r.dataset.id));
    check(`token search ${JSON.stringify(tok)} lists what the API lists`,
      want.total > 0 && ids.join() === want.features.slice(0, 50).map((f) => String(f.id)).join(),
      `${ids.length} rows, api total ${want.total}`);
    check("token search includes the feature it came from", ids.includes(String(tokenFeature.id)));
    await shot("03-search-token.png");
  }

  // 3b. Explanations and scores (the autointerp rows ui_test.py added to the database).
  if (AUTOINTERP) await checkAutointerp(JSON.parse(fs.readFileSync(AUTOINTERP, "utf8")));

  // 4. Open a feature from the (text-)searched list.
  await page.goto(`${base}/#/features?q=${encodeURIComponent(picked.word)}`,
    { waitUntil: "networkidle0" });
  await page.waitForSelector("tr.feature-row");
  const openId = await page.$eval("tr.feature-row", (r) => r.dataset.id);
  await page.click("tr.feature-row");
  await page.waitForSelector("#histogram");
  await page.waitForSelector("#top-examples");
  const detail = await api(`/api/features/${openId}`);
  check("clicking a row opens its page", (await page.$eval("h1", (e) => e.textContent))
    .includes(`Feature ${openId}`));
  const bars = await page.$$eval("#histogram rect.bar", (rs) => rs.map((r) =>
    parseFloat(r.getAttribute("height"))));
  check("histogram: one SVG bar per bin", bars.length === detail.histogram.counts.length,
    `${bars.length} bars, ${detail.histogram.counts.length} bins`);
  check("histogram: bars have height", bars.some((b) => b > 0));
  const exToks = await tokenColours(page, "#top-examples");
  const wantToks = detail.top_examples.reduce((n, ex) => n + ex.tokens.length, 0);
  check("top examples: one span per token", exToks.length === wantToks,
    `${exToks.length} spans, ${wantToks} tokens`);
  checkColours("top examples", exToks);
  check("top examples: centre tokens emphasised",
    exToks.filter((t) => t.center).length === detail.top_examples.length);
  const ex0 = detail.top_examples[0];
  check("top examples: first example's text as the API gives it",
    exToks.slice(0, ex0.tokens.length).map((t) => t.text).join("") ===
      ex0.tokens.map(tokenText).join(""));
  const logitRows = await page.$$eval(".logits.positive tr", (r) => r.length) +
    await page.$$eval(".logits.negative tr", (r) => r.length);
  check("logit tables: all rows", logitRows === detail.logits.positive.length +
    detail.logits.negative.length, `${logitRows}`);
  await shot("04-feature.png");

  // 5. Run text with this feature: tokens coloured as /api/run reports, top features listed.
  await page.click("#run-with");
  await page.waitForSelector("#run-text");
  check("run page has the feature filled in",
    (await page.$eval("#run-features", (e) => e.value)) === String(openId));
  const runText = decode(ex0.tokens) || "Once upon a time there was a little dog.";
  await page.$eval("#run-text", (e, t) => { e.value = t; }, runText);
  await page.click("#run-go");
  await page.waitForSelector("#run-tokens .tok");
  const run = await api("/api/run",
    { text: runText, features: [Number(openId)], top_k: 5, bos: true });
  const runToks = await tokenColours(page, "#run-tokens");
  check("run: one span per token", runToks.length === run.tokens.length,
    `${runToks.length} spans, ${run.tokens.length} tokens`);
  const featActs = run.features[String(openId)];
  check("run: coloured by the chosen feature's activations",
    runToks.every((t, i) =>
      Math.abs(t.act - featActs[i]) <= 1e-6 * Math.max(1, Math.abs(featActs[i]))),
    `page ${runToks.map((t) => t.act).slice(0, 8)} api ${featActs.slice(0, 8)}`);
  if (featActs.some((a) => a > 0)) checkColours(`run (feature ${openId})`, runToks);
  else console.log(`     note: feature ${openId} does not fire on the run text`);
  await shot("05-run-feature.png");
  await page.select("#colour-by", "max");
  const maxToks = await tokenColours(page, "#run-tokens");
  checkColours("run (strongest latent)", maxToks);
  const topLinks = await page.$$eval("#run-top a.feat", (as) => as.map((a) => a.dataset.id));
  const wantLinks = run.top.reduce((n, t) => n + t.length, 0);
  check("run: top features per token listed with links",
    topLinks.length === wantLinks && wantLinks > 0, `${topLinks.length} links, api ${wantLinks}`);
  const firing = run.top.findIndex((t) => t.length > 0);
  await page.click(`#run-tokens .tok[data-index="${firing}"]`);
  const panel = await page.$$eval("#token-detail a.feat", (as) => as.map((a) => a.dataset.id));
  check("run: clicking a token shows its top features",
    panel.join() === run.top[firing].map((f) => String(f.id)).join(), panel.join());
  await shot("06-run-max.png");

  // 6. The generation box streams a continuation, which can go to the run page.
  await page.goto(`${base}/#/generate`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#gen-prompt");
  await page.$eval("#gen-prompt", (e) => { e.value = "Once upon a time"; });
  await page.$eval("#gen-max", (e) => { e.value = "24"; });
  await page.$eval("#gen-seed", (e) => { e.value = "7"; });
  await page.$eval("#gen-text", (e) => {  // counts the appends as the stream arrives
    window.genAppends = 0;
    new MutationObserver((ms) => { window.genAppends += ms.length; })
      .observe(e, { childList: true, characterData: true, subtree: true });
  });
  const posted = [];
  const onRequest = (r) => { if (r.method() === "POST") posted.push(new URL(r.url()).pathname); };
  page.on("request", onRequest);
  await page.click("#gen-go");
  await genDone();
  const status = await page.$eval("#gen-status", (e) => e.textContent);
  const generated = await page.$eval("#gen-text", (e) => e.textContent);
  check("generate (stream): finishes", status.startsWith("done"), status);
  check("generate (stream): text appended", generated.length > 0, JSON.stringify(generated));
  const appends = await page.evaluate(() => window.genAppends);
  check("generate (stream): appended piece by piece from /v1/completions",
    appends > 1 && posted.includes("/v1/completions"), `${appends} appends, POSTs ${posted}`);
  await shot("07-generate.png");
  await page.click("#gen-stream");
  await page.click("#gen-go");
  await genDone();
  const status2 = await page.$eval("#gen-status", (e) => e.textContent);
  check("generate (/api/generate): finishes", status2.startsWith("done"), status2);
  check("generate (/api/generate): text",
    (await page.$eval("#gen-text", (e) => e.textContent)).length > 0);
  check("generate without stream posts /api/generate", posted.includes("/api/generate"),
    `${posted}`);
  // A latent monitor (threshold below any activation: fires on every token) streams a trace.
  await page.click("#gen-stream");
  await page.select("#gen-mon-type", "latent");
  await page.$eval("#gen-mon-target", (e) => { e.value = "0"; });
  await page.$eval("#gen-mon-threshold", (e) => { e.value = "-1"; });
  await page.click("#gen-go");
  await genDone();
  const trace = await page.$$eval("#gen-text .mon-tok",
    (es) => es.map((e) => [e.title, e.classList.contains("mon-fired")]));
  check("generate (monitor): per-token trace with scores, every token fired",
    trace.length > 1 && trace.every(([t, f]) => /^token \d+: latent -?\d/.test(t) && f),
    JSON.stringify(trace.slice(0, 3)));
  // The live trace line: one point per scored token, a red dot per firing.
  const line = await page.$eval("#gen-traces svg[data-monitor='latent']", (svg) => [
    svg.querySelector("polyline").getAttribute("points").trim().split(/\s+/).length,
    svg.querySelectorAll("circle").length]);
  check("generate (monitor): live trace line with a point and a firing dot per token",
    line[0] >= trace.length && line[1] === line[0], JSON.stringify(line));
  await shot("07b-generate-monitor.png");
  await page.select("#gen-mon-action", "stop");
  await page.click("#gen-go");
  await genDone();
  const status3 = await page.$eval("#gen-status", (e) => e.textContent);
  check("generate (monitor stop): ends with finish_reason monitor after one token",
    status3 === "done (monitor)" &&
    (await page.$$eval("#gen-text .mon-tok", (es) => es.length)) === 1, status3);
  await page.select("#gen-mon-type", "");
  page.off("request", onRequest);
  await page.click("#gen-run");
  await page.waitForSelector("#run-tokens .tok");
  check("generated text runs on the run page",
    (await page.$eval("#run-text", (e) => e.value)).startsWith("Once upon a time"));

  // 7. API errors are shown in the page.
  await page.goto(`${base}/#/feature/${all.total + 1000000}`, { waitUntil: "networkidle0" });
  await page.waitForSelector(".error");
  const errText = await page.$eval(".error", (e) => e.textContent);
  check("an API error's message is shown", errText.length > 0, errText);
  await shot("08-error.png");

  check("no page errors", pageErrors.length === 0, pageErrors.join(" | "));
  check("no requests outside the server (no CDN)", external.length === 0, external.join(" "));
} catch (e) {
  if (!(e instanceof Fatal)) check("explorer test ran to the end", false, e.stack || String(e));
  try { await shot("failure.png"); } catch (_) { /* no page to capture */ }
} finally {
  await browser.close();
}
console.log(failures ? `${failures} UI checks failed` : "all UI checks passed");
process.exit(failures ? 1 : 0);
