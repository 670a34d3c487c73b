// The generation box (#/generate): samples a continuation, streamed from /v1/completions (text
// appended as each event arrives) or in one piece from /api/generate; the result can be sent to
// the run page. An optional monitor (a latent of the server's SAE, with a threshold and an action)
// is sent as "monitors"; streamed text is then shown as a live trace, each piece shaded by its
// token's score (the score in its title; fired tokens outlined).
import { post, streamCompletion } from "./api.js";
import { actColor, errorBox, h } from "./ui.js";

export function generateView(root, params, go) {
  const prompt = h("textarea", { id: "gen-prompt", rows: 3 });
  prompt.value = params.get("prompt") || "Once upon a time";
  const maxTokens = h("input", { id: "gen-max", type: "number", min: 1, value: 64 });
  const temp = h("input", { id: "gen-temp", type: "number", min: 0, step: 0.1, value: 0.8 });
  const seed = h("input", { id: "gen-seed", type: "number", placeholder: "random" });
  const stream = h("input", { id: "gen-stream", type: "checkbox", checked: true });
  const monLatent = h("input", { id: "gen-mon-latent", type: "number", min: 0, placeholder: "off",
    class: "narrow" });
  const monThreshold = h("input", { id: "gen-mon-threshold", type: "number", step: "any", value: 1,
    class: "narrow" });
  const monAction = h("select", { id: "gen-mon-action" },
    h("option", { value: "flag" }, "flag"), h("option", { value: "stop" }, "stop"));
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
    const monitored = monLatent.value !== "";
    if (monitored) {
      body.monitors = [{ name: "latent", type: "latent", latent: parseInt(monLatent.value, 10),
        threshold: parseFloat(monThreshold.value) || 0, action: monAction.value }];
    }
    shownPrompt.textContent = prompt.value;
    generated.textContent = "";
    status.replaceChildren("generating…");
    button.disabled = true;
    toRun.disabled = true;
    try {
      let finish;
      if (stream.checked) {
        let scale = 1e-6;  // largest score so far: shading is relative to it
        finish = await streamCompletion(body, (piece, chunk) => {
          if (!monitored || !chunk.monitors) { generated.append(piece); return; }
          const scores = chunk.monitors.map((m) => m.scores.latent);
          const fired = (chunk.monitor_events || []).length > 0;
          const score = Math.max(...scores);
          scale = Math.max(scale, Math.abs(score));
          const span = h("span", { class: fired ? "mon-tok mon-fired" : "mon-tok",
            title: `token ${chunk.monitors[0].token_index}: ${score.toFixed(4)}`,
            dataset: { score: String(score) } }, piece);
          span.style.backgroundColor = actColor(score, scale);
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
        h("label", { title: "a latent of the server's --sae, scored on every token" },
          "Monitor latent ", monLatent),
        h("label", {}, "above ", monThreshold), h("label", {}, "then ", monAction))),
    output, status);
}
