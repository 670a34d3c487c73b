#!/usr/bin/python3
"""What streaming over HTTP costs per token: `glassbox generate` (greedy, its in-process timer
over prefill + decode) against a streaming `/v1/completions` request to `glassbox serve` on the
same model, prompt and thread count (client-side time from sending the request to
`data: [DONE]`, so it also pays for HTTP, JSON and SSE). Per token means the marginal cost: each
side runs n_short and n_long tokens (EOS ignored) and the time difference is divided by
n_long - n_short, so one-time costs (a cold process's first pass, the request) cancel. Rounds
alternate the two; medians. Prints one JSON object with both ms/token and the overhead in %.

usage: stream_overhead.py --glassbox build/release/glassbox --model M [--n-short 32]
                          [--n-long 448] [--rounds 5] [--threads 2] [--prompt TEXT]
"""
import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import time


def generate_seconds(a, n):
    p = subprocess.run([a.glassbox, "generate", "--model", a.model, "--prompt", a.prompt,
                        "-n", str(n), "--temp", "0", "-t", str(a.threads), "--ignore-eos"],
                       capture_output=True, text=True, check=True)
    # The tok/s figure has more digits than the seconds (printed to the millisecond).
    m = re.search(r"(\d+) generated tokens in [0-9.]+ s \(([0-9.]+) tok/s\)", p.stderr)
    assert int(m.group(1)) == n, p.stderr
    return n / float(m.group(2))


def stream_seconds(host, port, a, n, extra=None, require=None):
    """-> seconds from sending the request to `data: [DONE]`. A raw socket with large reads:
    http.client's per-chunk parsing costs more than the server's per-token work and would be
    billed to the server. `extra`: more request fields; `require`: bytes the stream must hold
    (bench/monitor_overhead.py uses both)."""
    req = {"model": "m", "prompt": a.prompt, "max_tokens": n, "temperature": 0, "stream": True,
           "ignore_eos": True}
    req.update(extra or {})
    body = json.dumps(req).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=300) as sock:
        t0 = time.perf_counter()
        sock.sendall(head + body)
        chunks, tail = [], b""
        while b"data: [DONE]" not in tail:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
            tail = (tail + data)[-64:]
        dt = time.perf_counter() - t0
    payload = b"".join(chunks)
    if b"data: [DONE]" not in payload:
        raise SystemExit("stream did not end with data: [DONE]")
    if require is not None and require not in payload:
        raise SystemExit(f"no {require!r} in the stream")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-short", type=int, default=32)
    ap.add_argument("--n-long", type=int, default=448)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="Once upon a time")
    a = ap.parse_args()
    server = subprocess.Popen([a.glassbox, "serve", "--model", a.model, "--port", "0",
                               "--threads", str(a.threads)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    host, port = line.split("http://", 1)[1].strip().rstrip("/").rsplit(":", 1)
    port = int(port)
    dn = a.n_long - a.n_short
    gen, srv = [], []
    try:
        stream_seconds(host, port, a, a.n_short)  # warm-up
        for _ in range(a.rounds):
            gen.append(1000 * (generate_seconds(a, a.n_long) - generate_seconds(a, a.n_short)) / dn)
            srv.append(1000 * (stream_seconds(host, port, a, a.n_long) -
                               stream_seconds(host, port, a, a.n_short)) / dn)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    g, s = statistics.median(gen), statistics.median(srv)
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "model": a.model, "threads": a.threads, "n_short": a.n_short, "n_long": a.n_long,
        "rounds": a.rounds,
        "generate_ms_per_token": round(g, 4), "stream_ms_per_token": round(s, 4),
        "generate_tok_s": round(1000 / g, 1), "stream_tok_s": round(1000 / s, 1),
        "generate_rounds_ms": [round(x, 4) for x in gen],
        "stream_rounds_ms": [round(x, 4) for x in srv],
        "overhead_percent": round(100 * (s / g - 1), 2)}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
