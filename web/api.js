// Talks to the glassbox server (docs/server_api.md): JSON requests with the optional API key,
// OpenAI-shaped errors turned into ApiError, and the server-sent-event stream of /v1/completions.
// Knows nothing about the page.

const KEY_STORAGE = "glassbox.apiKey";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;  // HTTP status, 0 when the request never got an answer
    this.code = code || null;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

// The error body's `error.message` when there is one, else the status line.
async function toError(res) {
  let message = `${res.status} ${res.statusText}`;
  let code = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || null;
    }
  } catch (_) {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message, code);
}

async function send(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  if (!res.ok) throw await toError(res);
  return res.json();
}

export const get = (path) => send("GET", path);
export const post = (path, body) => send("POST", path, body);

// Builds "path?k=v&..." from the params that are set.
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// POST /v1/completions with stream: true; calls onText(piece, chunk) for each chunk's text as it
// arrives (chunk.monitors holds per-token monitor scores when the request has monitors) and
// resolves with the finish_reason of the last chunk.
export async function streamCompletion(body, onText) {
  let res;
  try {
    res = await fetch("/v1/completions", {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify({ ...body, stream: true }),
    });
  } catch (e) {
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  if (!res.ok) throw await toError(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return finish;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(200, chunk.error.message, chunk.error.code);
        const choice = chunk.choices && chunk.choices[0];
        if (!choice) continue;
        if (choice.text || chunk.monitors) onText(choice.text || "", chunk);
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
  }
  return finish;
}
