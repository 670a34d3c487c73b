// The run page (#/run?text=&f=&go=1): runs text through the model and SAE (POST /api/run), colours
// each token by one chosen feature's activation or by its strongest latent, and lists each
// token's top features with links to their pages.
import { post } from "./api.js";
import { errorBox, fmt, h, loading, tokenSpan, tokenText } from "./ui.js";

const DEFAULT_TEXT =
  "Once upon a time, there was a little girl named Lily. She loved to play outside.";

function parseIds(s) {
  const ids = [];
  for (const part of s.split(/[\s,]+/)) {
    if (!part) continue;
    if (!/^\d+$/.test(part)) {
      throw new Error(`feature ids: "${part}" is not a non-negative integer`);
    }
    ids.push(parseInt(part, 10));
  }
  return ids;
}

const featureLink = (id, act) =>
  h("a", { class: "feat", href: `#/feature/${id}`, dataset: { id: String(id) } },
    `#${id}`, act !== undefined && h("span", { class: "muted" }, ` ${fmt(act)}`));

// Renders a /api/run response: a colour-by selector, the coloured tokens, a detail panel for the
// clicked token and the per-token table of top features.
function renderResult(out, res, featureIds) {
  const n = res.tokens.length;
  const top = res.top || [];
  const colourBy = h("select", { id: "colour-by" },
    h("option", { value: "max" }, "strongest latent at each token"),
    featureIds.map((id) => h("option", { value: String(id) }, `feature #${id}`)));
  if (featureIds.length) colourBy.value = String(featureIds[0]);

  const detail = h("div", { id: "token-detail", class: "token-detail muted" },
    "click a token to see its top features");
  const tokens = h("div", { id: "run-tokens", class: "token-text" });
  const showDetail = (i) => {
    const t = res.tokens[i];
    const feats = top[i] || [];
    detail.className = "token-detail";
    detail.replaceChildren(
      h("strong", {}, `token ${i} `),
      h("span", { class: "tok plain" }, tokenText(t.text || t.token)),
      h("span", { class: "muted" }, ` id ${t.id}`),
      h("div", {}, feats.length ? feats.map((f) => featureLink(f.id, f.act))
        : h("span", { class: "muted" }, "no latent fires")));
  };
  const paint = () => {
    const key = colourBy.value;
    const acts = key === "max" ? top.map((fs) => (fs && fs.length ? fs[0].act : 0))
      : (res.features[key] || new Array(n).fill(0));
    const max = Math.max(0, ...acts);
    tokens.replaceChildren(...res.tokens.map((t, i) => {
      const feats = top[i] || [];
      const title = feats.length ? feats.map((f) => `#${f.id} ${fmt(f.act)}`).join("\n")
        : "no latent fires";
      const span = tokenSpan(t.text || t.token, acts[i] || 0, max,
        { title: `${JSON.stringify(tokenText(t.text || t.token))}\n${title}`,
          dataset: { index: String(i) } });
      span.addEventListener("click", () => showDetail(i));
      return span;
    }));
  };
  colourBy.addEventListener("change", paint);
  paint();

  const table = h("table", { id: "run-top", class: "run-top" },
    h("thead", {}, h("tr", {}, ["#", "token", "top features"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.tokens.map((t, i) => h("tr", {},
      h("td", { class: "num" }, String(i)),
      h("td", {}, h("span", { class: "tok plain" }, tokenText(t.text || t.token))),
      h("td", {}, (top[i] || []).map((f) => featureLink(f.id, f.act)))))));

  out.replaceChildren(
    h("div", { class: "toolbar" }, h("label", {}, "Colour by ", colourBy),
      h("span", { class: "muted" }, `${n} tokens`)),
    tokens, detail, h("h2", {}, "Top features per token"), table);
}

export function runView(root, params) {
  const text = h("textarea", { id: "run-text", rows: 4 });
  text.value = params.get("text") || DEFAULT_TEXT;
  const feats = h("input", { id: "run-features", placeholder: "e.g. 3, 17",
    value: params.get("f") || "" });
  const topK = h("input", { id: "run-topk", type: "number", min: 1, max: 64, value: 5 });
  const bos = h("input", { id: "run-bos", type: "checkbox", checked: true });
  const out = h("div", { id: "run-result" });
  const run = async () => {
    let ids;
    try {
      ids = parseIds(feats.value);
    } catch (e) {
      out.replaceChildren(errorBox(e));
      return;
    }
    out.replaceChildren(loading("running…"));
    try {
      const res = await post("/api/run", { text: text.value, features: ids,
        top_k: parseInt(topK.value, 10) || 5, bos: bos.checked });
      renderResult(out, res, ids);
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  root.replaceChildren(
    h("h1", {}, "Run text"),
    h("form", { id: "run-form", onsubmit: (e) => { e.preventDefault(); run(); } },
      text,
      h("div", { class: "toolbar" },
        h("label", {}, "Features ", feats), h("label", {}, "Top k ", topK),
        h("label", {}, bos, " BOS"), h("button", { type: "submit", id: "run-go" }, "Run"),
        h("a", { href: "#/generate", class: "muted" }, "generate text…"))),
    out);
  if (params.get("go")) run();
}
