// The official `openai` npm client (pinned in package-lock.json) against `glassbox serve`:
// models.list, completions and chat completions with and without streaming, the client's error
// classes for 400 and 401. Greedy (temperature 0) streams must equal the non-streamed text.
// usage: node openai_client.test.mjs <glassbox binary> <repo root>     (exit 77 = no openai module)
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";

let OpenAI;
try {
  OpenAI = (await import("openai")).default;
} catch {
  console.log("skip: tests/web/node_modules/openai missing (run scripts/setup.sh)");
  process.exit(77);
}

const [binary, root] = process.argv.slice(2);
const model = path.join(root, "models/stories260K/stories260K.bin");
const key = "openai-client-test-key";
const server = spawn(binary, ["serve", "--model", model, "--port", "0", "--api-key", key],
                     { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  const rl = readline.createInterface({ input: server.stdout });
  rl.on("line", (line) => {
    const m = line.match(/serving (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error(`server exited with ${code} before serving`)));
  // A readiness bound: it matters only when the server never starts (ASan on a busy machine is slow).
  setTimeout(() => reject(new Error("server did not start in 300 s")), 300000);
});

const failures = [];
function check(label, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${label}${detail ? ": " + detail : ""}`);
  if (!ok) failures.push(label);
}

const client = new OpenAI({ baseURL: url + "v1", apiKey: key, maxRetries: 0, timeout: 300000 });
const prompt = "Once upon a time";
try {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  check("models.list returns one model", ids.length === 1, JSON.stringify(ids));

  const done = await client.completions.create({ model: ids[0], prompt, max_tokens: 24,
                                                  temperature: 0 });
  const text = done.choices[0].text;
  check("completions.create text", typeof text === "string" && text.length > 0, JSON.stringify(text));
  check("completions usage", done.usage && done.usage.completion_tokens > 0 &&
        done.usage.prompt_tokens > 0, JSON.stringify(done.usage));

  const stream = await client.completions.create({ model: ids[0], prompt, max_tokens: 24,
                                                    temperature: 0, stream: true });
  let streamed = "", chunks = 0, finish = null;
  for await (const chunk of stream) {
    chunks++;
    streamed += chunk.choices[0].text ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  check("streamed completion equals non-streamed", streamed === text,
        `${JSON.stringify(streamed)} vs ${JSON.stringify(text)}`);
  check("stream has several chunks and a finish_reason", chunks > 1 && finish !== null,
        `${chunks} chunks, finish ${finish}`);

  const messages = [{ role: "user", content: "Tell me a story about a dog." }];
  const chat = await client.chat.completions.create({ model: ids[0], messages, max_tokens: 24,
                                                      temperature: 0 });
  const reply = chat.choices[0].message;
  check("chat.completions message", reply.role === "assistant" && reply.content.length > 0,
        JSON.stringify(reply));
  const chatStream = await client.chat.completions.create({ model: ids[0], messages,
                                                            max_tokens: 24, temperature: 0,
                                                            stream: true });
  let content = "", role = null;
  for await (const chunk of chatStream) {
    role = chunk.choices[0]?.delta?.role ?? role;
    content += chunk.choices[0]?.delta?.content ?? "";
  }
  check("streamed chat equals non-streamed", role === "assistant" && content === reply.content,
        `${role} ${JSON.stringify(content)}`);

  try {
    await client.completions.create({ model: ids[0], prompt, max_tokens: -3 });
    check("bad max_tokens raises BadRequestError", false, "no error");
  } catch (e) {
    check("bad max_tokens raises BadRequestError",
          e instanceof OpenAI.BadRequestError && /max_tokens/.test(e.message), e.message);
  }
  const wrongKey = new OpenAI({ baseURL: url + "v1", apiKey: "wrong", maxRetries: 0 });
  try {
    await wrongKey.completions.create({ model: ids[0], prompt, max_tokens: 4 });
    check("wrong key raises AuthenticationError", false, "no error");
  } catch (e) {
    check("wrong key raises AuthenticationError", e instanceof OpenAI.AuthenticationError,
          `${e.status} ${e.message}`);
  }
} catch (e) {
  check("no unexpected exception", false, String(e && e.stack || e));
} finally {
  server.kill("SIGTERM");
}
const code = await new Promise((resolve) => server.on("exit", (c) => resolve(c)));
check("server exits 0 on SIGTERM", code === 0, String(code));
console.log(failures.length ? `${failures.length} failed: ${failures.join(", ")}`
                            : "all openai client checks passed");
process.exit(failures.length ? 1 : 0);
