#!/usr/bin/python3
"""Independent check of `glassbox probe train` (numpy, float64).

Features: for every text, `glassbox cache --prompt TEXT` dumps the hooks' activations (BOS first,
as probe training encodes); the last text token's row is the feature (the data files carry no
span, and training used --pool last). From those features this script, on its own:
  1. reproduces the stratified folds (splitmix64 + Fisher-Yates, logistic.h) and the lambda
     chosen by lowest mean validation log-loss; the choice must be the probe's
  2. standardizes (population std) and fits L2 logistic regression by its own Newton iteration
     with the probe's lambda: mean/scale within 1e-9 relative, w and b within 1e-8 absolute
     (both solvers end with a full Newton step near the optimum; the features are the same
     float32 values when training ran with -t 1, as `cache -t 1` here)
  3. probabilities on the held-out set within 1e-8 absolute, AUROC (average ranks) within 1e-3
     of metrics.json's heldout_auroc (a near-tie that flips order moves it by 1 / (n1 n0))
With --break the features are perturbed (noise on 1% of the values) and checks must fail.
--features F.npz keeps the features read from glassbox in F (written when absent, read when
present), so that a --break run after a clean one costs no second round of `glassbox cache`.
usage: probe_ref.py --glassbox BIN --model M --probe-dir DIR --data TRAIN --eval EVAL
                    [--features F.npz] [--break]
Exit 0 = all checks passed, 1 = a mismatch.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

M64 = (1 << 64) - 1


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def shuffle(v, state):
    for i in range(len(v), 1, -1):
        state, r = splitmix(state)
        j = r % i
        v[i - 1], v[j] = v[j], v[i - 1]
    return state


def folds_of(y, k, seed):
    fold = np.zeros(len(y), dtype=int)
    state = seed
    for c in (0, 1):
        idx = [i for i in range(len(y)) if y[i] == c]
        state = shuffle(idx, state)
        for pos, i in enumerate(idx):
            fold[i] = pos % k
    return fold


def standardizer(x):
    mu = x.mean(0)
    sd = np.sqrt(((x - mu) ** 2).mean(0))
    sd[~(sd > 1e-12)] = 1.0
    return mu, sd


def fit(x, y, lam):
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, lam)
    reg[-1] = 0.0
    for _ in range(200):
        p = 1 / (1 + np.exp(-(a @ theta)))
        g = a.T @ (p - y) / n + reg * theta
        h = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(reg)
        step = np.linalg.solve(h, g)
        theta -= step
        if np.abs(g).max() < 1e-13:
            break
    return theta[:d], theta[d]


def log_loss(z, y):
    return float(np.mean(np.logaddexp(0, z) - y * z))


def auroc(s, y):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    i = 0
    ss = s[order]
    while i < len(s):
        j = i
        while j < len(s) and ss[j] == ss[i]:
            j += 1
        ranks[order[i:j]] = (i + 1 + j) / 2
        i = j
    n1 = y.sum()
    n0 = len(y) - n1
    return (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def features(gb, model, path, hooks, tmp):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    feats = {h: [] for h in hooks}
    for r in rows:
        out = os.path.join(tmp, "c")
        subprocess.run([gb, "cache", "-m", model, "-t", "1", "--prompt", r["text"], "--hooks",
                        ",".join(hooks), "-o", out], check=True, capture_output=True)
        for h in hooks:
            feats[h].append(np.load(os.path.join(out, h + ".npy"))[-1].astype(np.float64))
    y = np.array([int(r["label"]) for r in rows], dtype=np.float64)
    return {h: np.array(v) for h, v in feats.items()}, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--probe-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--features")
    ap.add_argument("--break", dest="brk", action="store_true")
    a = ap.parse_args()
    metrics = json.load(open(os.path.join(a.probe_dir, "metrics.json")))
    hooks = [row["hook"] for row in metrics["layers"]]
    failures = []

    def check(label, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {detail}")
        if not ok:
            failures.append(label)

    if a.features and os.path.exists(a.features):
        z = np.load(a.features)
        xtr = {h: z["train:" + h] for h in hooks}
        xev = {h: z["eval:" + h] for h in hooks}
        ytr, yev = z["ytr"], z["yev"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            xtr, ytr = features(a.glassbox, a.model, a.data, hooks, tmp)
            xev, yev = features(a.glassbox, a.model, a.eval, hooks, tmp)
        if a.features:
            np.savez(a.features, ytr=ytr, yev=yev, **{"train:" + h: xtr[h] for h in hooks},
                     **{"eval:" + h: xev[h] for h in hooks})
    if a.brk:
        rng = np.random.default_rng(0)
        for h in hooks:
            mask = rng.random(xtr[h].shape) < 0.01
            xtr[h] = xtr[h] + mask * rng.normal(0, 1, xtr[h].shape)
    k, seed, lambdas = metrics["folds"], metrics["seed"], metrics["lambdas"]
    fold = folds_of(ytr.astype(int), k, seed)
    for row in metrics["layers"]:
        h = row["hook"]
        probe = json.load(open(os.path.join(a.probe_dir, row["probe"])))
        x = xtr[h]
        losses = []
        for lam in lambdas:
            total = 0.0
            for f in range(k):
                tr, va = fold != f, fold == f
                mu, sd = standardizer(x[tr])
                w, b = fit((x[tr] - mu) / sd, ytr[tr], lam)
                total += log_loss(((x[va] - mu) / sd) @ w + b, ytr[va]) / k
            losses.append(total)
        best = min(range(len(lambdas)), key=lambda i: (losses[i], -lambdas[i]))
        check(f"{h} lambda", lambdas[best] == probe["lambda"],
              f"ref {lambdas[best]} glassbox {probe['lambda']}")
        mu, sd = standardizer(x)
        w, b = fit((x - mu) / sd, ytr, probe["lambda"])
        e_mu = np.abs(mu - probe["mean"]).max() / (np.abs(mu).max() + 1e-30)
        e_sd = np.abs(sd - probe["scale"]).max() / np.abs(sd).max()
        e_w = max(np.abs(w - probe["w"]).max(), abs(b - probe["b"]))
        check(f"{h} standardization", e_mu < 1e-9 and e_sd < 1e-9, f"rel err {e_mu:.2e} {e_sd:.2e}")
        check(f"{h} weights", e_w < 1e-8, f"max abs err {e_w:.2e}")
        z_ref = ((xev[h] - mu) / sd) @ w + b
        z_gb = ((xev[h] - probe["mean"]) / np.array(probe["scale"])) @ np.array(probe["w"]) + probe["b"]
        e_p = np.abs(1 / (1 + np.exp(-z_ref)) - 1 / (1 + np.exp(-z_gb))).max()
        check(f"{h} held-out probabilities", e_p < 1e-8, f"max abs err {e_p:.2e}")
        ref_auc = auroc(z_ref, yev.astype(int))
        check(f"{h} held-out AUROC", abs(ref_auc - row["heldout_auroc"]) < 1e-3,
              f"ref {ref_auc:.6f} glassbox {row['heldout_auroc']:.6f}")
    print(f"{len(failures)} failed" if failures else "all probe reference checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
