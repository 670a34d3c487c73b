#!/usr/bin/python3
"""`glassbox harvest` end to end, on the embedded stories260K and a TinyStories excerpt.

  1. windows: each document (split on <|endoftext|>) tokenized by `glassbox tokenize` (no BOS),
     cut into ctx-1 pieces, BOS in front; the store's index equals that, row for row, and stops
     at exactly --tokens rows; documents.npy gives each document's bytes in the corpus file
  2. activations: stored rows equal `glassbox cache` run on the same window (1e-6: same kernels,
     same thread count; the check would see any misplaced row, since rows differ by O(1))
  3. kill -9 at planned points (a shard's files half written, a shard in place but not in the
     manifest, right after the manifest records one, and at rows inside shards drawn from a
     fixed seed), then rerun: the manifest and every shard file end byte-identical to an
     uninterrupted run
  4. a rerun with other settings is refused naming the field, and leaves the store untouched;
     a corrupted shard is reported by name
  5. --store-stats: mean / variance / norms equal numpy's over the non-BOS rows
  6. f16, bf16 and --zstd stores hold the same values (f16 / bf16 rounding of the f32 store;
     zstd files decompress to the uncompressed store's files); JSONL corpora read the "text" field
usage: harvest_test.py GLASSBOX REPO_DIR SHARED_DIR   (exit 77: the shared corpus is absent)
"""
import json
import os
import shutil
import subprocess
import sys
import random
import tempfile

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
CTX, TOKENS, SHARD = 48, 6000, 1000
ledger = Ledger()
check = ledger.check
gb = runner(GB)


def harvest_args(corpus, out, *extra, tokens=TOKENS, hooks=HOOK):
    return ["harvest", "-m", MODEL, "--corpus", corpus, "--hooks", hooks, "--ctx", str(CTX),
            "--tokens", str(tokens), "--shard-tokens", str(SHARD), "--out", out, "-t", "2",
            *extra]


def store_files(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def load(d, shard, name):
    return np.load(os.path.join(d, shard, name))


def all_rows(d, name):
    m = json.load(open(os.path.join(d, "manifest.json")))
    return np.concatenate([load(d, s["dir"], name) for s in m["shards"]]), m


tmp = tempfile.mkdtemp(prefix="harvest_test_")
try:
    # A corpus excerpt: the first 60 stories (enough for TOKENS rows).
    text = open(SRC, encoding="utf-8").read()
    docs = text.split("<|endoftext|>")[:60]
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("".join(d + "<|endoftext|>" for d in docs))

    ref = os.path.join(tmp, "ref")
    gb(*harvest_args(corpus, ref))
    index, man = all_rows(ref, "index.npy")
    acts, _ = all_rows(ref, HOOK + ".npy")
    check("store has exactly --tokens rows", man["rows"] == TOKENS and len(index) == TOKENS
          and acts.shape == (TOKENS, 64), f"{man['rows']} rows, acts {acts.shape}")
    check("shards hold whole windows of at least --shard-tokens rows (but the last)",
          all(s["rows"] >= SHARD for s in man["shards"][:-1]), [s["rows"] for s in man["shards"]])

    # 1. windows from independently tokenized documents
    expect = []
    raw = open(corpus, "rb").read()
    doc_bytes = {}
    off = 0
    for i, d in enumerate(docs):
        b = d.encode()
        doc_bytes[i] = (off, len(b))
        off += len(b) + len("<|endoftext|>")
        ids = json.loads(gb("tokenize", "-m", MODEL, "--text", d).stdout)
        for w in range(0, len(ids), CTX - 1):
            piece = ids[w:w + CTX - 1]
            expect.append([1, i, -1, 0])
            expect += [[t, i, w + j, j + 1] for j, t in enumerate(piece)]
        if len(expect) >= TOKENS:
            break
    expect = np.array(expect[:TOKENS], dtype=np.int64)
    check("index = BOS + (ctx-1)-token pieces of each document, tokenized alone",
          np.array_equal(index, expect),
          "" if np.array_equal(index, expect) else
          f"first difference at row {int(np.argmax(np.any(index != expect, axis=1)))}")
    dt = np.concatenate([load(ref, s["dir"], "documents.npy") for s in man["shards"]])
    ok = all(doc_bytes[int(r[0])] == (int(r[2]), int(r[3])) and r[1] == 0 for r in dt)
    check("documents.npy gives each document's byte range", ok, f"{len(dt)} entries")

    # 2. activations equal `glassbox cache` on the same windows
    starts = np.flatnonzero(index[:, 3] == 0)
    worst = 0.0
    for s in [starts[0], starts[1], starts[len(starts) // 2], starts[-1]]:
        e = next((x for x in starts if x > s), TOKENS)
        ids = ",".join(str(t) for t in index[s:e, 0])
        cdir = os.path.join(tmp, "cache")
        gb("cache", "-m", MODEL, "--tokens", ids, "--hooks", HOOK, "--out", cdir, "-t", "2")
        c = np.load(os.path.join(cdir, HOOK + ".npy")).reshape(e - s, -1)
        worst = max(worst, float(np.max(np.abs(c - acts[s:e]))))
    check("stored rows = `glassbox cache` on the window (max abs <= 1e-6)", worst <= 1e-6,
          f"max abs {worst:.2e}")

    # 3. kill -9 at planned points (GLASSBOX_KILL_AT, src/core/test_hooks.h), then rerun:
    # byte-identical to the uninterrupted store. Each plan is a sequence of runs on one --out,
    # each killed at its point; every kill is asserted to have happened.
    want = store_files(ref)
    rng = random.Random(14)
    # Mid-shard: a row count well inside one shard (the window that reaches it cannot fill the
    # shard), in three different shards drawn from a fixed seed.
    mid = sorted(rng.sample(range(len(man["shards"]) - 1), 3))
    mid_rows = [man["shards"][i]["first_row"] + rng.randrange(100, SHARD - 100) for i in mid]
    plans = [("at shard boundaries", [("harvest.shard_file", 1), ("harvest.shard_renamed", 2),
                                      ("harvest.shard_recorded", 4)]),
             ("mid-shard", [("harvest.rows", r) for r in mid_rows])]
    for label, plan in plans:
        out = os.path.join(tmp, "killed")
        shutil.rmtree(out, ignore_errors=True)
        for site, point in plan:
            killed = kill_at([GB, *harvest_args(corpus, out)], site, point)
            detail = ""
            if site == "harvest.rows":  # the rows since the last shard were lost with the process
                recorded = json.load(open(os.path.join(out, "manifest.json")))["rows"]
                killed = killed and recorded < point
                detail = f"{recorded} rows recorded at the kill"
            check(f"kill -9 {label}: interrupted at {site} = {point}", killed, detail)
        gb(*harvest_args(corpus, out))
        got = store_files(out)
        same = got == want
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        check(f"kill -9 {label}, rerun: store byte-identical to an uninterrupted run", same, diff[:5])

    # 4. other settings are refused, nothing touched; corruption is named
    before = store_files(ref)
    p = gb(*[("64" if a == str(CTX) else a) for a in harvest_args(corpus, ref)], check_rc=False)
    check("rerun with another --ctx: exit 1, names the field", p.returncode == 1 and "ctx" in p.stderr,
          p.stderr.strip()[-200:])
    p = gb(*harvest_args(corpus, ref, hooks="blocks.1.hook_resid_post"), check_rc=False)
    check("rerun with other --hooks: exit 1, names the field",
          p.returncode == 1 and "hooks" in p.stderr, p.stderr.strip()[-200:])
    check("the refused reruns left the store untouched", store_files(ref) == before)
    bad = os.path.join(tmp, "bad")
    shutil.copytree(ref, bad)
    victim = os.path.join(bad, man["shards"][1]["dir"], HOOK + ".npy")
    with open(victim, "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    p = gb(*harvest_args(corpus, bad), check_rc=False)
    check("corrupted shard: exit 1 naming the file", p.returncode == 1 and HOOK + ".npy" in p.stderr
          and "checksum" in p.stderr, p.stderr.strip()[-200:])
    p = gb(*harvest_args(corpus, os.path.join(tmp, "x"), hooks="blocks.0.attn.hook_pattern"),
           check_rc=False)
    check("a per-(head, query) hook is refused", p.returncode == 1 and "hook_pattern" in p.stderr,
          p.stderr.strip()[-200:])

    # 5. --store-stats against numpy
    sdir = os.path.join(tmp, "stats")
    gb(*harvest_args(corpus, sdir, "--store-stats"))
    st = json.load(open(os.path.join(sdir, "stats.json")))[HOOK]
    x = acts[index[:, 3] != 0].astype(np.float64)
    err = max(np.max(np.abs(np.array(st["mean"]) - x.mean(0))),
              np.max(np.abs(np.array(st["var"]) - x.var(0))) / max(1.0, x.var(0).max()),
              abs(st["mean_norm"] - np.linalg.norm(x, axis=1).mean()),
              abs(st["mean_squared_norm"] - (x ** 2).sum(1).mean()) / (x ** 2).sum(1).mean())
    check("--store-stats (non-BOS rows) = numpy", st["rows"] == len(x) and err < 1e-9,
          f"{st['rows']} rows, worst {err:.1e}")

    # 6. dtypes and compression
    for dtype in ["f16", "bf16"]:
        d = os.path.join(tmp, dtype)
        gb(*harvest_args(corpus, d, "--dtype", dtype))
        a, _ = all_rows(d, HOOK + ".npy")
        if dtype == "f16":
            want16 = acts.astype(np.float16)
            ok = a.dtype == np.float16 and np.array_equal(a, want16)
        else:  # '<V2' bit patterns: the top 16 bits of f32, rounded to nearest even
            bits = acts.view(np.uint32).astype(np.uint64)
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            ok = a.dtype.itemsize == 2 and np.array_equal(a.view(np.uint16), rounded)
        check(f"--dtype {dtype}: rows = the f32 rows rounded to {dtype}", ok)
    if shutil.which("zstd"):
        z = os.path.join(tmp, "zst")
        gb(*harvest_args(corpus, z, "--zstd", "--store-stats"))
        plain = store_files(ref)
        same = True
        for s in man["shards"]:
            for f in ["index.npy", HOOK + ".npy", "documents.npy"]:
                dec = subprocess.run(["zstd", "-dc", os.path.join(z, s["dir"], f + ".zst")],
                                     capture_output=True, check=True).stdout
                same = same and dec == plain[os.path.join(s["dir"], f)]
        check("--zstd: every file decompresses to the uncompressed store's file", same)
        zs = json.load(open(os.path.join(z, "stats.json")))[HOOK]
        check("--zstd --store-stats reads the compressed shards (same stats)", zs == st)

    jl = os.path.join(tmp, "c.jsonl")
    with open(jl, "w") as f:
        for d in docs[:5]:
            f.write(json.dumps({"text": d, "id": 1}) + "\n\n")
    jd = os.path.join(tmp, "jsonl")
    gb(*harvest_args(jl, jd, tokens=500))
    ji, _ = all_rows(jd, "index.npy")
    check("JSONL corpus (field text): same rows as the text corpus",
          np.array_equal(ji, index[:500]))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(ledger.finish("harvest"))
