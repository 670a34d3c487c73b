#!/usr/bin/python3
"""`glassbox train-sae` end to end on a small store harvested from stories260K.

  1. a run writes a SAELens dir (cfg.json + sae_weights.safetensors), activation_mean.npy (= the
     numpy mean of the store's non-BOS rows), training_log.jsonl, loss.svg (valid SVG)
  2. kill -9 at planned steps (right after checkpoints, between a checkpoint's log and state,
     between checkpoints at steps drawn from a fixed seed), then rerun: the SAE's weights and the
     log (but its tok/s) end byte-identical to an uninterrupted run with the same seed and threads
  3. a rerun of a complete run does nothing; other settings are refused and touch nothing
  4. bad input: a hook the store lacks, both --d-sae and --expansion, an incomplete store, a NaN
     in a shard; eval-sae at a hook whose width is not the SAE's d_in
usage: train_sae_test.py GLASSBOX REPO_DIR SHARED_DIR   (exit 77: the shared corpus is absent)
"""
import json
import os
import shutil
import sys
import random
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_util import Ledger, kill_at, runner  # noqa: E402

GB, REPO, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
SRC = os.path.join(SHARED, "corpus/tinystories_part1.txt")
if not os.path.exists(SRC):
    print("skip: shared corpus absent")
    sys.exit(77)
HOOK = "blocks.2.hook_resid_post"
ledger = Ledger()
check = ledger.check
gb = runner(GB)


def train_args(store, out, *extra):
    return ["train-sae", "--store", store, "--hook", HOOK, "--arch", "topk", "--k", "8",
            "--d-sae", "128", "--tokens", "600000", "--batch-size", "500", "--lr", "2e-3",
            "--checkpoint-steps", "64", "--log-steps", "40", "--mix-rows", "5000", "-t", "2",
            "--seed", "3", "--out", out, *extra]


def weights(d):
    with open(os.path.join(d, "sae_weights.safetensors"), "rb") as f:
        return f.read()


def log_without_rate(d):
    return [{k: v for k, v in json.loads(l).items() if k != "tok_s"}
            for l in open(os.path.join(d, "training_log.jsonl"))]


tmp = tempfile.mkdtemp(prefix="train_sae_test_")
try:
    docs = open(SRC, encoding="utf-8").read().split("<|endoftext|>")[:120]
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("".join(d + "<|endoftext|>" for d in docs))
    store = os.path.join(tmp, "store")
    gb("harvest", "-m", MODEL, "--corpus", corpus, "--hooks", HOOK, "--ctx", "64", "--tokens",
       "12000", "--shard-tokens", "2000", "--out", store, "-t", "2")

    ref = os.path.join(tmp, "ref")
    gb(*train_args(store, ref))
    files = set(os.listdir(ref))
    check("output: SAELens dir, mean, log, plot, no checkpoint left",
          {"cfg.json", "sae_weights.safetensors", "activation_mean.npy", "training_log.jsonl",
           "loss.svg", "train_config.json"} <= files and "checkpoint" not in files, sorted(files))
    cfg = json.load(open(os.path.join(ref, "cfg.json")))
    check("cfg.json: topk, d_in 64, d_sae 128, k 8, hook name",
          cfg.get("architecture") == "topk" and cfg.get("d_in") == 64 and cfg.get("d_sae") == 128
          and cfg.get("k") == 8 and HOOK in json.dumps(cfg), json.dumps(cfg)[:200])
    man = json.load(open(os.path.join(store, "manifest.json")))
    rows = []
    for s in man["shards"]:
        idx = np.load(os.path.join(store, s["dir"], "index.npy"))
        rows.append(np.load(os.path.join(store, s["dir"], HOOK + ".npy"))[idx[:, 3] != 0])
    want_mean = np.concatenate(rows).astype(np.float64).mean(0)
    got_mean = np.load(os.path.join(ref, "activation_mean.npy"))
    check("activation_mean.npy = mean of the store's non-BOS rows",
          np.max(np.abs(got_mean - want_mean)) < 1e-5, f"{np.max(np.abs(got_mean - want_mean)):.1e}")
    log = log_without_rate(ref)
    check("training log: one line per 40 steps, FVU falls",
          len(log) == 30 and log[-1]["step"] == 1200 and log[-1]["fvu"] < log[0]["fvu"],
          f"{len(log)} lines, fvu {log[0]['fvu']:.3f} -> {log[-1]['fvu']:.3f}")
    ET.parse(os.path.join(ref, "loss.svg"))
    check("loss.svg parses as XML", True)
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    np.save(os.path.join(tmp, "x.npy"), x)
    gb("sae-encode", "--sae", ref, "--input", os.path.join(tmp, "x.npy"), "--out",
       os.path.join(tmp, "a.npy"))
    a = np.load(os.path.join(tmp, "a.npy"))
    check("the trained SAE encodes with sae-encode (8 active latents per row at most)",
          a.shape == (5, 128) and int((a != 0).sum(1).max()) <= 8)

    # 2. kill -9 at planned points (GLASSBOX_KILL_AT, src/core/test_hooks.h) and resume. The run
    # has 1200 steps, a checkpoint every 64; every kill is asserted to have happened.
    rng = random.Random(14)
    mid = sorted(rng.sample([s for s in range(70, 1190) if s % 64 != 0], 3))
    plans = [("right after checkpoints", [("train.step", 128), ("train.step", 512)]),
             ("between the log and the state of a checkpoint", [("train.checkpoint", 320)]),
             ("between checkpoints", [("train.step", s) for s in mid])]
    for label, plan in plans:
        out = os.path.join(tmp, "killed")
        shutil.rmtree(out, ignore_errors=True)
        for site, point in plan:
            check(f"kill -9 {label}: interrupted at {site} = {point}",
                  kill_at([GB, *train_args(store, out)], site, point))
        gb(*train_args(store, out))
        check(f"kill -9 {label}, rerun: weights byte-identical to an uninterrupted run",
              weights(out) == weights(ref))
        check(f"kill -9 {label}, rerun: same log (steps, losses)", log_without_rate(out) == log)

    # 3. complete runs and other settings
    p = gb(*train_args(store, ref))
    check("rerun of a complete run: nothing to do", "already complete" in p.stderr, p.stderr.strip())
    before = weights(ref)
    p = gb(*[("16" if v == "8" and i > 0 and train_args(store, ref)[i - 1] == "--k" else v)
             for i, v in enumerate(train_args(store, ref))], check_rc=False)
    check("other settings into the same --out: exit 1, untouched",
          p.returncode == 1 and "other settings" in p.stderr and weights(ref) == before,
          p.stderr.strip()[-160:])

    # 4. bad input
    p = gb("train-sae", "--store", store, "--hook", "blocks.1.hook_resid_post", "--d-sae", "64",
           "--tokens", "100", "--out", os.path.join(tmp, "x1"), check_rc=False)
    check("a hook the store lacks: exit 1 naming it", p.returncode == 1 and "blocks.1.hook_resid_post"
          in p.stderr, p.stderr.strip()[-160:])
    p = gb("train-sae", "--store", store, "--hook", HOOK, "--d-sae", "64", "--expansion", "2",
           "--tokens", "100", "--out", os.path.join(tmp, "x2"), check_rc=False)
    check("both --d-sae and --expansion: exit 1", p.returncode == 1 and "--expansion" in p.stderr)
    inc = os.path.join(tmp, "incomplete")
    shutil.copytree(store, inc)
    m = json.load(open(os.path.join(inc, "manifest.json")))
    m["complete"] = False
    json.dump(m, open(os.path.join(inc, "manifest.json"), "w"))
    p = gb("train-sae", "--store", inc, "--hook", HOOK, "--d-sae", "64", "--tokens", "100",
           "--out", os.path.join(tmp, "x3"), check_rc=False)
    check("an incomplete store: exit 1 saying so", p.returncode == 1 and "not complete" in p.stderr,
          p.stderr.strip()[-160:])
    nan = os.path.join(tmp, "nan")
    shutil.copytree(store, nan)
    shard = os.path.join(nan, man["shards"][1]["dir"], HOOK + ".npy")
    arr = np.load(shard)
    arr[7, 3] = np.nan
    np.save(shard, arr)
    p = gb("train-sae", "--store", nan, "--hook", HOOK, "--d-sae", "64", "--epochs", "1",
           "--out", os.path.join(tmp, "x4"), check_rc=False)
    check("a NaN in the store: exit 1 naming the shard file", p.returncode == 1 and "NaN" in p.stderr
          and HOOK + ".npy" in p.stderr, p.stderr.strip()[-160:])
    p = gb("eval-sae", "-m", MODEL, "--sae", ref, "--corpus", corpus, "--tokens", "200",
           "--hook", "blocks.0.mlp.hook_post", check_rc=False)
    check("eval-sae at a hook of another width: exit 1 naming both",
          p.returncode == 1 and "d_in is 64" in p.stderr, p.stderr.strip()[-160:])
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(ledger.finish("train-sae"))
