#!/usr/bin/python3
"""Steering demo (issue #7): a happy -> sad steering vector on the embedded TinyStories model and
its dose-response curve.

1. `glassbox steer-vector` from the contrastive pairs in data/steer/happy_sad_pairs.jsonl
   (positive = happy, negative = sad; mean difference of the last token's residual stream), so
   the vector points from sad to happy and a negative coefficient steers toward sad.
2. For each strength s (alpha = -s), N seeded generations (`glassbox generate --steer
   V:LAYER:-s`, the same seeds for every s) from a few story openings.
3. Outcome: the share of generations whose sad-word count exceeds their happy-word count (word
   lists below), with a 95 % Wilson interval, and a one-sided two-proportion z-test of each alpha
   against alpha = 0. alpha = 0 must reproduce the unsteered text exactly.
Writes OUT/table.json and OUT/dose_response.svg and prints the table.

usage: steer_demo.py [--glassbox build/release/glassbox] [--out out/steer_demo] [-n 200]
                     [--layer 2] [--alphas 0,0.5,1,1.5,2] [--tokens 48]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/stories260K/stories260K.bin")
PAIRS = os.path.join(ROOT, "data/steer/happy_sad_pairs.jsonl")
PROMPTS = ["Once upon a time", "One day, Lily", "Tom went to the park", "The little dog"]
SAD = {"sad", "cry", "cried", "crying", "tears", "upset", "angry", "scared", "hurt", "lost",
       "alone", "sorry", "bad", "broke", "broken", "mad", "afraid", "frown", "frowned", "lonely"}
HAPPY = {"happy", "smile", "smiled", "smiling", "laugh", "laughed", "fun", "love", "loved",
         "glad", "joy", "excited", "nice", "good", "great", "play", "played", "friends", "hug",
         "kind"}


def run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)}\n{p.stderr}")
    return p.stdout


def sentiment(text):
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in SAD for w in words), sum(w in HAPPY for w in words)


def wilson(k, n, z=1.96):
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def z_test(k1, n1, k0, n0):
    """One-sided p-value that proportion 1 exceeds proportion 0."""
    p = (k1 + k0) / (n1 + n0)
    se = math.sqrt(max(p * (1 - p) * (1 / n1 + 1 / n0), 1e-12))
    z = (k1 / n1 - k0 / n0) / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def svg_plot(rows, path):
    w, h, l, b, t, r = 560, 360, 60, 50, 20, 20
    xs = [row["alpha"] for row in rows]
    x0, x1 = min(xs), max(xs) or 1
    px = lambda x: l + (x - x0) / (x1 - x0 or 1) * (w - l - r)
    py = lambda y: h - b - y * (h - b - t)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>']
    for y in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<text x="{l - 8}" y="{py(y) + 4}" text-anchor="end">{y:.2f}</text>')
        out.append(f'<line x1="{l}" y1="{py(y)}" x2="{w - r}" y2="{py(y)}" stroke="#eee"/>')
    for row in rows:
        x = px(row["alpha"])
        out.append(f'<text x="{x}" y="{h - b + 16}" text-anchor="middle">{row["alpha"]:g}</text>')
        out.append(f'<line x1="{x}" y1="{py(row["ci95"][0])}" x2="{x}" y2="{py(row["ci95"][1])}" '
                   'stroke="#d62728"/>')
        out.append(f'<circle cx="{x}" cy="{py(row["sad_share"])}" r="4" fill="#d62728"/>')
    pts = " ".join(f'{px(row["alpha"])},{py(row["sad_share"])}' for row in rows)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#d62728"/>')
    out.append(f'<text x="{(w + l) / 2}" y="{h - 12}" text-anchor="middle">sadness s (alpha = -s, '
               'happy-sad vector)</text>')
    out.append(f'<text x="14" y="{(h - b + t) / 2}" transform="rotate(-90 14 {(h - b + t) / 2})" '
               'text-anchor="middle">share of sad generations (95% CI)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", default=os.path.join(ROOT, "build/release/glassbox"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out/steer_demo"))
    ap.add_argument("-n", type=int, default=200, help="generations per alpha")
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--alphas", default="0,0.5,1,1.5,2", help="sadness strengths s (alpha = -s)")
    ap.add_argument("--tokens", type=int, default=48)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vec = os.path.join(a.out, "happy_minus_sad.npy")
    run([a.glassbox, "steer-vector", "--model", MODEL, "--pairs", PAIRS, "--method", "mean_diff",
         "--out", vec])
    alphas = [float(x) for x in a.alphas.split(",")]
    rows, texts0 = [], None
    for alpha in alphas:
        sad = 0
        texts = []
        for i in range(a.n):
            prompt = PROMPTS[i % len(PROMPTS)]
            cmd = [a.glassbox, "generate", "--model", MODEL, "--prompt", prompt, "-n",
                   str(a.tokens), "--temp", "0.8", "--seed", str(1000 + i), "-t", "1"]
            if alpha != 0:
                cmd += ["--steer", f"{vec}:{a.layer}:{-alpha:g}"]
            text = run(cmd)
            texts.append(text)
            s, h = sentiment(text[len(prompt):])
            sad += s > h
        if alpha == 0:
            texts0 = texts
            # The steering hook with alpha 0 must not change a single token.
            zero = [run([a.glassbox, "generate", "--model", MODEL, "--prompt", PROMPTS[i % 4],
                         "-n", str(a.tokens), "--temp", "0.8", "--seed", str(1000 + i), "-t", "1",
                         "--steer", f"{vec}:{a.layer}:0"]) for i in range(min(a.n, 20))]
            same = all(x == y for x, y in zip(zero, texts))
        lo, hi = wilson(sad, a.n)
        rows.append({"alpha": alpha, "n": a.n, "sad": sad, "sad_share": sad / a.n,
                     "ci95": [round(lo, 4), round(hi, 4)]})
    k0 = rows[0]["sad"]
    for row in rows:
        row["z_vs_alpha0"], row["p_vs_alpha0"] = (round(v, 6) for v in
                                                  z_test(row["sad"], a.n, k0, a.n))
    shares = [r["sad_share"] for r in rows]
    result = {"model": MODEL, "layer": a.layer, "tokens": a.tokens, "rows": rows,
              "monotonic_non_decreasing": all(x <= y for x, y in zip(shares, shares[1:])),
              "alpha0_reproduces_unsteered": same,
              "example": {"alpha0": texts0[0][:200]}}
    with open(os.path.join(a.out, "table.json"), "w") as f:
        json.dump(result, f, indent=1)
    svg_plot(rows, os.path.join(a.out, "dose_response.svg"))
    print(f"{'alpha':>6} {'sad/n':>8} {'share':>6} {'95% CI':>15} {'p vs 0':>9}")
    for r in rows:
        print(f"{r['alpha']:6g} {r['sad']:4d}/{r['n']:<3d} {r['sad_share']:6.2f} "
              f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] {r['p_vs_alpha0']:9.2g}")
    print(f"monotonic: {result['monotonic_non_decreasing']}; alpha 0 reproduces unsteered: "
          f"{same}; plot: {os.path.join(a.out, 'dose_response.svg')}")


if __name__ == "__main__":
    main()
