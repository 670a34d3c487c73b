#!/usr/bin/python3
"""What streaming over HTTP costs per token: `glassbox generate` (greedy, in-process timer over
prefill + decode) against a streaming `/v1/completions` request to `glassbox serve` on the same
model, prompt, token count and thread count (client-side time from sending the request to
`data: [DONE]`, so it also pays for HTTP, JSON and SSE). Rounds alternate the two; medians.
Prints one JSON object with both ms/token figures and the overhead in percent.

usage: stream_overhead.py --glassbox build/release/glassbox --model M [-n 256] [--rounds 5]
                          [--threads 2] [--prompt TEXT]
"""
import argparse
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import time


def generate_ms_per_token(a):
    p = subprocess.run([a.glassbox, "generate", "--model", a.model, "--prompt", a.prompt,
                        "-n", str(a.n), "--temp", "0", "-t", str(a.threads)],
                       capture_output=True, text=True, check=True)
    m = re.search(r"(\d+) generated tokens in ([0-9.]+) s", p.stderr)
    return int(m.group(1)), 1000 * float(m.group(2)) / int(m.group(1))


def stream_ms_per_token(host, port, a):
    body = {"model": "m", "prompt": a.prompt, "max_tokens": a.n, "temperature": 0,
            "stream": True}
    conn = http.client.HTTPConnection(host, port, timeout=300)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    n = 0
    while True:
        line = resp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            if line.strip() == b"data: [DONE]":
                break
            n += 1
    dt = time.perf_counter() - t0
    conn.close()
    return n, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("-n", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="Once upon a time")
    a = ap.parse_args()
    server = subprocess.Popen([a.glassbox, "serve", "--model", a.model, "--port", "0",
                               "--threads", str(a.threads)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    host, port = line.split("http://", 1)[1].strip().rstrip("/").rsplit(":", 1)
    gen, srv, counts = [], [], set()
    try:
        stream_ms_per_token(host, int(port), a)  # warm-up
        for _ in range(a.rounds):
            n1, ms1 = generate_ms_per_token(a)
            # Greedy on both sides: the same tokens, so per token means dividing by n1.
            n2, secs = stream_ms_per_token(host, int(port), a)
            gen.append(ms1)
            srv.append(1000 * secs / n1)
            counts.add((n1, n2))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    g, s = statistics.median(gen), statistics.median(srv)
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "model": a.model, "threads": a.threads, "n": a.n, "rounds": a.rounds,
        "tokens_generate_vs_stream_events": sorted(counts),
        "generate_ms_per_token": round(g, 4), "stream_ms_per_token": round(s, 4),
        "generate_tok_s": round(1000 / g, 1), "stream_tok_s": round(1000 / s, 1),
        "overhead_percent": round(100 * (s / g - 1), 2)}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
