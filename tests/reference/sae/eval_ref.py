#!/usr/bin/env python3
"""Independent reference for `glassbox eval-sae`: the float64 Llama of ../llama_ref.py with the
SAE's reconstruction patched into the residual stream, and the metrics in numpy.

An SAELens TopK SAE with random weights (d_in 64 = stories260K's d_model, d_sae 256, k 8) for
blocks.2.hook_resid_post is written by hand; windows are built from `glassbox tokenize` of each
document (the tokenizer is checked against libsentencepiece elsewhere) exactly as the docs state:
BOS + (ctx-1)-token pieces, cut at --tokens. Per window: CE of the next-token predictions made at
positions 1..n-2 with the hook's rows 1.. left clean, replaced by the reconstruction, by 0, by the
mean; mse / fvu / l0 / dead_frac over rows 1.. . Run twice: with activation_mean.npy beside the
SAE (mean_source "stored") and without (the mean over the evaluated rows, "eval").
Tolerances: CE and CE-recovered 2e-5 relative (float32 logits vs float64), mse / fvu 1e-4
relative, l0 and dead_frac within 0.5 / d_sae-scale slack for pre-activations within float error
of a top-k boundary (none occur with these seeds). With --break the reference uses k + 1 and the
script passes only if that mismatch is reported: the comparison can fail.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import llama_ref  # noqa: E402
import sae_ref  # noqa: E402

HOOK, D_IN, D_SAE, K, CTX, TOKENS = "blocks.2.hook_resid_post", 64, 256, 8, 64, 300


def write_sae(path, w):
    os.makedirs(path, exist_ok=True)
    sae_ref.write_safetensors(os.path.join(path, "sae_weights.safetensors"),
                              {n: (t, "F32") for n, t in w.items()})
    cfg = {"architecture": "topk", "d_in": D_IN, "d_sae": D_SAE, "k": K, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "metadata": {"model_name": "stories260K", "hook_name": HOOK}}
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def topk_encode(x, w, k):
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    out = torch.zeros_like(pre)
    v, i = pre.topk(k, dim=-1)
    out.scatter_(-1, i, v.clamp(min=0))
    return out


def reference(model, windows, w, k, mean):
    recon = lambda x: topk_encode(x, w, k) @ w["W_dec"] + w["b_dec"]  # noqa: E731
    ce = {m: 0.0 for m in ["clean", "spliced", "zero", "mean"]}
    npred, xs, rs, acts = 0, [], [], []

    def ce_of(logits, toks):
        lp = torch.log_softmax(logits, -1)
        return -sum(float(lp[p, toks[p + 1]]) for p in range(1, len(toks) - 1))

    def keep_bos(fn):
        return lambda t: torch.cat([t[:1], fn(t[1:])])

    for toks in windows:
        logits, cache = model.forward(toks, want={HOOK})
        x = cache[HOOK][1:]
        xs.append(x)
        rs.append(recon(x))
        acts.append(topk_encode(x, w, k))
        ce["clean"] += ce_of(logits, toks)
        for name, fn in [("spliced", recon), ("zero", torch.zeros_like),
                         ("mean", lambda t: mean.expand_as(t).clone() if mean is not None else None)]:
            if name == "mean" and mean is None:
                continue
            ce[name] += ce_of(model.forward(toks, patch={HOOK: keep_bos(fn)})[0], toks)
        npred += len(toks) - 2
    X, R, A = torch.cat(xs), torch.cat(rs), torch.cat(acts)
    if mean is None:  # the eval-set mean, then the mean-ablated pass
        mean = X.mean(0)
        for toks in windows:
            ce["mean"] += ce_of(model.forward(
                toks, patch={HOOK: keep_bos(lambda t: mean.expand_as(t).clone())})[0], toks)
    c = {m: v / npred for m, v in ce.items()}
    err = float(((X - R) ** 2).sum())
    return {"mse": err / X.numel(), "fvu": err / float(((X - X.mean(0)) ** 2).sum()),
            "l0": float((A != 0).sum()) / len(X), "dead_frac": float((A != 0).sum(0).eq(0).double().mean()),
            "ce_clean": c["clean"], "ce_spliced": c["spliced"], "ce_zero_ablated": c["zero"],
            "ce_mean_ablated": c["mean"],
            "ce_recovered_zero": (c["zero"] - c["spliced"]) / (c["zero"] - c["clean"]),
            "ce_recovered_mean": (c["mean"] - c["spliced"]) / (c["mean"] - c["clean"]),
            "rows": len(X), "predictions": npred}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--break", dest="brk", action="store_true")
    a = ap.parse_args()
    src = os.path.join(a.shared, "corpus/tinystories_part2.txt")
    if not os.path.exists(src):
        print("skipped: shared corpus absent")
        return 77
    model_path = os.path.join(a.repo, "models/stories260K/stories260K.bin")
    work = os.path.join(a.workdir, "eval_ref")
    os.makedirs(work, exist_ok=True)
    docs = open(src, encoding="utf-8").read().split("<|endoftext|>")[:4]
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("".join(d + "<|endoftext|>" for d in docs))
    windows, total = [], 0
    for d in docs:
        ids = json.loads(subprocess.run([a.glassbox, "tokenize", "-m", model_path, "--text", d],
                                        capture_output=True, text=True, check=True).stdout)
        for s in range(0, len(ids), CTX - 1):
            win = [1] + ids[s:s + CTX - 1]
            win = win[:TOKENS - total]
            total += len(win)
            if len(win) >= 3:
                windows.append(win)
            if total >= TOKENS:
                break
        if total >= TOKENS:
            break

    gen = torch.Generator().manual_seed(5)
    w = {"W_enc": torch.randn(D_IN, D_SAE, generator=gen, dtype=torch.float64) / 8,
         "b_enc": torch.randn(D_SAE, generator=gen, dtype=torch.float64) * 0.1,
         "W_dec": torch.randn(D_SAE, D_IN, generator=gen, dtype=torch.float64) / 4,
         "b_dec": torch.randn(D_IN, generator=gen, dtype=torch.float64) * 0.1}
    w = {n: t.float().double() for n, t in w.items()}  # the float32 values the file holds
    model = llama_ref.LlamaRef.load(model_path)
    failures = 0
    for stored in [True, False]:
        sdir = os.path.join(work, "sae_stored" if stored else "sae_eval")
        write_sae(sdir, w)
        mean = None
        mpath = os.path.join(sdir, "activation_mean.npy")
        if stored:
            m32 = (torch.randn(D_IN, generator=gen, dtype=torch.float64) * 0.5).float()
            np.save(mpath, m32.numpy())
            mean = m32.double()
        elif os.path.exists(mpath):
            os.remove(mpath)
        got = json.loads(subprocess.run(
            [a.glassbox, "eval-sae", "-m", model_path, "--sae", sdir, "--corpus", corpus,
             "--tokens", str(TOKENS), "--ctx", str(CTX), "-t", "1"],
            capture_output=True, text=True, check=True).stdout)
        ref = reference(model, windows, w, K + 1 if a.brk else K, mean)
        tol = {"ce_clean": 2e-5, "ce_spliced": 2e-5, "ce_zero_ablated": 2e-5,
               "ce_mean_ablated": 2e-5, "ce_recovered_zero": 2e-5, "ce_recovered_mean": 2e-5,
               "mse": 1e-4, "fvu": 1e-4}
        bad = []
        for key, t in tol.items():
            rel = abs(got[key] - ref[key]) / max(1e-12, abs(ref[key]))
            print(f"  {key:18} glassbox {got[key]:.8g}  reference {ref[key]:.8g}  rel {rel:.1e}")
            if rel > t:
                bad.append(key)
        for key, slack in [("l0", 0.5 / ref["rows"] * 10), ("dead_frac", 2.0 / D_SAE)]:
            print(f"  {key:18} glassbox {got[key]:.6g}  reference {ref[key]:.6g}")
            if abs(got[key] - ref[key]) > slack:
                bad.append(key)
        for key in ["rows", "predictions"]:
            if got[key] != ref[key]:
                bad.append(key)
        if got["mean_source"] != ("stored" if stored else "eval"):
            bad.append("mean_source")
        print(f"mean {'stored' if stored else 'eval'}: {'mismatch ' + str(bad) if bad else 'match'}")
        failures += bool(bad)
    if a.brk:
        print("break mode:", "every case reported a mismatch" if failures == 2 else "NOT detected")
        return 0 if failures == 2 else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
