// The generation box (#/generate): samples a continuation, streamed from /v1/completions (text
// appended as each event arrives) or in one piece from /api/generate; the result can be sent to
// the run page.
import { post, streamCompletion } from "./api.js";
import { errorBox, h } from "./ui.js";

export function generateView(root, params, go) {
  const prompt = h("textarea", { id: "gen-prompt", rows: 3 });
  prompt.value = params.get("prompt") || "Once upon a time";
  const maxTokens = h("input", { id: "gen-max", type: "number", min: 1, value: 64 });
  const temp = h("input", { id: "gen-temp", type: "number", min: 0, step: 0.1, value: 0.8 });
  const seed = h("input", { id: "gen-seed", type: "number", placeholder: "random" });
  const stream = h("input", { id: "gen-stream", type: "checkbox", checked: true });
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
    shownPrompt.textContent = prompt.value;
    generated.textContent = "";
    status.replaceChildren("generating…");
    button.disabled = true;
    toRun.disabled = true;
    try {
      let finish;
      if (stream.checked) {
        finish = await streamCompletion(body, (piece) => generated.append(piece));
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
        h("label", {}, "Seed ", seed), h("label", {}, stream, " stream"), button, toRun)),
    output, status);
}
