// Small DOM helpers shared by the views: element building, number formatting, and token spans
// coloured by activation (the one place that decides how a token and its activation look).
import { setApiKey } from "./api.js";

// h("div", {class: "x", onclick: f}, child, "text", [more]) -> element; null/false children skip.
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else e.append(c instanceof Node ? c : String(c));
  }
}

export function fmt(x, digits = 3) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

export const pct = (x) => (x === undefined || x === null ? "–" : `${fmt(100 * x)}%`);

// A token's display text (the server sends decoded text, never raw "▁"/"Ġ" pieces) with its
// line breaks and tabs visible: a newline shows as "↵" and a tab as "→".
export function tokenText(text) {
  return String(text ?? "").replace(/\n/g, "↵").replace(/\t/g, "→");
}

// Background for an activation: transparent at <= 0, up to full orange at act >= max.
export function actColor(act, max) {
  if (!(act > 0) || !(max > 0)) return "transparent";
  const a = Math.min(1, act / max);
  return `rgba(255, 140, 0, ${(0.12 + 0.88 * a).toFixed(3)})`;
}

// One token as <span class="tok" data-act=...>; extra classes and title optional.
export function tokenSpan(piece, act, max, extra = {}) {
  const span = h("span", {
    class: ["tok", extra.class].filter(Boolean).join(" "),
    title: extra.title,
    dataset: { act: String(act ?? 0), ...(extra.dataset || {}) },
  }, tokenText(piece));
  span.style.backgroundColor = actColor(act, max);
  return span;
}

// A context window of tokens (an example from the feature database), centre token emphasised.
export function exampleRow(ex, max) {
  const toks = ex.tokens.map((t, i) =>
    tokenSpan(t, ex.acts[i], max, {
      class: i === ex.center ? "center" : "",
      title: `${JSON.stringify(tokenText(t))}  act ${fmt(ex.acts[i])}`,
    }));
  return h("div", { class: "example" },
    h("span", { class: "ex-act", title: `doc ${ex.doc}, token ${ex.pos}` }, fmt(ex.act)),
    h("span", { class: "ex-tokens" }, toks));
}

// An API error's message; a 401 also offers to enter the key (kept in localStorage).
export function errorBox(err) {
  const box = h("div", { class: "error", role: "alert" }, err.message || String(err));
  if (err.status === 401) {
    const key = h("input", { type: "password", id: "api-key-input", placeholder: "API key",
      autocomplete: "off" });
    box.append(h("form", { class: "toolbar", id: "api-key-form", onsubmit: (e) => {
      e.preventDefault();
      setApiKey(key.value.trim());
      window.dispatchEvent(new Event("glassbox-key"));
    } }, h("label", {}, "This server needs an API key: ", key),
    h("button", { type: "submit" }, "Use key")));
  }
  return box;
}

export function loading(what = "loading…") {
  return h("p", { class: "muted" }, what);
}
