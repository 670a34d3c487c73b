// The feature page (#/feature/ID): summary statistics, the primary explanation, the activation
// histogram as inline SVG, top examples and quantile bands with tokens coloured by activation, the
// logit effects, and every explanation with its scores (docs/autointerp.md).
import { get } from "./api.js";
import { errorBox, exampleRow, fmt, h, loading, pct, tokenText } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

// Bars of histogram.counts over histogram.edges (n + 1 edges), linear axes.
export function histogramSvg(hist) {
  const W = 640, H = 180, L = 48, R = 12, T = 10, B = 28;
  const counts = hist.counts || [];
  const edges = hist.edges || [];
  const root = svg("svg", { id: "histogram", class: "histogram", viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": "activation histogram" });
  if (!counts.length || edges.length !== counts.length + 1) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no activations"));
    return root;
  }
  const lo = edges[0], hi = edges[edges.length - 1];
  const span = hi > lo ? hi - lo : 1;
  const top = Math.max(1, ...counts);
  const x = (v) => L + ((v - lo) / span) * (W - L - R);
  const y = (c) => H - B - (c / top) * (H - T - B);
  root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  counts.forEach((c, i) => {
    const x0 = x(edges[i]), x1 = x(edges[i + 1]);
    root.append(svg("rect", { class: "bar", x: x0, y: y(c), width: Math.max(0.5, x1 - x0 - 0.5),
      height: H - B - y(c), "data-count": c },
    svg("title", {}, `(${fmt(edges[i])}, ${fmt(edges[i + 1])}]: ${c}`)));
  });
  const label = (x0, y0, text, anchor) =>
    svg("text", { x: x0, y: y0, "text-anchor": anchor, class: "tick" }, text);
  root.append(label(L, H - 8, fmt(lo), "start"), label(W - R, H - 8, fmt(hi), "end"),
    label((L + W - R) / 2, H - 8, "activation", "middle"),
    label(L - 6, T + 10, String(top), "end"), label(L - 6, H - B, "0", "end"));
  return root;
}

function logitTable(title, rows, cls) {
  return h("div", { class: `logits ${cls}` }, h("h3", {}, title),
    h("table", { class: "logit-table" },
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, h("span", { class: "tok plain" }, tokenText(r.token))),
        h("td", { class: "num" }, fmt(r.value)))))));
}

const INTERVENTION_WARNING =
  "amplifying this feature moves generations away from the explanation";

// The 'offline' explainer is the statistical one, not a model.
export const explainerLabel = (name) => (name === "offline" ? "offline (statistical)" : name);

// One explanation: who wrote it, the text, and a table of its scores (one row per method and
// judge, the row that counts first), with a warning when steering opposes the explanation.
function explanationCard(x, primary) {
  const scores = x.scores || [];
  const negative = scores.filter((s) => s.method === "intervention" && s.value < 0);
  const meta = [x.model && x.model !== x.explainer ? `model ${x.model}` : "",
    x.endpoint ? `via ${x.endpoint}` : "", x.created,
    x.prompt_tokens || x.completion_tokens
      ? `${x.prompt_tokens} + ${x.completion_tokens} tokens` : ""].filter(Boolean).join(" · ");
  const cell = (v) => h("td", { class: "num" }, v === null || v === undefined ? "–" : fmt(v, 3));
  return h("div", { class: "explanation-card", dataset: { explainer: x.explainer } },
    h("div", { class: "explanation-head" },
      h("span", { class: "explainer-label" }, explainerLabel(x.explainer)),
      primary && h("span", { class: "badge" }, "primary"),
      meta && h("span", { class: "muted small" }, meta)),
    h("p", { class: "explanation-text" }, x.explanation),
    negative.length > 0 && h("p", { class: "warning intervention-warning", role: "note" },
      `Intervention score ${fmt(negative[0].value, 3)}: ${INTERVENTION_WARNING}.`),
    scores.length ? h("table", { class: "score-table" },
      h("thead", {}, h("tr", {}, ["method", "judge", "value", "accuracy", "balanced accuracy",
        "AUROC", "n"].map((t, i) => h("th", { class: i >= 2 ? "num" : "" }, t)))),
      h("tbody", {}, scores.map((s) => h("tr", {
        class: ["score-row", s.method === "intervention" && s.value < 0 ? "negative" : ""]
          .filter(Boolean).join(" "),
        dataset: { method: s.method, judge: s.judge },
      },
      h("td", {}, s.method), h("td", {}, s.judge), cell(s.value),
      cell(s.accuracy), cell(s.balanced_accuracy), cell(s.auroc),
      h("td", { class: "num" }, String(s.n))))))
      : h("p", { class: "muted" }, "not scored"));
}

// The API lists explanations primary first, and scores by method, the row that counts first.
function explanationsSection(list) {
  return h("section", { id: "explanations" }, h("h2", {}, "Explanations"),
    list.map((x, i) => explanationCard(x, i === 0)));
}

export async function featureView(root, id, go) {
  root.replaceChildren(loading());
  let f;
  try {
    f = await get(`/api/features/${encodeURIComponent(id)}`);
  } catch (e) {
    root.replaceChildren(h("h1", {}, `Feature ${id}`), errorBox(e),
      h("p", {}, h("a", { href: "#/features" }, "← all features")));
    return;
  }
  const max = f.max_act > 0 ? f.max_act : 1;
  const stats = h("dl", { class: "stats", id: "feature-stats" },
    [["frequency", pct(f.freq)], ["fires", String(f.n_fires)], ["mean act", fmt(f.mean_act)],
      ["max act", fmt(f.max_act)],
      ["max token",
        f.max_token ? h("span", { class: "tok plain" }, tokenText(f.max_token)) : "–"]]
      .map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));

  const top = f.top_examples || [];
  const bands = (f.quantiles || []).filter((q) => q.examples && q.examples.length);
  const logits = f.logits || { positive: [], negative: [] };
  const explanations = f.explanations || [];
  root.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/features" }, "← all features")),
    h("h1", {}, `Feature ${f.id}`,
      h("button", { class: "small", id: "run-with", onclick: () => go("#/run", { f: f.id }) },
        "run text with this feature")),
    f.explanation && h("p", { class: "lead", id: "feature-explanation" }, f.explanation,
      h("span", { class: "muted small" }, ` — ${explainerLabel(f.explainer)}`)),
    stats,
    explanations.length > 0 && explanationsSection(explanations),
    h("section", {}, h("h2", {}, "Activation histogram"), histogramSvg(f.histogram || {})),
    h("section", { id: "top-examples" }, h("h2", {}, "Top examples"),
      top.length ? top.map((ex) => exampleRow(ex, max)) : h("p", { class: "muted" }, "none")),
    bands.length > 0 && h("section", { id: "quantiles" }, h("h2", {}, "Activation bands"),
      bands.map((q, i) => h("details", { open: i === bands.length - 1 },
        h("summary", {}, `(${fmt(q.lo)}, ${fmt(q.hi)}] — ${q.examples.length} examples`),
        q.examples.map((ex) => exampleRow(ex, max))))),
    h("section", { class: "logit-pair" }, h("h2", {}, "Logit effects"),
      h("div", { class: "two-col" },
        logitTable("promotes", logits.positive || [], "positive"),
        logitTable("suppresses", logits.negative || [], "negative"))));
}
