// The generation box (#/generate): samples a continuation, streamed from /v1/completions (text
// appended as each event arrives) or in one piece from /api/generate; the result can be sent to
// the run page. An optional monitor (a latent of the server's SAE or one of its --probe files,
// with a threshold and an action) is sent as "monitors". Whatever monitors score the stream (that
// one and the server's --monitors) are shown live: each piece shaded by the first monitor's score
// (all scores in its title; fired tokens outlined), and one trace line per monitor below.
import { post, streamCompletion } from "./api.js";
import { actColor, errorBox, h } from "./ui.js";

export function generateView(root, params, go) {
  const prompt = h("textarea", { id: "gen-prompt", rows: 3 });
  prompt.value = params.get("prompt") || "Once upon a time";
  const maxTokens = h("input", { id: "gen-max", type: "number", min: 1, value: 64 });
  const temp = h("input", { id: "gen-temp", type: "number", min: 0, step: 0.1, value: 0.8 });
  const seed = h("input", { id: "gen-seed", type: "number", placeholder: "random" });
  const stream = h("input", { id: "gen-stream", type: "checkbox", checked: true });
  const monType = h("select", { id: "gen-mon-type" },
    h("option", { value: "" }, "off"), h("option", { value: "latent" }, "SAE latent"),
    h("option", { value: "probe" }, "probe"));
  const monTarget = h("input", { id: "gen-mon-target", placeholder: "latent id / probe name",
    class: "narrow" });
  const monThreshold = h("input", { id: "gen-mon-threshold", type: "number", step: "any", value: 1,
    class: "narrow" });
  const monAction = h("select", { id: "gen-mon-action" },
    h("option", { value: "flag" }, "flag"), h("option", { value: "stop" }, "stop"));
  const traces = h("div", { id: "gen-traces", class: "gen-traces" });
  const button = h("button", { type: "submit", id: "gen-go" }, "Generate");
  const shownPrompt = h("span", { class: "prompt" });
  const generated = h("span", { id: "gen-text" });
  const output = h("pre", { id: "gen-output", class: "gen-output" }, shownPrompt, generated);
  const status = h("p", { id: "gen-status", class: "muted" });
  const toRun = h("button", { type: "button", id: "gen-run", disabled: true,
    onclick: () => go("#/run", { text: prompt.value + generated.textContent, go: 1 }) },
  "run this text");

  const generate = async () => {
    const body = { prompt: prompt.value, max_tokens: parseInt(maxTokens.value, 10) || 16,
      temperature: parseFloat(temp.value) };
    if (Number.isNaN(body.temperature)) body.temperature = 1;
    if (seed.value !== "") body.seed = parseInt(seed.value, 10);
    if (monType.value) {
      const m = { name: monType.value, type: monType.value,
        threshold: parseFloat(monThreshold.value) || 0, action: monAction.value };
      if (m.type === "latent") m.latent = parseInt(monTarget.value, 10);
      else m.probe = monTarget.value.trim();
      body.monitors = [m];
    }
    shownPrompt.textContent = prompt.value;
    generated.textContent = "";
    traces.replaceChildren();
    status.replaceChildren("generating…");
    button.disabled = true;
    toRun.disabled = true;
    try {
      let finish;
      if (stream.checked) {
        const trace = liveTrace(traces);
        finish = await streamCompletion(body, (piece, chunk) => {
          if (!chunk.monitors) { generated.append(piece); return; }
          trace.add(chunk);
          const last = chunk.monitors[chunk.monitors.length - 1];
          const names = Object.keys(last.scores);
          const score = last.scores[names[0]];
          const fired = (chunk.monitor_events || []).length > 0;
          const span = h("span", { class: fired ? "mon-tok mon-fired" : "mon-tok",
            title: `token ${last.token_index}: ` +
              names.map((n) => `${n} ${last.scores[n].toFixed(4)}`).join(", "),
            dataset: { score: String(score) } }, piece);
          span.style.backgroundColor = actColor(score, trace.scale(names[0]));
          generated.append(span);
        });
      } else {
        const res = await post("/api/generate", body);
        generated.textContent = res.text;
        finish = res.finish_reason;
      }
      status.replaceChildren(`done (${finish || "end of stream"})`);
      toRun.disabled = false;
    } catch (e) {
      status.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  };
  root.replaceChildren(
    h("h1", {}, "Generate"),
    h("form", { id: "gen-form", onsubmit: (e) => { e.preventDefault(); generate(); } },
      prompt,
      h("div", { class: "toolbar" },
        h("label", {}, "Max tokens ", maxTokens), h("label", {}, "Temperature ", temp),
        h("label", {}, "Seed ", seed), h("label", {}, stream, " stream"), button, toRun),
      h("div", { class: "toolbar" },
        h("label", { title: "a latent of the server's --sae or one of its --probe files, " +
          "scored on every token" }, "Monitor ", monType, " ", monTarget),
        h("label", {}, "above ", monThreshold), h("label", {}, "then ", monAction))),
    output, traces, status);
}

// One SVG line per monitor name, redrawn as chunks arrive: x = generated token, y = score
// (scaled to the monitor's own range); fired tokens are red dots.
function liveTrace(root) {
  const series = new Map();  // name -> {scores: [], fired: Set, svg}
  const draw = (name, s) => {
    const w = 600, ht = 60, n = Math.max(2, s.scores.length);
    const lo = Math.min(0, ...s.scores), hi = Math.max(1e-9, ...s.scores);
    const x = (i) => (i / (n - 1)) * w;
    const y = (v) => ht - ((v - lo) / (hi - lo || 1)) * ht;
    const pts = s.scores.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const ns = "http://www.w3.org/2000/svg";
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts);
    line.setAttribute("class", "trace-line");
    const dots = [...s.fired].map((i) => {
      const c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", x(i).toFixed(1));
      c.setAttribute("cy", y(s.scores[i]).toFixed(1));
      c.setAttribute("r", "2.5");
      c.setAttribute("class", "trace-fired");
      return c;
    });
    s.svg.replaceChildren(line, ...dots);
    s.label.textContent = `${name}: ${s.scores.length} tokens, last ` +
      `${s.scores[s.scores.length - 1].toFixed(4)}, max ${hi.toFixed(4)}` +
      (s.fired.size ? `, fired ×${s.fired.size}` : "");
  };
  const get = (name) => {
    if (!series.has(name)) {
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 600 60");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "trace");
      svg.dataset.monitor = name;
      const label = h("div", { class: "muted trace-label" });
      root.append(h("div", { class: "trace-box" }, label, svg));
      series.set(name, { scores: [], fired: new Set(), svg, label });
    }
    return series.get(name);
  };
  return {
    add(chunk) {
      for (const m of chunk.monitors) {
        for (const [name, v] of Object.entries(m.scores)) get(name).scores[m.token_index] = v;
      }
      for (const e of chunk.monitor_events || []) get(e.name).fired.add(e.token_index);
      for (const [name, s] of series) draw(name, s);
    },
    scale: (name) => Math.max(1e-6, ...get(name).scores.map(Math.abs)),
  };
}
