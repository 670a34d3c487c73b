// The feature list (#/features?q=&token=&sort=&order=&offset=): search over top-example text and
// explanations or by a centre token, sorting (also by autointerp score), paging; each row shows
// the feature's primary explanation and scores when the database has them; a row opens the
// feature page.
import { get, withQuery } from "./api.js";
import { errorBox, fmt, h, loading, pct, tokenText } from "./ui.js";

const PAGE = 50;
const EXPLANATION_CHARS = 90;  // longer explanations are cut in the list (full text on hover)
const SCORES = ["detection", "fuzzing", "intervention"];
const SORTS = [["freq", "frequency"], ["mean_act", "mean activation"],
  ["max_act", "max activation"], ["id", "id"],
  ...SCORES.map((m) => [m, `${m} score`])];

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1).trimEnd()}…` : text;
}

// One score cell: the value, or "–" when the primary explanation has no such score.
function scoreCell(method, value) {
  const missing = value === null || value === undefined;
  return h("td", { class: ["num", "score", !missing && value < 0 ? "negative" : ""]
    .filter(Boolean).join(" "), dataset: { method, value: missing ? "" : String(value) } },
  missing ? "–" : fmt(value, 2));
}

export async function featureListView(root, params, go) {
  const state = {
    q: params.get("q") || "",
    token: params.get("token") || "",
    sort: params.get("sort") || "freq",
    order: params.get("order") || "desc",
    offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
  };
  const nav = (patch) => go("#/features", { ...state, offset: 0, ...patch });

  const q = h("input", { type: "search", id: "search-q",
    placeholder: "text in top examples or explanations", value: state.q });
  const token = h("input", { type: "search", id: "search-token",
    placeholder: "centre token, e.g. She", value: state.token });
  const sort = h("select", { id: "sort" },
    SORTS.map(([v, label]) => h("option", { value: v, selected: v === state.sort }, label)));
  const order = h("select", { id: "order" },
    h("option", { value: "desc", selected: state.order === "desc" }, "descending"),
    h("option", { value: "asc", selected: state.order === "asc" }, "ascending"));
  const form = h("form", { class: "toolbar", id: "feature-search", onsubmit: (e) => {
    e.preventDefault();
    nav({ q: q.value.trim(), token: token.value.trim(), sort: sort.value, order: order.value });
  } },
  h("label", {}, "Search ", q), h("label", {}, "Token ", token),
  h("label", {}, "Sort ", sort), order,
  h("button", { type: "submit" }, "Search"),
  (state.q || state.token) && h("button", { type: "button", class: "link",
    onclick: () => nav({ q: "", token: "" }) }, "clear"));
  sort.addEventListener("change", () => form.requestSubmit());
  order.addEventListener("change", () => form.requestSubmit());

  const body = h("div", {}, loading());
  root.replaceChildren(h("h1", {}, "Features"), form, body);

  let data;
  try {
    data = await get(withQuery("/api/features", { ...state, limit: PAGE }));
  } catch (e) {
    body.replaceChildren(errorBox(e));
    return;
  }
  if (!data.has_scores) {  // older analyses: nothing to sort by score
    for (const o of sort.options) {
      if (SCORES.includes(o.value)) {
        o.disabled = true;
        o.title = "no scores in this database (run glassbox score)";
      }
    }
  }
  const explained = Boolean(data.has_explanations);
  const rows = data.features.map((f) => h("tr", {
    class: "feature-row", dataset: { id: String(f.id) }, tabindex: 0,
    onclick: () => go(`#/feature/${f.id}`),
    onkeydown: (e) => { if (e.key === "Enter") go(`#/feature/${f.id}`); },
  },
  h("td", { class: "num" }, h("a", { href: `#/feature/${f.id}` }, f.id)),
  h("td", { class: "num" }, pct(f.freq)),
  h("td", { class: "num" }, String(f.n_fires)),
  h("td", { class: "num" }, fmt(f.mean_act)),
  h("td", { class: "num" }, fmt(f.max_act)),
  h("td", {}, f.max_token ? h("span", { class: "tok plain" }, tokenText(f.max_token)) : ""),
  explained && h("td", { class: "explanation", title: f.explanation || "" },
    f.explanation ? truncate(f.explanation, EXPLANATION_CHARS)
      : h("span", { class: "muted" }, "–")),
  explained && SCORES.map((m) => scoreCell(m, f.scores ? f.scores[m] : null))));

  const end = Math.min(state.offset + data.features.length, data.total);
  const pager = h("div", { class: "pager" },
    h("button", { id: "prev", disabled: state.offset === 0,
      onclick: () => go("#/features", { ...state, offset: Math.max(0, state.offset - PAGE) }) },
    "← previous"),
    h("span", { id: "count" }, data.total ? `${state.offset + 1}–${end} of ${data.total}`
      : "no features match"),
    h("button", { id: "next", disabled: end >= data.total,
      onclick: () => go("#/features", { ...state, offset: state.offset + PAGE }) }, "next →"));

  body.replaceChildren(
    h("table", { class: "features", id: "feature-table" },
      h("thead", {}, h("tr", {},
        ["id", "frequency", "fires", "mean act", "max act", "max token"].map((t) =>
          h("th", {}, t)),
        explained && h("th", {}, "explanation"),
        explained && SCORES.map((m) => h("th", { class: "num" }, m)))),
      h("tbody", {}, rows)),
    pager);
}
