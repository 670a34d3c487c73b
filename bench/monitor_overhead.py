#!/usr/bin/python3
"""What monitors cost per generated token: streaming `/v1/completions` on `glassbox serve` with no
monitors against the same request with two monitors (a projection at the middle block and a
probe on another block's residual stream, both flag actions with thresholds that rarely fire),
same model, prompt and thread count; client-side time from sending the request to
`data: [DONE]` (so the per-token JSON with the scores is paid for too). Per token means the
marginal cost: each side runs n_short and n_long tokens (EOS ignored) and the time difference is
divided by n_long - n_short, so one-time costs cancel. Rounds alternate the two; medians. Prints
one JSON object with both ms/token and the overhead in %.

usage: monitor_overhead.py --glassbox build/release/glassbox --model M [--n-short 32]
                           [--n-long 448] [--rounds 5] [--threads 1] [--prompt TEXT]
"""
import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import tempfile

import stream_overhead  # the raw-socket streaming client, same directory


def stream_seconds(host, port, a, n, monitors):
    """Seconds of one streamed completion, with `monitors` (their scores must be in the stream)
    or without (None)."""
    if not monitors:
        return stream_overhead.stream_seconds(host, port, a, n)
    return stream_overhead.stream_seconds(host, port, a, n, {"monitors": monitors},
                                          b'"monitors"')


def model_dims(glassbox, model):
    p = subprocess.run([glassbox, "info", "--model", model], capture_output=True, text=True,
                       check=True)
    m = re.search(r"d_model (\d+),.*n_layers (\d+)", p.stdout)
    if not m:
        raise SystemExit("no d_model / n_layers in `glassbox info`: " + p.stdout[:300])
    return int(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-short", type=int, default=32)
    ap.add_argument("--n-long", type=int, default=448)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt", default="Once upon a time")
    a = ap.parse_args()
    d, n_layers = model_dims(a.glassbox, a.model)
    rnd = random.Random(3)
    tmp = tempfile.mkdtemp(prefix="gb_monbench_")
    probe_layer = max(0, n_layers - 2)
    with open(os.path.join(tmp, "p.probe.json"), "w") as f:
        json.dump({"format": "glassbox.probe", "version": 1,
                   "hook": f"blocks.{probe_layer}.hook_resid_post", "d": d, "pool": "last",
                   "lambda": 1.0, "mean": [0.0] * d, "scale": [1.0] * d,
                   "w": [rnd.gauss(0, 0.1) for _ in range(d)], "b": 0.0}, f)
    monitors = [
        {"name": "proj", "type": "projection", "layer": n_layers // 2,
         "vector": [rnd.gauss(0, 1) for _ in range(d)], "threshold": 1e9},
        {"name": "probe", "type": "probe", "probe": "p", "threshold": 2.0},
    ]
    server = subprocess.Popen([a.glassbox, "serve", "--model", a.model, "--port", "0",
                               "--threads", str(a.threads), "--probe",
                               os.path.join(tmp, "p.probe.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    host, port = line.split("http://", 1)[1].strip().rstrip("/").rsplit(":", 1)
    port = int(port)
    dn = a.n_long - a.n_short
    base, mon = [], []
    try:
        stream_seconds(host, port, a, a.n_short, None)  # warm-up
        stream_seconds(host, port, a, a.n_short, monitors)
        for _ in range(a.rounds):
            base.append(1000 * (stream_seconds(host, port, a, a.n_long, None) -
                                stream_seconds(host, port, a, a.n_short, None)) / dn)
            mon.append(1000 * (stream_seconds(host, port, a, a.n_long, monitors) -
                               stream_seconds(host, port, a, a.n_short, monitors)) / dn)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    b, m = statistics.median(base), statistics.median(mon)
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "model": a.model, "threads": a.threads, "n_short": a.n_short, "n_long": a.n_long,
        "rounds": a.rounds, "monitors": ["projection", "probe"],
        "plain_ms_per_token": round(b, 4), "monitored_ms_per_token": round(m, 4),
        "plain_rounds_ms": [round(x, 4) for x in base],
        "monitored_rounds_ms": [round(x, 4) for x in mon],
        "overhead_percent": round(100 * (m / b - 1), 2)}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
