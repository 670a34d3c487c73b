#!/usr/bin/python3
"""A scripted OpenAI-compatible chat endpoint for CLI tests of `glassbox explain` / `score`.

Standard library only. Serves, on 127.0.0.1 (port 0 = any free port by default):
  POST /v1/chat/completions   scripted failures, else a deterministic answer from the request
  GET  /v1/models             one model, "scripted"

Usage:
  python3 tests/autointerp/scripted_endpoint.py --port-file PORT.txt --log requests.jsonl \\
      [--plan plan.json] [--fail-rate 0.3 --seed 1] [--api-key sk-test] [--port 0]
  glassbox explain --db f.db --endpoint http://127.0.0.1:$(cat PORT.txt)/v1 --model scripted

--plan FILE: a JSON list of behaviours, consumed in order, one per authorized chat request:
  {"status": 500}                      that status with an OpenAI-style error body
  {"status": 429, "retry_after": 1}    ... plus a Retry-After header (seconds)
  {"delay": 3}                         sleep 3 s, then answer normally
  {"malformed": true}                  200 with a body that is not JSON
  {"missing_content": true}            200 JSON without choices[0].message.content
  {"ok": true}                         answer normally
After the plan (or without one), --fail-rate P with --seed S fails a seeded random share P of
requests with 500, 429 (no Retry-After) or a malformed 200, drawn in arrival order.

A judge prompt (glassbox score's "Answer with a JSON list of N numbers") is answered like the
offline judge, from the explanation's quoted terms (a JSON list of 0/1). Any other normal answer:
the most common text marked <<...>> in the last user message (stripped; ties go to
the first seen) as 'Reasoning...\\n[EXPLANATION]: the token "X"', or '[EXPLANATION]: nothing in
particular' without marks; usage {prompt_tokens: chars of all messages // 4, completion_tokens: 8}.

--api-key K: requests without "Authorization: Bearer K" get 401 (they do not consume the plan).
--port-file: the port, written atomically once listening. --log: one JSON line per request
{time, method, path, status, behaviour, body_sha256, model}, written just before the response is
sent (so a delayed request is logged after its delay). SIGTERM or SIGINT: clean exit, status 0.
"""

import argparse
import collections
import hashlib
import http.server
import json
import os
import random
import re
import signal
import sys
import threading
import time

MARK = re.compile(r"<<(.*?)>>", re.DOTALL)
KNOWN_KEYS = {"status", "retry_after", "delay", "malformed", "missing_content", "ok"}


def load_plan(path):
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        plan = json.load(f)
    if not isinstance(plan, list) or not all(isinstance(b, dict) for b in plan):
        sys.exit(f"--plan {path}: expected a JSON list of objects")
    for i, b in enumerate(plan):
        unknown = set(b) - KNOWN_KEYS
        if unknown or not b:
            sys.exit(f"--plan {path}: behaviour {i} {b!r}: unknown or no keys")
    return plan


class Script:
    """The behaviour of each chat request, in arrival order (thread-safe)."""

    def __init__(self, plan, fail_rate, seed):
        self.plan = plan
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.next = 0

    def take(self):
        with self.lock:
            if self.next < len(self.plan):
                self.next += 1
                return self.plan[self.next - 1]
            if self.fail_rate > 0 and self.rng.random() < self.fail_rate:
                failure = self.rng.choice([{"status": 500}, {"status": 429}, {"malformed": True}])
                return {**failure, "random": True}  # "random" only labels it in the log
            return {"ok": True}


def text_of(content):
    """Message content: a string, or OpenAI's list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


JUDGE = re.compile(r"Answer with a JSON list of (\d+) numbers")
EXAMPLE = re.compile(r"^Example (\d+): (.*)$", re.MULTILINE)
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def judge_answer(system, user):
    """A judge prompt (glassbox's detection / fuzzing / expression format): answers like the
    offline judge, from the explanation's quoted terms: detection and expression 1 when a term
    occurs as a word, fuzzing 1 when every marked span holds a term."""
    n = int(JUDGE.search(user).group(1))
    first = user.split("\n", 1)[0]
    terms = [json.loads('"' + t + '"').strip().lower() for t in QUOTED.findall(first)]
    terms = [t for t in terms if t]
    examples = dict((int(i), text) for i, text in EXAMPLE.findall(user))
    out = []
    for i in range(1, n + 1):
        text = examples.get(i, "")
        words = re.findall(r"\w+", MARK.sub(lambda m: m.group(1), text).lower())
        if "marked between" in system:
            spans = [m.strip().lower() for m in MARK.findall(text)]
            out.append(1 if spans and all(any(t in sp for t in terms) for sp in spans) else 0)
        else:
            out.append(1 if any(t in words for t in terms) else 0)
    return "Judging each example...\n" + json.dumps(out)


def answer_text(messages):
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    systems = [m for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    if users and JUDGE.search(text_of(users[-1].get("content"))):
        return judge_answer(text_of(systems[0].get("content")) if systems else "",
                            text_of(users[-1].get("content")))
    marks = [m.strip() for m in MARK.findall(text_of(users[-1].get("content")))] if users else []
    if not marks:
        return "[EXPLANATION]: nothing in particular"
    counts = collections.Counter(marks)  # keeps first-seen order, so max() breaks ties by it
    best = max(counts, key=lambda m: counts[m])
    return f'Reasoning...\n[EXPLANATION]: the token "{best}"'


def completion(request):
    messages = request.get("messages") or []
    prompt_chars = sum(len(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    usage = {"prompt_tokens": prompt_chars // 4, "completion_tokens": 8}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,  # fixed: the answer depends on the request only
        "model": request.get("model", ""),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer_text(messages)}}],
        "usage": usage,
    }


def error_body(status, message):
    return {"error": {"message": message, "type": "scripted", "code": status}}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "scripted-endpoint/1"

    def log_message(self, fmt, *args):  # quiet: the --log file is the record
        pass

    def do_GET(self):
        self.body = b""
        if not self.authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            self.reply(200, {"object": "list", "data": [
                {"id": "scripted", "object": "model", "owned_by": "scripted"}]}, "ok")
        else:
            self.reply(404, error_body(404, f"no route GET {self.path}"), "not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length)
        if not self.authorized():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self.reply(404, error_body(404, f"no route POST {self.path}"), "not found")
        try:
            request = json.loads(self.body)
            assert isinstance(request, dict)
        except (ValueError, AssertionError):
            return self.reply(400, error_body(400, "request body is not a JSON object"), "bad request")
        self.model = request.get("model")
        self.behave(self.server.script.take(), request)

    def behave(self, b, request):
        name = json.dumps(b, sort_keys=True)
        if "status" in b:
            headers = {"Retry-After": str(b["retry_after"])} if "retry_after" in b else {}
            return self.reply(b["status"], error_body(b["status"], f"scripted {b['status']}"),
                              name, headers)
        if b.get("malformed"):
            return self.reply(200, b"this is not JSON {", name, content_type="text/plain")
        if b.get("missing_content"):
            return self.reply(200, {"id": "chatcmpl-scripted", "object": "chat.completion",
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant"}}]}, name)
        if "delay" in b:
            time.sleep(float(b["delay"]))
        self.reply(200, completion(request), name)

    def authorized(self):
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self.reply(401, error_body(401, "invalid or missing API key"), "unauthorized")
        return False

    def reply(self, status, payload, behaviour, headers=None, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.server.log({
            "time": time.time(), "method": self.command, "path": self.path, "status": status,
            "behaviour": behaviour, "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "model": getattr(self, "model", None)})
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): expected in retry tests


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a sleeping "delay" handler must not hold up shutdown

    def __init__(self, addr, script, api_key, log_path):
        super().__init__(addr, Handler)
        self.script = script
        self.api_key = api_key
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def log(self, record):
        if self.log_file:
            with self.log_lock:
                self.log_file.write(json.dumps(record) + "\n")
                self.log_file.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--plan")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--api-key")
    args = ap.parse_args()

    script = Script(load_plan(args.plan), args.fail_rate, args.seed)
    server = Server((args.host, args.port), script, args.api_key, args.log)
    if args.port_file:  # atomic, so a poller never reads a half-written number
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, args.port_file)

    def stop(signum, frame):  # shutdown() waits for serve_forever, so not from this thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    if server.log_file:
        server.log_file.close()


if __name__ == "__main__":
    main()
