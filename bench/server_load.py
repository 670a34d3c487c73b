#!/usr/bin/python3
"""Load test of `glassbox serve` over loopback: C concurrent clients for D seconds, each looping
over a mix of OpenAI completions (streaming and not) and feature-database queries. Prints one
JSON object: requests/s, p50/p99 latency per kind, error counts (429s counted apart, they are the
server's deliberate back-pressure), and the server's RSS sampled every second (start, max, end).

usage: server_load.py --glassbox build/release/glassbox --model M --sae DIR --db features.db
                      [--clients 8] [--seconds 30] [--max-tokens 32] [--workers 1] [--threads 2]
Starts the server itself on a free port (127.0.0.1 only) and stops it with SIGTERM at the end.
"""
import argparse
import http.client
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import threading
import time


def start_server(a):
    cmd = [a.glassbox, "serve", "--model", a.model, "--port", "0", "--workers", str(a.workers),
           "--threads", str(a.threads), "--max-queue", str(a.max_queue)]
    if a.sae:
        cmd += ["--sae", a.sae]
    if a.db:
        cmd += ["--db", a.db]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if "serving http://" not in line:
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    host_port = line.split("http://", 1)[1].strip().rstrip("/")
    host, port = host_port.rsplit(":", 1)
    return p, host, int(port)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(host, port, method, path, body=None):
    """-> (status, seconds). Reads the whole response (an SSE stream to its end)."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    t0 = time.perf_counter()
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    if resp.status == 200 and path.startswith("/v1/") and body and body.get("stream"):
        if not payload.rstrip().endswith(b"data: [DONE]"):
            return 599, dt  # a stream that did not finish is an error
    return resp.status, dt


def client(i, a, host, port, deadline, features, results, lock):
    rng = random.Random(i)
    prompts = ["Once upon a time", "The little dog", "Lily and Tom went", "One day, a bird"]
    while time.time() < deadline:
        r = rng.random()
        if r < 0.35:
            kind, method, path = "completion", "POST", "/v1/completions"
            body = {"model": "m", "prompt": rng.choice(prompts), "max_tokens": a.max_tokens,
                    "temperature": 0.8, "seed": rng.randrange(1 << 30)}
        elif r < 0.5:
            kind, method, path = "completion_stream", "POST", "/v1/completions"
            body = {"model": "m", "prompt": rng.choice(prompts), "max_tokens": a.max_tokens,
                    "temperature": 0.8, "stream": True}
        elif r < 0.75 and features:
            kind, method, body = "feature_detail", "GET", None
            path = f"/api/features/{rng.randrange(features)}"
        else:
            kind, method, body = "feature_list", "GET", None
            sort = rng.choice(["freq", "max_act", "mean_act", "id"])
            path = f"/api/features?sort={sort}&limit=50&offset={rng.randrange(4) * 50}"
        try:
            status, dt = request(host, port, method, path, body)
        except (OSError, http.client.HTTPException) as e:
            status, dt = 598, 0.0
        with lock:
            results.append((kind, status, dt))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sae")
    ap.add_argument("--db")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-queue", type=int, default=16)
    a = ap.parse_args()
    server, host, port = start_server(a)
    try:
        status, _ = request(host, port, "GET", "/health")
        assert status == 200, status
        features = 0
        if a.db:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("GET", "/api/features?limit=1")
            features = json.loads(conn.getresponse().read())["total"]
        rss = [rss_kib(server.pid)]
        results, lock = [], threading.Lock()
        deadline = time.time() + a.seconds
        threads = [threading.Thread(target=client,
                                    args=(i, a, host, port, deadline, features, results, lock))
                   for i in range(a.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            rss.append(rss_kib(server.pid))
        wall = time.time() - t0
        healthy = request(host, port, "GET", "/health")[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = "killed"
    by_kind = {}
    for kind, status, dt in results:
        k = by_kind.setdefault(kind, {"n": 0, "ok": 0, "429": 0, "errors": 0, "lat": []})
        k["n"] += 1
        if status == 200:
            k["ok"] += 1
            k["lat"].append(dt)
        elif status == 429:
            k["429"] += 1
        else:
            k["errors"] += 1
    out = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "clients": a.clients, "seconds": round(wall, 1), "workers": a.workers,
        "threads": a.threads, "max_tokens": a.max_tokens,
        "requests": len(results), "requests_per_s": round(len(results) / wall, 1),
        "ok": sum(k["ok"] for k in by_kind.values()),
        "deliberate_429": sum(k["429"] for k in by_kind.values()),
        "errors": sum(k["errors"] for k in by_kind.values()),
        "healthy_after": healthy, "server_exit": rc,
        "rss_kib": {"start": rss[0], "max": max(rss), "end": rss[-1],
                    "after_warmup": rss[min(3, len(rss) - 1)], "every_10_s": rss[::10]},
        "kinds": {kind: {"n": k["n"], "ok": k["ok"], "429": k["429"], "errors": k["errors"],
                         "p50_ms": round(1000 * pct(k["lat"], 0.5), 2) if k["lat"] else None,
                         "p99_ms": round(1000 * pct(k["lat"], 0.99), 2) if k["lat"] else None}
                  for kind, k in sorted(by_kind.items())},
    }
    print(json.dumps(out, indent=1))
    return 0 if out["errors"] == 0 and healthy and rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
