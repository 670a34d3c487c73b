#!/usr/bin/python3
"""Monitor demo (issue #7): a probe that detects "the text is inside a quotation" watches every
generated token in `glassbox serve` and stops (or steers) the generation when it fires.

1. `glassbox probe train` on data/probe/quote_train.jsonl (held-out data/probe/quote_eval.jsonl),
   blocks.4.hook_resid_post only.
2. `glassbox serve --probe` with that probe; for N seeded story openings, a streamed completion with
   a probe monitor (threshold 0.5, action stop), and the same request unmonitored.
3. Reports, per generation, where the monitor fired, the text it stopped after, and whether the
   unmonitored text (same seed) opens a quotation at that point; prints a summary
   and writes OUT/monitor_demo.json.

usage: monitor_demo.py [--glassbox build/release/glassbox] [--out out/monitor_demo] [-n 20]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/stories260K/stories260K.bin")
HOOK = "blocks.4.hook_resid_post"
OPENINGS = ["Once upon a time", "One day, Lily", "Tom said", "The little dog", "Mom smiled and"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", default=os.path.join(ROOT, "build/release/glassbox"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out/monitor_demo"))
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=80)
    # The probe was trained on a balanced set; on free generation a high threshold keeps false
    # alarms rare (at 0.5 it fires on most stories before any quotation).
    ap.add_argument("--threshold", type=float, default=0.98)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    probes = os.path.join(a.out, "probes")
    subprocess.run([a.glassbox, "probe", "train", "--model", MODEL, "--data",
                    os.path.join(ROOT, "data/probe/quote_train.jsonl"), "--eval",
                    os.path.join(ROOT, "data/probe/quote_eval.jsonl"), "--hooks", HOOK,
                    "--out", probes], check=True, capture_output=True)
    metrics = json.load(open(os.path.join(probes, "metrics.json")))
    srv = subprocess.Popen([a.glassbox, "serve", "--model", MODEL, "--port", "0", "--probe",
                            probes], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rows = []
    try:
        url = srv.stdout.readline().split("serving ", 1)[1].strip()
        name = HOOK  # serve names a probe by its file name less .probe.json
        for i in range(a.n):
            base = {"prompt": OPENINGS[i % len(OPENINGS)], "max_tokens": a.tokens,
                    "temperature": 0.8, "seed": 100 + i}
            plain = post(url, dict(base))
            watched = post(url, dict(base, monitors=[
                {"name": "quote", "type": "probe", "probe": name, "threshold": a.threshold,
                 "action": "stop"}]))
            text = watched["choices"][0]["text"]
            fired = watched.get("monitor")
            full = plain["choices"][0]["text"]
            quote_at = min([i for i in (full.find('"'), full.find('\u201c')) if i >= 0],
                           default=-1)
            rows.append({"prompt": base["prompt"], "fired": fired is not None,
                         "stopped_after": text, "unmonitored": full,
                         "finish_reason": watched["choices"][0]["finish_reason"],
                         "quote_in_unmonitored": quote_at >= 0,
                         # Stopped within the quotation's first few tokens.
                         "stopped_inside_quote": fired is not None and quote_at >= 0
                         and quote_at < len(text) <= quote_at + 12})
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=30)
    fired = [r for r in rows if r["fired"]]
    with_quote = [r for r in rows if r["quote_in_unmonitored"]]
    summary = {"probe": HOOK, "heldout_auroc": metrics, "n": len(rows),
               "fired": len(fired), "unmonitored_with_quote": len(with_quote),
               "fired_on_quote_texts": sum(r["fired"] for r in with_quote),
               "fired_without_quote": sum(r["fired"] for r in rows
                                          if not r["quote_in_unmonitored"]),
               "stopped_inside_quote": sum(r["stopped_inside_quote"] for r in rows)}
    json.dump({"summary": summary, "rows": rows}, open(os.path.join(a.out, "monitor_demo.json"),
                                                        "w"), indent=1)
    for r in rows[:6]:
        print(f"{r['prompt']!r}: {'STOP' if r['fired'] else 'ran'} after "
              f"{r['stopped_after'][-60:]!r}")
    print(json.dumps({k: v for k, v in summary.items() if k != "heldout_auroc"}))


def post(url, body):
    req = urllib.request.Request(url + "v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


if __name__ == "__main__":
    sys.exit(main())
