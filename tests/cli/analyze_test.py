#!/usr/bin/python3
"""`glassbox analyze` against a brute-force recomputation on a small corpus.

  1. a tiny TopK SAE is trained on stories260K (harvest + train-sae); analyze writes a feature DB
  2. independently: the same windows' activations from a `glassbox harvest` store, encoded with
     the float64 reference of tests/reference/sae/sae_ref.py, give per latent n_fires, freq
     (exact), mean and max (1e-4 relative), the top-k examples (one per window: its first
     maximum; ranked by act desc, doc asc, pos asc; exact identity except near-ties), their
     contexts (token ids exact, acts 1e-4), the histogram (total exact, bins up to boundary
     effects), the quantile-band samples (each inside its band; the band's smallest sampling
     keys taken) and the logit effects ((W_dec * ln_final.w) @ W_U.T from the llama2.c weights
     read by tests/reference/llama_ref.py)
  3. kill -9 at planned windows of both passes (right after checkpoints, and between them at
     windows drawn from a fixed seed), then rerun: DB content identical to an uninterrupted run
  4. a rerun of a finished DB does nothing; other settings are refused naming the setting
  5. bad input: missing SAE dir, SAE d_in not the hook's width, a non-glassbox file as --out,
     --tokens 0, a missing corpus file: exit 1 with one "glassbox: error:" line naming it
With --break the script perturbs the recomputed activations and must then report failures.
usage: analyze_test.py GLASSBOX REPO_DIR [--break]
"""
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    print("skip: numpy/torch missing")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "reference", "sae"))
from cli_util import Ledger, kill_at, runner  # noqa: E402
from llama_ref import read_llama2c  # noqa: E402
from sae_ref import read_safetensors_f32, saelens_encode, write_safetensors  # noqa: E402

GB, REPO = sys.argv[1], sys.argv[2]
BREAK = "--break" in sys.argv
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
CORPUS = os.path.join(REPO, "data/corpus/tinystories_eval_excerpt.txt")
HOOK = "blocks.2.hook_resid_post"
CTX, TOKENS, TOP_K, CONTEXT, Q, PER_Q, BINS, LOGITS, SEED = 64, 4000, 5, 4, 4, 3, 16, 5, 7
TIE = 1e-5  # activations closer than this may legitimately swap order (float32 vs float64)
ledger = Ledger()
check = ledger.check
gb = runner(GB)

M64 = (1 << 64) - 1


def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def sample_key(feature, doc, pos):
    h = mix((doc & M64) ^ mix(pos & M64))
    return mix(SEED ^ mix(feature ^ h))


def analyze_args(sae, out, *extra):
    return ["analyze", "-m", MODEL, "--sae", sae, "--corpus", CORPUS, "--tokens", str(TOKENS),
            "--ctx", str(CTX), "--top-k", str(TOP_K), "--context", str(CONTEXT), "--quantiles",
            str(Q), "--per-quantile", str(PER_Q), "--bins", str(BINS), "--logits", str(LOGITS),
            "--seed", str(SEED), "--checkpoint-every", "3", "-t", "2", "--out", out, *extra]


def with_option(args, name, value):
    i = args.index(name)
    return args[:i + 1] + [value] + args[i + 2:]


def dump(path):
    """Every table's rows but the resume state, in a canonical order."""
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'state' ORDER BY name")]
    out = {t: sorted(db.execute(f"SELECT * FROM \"{t}\"").fetchall(), key=repr) for t in tables}
    db.close()
    return out


def examples(db, f, band):
    rows = db.execute("SELECT act, doc, pos, center, ids, acts FROM examples WHERE feature = ? "
                      "AND band = ? ORDER BY rank", (f, band)).fetchall()
    return [(a, d, p, c, np.frombuffer(i, "<i4"), np.frombuffer(x, "<f4"))
            for a, d, p, c, i, x in rows]


def brute_force(store, sae_dir):
    man = json.load(open(os.path.join(store, "manifest.json")))
    idx = np.concatenate([np.load(os.path.join(store, s["dir"], "index.npy"))
                          for s in man["shards"]])
    x = np.concatenate([np.load(os.path.join(store, s["dir"], HOOK + ".npy"))
                        for s in man["shards"]]).astype(np.float64)
    cfg = json.load(open(os.path.join(sae_dir, "cfg.json")))
    w = {k: torch.from_numpy(v.astype(np.float64))
         for k, v in read_safetensors_f32(os.path.join(sae_dir, "sae_weights.safetensors")).items()}
    acts = saelens_encode(torch.from_numpy(x), w, cfg["architecture"],
                          cfg.get("apply_b_dec_to_input", True), cfg.get("k")).numpy()
    pre = (torch.from_numpy(x) - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    srt = torch.sort(pre, dim=1, descending=True).values.numpy()
    k = cfg["k"]
    ambiguous = np.abs(srt[:, k - 1] - srt[:, k]) < TIE  # top-k membership unsure
    if BREAK:
        acts[5, :] = np.where(acts[5] > 0, acts[5] * 1.5, 0)
    return idx, acts, ambiguous, w


def check_against_brute_force(db_path, idx, acts, ambiguous, w_dec):
    db = sqlite3.connect(db_path)
    keep = idx[:, 3] != 0  # BOS rows excluded
    n_tokens = int(keep.sum())
    meta = dict(db.execute("SELECT key, value FROM meta"))
    check("tokens analysed = the store's non-BOS rows", int(meta["tokens_analysed"]) == n_tokens,
          f"{meta['tokens_analysed']} vs {n_tokens}")
    window_start = np.cumsum(idx[:, 3] == 0) - 1  # window number per row
    d_sae = acts.shape[1]
    feats = {r[0]: r[1:] for r in db.execute(
        "SELECT id, n_fires, freq, mean_act, max_act, hist_edges, hist_counts FROM features")}
    check("one features row per latent", sorted(feats) == list(range(d_sae)))
    bad = {"fires": [], "mean": [], "top": [], "ctx": [], "hist": [], "band": [], "sample": []}
    for f in range(d_sae):
        a = np.where(keep, acts[:, f], 0.0)
        fire = a > 0
        n_fires, freq, mean, mx, edges, hist = feats[f]
        n_amb = int((ambiguous & keep).sum())
        exact = abs(n_fires - int(fire.sum())) == 0
        if not exact and abs(n_fires - int(fire.sum())) > n_amb:
            bad["fires"].append(f)
        if freq != n_fires / n_tokens:
            bad["fires"].append(f)
        if n_fires == 0:
            continue
        if not (abs(mean - a[fire].mean()) <= 1e-4 * mean and abs(mx - a.max()) <= 1e-4 * mx):
            bad["mean"].append(f)
        # top examples: per window its first maximum, ranked by (act desc, doc, pos)
        cand = []
        for wdw in np.unique(window_start[fire]):
            rows = np.nonzero((window_start == wdw) & fire)[0]
            r = rows[np.argmax(a[rows])]
            cand.append((-a[r], int(idx[r, 1]), int(idx[r, 2]), r))
        cand.sort()
        got = examples(db, f, -1)
        if len(got) != min(TOP_K, len(cand)):
            bad["top"].append(f)
            continue
        for i, (ga, gd, gp, gc, gids, gacts) in enumerate(got):
            na, nd, npos, r = cand[i]
            if (gd, gp) != (nd, npos) and abs(ga + na) > TIE * max(1, ga):
                # identity may differ only where activations tie within TIE
                bad["top"].append((f, i, (gd, gp), (nd, npos), ga, -na))
                break
            if abs(ga + na) > 1e-4 * max(1.0, ga):
                bad["top"].append((f, i, "act", ga, -na))
                break
            if (gd, gp) != (nd, npos):
                continue
            lo = max(r - CONTEXT, r - (idx[r, 3] - 1))
            wlen = int((window_start == window_start[r]).sum())
            hi = min(r + CONTEXT, r - idx[r, 3] + wlen - 1)
            if not (np.array_equal(gids, idx[lo:hi + 1, 0]) and gc == r - lo and
                    np.allclose(gacts, a[lo:hi + 1], rtol=1e-4, atol=1e-4)):
                bad["ctx"].append((f, i))
        # histogram over (0, max]: bin = ceil(a / max * bins) - 1
        h = np.frombuffer(hist, "<i8")
        e = np.frombuffer(edges, "<f8")
        want = np.bincount(np.clip(np.ceil(a[fire] / mx * BINS).astype(int) - 1, 0, BINS - 1),
                           minlength=BINS)
        if h.sum() != n_fires or np.abs(h - want).sum() > 2 + 2 * n_amb or len(e) != BINS + 1:
            bad["hist"].append((f, h.sum(), n_fires, np.abs(h - want).sum()))
        # quantile bands: contiguous edges from 0 to max; each sample inside its band, and the
        # band's smallest keys taken
        bands = db.execute("SELECT lo, hi FROM bands WHERE feature = ? ORDER BY band",
                           (f,)).fetchall()
        if len(bands) != Q or bands[0][0] != 0 or abs(bands[-1][1] - mx) > 1e-12 or any(
                bands[i][1] != bands[i + 1][0] for i in range(Q - 1)):
            bad["band"].append(f)
            continue
        rows = np.nonzero(fire)[0]
        keys = {r: sample_key(f, int(idx[r, 1]), int(idx[r, 2])) for r in rows}
        where = {(int(idx[r, 1]), int(idx[r, 2])): r for r in rows}
        for b, (lo, hi) in enumerate(bands):
            got = examples(db, f, b)
            tol = TIE * max(1.0, hi)
            strict = [r for r in rows if lo + tol < a[r] <= hi - tol]
            loose = {r for r in rows if lo - tol < a[r] <= hi + tol}
            ok = len(got) <= PER_Q and (len(got) == PER_Q or len(got) >= len(strict))
            got_rows = []
            for ga, gd, gp, _, _, _ in got:
                r = where.get((gd, gp))
                ok = ok and r in loose and abs(ga - a[r]) <= 1e-4 * max(1.0, ga)
                got_rows.append(r)
            if ok and got_rows:
                worst = max(keys[r] for r in got_rows)
                ok = all(r in got_rows for r in strict if keys[r] < worst)
            if not ok:
                bad["sample"].append((f, b))
    for what, label in [("fires", "n_fires and freq exact"), ("mean", "mean and max act"),
                        ("top", "top examples (identity and act)"),
                        ("ctx", "top example contexts (ids, centre, acts)"),
                        ("hist", "histograms"), ("band", "quantile band edges"),
                        ("sample", "quantile samples (in band, smallest keys)")]:
        check(f"brute force: {label}", not bad[what], str(bad[what][:4]))
    # logit effects: (W_dec * ln_final.w) @ W_U.T
    _, mw = read_llama2c(MODEL)
    eff = (w_dec * mw["final_norm"].astype(np.float64)) @ mw["unembed"].astype(np.float64).T
    bad_eff = []
    for f in range(d_sae):
        for sign in (1, -1):
            got = db.execute("SELECT token_id, value FROM logit_effects WHERE feature = ? AND "
                             "sign = ? ORDER BY rank", (f, sign)).fetchall()
            order = np.argsort(-sign * eff[f], kind="stable")[:LOGITS]
            for (gid, gv), wid in zip(got, order):
                if abs(gv - eff[f, wid]) > 1e-4 * max(1, abs(gv)) or (
                        gid != wid and abs(eff[f, gid] - eff[f, wid]) > TIE):
                    bad_eff.append((f, sign, gid, int(wid)))
                    break
            if len(got) != LOGITS:
                bad_eff.append((f, sign, "count"))
    check("brute force: logit effects (W_dec * ln_final.w) @ W_U.T", not bad_eff, str(bad_eff[:4]))
    db.close()


tmp = tempfile.mkdtemp(prefix="analyze_test_")
try:
    store = os.path.join(tmp, "store")
    gb("harvest", "-m", MODEL, "--corpus", CORPUS, "--hooks", HOOK, "--ctx", str(CTX),
       "--tokens", str(TOKENS), "--out", store, "-t", "2")
    sae = os.path.join(tmp, "sae")
    gb("train-sae", "--store", store, "--hook", HOOK, "--arch", "topk", "--k", "8", "--d-sae",
       "64", "--tokens", "40000", "--batch-size", "400", "--lr", "3e-3", "-t", "2", "--seed", "1",
       "--out", sae)

    # 1, 2: a run, checked against the brute-force recomputation
    ref = os.path.join(tmp, "ref.db")
    t0 = time.time()
    p = gb(*analyze_args(sae, ref))
    duration = time.time() - t0
    check("analyze: summary line", "latents alive" in p.stderr, p.stderr.strip()[-200:])
    idx, acts, ambiguous, w = brute_force(store, sae)
    print(f"note: {int(ambiguous.sum())} rows with a top-k near-tie; analyze took {duration:.2f} s")
    check_against_brute_force(ref, idx, acts, ambiguous, w["W_dec"].numpy())
    meta = dict(sqlite3.connect(ref).execute("SELECT key, value FROM meta"))
    check("meta: finished, settings recorded", meta.get("status") == "done" and
          meta.get("hook") == HOOK and meta.get("top_k") == str(TOP_K), str(meta)[:200])
    db = sqlite3.connect(ref)
    hits = db.execute("SELECT COUNT(*) FROM examples_fts WHERE examples_fts MATCH 'dog'").fetchone()
    check("FTS5 index over example text answers", hits[0] > 0, hits)
    plan = db.execute("EXPLAIN QUERY PLAN SELECT feature FROM examples WHERE center_id = 5 AND "
                      "band = -1").fetchall()
    check("examples indexed by centre token", "examples_by_token" in str(plan), plan)
    db.close()

    # 3. kill -9 at planned points (GLASSBOX_KILL_AT, src/core/test_hooks.h) and resume: a
    # checkpoint every 3 windows; the points count windows done in a pass; every kill is asserted
    # to have happened.
    want = dump(ref)
    windows = int(meta["windows"])
    rng = random.Random(14)
    mid = [rng.choice([w for w in range(4, windows - 1) if w % 3 != 0]) for _ in range(2)]
    plans = [("right after checkpoints", [("analyze.pass1", 9), ("analyze.pass1", 21),
                                          ("analyze.pass2", 12)]),
             ("between checkpoints", [("analyze.pass1", mid[0]), ("analyze.pass2", mid[1])])]
    for label, plan in plans:
        out = os.path.join(tmp, "killed.db")
        for s in ("", "-journal"):
            if os.path.exists(out + s):
                os.remove(out + s)
        for site, point in plan:
            check(f"kill -9 {label}: interrupted at {site} = {point}",
                  kill_at([GB, *analyze_args(sae, out)], site, point))
        p = gb(*analyze_args(sae, out))
        check(f"kill -9 {label}, rerun: resumed", "resumed" in p.stderr, p.stderr.strip()[-200:])
        check(f"kill -9 {label}, rerun: DB content identical to an uninterrupted run",
              dump(out) == want)

    # 4. finished DBs and other settings
    p = gb(*analyze_args(sae, ref))
    check("rerun of a finished DB: nothing to do", "already complete" in p.stderr,
          p.stderr.strip())
    p = gb(*with_option(analyze_args(sae, ref), "--top-k", "6"), check_rc=False)
    check("other settings into the same --out: exit 1 naming top_k, untouched",
          p.returncode == 1 and "top_k" in p.stderr and dump(ref) == want, p.stderr.strip()[-200:])
    p = gb(*analyze_args(sae, ref, "--overwrite"))
    check("--overwrite: redone from scratch, same content", dump(ref) == want)

    # 5. bad input
    bad_sae = os.path.join(tmp, "bad_sae")
    shutil.copytree(sae, bad_sae)
    cfg = json.load(open(os.path.join(bad_sae, "cfg.json")))
    cfg["metadata"] = dict(cfg.get("metadata", {}), hook_name="blocks.1.mlp.hook_post")
    cfg.pop("hook_name", None)
    json.dump(cfg, open(os.path.join(bad_sae, "cfg.json"), "w"))
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "w") as f:
        f.write("this is not a database\n" * 100)
    cases = [
        ("missing SAE dir", analyze_args(os.path.join(tmp, "nope"), os.path.join(tmp, "a.db")),
         "nope"),
        ("SAE d_in not the hook's width", analyze_args(bad_sae, os.path.join(tmp, "b.db")),
         "d_in"),
        ("a non-glassbox file as --out", analyze_args(sae, junk), "junk.db"),
        ("--tokens 0", with_option(analyze_args(sae, os.path.join(tmp, "c.db")), "--tokens", "0"),
         "--tokens"),
        ("missing corpus file", [a if a != CORPUS else os.path.join(tmp, "none.txt")
                                 for a in analyze_args(sae, os.path.join(tmp, "d.db"))],
         "none.txt"),
    ]
    for label, args, needle in cases:
        p = gb(*args, check_rc=False)
        err = [l for l in p.stderr.splitlines() if l.startswith("glassbox: error:")]
        check(f"bad input, {label}: exit 1, one error line naming it",
              p.returncode == 1 and len(err) == 1 and needle in err[0], p.stderr.strip()[-200:])
    check("the non-glassbox --out file is left untouched",
          open(junk).read() == "this is not a database\n" * 100)
    # 6. a ReLU SAE on a hook that is not a residual-stream write: analysed, logit effects skipped
    mlp = os.path.join(tmp, "mlp_sae")
    os.makedirs(mlp)
    g = torch.Generator().manual_seed(0)
    d_mlp, n_lat = 172, 48
    write_safetensors(os.path.join(mlp, "sae_weights.safetensors"), {
        "W_enc": (torch.randn(d_mlp, n_lat, generator=g, dtype=torch.float64) / 13, "F32"),
        "b_enc": (torch.zeros(n_lat, dtype=torch.float64) - 0.05, "F32"),
        "W_dec": (torch.randn(n_lat, d_mlp, generator=g, dtype=torch.float64) / 7, "F32"),
        "b_dec": (torch.zeros(d_mlp, dtype=torch.float64), "F32")})
    json.dump({"architecture": "standard", "d_in": d_mlp, "d_sae": n_lat, "dtype": "float32",
               "apply_b_dec_to_input": False, "normalize_activations": "none",
               "metadata": {"model_name": "stories260K", "hook_name": "blocks.1.mlp.hook_post"}},
              open(os.path.join(mlp, "cfg.json"), "w"))
    out = os.path.join(tmp, "mlp.db")
    p = gb(*with_option(analyze_args(mlp, out), "--tokens", "600"), check_rc=False)
    db = sqlite3.connect(out) if p.returncode == 0 else None
    meta = dict(db.execute("SELECT key, value FROM meta")) if db else {}
    check("mlp.hook_post SAE: analysed, logit effects skipped and why",
          p.returncode == 0 and meta.get("logit_effects", "").startswith("skipped") and
          db.execute("SELECT COUNT(*) FROM logit_effects").fetchone()[0] == 0 and
          db.execute("SELECT COUNT(*) FROM features").fetchone()[0] == n_lat and
          "logit effects skipped" in p.stderr, (p.stderr.strip()[-200:], meta.get("logit_effects")))

    p = gb("analyze", "--help")
    check("--help lists the options", "--top-k" in p.stdout and "--quantiles" in p.stdout)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(ledger.finish("analyze"))
