// The web explorer in headless Chromium (puppeteer-core driving Debian's /usr/bin/chromium).
// usage: node explorer.test.mjs BASE_URL ARTIFACT_DIR [API_KEY]
// Against a running `glassbox serve --sae --db [--api-key]`: loads the explorer (entering the API
// key in the form a 401 brings up, when one is given), searches features by text and
// by token (checking the list is filtered exactly as /api/features filters), opens a feature
// (histogram SVG, example tokens coloured by activation, logit tables), runs text (tokens coloured
// as /api/run reports, top features per token), generates text, shows an API error; a screenshot
// of each step lands in ARTIFACT_DIR. Exit 0 = all passed, 1 = a check failed (message printed).
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [BASE, ARTIFACTS, KEY] = process.argv.slice(2);
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
// Submits the feature search form and waits for the list it brings (not the one before it).
async function submitSearch() {
  await page.$eval("#feature-table", (t) => { t.dataset.stale = "1"; });
  await page.click("#feature-search button[type=submit]");
  await page.waitForFunction(() => {
    if (document.querySelector("#view .error")) return true;
    const fresh = !document.querySelector("#feature-table[data-stale]");
    return fresh && document.querySelector("#count");
  });
}
const shot = async (name) => {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`     screenshot ${file}`);
};
try {
  page = await browser.newPage();
  page.setDefaultTimeout(20000);
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
  await page.$eval("#gen-mon-latent", (e) => { e.value = "0"; });
  await page.$eval("#gen-mon-threshold", (e) => { e.value = "-1"; });
  await page.click("#gen-go");
  await genDone();
  const trace = await page.$$eval("#gen-text .mon-tok",
    (es) => es.map((e) => [e.title, e.classList.contains("mon-fired")]));
  check("generate (monitor): per-token trace with scores, every token fired",
    trace.length > 1 && trace.every(([t, f]) => /^token \d+: -?\d/.test(t) && f),
    JSON.stringify(trace.slice(0, 3)));
  await shot("07b-generate-monitor.png");
  await page.select("#gen-mon-action", "stop");
  await page.click("#gen-go");
  await genDone();
  const status3 = await page.$eval("#gen-status", (e) => e.textContent);
  check("generate (monitor stop): ends with finish_reason monitor after one token",
    status3 === "done (monitor)" &&
    (await page.$$eval("#gen-text .mon-tok", (es) => es.length)) === 1, status3);
  await page.$eval("#gen-mon-latent", (e) => { e.value = ""; });
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
