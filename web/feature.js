// The feature page (#/feature/ID): summary statistics, the activation histogram as inline SVG,
// top examples and quantile bands with tokens coloured by activation, and the logit effects.
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
  root.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/features" }, "← all features")),
    h("h1", {}, `Feature ${f.id}`,
      h("button", { class: "small", id: "run-with", onclick: () => go("#/run", { f: f.id }) },
        "run text with this feature")),
    stats,
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
