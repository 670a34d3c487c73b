#!/usr/bin/python3
"""/v1/chat/completions with chat templates (`glassbox serve`, Python stdlib only), on the embedded
stories260K model:

  1. no template (the llama2.c checkpoint has none): the contents joined with "\\n" as before;
     the reply says prompt_format "plain"; the text equals /v1/completions on the joined text;
  2. the model's own template: stories260K converted to GGUF with tokenizer.chat_template added
     here; the reply says prompt_format "chat_template" and names FILE: tokenizer.chat_template;
     usage.prompt_tokens and the greedy text equal `glassbox generate --tokens IDS --temp 0` on
     the ids `glassbox chat-template --model M --ids` gives (special tokens matched, one BOS);
     streamed == not streamed; chat_template_kwargs reach the template; add_generation_prompt;
     `glassbox generate --chat --system S --prompt P` prompts with the same ids;
  3. --no-chat-template on that GGUF: the plain joining again;
  4. a template that raises (--chat-template-file): HTTP 400 naming the template, its line and
     the template's message (param "messages", code chat_template_error); a conversation it
     accepts still gets 200; a template that does not parse: every chat request 400 naming it;
     chat_template_kwargs that is not an object: 400 naming it.
usage: chat_template_test.py GLASSBOX REPO_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cli_util import gguf_add_string  # noqa: E402
from server_util import post_json, start_server, stop_server  # noqa: E402

GB, REPO = sys.argv[1], sys.argv[2]
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
failures = []

TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n"
            "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
            "{% if style is defined %} ({{ style }}){% endif %}")
RAISING = ("{% if messages[0].role == 'system' %}"
           "{{ raise_exception('System role not supported') }}{% endif %}"
           "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}")
MESSAGES = [{"role": "system", "content": "Tell stories."},
            {"role": "user", "content": "Once upon a time"}]


def check(label, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + str(detail)[:400] if detail else ''}",
          flush=True)
    if not ok:
        failures.append(label)
    return ok


def gb(*args):
    p = subprocess.run([GB, *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"glassbox {' '.join(args)}: rc {p.returncode}: {p.stderr[-1500:]}")
    return p.stdout


def chat(url, body):
    return post_json(url, "/v1/chat/completions", body)


def stream_text(raw):
    text, first = "", None
    for line in raw.split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            ev = json.loads(line[6:])
            first = first or ev
            if ev.get("choices"):
                text += ev["choices"][0]["delta"].get("content", "")
    return text, first


def main():
    tmp = tempfile.mkdtemp(prefix="chat_template_test_")
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    n = 24
    plain_gguf = os.path.join(tmp, "s260.gguf")
    model_gguf = os.path.join(tmp, "s260_chat.gguf")
    gb("convert", "--model", MODEL, "--out", plain_gguf, "--type", "f32")
    gguf_add_string(plain_gguf, model_gguf, "tokenizer.chat_template", TEMPLATE)
    messages_file = os.path.join(tmp, "messages.json")
    with open(messages_file, "w") as f:
        json.dump(MESSAGES, f)
    raising = os.path.join(tmp, "raising.jinja")
    with open(raising, "w") as f:
        f.write(RAISING)
    broken = os.path.join(tmp, "broken.jinja")
    with open(broken, "w") as f:
        f.write("fine\n{% for m in messages %}{{ m.content }")
    body = {"messages": MESSAGES, "max_tokens": n, "temperature": 0, "ignore_eos": True}

    # 1. No template: the plain joining, as before.
    proc, url = start_server(GB, "--model", MODEL, "-t", "1")
    try:
        status, out = chat(url, body)
        check("no template: 200, prompt_format plain, chat_template null",
              status == 200 and out.get("prompt_format") == "plain"
              and out.get("chat_template", "x") is None, out)
        status, comp = post_json(url, "/v1/completions",
                                 {"prompt": "Tell stories.\nOnce upon a time", "max_tokens": n,
                                  "temperature": 0, "ignore_eos": True})
        check("no template: chat text == /v1/completions on the joined contents",
              status == 200 and out["choices"][0]["message"]["content"]
              == comp["choices"][0]["text"]
              and out["usage"]["prompt_tokens"] == comp["usage"]["prompt_tokens"])
    finally:
        stop_server(proc)

    # 2. The model's own template (GGUF tokenizer.chat_template).
    ids = json.loads(gb("chat-template", "--model", model_gguf, "--messages", messages_file,
                        "--add-generation-prompt", "--ids"))
    text = gb("chat-template", "--model", model_gguf, "--messages", messages_file,
              "--add-generation-prompt")
    check("the rendering starts with the BOS text and ends with the generation prompt",
          text.startswith("<s>system: Tell stories.\n") and text.endswith("assistant:"), text)
    check("the ids hold one BOS (the template's <s> matched as the special token)",
          ids[0] == 1 and ids.count(1) == 1, ids)
    gen_out = os.path.join(tmp, "gen.json")
    gb("generate", "--model", model_gguf, "--tokens", ",".join(map(str, ids)), "-n", str(n),
       "--temp", "0", "--ignore-eos", "--ids-out", gen_out, "-t", "1")
    ref = json.load(open(gen_out))
    chat_out = os.path.join(tmp, "chat.json")
    gb("generate", "--model", model_gguf, "--chat", "--system", MESSAGES[0]["content"],
       "--prompt", MESSAGES[1]["content"], "-n", "1", "--temp", "0", "--ids-out", chat_out)
    check("generate --chat --system: the same prompt ids as the template",
          json.load(open(chat_out))["prompt_ids"] == ids)
    proc, url = start_server(GB, "--model", model_gguf, "-t", "1")
    try:
        status, out = chat(url, body)
        name = out.get("chat_template") or ""
        check("model template: 200, prompt_format chat_template, named FILE: tokenizer.chat_template",
              status == 200 and out.get("prompt_format") == "chat_template"
              and name == model_gguf + ": tokenizer.chat_template", out)
        check("model template: usage.prompt_tokens == the template's ids",
              status == 200 and out["usage"]["prompt_tokens"] == len(ids),
              f"{out.get('usage')} vs {len(ids)}")
        status, comp = post_json(url, "/v1/completions",
                                 {"prompt": "x", "max_tokens": 1})  # warm; completions untouched
        check("model template: /v1/completions still plain text", status == 200)
        gen_text = gb("tokenize", "--model", model_gguf, "--decode", "--text",
                      ",".join(map(str, ref["generated_ids"]))).rstrip("\n")
        check("model template: greedy text == generate --tokens <template ids> --temp 0",
              out["choices"][0]["message"]["content"] == gen_text,
              f"{out['choices'][0]['message']['content']!r} vs {gen_text!r}")
        status, raw = chat(url, {**body, "stream": True})
        stext, first = stream_text(raw)
        check("model template: streamed == not streamed, first chunk names the template",
              status == 200 and stext == out["choices"][0]["message"]["content"]
              and first.get("prompt_format") == "chat_template"
              and first.get("chat_template") == name, first)
        status, kw = chat(url, {**body, "chat_template_kwargs": {"style": "a long story"}})
        check("chat_template_kwargs reach the template (more prompt tokens)",
              status == 200 and kw["usage"]["prompt_tokens"] > len(ids), kw.get("usage"))
        status, nogen = chat(url, {**body, "add_generation_prompt": False})
        check("add_generation_prompt false drops the assistant opening",
              status == 200 and nogen["usage"]["prompt_tokens"] < len(ids), nogen.get("usage"))
        status, err = chat(url, {**body, "chat_template_kwargs": [1]})
        e = err.get("error", {})
        check("chat_template_kwargs not an object -> 400 naming it",
              status == 400 and e.get("param") == "chat_template_kwargs", err)
    finally:
        stop_server(proc)

    # 3. --no-chat-template: plain joining even though the model has a template.
    proc, url = start_server(GB, "--model", model_gguf, "-t", "1", "--no-chat-template")
    try:
        status, out = chat(url, body)
        check("--no-chat-template: prompt_format plain", status == 200
              and out.get("prompt_format") == "plain", out)
    finally:
        stop_server(proc)

    # 4. Templates that fail: 400 naming the template and the error.
    proc, url = start_server(GB, "--model", MODEL, "-t", "1", "--chat-template-file", raising)
    try:
        status, err = chat(url, body)
        e = err.get("error", {})
        msg = e.get("message", "")
        check("raising template: 400 naming the template, line and message",
              status == 400 and msg.startswith(f"chat template {raising}: line 1, column ")
              and msg.endswith("the template raised an exception: System role not supported")
              and e.get("param") == "messages" and e.get("code") == "chat_template_error", err)
        status, out = chat(url, {**body, "messages": MESSAGES[1:]})
        check("raising template: an accepted conversation -> 200 with the template",
              status == 200 and out.get("chat_template") == raising, out)
    finally:
        stop_server(proc)
    proc, url = start_server(GB, "--model", MODEL, "-t", "1", "--chat-template-file", broken)
    try:
        status, err = chat(url, body)
        msg = err.get("error", {}).get("message", "")
        check("template that does not parse: 400 naming it and the line",
              status == 400 and msg.startswith(f"chat template {broken}: line 2, column ")
              and msg.endswith("unexpected '}'"), err)
        status, comp = post_json(url, "/v1/completions", {"prompt": "Hi", "max_tokens": 2})
        check("template that does not parse: /v1/completions unaffected", status == 200)
    finally:
        stop_server(proc)

    print(f"chat_template_test: {'PASS' if not failures else 'FAIL: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
