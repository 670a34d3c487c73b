#!/usr/bin/python3
"""Gemma Scope end to end on Gemma 2 (issue #15): harvest, eval-sae, analyze and serve with two
Gemma Scope-layout params.npz SAEs, checked against numpy and the float64 reference.

Model: tests/reference/hf/make_hf_models.py's random `gemma2` (soft-caps, sandwich norms, sliding
window 40 on even layers, GELU-tanh, tied; d_model 128, d_head 32), written through the module's
own write_model with three changes: 6 query heads over 2 kv heads (so attn.hook_z is 6 * 32 = 192
wide, not d_model 128, as in Gemma 2 2B/9B: a residual SAE and an attention SAE cannot be
confused by width), d_vocab 512 and BOS 1 / EOS 2, so that stories260K's tok512.bin
(models/stories260K, in this repository) is its vocabulary. Converted to GGUF with `glassbox
convert --tokenizer tok512.bin`; everything below runs on the GGUF except one eval-sae run and
one `cache` on the HF directory (which must agree with the GGUF).

SAEs: Gemma Scope's layout (np.savez of W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec,
threshold; JumpReLU, no b_dec subtraction) for blocks.1.hook_resid_post (d_in 128, d_sae 256,
np.savez) and blocks.1.attn.hook_z (d_in 192, d_sae 384, np.savez_compressed). W_dec rows are
random unit vectors; W_enc = (W_dec + noise)^T, so W_enc is not W_dec^T (a reader that mixed
them up would give other numbers); b_dec = the hook's mean, b_enc = -b_dec @ W_enc (the encoder
centres the input); each threshold sits in the widest gap between the hook's pre-activations
near their 97th percentile (L0 about 3 % of d_sae, and no pre-activation within float32 error
of a threshold, so glassbox and numpy agree on every firing); the last 8 latents get a threshold
of 1000 (dead).

Checks:
  1. the harvest store (GGUF, both hooks, ctx 64, 1536 tokens) holds per window exactly what
     `glassbox cache --tokens <window>` gives (1e-5 relative; hook_z [pos, 6, 32] flattened
     head-major = the store's 192 columns); `cache` on the HF directory = on the GGUF (1e-5);
     both hooks = the float64 reference (tests/reference/hf/hf_ref.py) within 1e-4 relative
     (measured 2.3e-6).
  2. eval-sae (GGUF) for both SAEs vs numpy on the `cache` activations of the same windows
     (encoded from params.npz in float64): rows / predictions / tokens exact, mse and fvu 1e-4
     relative, l0 and dead_frac exact (no pre-activation is within float error of a threshold);
     CE clean / spliced / zero- / mean-ablated vs the float64 reference with the hook's rows 1..
     replaced (the reconstruction of the reference's own activations; the eval-set mean), 1e-5
     relative; CE recovered within the bound those CE errors propagate to (its denominator,
     ablated - clean, is small on a random model). eval-sae on the HF directory = on the GGUF.
     Why the tolerances: eval-sae's activations are `cache`'s (identical here; the forward is
     not bitwise thread-invariant, so ~1e-7 in general) and its sums are float64; glassbox's
     float32 forward is within ~2e-6 of float64. Measured: mse / fvu agree to 1e-9, CEs to
     1.3e-8. Each wrong variant of 3 moves FVU by >= 1 % and L0 by >= 0.4 (>= 600 firings;
     L0 is compared exactly), far outside. The CE numbers of a random model and random SAE say
     nothing about quality (ce_clean 7.4 > ln 512); only their agreement is checked.
  3. the numbers can fail: the resid SAE spliced at blocks.2.hook_resid_post and the hook_z
     SAE at blocks.1.attn.hook_q (same widths, other activations) give other FVU / L0 than
     numpy's at the right hook; numpy with W_dec^T as the encoder or with SAELens's x - b_dec
     rule gives other numbers than eval-sae. Wrong layouts are errors naming the shape: a
     transposed W_enc, a resid SAE given --hook blocks.1.attn.hook_z (and back); no --hook for a
     hookless params.npz and `analyze` on one are one-line errors; `serve` with an SAE whose hook
     has another width does not start.
  4. analyze, both ways a user has: the resid params.npz directly with --hook, the hook_z one
     through `convert-sae --to saelens --hook` (bit-exact, metadata.hook_name recorded, as
     SAELens's own Gemma Scope loader does): per latent n_fires and freq exact, mean/max act 1e-4,
     dead latents exactly the 8, the top examples (one per window, ranked act desc) = numpy's
     (doc, pos) with acts 1e-4; logit effects (W_dec * (1 + w_final)) @ W_E^T for the resid SAE
     (Gemma's RMSNorm multiplier), skipped with a reason for hook_z.
  5. serve (127.0.0.1, --port 0) with each SAE (the resid params.npz with --sae-hook, the
     converted hook_z directory) and its database: /api/model names the hook and
     widths, /api/features lists every latent (freq order = numpy's), /api/features/{id} of the
     strongest latent has top examples whose first act = numpy's max, a dead latent has none,
     /api/run's activations for a prompt = numpy on `cache --prompt` (1e-4); SIGTERM exits 0.

usage: gemma_scope_test.py GLASSBOX_BINARY REPO_DIR SHARED_DIR  (SHARED_DIR unused: all inputs
are in the repository)
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

GB, REPO = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests/reference/hf"))
sys.path.insert(0, os.path.join(REPO, "tests/reference/sae"))
from cli_util import Ledger, runner  # noqa: E402

try:
    import torch  # noqa: F401  (hf_ref needs it)
except ImportError:  # pragma: no cover
    print("skip: torch missing")
    sys.exit(77)
import hf_ref  # noqa: E402  (independent float64 forward)
import make_hf_models  # noqa: E402  (random HF checkpoints)
from sae_ref import read_safetensors_f32  # noqa: E402

TOK = os.path.join(REPO, "models/stories260K/tok512.bin")
CORPUS = os.path.join(REPO, "data/corpus/tinystories_eval_excerpt.txt")
RES, Z = "blocks.1.hook_resid_post", "blocks.1.attn.hook_z"
CTX, TOKENS = 64, 1536
TOP_K, LOGITS = 5, 5
N_DEAD = 8
TOL = 1e-4
CE_TOL = 1e-5
PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play in the park."

ledger = Ledger()
check = ledger.check
gb = runner(GB)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


# ----------------------------------------------------------------------------------------------
# SAE construction and the float64 Gemma Scope encode (pre = x W_enc + b_enc; relu(pre) * (pre >
# threshold); no b_dec subtraction; decode acts W_dec + b_dec)
# ----------------------------------------------------------------------------------------------


def make_sae(x, d_sae, seed):
    """Gemma Scope arrays (float32) calibrated on the rows x [n, d_in]."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    w_dec = rng.standard_normal((d_sae, d))
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    w_enc = (w_dec + 0.25 * rng.standard_normal((d_sae, d)) / np.sqrt(d)).T
    w_dec, w_enc = w_dec.astype(np.float32), np.ascontiguousarray(w_enc, dtype=np.float32)
    b_dec = x.mean(0).astype(np.float32)
    b_enc = (-(b_dec.astype(np.float64) @ w_enc)).astype(np.float32)
    pre = x.astype(np.float64) @ w_enc.astype(np.float64) + b_enc
    thr = np.empty(d_sae, np.float32)
    k0 = int(round(0.97 * n))
    for j in range(d_sae):
        s = np.sort(pre[:, j])
        k = max(range(k0 - 8, k0 + 9), key=lambda i: s[i] - s[i - 1])  # the widest gap near p97
        thr[j] = 0.5 * (s[k - 1] + s[k])
    thr[-N_DEAD:] = 1000.0
    return {"W_enc": w_enc, "W_dec": w_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": thr}


def encode(w, x, subtract_b_dec=False):
    """float64 (pre, acts) of rows x."""
    x = np.asarray(x, np.float64)
    if subtract_b_dec:  # SAELens's apply_b_dec_to_input: NOT Gemma Scope's rule
        x = x - w["b_dec"]
    pre = x @ w["W_enc"].astype(np.float64) + w["b_enc"]
    return pre, np.where(pre > w["threshold"], np.maximum(pre, 0.0), 0.0)


def decode(w, acts):
    return acts @ w["W_dec"].astype(np.float64) + w["b_dec"]


def recon_metrics(w, x, subtract_b_dec=False):
    x = np.asarray(x, np.float64)
    pre, acts = encode(w, x, subtract_b_dec)
    r = decode(w, acts)
    err = float(((x - r) ** 2).sum())
    fired = (acts != 0).sum(0)
    live = w["threshold"] < 1000.0
    near = np.abs(pre - w["threshold"])[:, live] <= 1e-5 * max(1.0, float(np.abs(pre).max()))
    return {"mse": err / x.size, "fvu": err / float(((x - x.mean(0)) ** 2).sum()),
            "l0": float((acts != 0).sum()) / len(x), "dead_frac": float((fired == 0).mean()),
            "near": int(near.sum())}


# ----------------------------------------------------------------------------------------------
# float64 reference forward with a hook's rows 1.. replaced (hf_ref passes each hook point's
# live tensor to its hook function before using it, as TransformerLens does, so an in-place
# write patches the forward)
# ----------------------------------------------------------------------------------------------


def ref_forward(ref, toks, record=(), patch=None):
    cache = {}

    def hooks(name, t):
        if patch is not None and name == patch[0]:
            rows = torch.from_numpy(np.array(patch[1], np.float64))
            t[1:] = rows.reshape(t[1:].shape)
        if name in record:
            cache[name] = t.detach().clone().reshape(t.shape[0], -1).numpy()

    ref._hooks_fn = lambda want, c: hooks
    logits, _ = ref.forward(list(toks))
    return logits.numpy(), cache


def window_ce(logits, toks):
    """Sum of -log p(next) over the predictions at positions 1 .. n-2 (eval-sae's rule)."""
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    return -sum(float(lp[p, toks[p + 1]]) for p in range(1, len(toks) - 1))


def reference_ce(ref, windows, hook, w, ref_acts):
    """eval-sae's CE numbers from the float64 reference: clean, spliced (reconstruction of the
    reference's own rows), zero- and mean-ablated (mean over the evaluated rows)."""
    ce = {"clean": 0.0, "spliced": 0.0, "zero": 0.0, "mean": 0.0}
    mean = np.concatenate(ref_acts).mean(0)
    npred = 0
    for toks, x in zip(windows, ref_acts):
        ce["clean"] += window_ce(ref_forward(ref, toks)[0], toks)
        for key, rows in (("spliced", decode(w, encode(w, x)[1])), ("zero", np.zeros_like(x)),
                          ("mean", np.broadcast_to(mean, x.shape))):
            ce[key] += window_ce(ref_forward(ref, toks, patch=(hook, rows))[0], toks)
        npred += len(toks) - 2
    c = {k: v / npred for k, v in ce.items()}
    return {"ce_clean": c["clean"], "ce_spliced": c["spliced"], "ce_zero_ablated": c["zero"],
            "ce_mean_ablated": c["mean"],
            "ce_recovered_zero": (c["zero"] - c["spliced"]) / (c["zero"] - c["clean"]),
            "ce_recovered_mean": (c["mean"] - c["spliced"]) / (c["mean"] - c["clean"]),
            "predictions": npred}


def eval_sae(model, sae, hook, *extra):
    return json.loads(gb("eval-sae", "-m", model, "--sae", sae, "--hook", hook, "--corpus",
                         CORPUS, "--tokens", str(TOKENS), "--ctx", str(CTX), *extra).stdout)


def http_json(url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def start_server(args, log_path):
    """`glassbox serve --port 0 ARGS` on 127.0.0.1; (process, base URL) or (process, None)."""
    log = open(log_path, "w")
    proc = subprocess.Popen([GB, "serve", "--host", "127.0.0.1", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    log.close()
    if "serving " not in line:
        proc.wait(timeout=60)
        return proc, None
    return proc, line.split("serving ", 1)[1].strip()


t_start = time.time()
with tempfile.TemporaryDirectory() as tmp:
    P = lambda *a: os.path.join(tmp, *a)  # noqa: E731

    # ------------------------------------------------------------------------------------------
    # 1. model, GGUF, harvest store, cache, float64 reference
    # ------------------------------------------------------------------------------------------
    spec = dict(make_hf_models.MODELS["gemma2"], d_model=128, d_head=32, n_heads=6, n_kv_heads=2,
                d_vocab=512, bos=1, eos=2)
    make_hf_models.MODELS["gemma2_scope"] = spec
    make_hf_models.write_model(tmp, "gemma2_scope")
    HF, GGUF = P("gemma2_scope"), P("gemma2_scope.gguf")
    D_MODEL, H, DH = spec["d_model"], spec["n_heads"], spec["d_head"]
    WIDTH = {RES: D_MODEL, Z: H * DH}
    check("hook_z is wider than the residual stream (n_heads * d_head 192 != d_model 128)",
          WIDTH[Z] == 192 and WIDTH[RES] == 128)
    gb("convert", "-m", HF, "-o", GGUF, "--tokenizer", TOK)

    store = P("store")
    gb("harvest", "-m", GGUF, "--corpus", CORPUS, "--hooks", f"{RES},{Z}", "--ctx", str(CTX),
       "--tokens", str(TOKENS), "--out", store)
    man = json.load(open(os.path.join(store, "manifest.json")))
    widths = {h["name"]: (h["width"], h["row_shape"]) for h in man["hooks"]}
    check("harvest: store widths 128 (resid_post) and 192 = [6, 32] (attn.hook_z)",
          widths == {RES: (128, [128]), Z: (192, [6, 32])} and man["rows"] == TOKENS, widths)
    shards = [os.path.join(store, s["dir"]) for s in man["shards"]]
    index = np.concatenate([np.load(os.path.join(s, "index.npy")) for s in shards])
    stored = {h: np.concatenate([np.load(os.path.join(s, h + ".npy")) for s in shards])
              for h in (RES, Z)}
    starts = list(np.flatnonzero(index[:, 3] == 0)) + [len(index)]
    spans = [(a, b) for a, b in zip(starts[:-1], starts[1:]) if b - a >= 3]
    windows = [[int(t) for t in index[a:b, 0]] for a, b in spans]
    check("harvest: windows start with BOS 1 and none is shorter than 3 tokens",
          all(w[0] == 1 for w in windows) and len(spans) == len(starts) - 1,
          f"{len(windows)} windows")

    # `glassbox cache` per window (GGUF), vs the store; the rows after the BOS are what
    # eval-sae and analyze evaluate.
    cached = {RES: [], Z: []}
    worst_store = 0.0
    zshape_ok = True
    for i, toks in enumerate(windows):
        out = P("cache", str(i))
        gb("cache", "-m", GGUF, "--tokens", ",".join(map(str, toks)), "--hooks", f"{RES},{Z}",
           "--out", out)
        a, b = spans[i]
        for h in (RES, Z):
            c = np.load(os.path.join(out, h + ".npy"))
            if h == Z:
                zshape_ok &= c.shape == (len(toks), H, DH)
            c = c.reshape(len(toks), -1)
            scale = max(1.0, float(np.abs(c).max()))
            worst_store = max(worst_store, float(np.abs(c - stored[h][a:b]).max()) / scale)
            cached[h].append(c)
    check("cache: attn.hook_z is [pos, 6, 32]", zshape_ok)
    check("harvest store rows = `glassbox cache` of each window (both hooks, 1e-5 relative)",
          worst_store <= 1e-5, f"max rel {worst_store:.2e} over {len(windows)} windows")
    X = {h: np.concatenate([c[1:] for c in cached[h]]) for h in (RES, Z)}
    n_rows = len(X[RES])

    out = P("cache_hf")
    gb("cache", "-m", HF, "--tokenizer", TOK, "--tokens", ",".join(map(str, windows[0])),
       "--hooks", f"{RES},{Z}", "--out", out)
    d_hf = max(float(np.abs(np.load(os.path.join(out, h + ".npy")).reshape(len(windows[0]), -1)
                            - cached[h][0]).max()) for h in (RES, Z))
    check("cache on the HF directory = on the converted GGUF (1e-5)", d_hf <= 1e-5, f"{d_hf:.2e}")
    # A tokenizer inside the HF directory is found when the directory is named without a slash.
    with open(TOK, "rb") as src, open(os.path.join(HF, os.path.basename(TOK)), "wb") as dst:
        dst.write(src.read())
    ids_dir = gb("tokenize", "-m", HF.rstrip("/"), "--text", PROMPT).stdout
    ids_tok = gb("tokenize", "--tokenizer", TOK, "--text", PROMPT).stdout
    check("tokenize -m DIR finds DIR/tok512.bin (no --tokenizer) = with --tokenizer",
          ids_dir.strip() == ids_tok.strip() and ids_dir.strip().startswith("["), ids_dir[:80])

    ref = hf_ref.load(HF)
    ref_rows = {RES: [], Z: []}
    worst_ref = 0.0
    for i, toks in enumerate(windows):
        _, rc = ref_forward(ref, toks, record=(RES, Z))
        for h in (RES, Z):
            scale = max(1.0, float(np.abs(rc[h]).max()))
            worst_ref = max(worst_ref, float(np.abs(cached[h][i] - rc[h]).max()) / scale)
            ref_rows[h].append(rc[h][1:])
    check("cache = float64 reference at resid_post and attn.hook_z (1e-4 relative)",
          worst_ref <= 1e-4, f"max rel {worst_ref:.2e}")

    # ------------------------------------------------------------------------------------------
    # 2. the two Gemma Scope SAEs, eval-sae vs numpy and the float64 reference
    # ------------------------------------------------------------------------------------------
    saes = {RES: make_sae(X[RES], 256, 11), Z: make_sae(X[Z], 384, 12)}
    npz = {RES: P("res", "params.npz"), Z: P("att", "params.npz")}
    for h, w in saes.items():
        os.makedirs(os.path.dirname(npz[h]))
        (np.savez if h == RES else np.savez_compressed)(npz[h], **w)
    check("params.npz layouts: W_enc [d_in, d_sae], W_dec [d_sae, d_in]",
          saes[RES]["W_enc"].shape == (128, 256) and saes[Z]["W_enc"].shape == (192, 384)
          and saes[Z]["W_dec"].shape == (384, 192))

    results = {}
    for h in (RES, Z):
        w = saes[h]
        got = eval_sae(GGUF, npz[h], h)
        want = recon_metrics(w, X[h])
        want.update(reference_ce(ref, windows, h, w, ref_rows[h]))
        results[h] = (got, want)
        tag = "resid_post" if h == RES else "attn.hook_z"
        check(f"eval-sae {tag}: hook, rows, tokens, predictions, mean_source",
              got["hook"] == h and got["rows"] == n_rows and got["tokens"] == TOKENS
              and got["predictions"] == want["predictions"] and got["mean_source"] == "eval",
              f"rows {got['rows']} / {n_rows}, predictions {got['predictions']}")
        check(f"eval-sae {tag}: the SAE is sensible (0.2 < FVU < 0.95, L0 1-6 % of d_sae, "
              f"dead {N_DEAD})",
              0.2 < want["fvu"] < 0.95 and 0.01 < want["l0"] / len(w["b_enc"]) < 0.06
              and want["dead_frac"] == N_DEAD / len(w["b_enc"]),
              f"numpy fvu {want['fvu']:.4f} l0 {want['l0']:.3f} dead {want['dead_frac']:.4f}")
        check(f"eval-sae {tag}: no pre-activation within float error of a threshold "
              "(l0 / dead_frac compared exactly)", want["near"] == 0, want["near"])
        for k in ("mse", "fvu"):
            check(f"eval-sae {tag}: {k} = numpy on `cache` activations (1e-4 relative)",
                  rel(got[k], want[k]) <= TOL,
                  f"{got[k]:.6g} vs {want[k]:.6g} (rel {rel(got[k], want[k]):.1e})")
        for k in ("l0", "dead_frac"):
            check(f"eval-sae {tag}: {k} = numpy's count", abs(got[k] - want[k]) <= 1e-12,
                  f"{got[k]:.6g} vs {want[k]:.6g}")
        for k in ("ce_clean", "ce_spliced", "ce_zero_ablated", "ce_mean_ablated"):
            check(f"eval-sae {tag}: {k} = float64 reference (1e-5 relative)",
                  rel(got[k], want[k]) <= CE_TOL,
                  f"{got[k]:.6g} vs {want[k]:.6g} (rel {rel(got[k], want[k]):.1e})")
        for k, abl in (("ce_recovered_zero", "ce_zero_ablated"),
                       ("ce_recovered_mean", "ce_mean_ablated")):
            # (a - s) / (a - c) with each CE within CE_TOL: the ratio's error bound
            bound = (2 + 2 * abs(want[k])) * CE_TOL * want["ce_clean"] / abs(
                want[abl] - want["ce_clean"])
            check(f"eval-sae {tag}: {k} = float64 reference (CE errors propagated: "
                  f"{bound:.1e})", abs(got[k] - want[k]) <= bound,
                  f"{got[k]:.6g} vs {want[k]:.6g} (diff {abs(got[k] - want[k]):.1e})")
        worst = max(rel(got[k], want[k]) for k in ("mse", "fvu", "ce_clean", "ce_spliced",
                                                     "ce_zero_ablated", "ce_mean_ablated",
                                                     "ce_recovered_zero", "ce_recovered_mean"))
        print(f"     {tag}: largest relative difference eval-sae vs numpy/reference {worst:.2e}")
        print(f"     {tag}: eval-sae fvu {got['fvu']:.6f} l0 {got['l0']:.4f} dead "
              f"{got['dead_frac']:.4f} ce clean {got['ce_clean']:.5f} spliced "
              f"{got['ce_spliced']:.5f} zero {got['ce_zero_ablated']:.5f} mean "
              f"{got['ce_mean_ablated']:.5f} rec0 {got['ce_recovered_zero']:.4f} recm "
              f"{got['ce_recovered_mean']:.4f} | numpy/ref fvu {want['fvu']:.6f} l0 "
              f"{want['l0']:.4f} ce spliced {want['ce_spliced']:.5f} rec0 "
              f"{want['ce_recovered_zero']:.4f}")

    hf_eval = eval_sae(HF, npz[RES], RES, "--tokenizer", TOK)
    g = results[RES][0]
    worst = max(rel(hf_eval[k], g[k]) for k in ("fvu", "l0", "ce_clean", "ce_spliced"))
    check("eval-sae on the HF directory = on the GGUF (1e-5 relative)", worst <= 1e-5,
          f"max rel {worst:.2e}")

    # ------------------------------------------------------------------------------------------
    # 3. the comparison can fail; wrong layouts and hooks are clear errors
    # ------------------------------------------------------------------------------------------
    for h, wrong in ((RES, "blocks.2.hook_resid_post"), (Z, "blocks.1.attn.hook_q")):
        got = eval_sae(GGUF, npz[h], wrong)
        want = results[h][1]
        check(f"can fail: the SAE spliced at {wrong} (same width) gives another FVU / L0",
              rel(got["fvu"], want["fvu"]) > 100 * TOL or abs(got["l0"] - want["l0"]) > 0.5,
              f"fvu {got['fvu']:.4f} l0 {got['l0']:.3f} vs {want['fvu']:.4f} {want['l0']:.3f}")
        swapped = recon_metrics(dict(saes[h], W_enc=np.ascontiguousarray(saes[h]["W_dec"].T)), X[h])
        check(f"can fail: numpy with W_dec^T as the encoder differs from eval-sae ({h})",
              rel(swapped["fvu"], results[h][0]["fvu"]) > 10 * TOL
              and abs(swapped["l0"] - results[h][0]["l0"]) > 0.01,
              f"fvu {swapped['fvu']:.4f} l0 {swapped['l0']:.3f}")
        alt = recon_metrics(saes[h], X[h], subtract_b_dec=True)
        check(f"can fail: numpy with SAELens's x - b_dec rule differs from eval-sae ({h})",
              rel(alt["fvu"], results[h][0]["fvu"]) > 10 * TOL
              and abs(alt["l0"] - results[h][0]["l0"]) > 0.01,
              f"fvu {alt['fvu']:.4f} l0 {alt['l0']:.3f}")

    def expect_error(label, args, *needles):
        p = gb(*args, check_rc=False)
        err = p.stderr.strip()
        check(label, p.returncode == 1 and err.startswith("glassbox: error:")
              and len(err.splitlines()) == 1 and all(n in err for n in needles), err[-300:])

    tdir = P("transposed")
    os.makedirs(tdir)
    np.savez(os.path.join(tdir, "params.npz"),
             **dict(saes[RES], W_enc=np.ascontiguousarray(saes[RES]["W_enc"].T)))
    expect_error("transposed W_enc: an error naming W_dec's shape",
                 ["eval-sae", "-m", GGUF, "--sae", os.path.join(tdir, "params.npz"), "--hook", RES,
                  "--corpus", CORPUS, "--tokens", "64", "--ctx", str(CTX)],
                 "W_dec", "[256, 128]", "[128, 256]")
    expect_error("resid_post params.npz at attn.hook_z: an error naming 192 and d_in 128",
                 ["eval-sae", "-m", GGUF, "--sae", npz[RES], "--hook", Z, "--corpus", CORPUS,
                  "--tokens", "64", "--ctx", str(CTX)], Z, "192", "d_in is 128")
    expect_error("attn.hook_z params.npz at resid_post: an error naming 128 and d_in 192",
                 ["eval-sae", "-m", GGUF, "--sae", npz[Z], "--hook", RES, "--corpus", CORPUS,
                  "--tokens", "64", "--ctx", str(CTX)], RES, "128", "d_in is 192")
    expect_error("hookless params.npz without --hook: an error asking for --hook",
                 ["eval-sae", "-m", GGUF, "--sae", npz[RES], "--corpus", CORPUS, "--tokens", "64",
                  "--ctx", str(CTX)], "--hook")
    expect_error("analyze on a hookless params.npz: an error saying the SAE names no hook",
                 ["analyze", "-m", GGUF, "--sae", npz[RES], "--corpus", CORPUS, "--tokens", "64",
                  "--ctx", str(CTX), "--out", P("nohook.db")], "names no hook")

    # ------------------------------------------------------------------------------------------
    # 4. analyze (SAELens directory converted from params.npz, hook named in cfg.json)
    # ------------------------------------------------------------------------------------------
    sl = {RES: P("res_saelens"), Z: P("att_saelens")}
    dbs = {RES: P("res.db"), Z: P("att.db")}
    for h in (RES, Z):
        tag = "resid_post" if h == RES else "attn.hook_z"
        w = saes[h]
        gb("convert-sae", "--in", npz[h], "--to", "saelens", "--out", sl[h], "--hook", h)
        cfg_path = os.path.join(sl[h], "cfg.json")
        cfg = json.load(open(cfg_path))
        st = read_safetensors_f32(os.path.join(sl[h], "sae_weights.safetensors"))
        check(f"convert-sae --hook {tag}: jumprelu, no b_dec subtraction, hook recorded, weights "
              "bit-exact",
              cfg["architecture"] == "jumprelu" and cfg["apply_b_dec_to_input"] is False
              and cfg["metadata"]["hook_name"] == h
              and cfg["d_in"] == WIDTH[h] and set(st) == set(w)
              and all(np.array_equal(st[k], w[k]) for k in w))
        # The resid SAE straight from params.npz with --hook; the hook_z one as converted.
        src = ["--sae", npz[h], "--hook", h] if h == RES else ["--sae", sl[h]]
        gb("analyze", "-m", GGUF, *src, "--corpus", CORPUS, "--tokens", str(TOKENS),
           "--ctx", str(CTX), "--out", dbs[h], "--top-k", str(TOP_K), "--quantiles", "4",
           "--per-quantile", "2", "--bins", "8", "--logits", str(LOGITS))

        db = sqlite3.connect(dbs[h])
        meta = dict(db.execute("SELECT key, value FROM meta"))
        check(f"analyze {tag}: done, hook and widths recorded, {n_rows} tokens analysed",
              meta.get("status") == "done" and meta.get("hook") == h
              and int(meta["d_in"]) == WIDTH[h] and int(meta["d_sae"]) == len(w["b_enc"])
              and int(meta["tokens_analysed"]) == n_rows,
              {k: meta.get(k) for k in ("status", "hook", "d_in", "tokens_analysed")})
        _, acts = encode(w, X[h])
        feats = db.execute("SELECT id, n_fires, freq, mean_act, max_act FROM features ORDER BY id"
                           ).fetchall()
        n_fires = (acts > 0).sum(0)
        ok_counts = [f for f, n, fr, _, _ in feats if n != n_fires[f] or fr != n / n_rows]
        check(f"analyze {tag}: n_fires and freq of every latent = numpy's", not ok_counts
              and len(feats) == len(w["b_enc"]), f"differ: {ok_counts[:5]}")
        dead = [f for f, n, *_ in feats if n == 0]
        check(f"analyze {tag}: the dead latents are exactly the {N_DEAD} with threshold 1000",
              dead == list(range(len(w["b_enc"]) - N_DEAD, len(w["b_enc"]))), dead)
        worst = 0.0
        for f, n, _, mean_act, max_act in feats:
            if n:
                col = acts[:, f][acts[:, f] > 0]
                worst = max(worst, rel(max_act, col.max()), rel(mean_act, col.mean()))
        check(f"analyze {tag}: mean and max activation = numpy's (1e-4)", worst <= TOL,
              f"max rel {worst:.2e}")
        # Top examples: one per window (its first maximum), ranked by act desc, doc asc, pos asc.
        bad, compared = [], 0
        offs = np.cumsum([0] + [len(t) - 1 for t in windows])
        for f in range(len(w["b_enc"]) - N_DEAD):
            cand, at = [], {}
            for i, (a, b) in enumerate(spans):
                col = acts[offs[i]:offs[i + 1], f]
                for j in range(len(col)):
                    at[(int(index[a + 1 + j][1]), int(index[a + 1 + j][2]))] = float(col[j])
                j = int(np.argmax(col))
                if col[j] > 0:
                    row = index[a + 1 + j]
                    cand.append((-col[j], int(row[1]), int(row[2])))
            cand.sort()
            rows = db.execute("SELECT act, doc, pos, center_id FROM examples WHERE feature = ? "
                              "AND band = -1 ORDER BY rank", (f,)).fetchall()
            exp = cand[:TOP_K]
            compared += 1
            # Rank by rank: the same (doc, pos), or -- where float summation order decides a
            # near-tie (sanitized builds round differently) -- a position whose numpy activation
            # equals the expected one within TOL; the stored act within TOL either way.
            same = [(d, p) for _, d, p in exp] == [(d, p) for _, d, p, _ in rows]
            tie = len(rows) == len(exp) and len(set((d, p) for _, d, p, _ in rows)) == len(rows) and all(
                (d, p) in at and rel(at[(d, p)], -e[0]) <= TOL for (_, d, p, _), e in zip(rows, exp))
            if not (same or tie) or any(rel(r[0], -e[0]) > TOL for r, e in zip(rows, exp)):
                bad.append(f)
        check(f"analyze {tag}: top examples (doc, pos, act) of every live latent = numpy's",
              not bad and compared == len(w["b_enc"]) - N_DEAD, f"differ: {bad[:5]}")
        eff = db.execute("SELECT feature, sign, rank, token_id, value FROM logit_effects "
                         "ORDER BY feature, sign, rank").fetchall()
        if h == RES:
            tensors = dict(make_hf_models.model_tensors(spec))
            g = 1.0 + tensors["model.norm.weight"].astype(np.float64)
            e = (w["W_dec"].astype(np.float64) * g) @ tensors["model.embed_tokens.weight"].T
            bad = []
            by = {}
            for f, sign, rank, tid, val in eff:
                by.setdefault((f, sign), []).append((tid, val))
            scale = float(np.abs(e).max())
            for f in range(len(w["b_enc"])):
                for sign in (1, -1):
                    order = np.argsort(-sign * e[f], kind="stable")[:LOGITS]
                    got = by.get((f, sign), [])
                    if [t for t, _ in got] != list(order) or any(
                            abs(v - e[f, t]) > TOL * scale for t, v in got):
                        bad.append((f, sign))
            check("analyze resid_post: logit effects = (W_dec * (1 + w_final)) @ W_E^T, top 5 "
                  "per sign", not bad, f"differ: {bad[:5]}")
        else:
            check("analyze attn.hook_z: logit effects skipped with a reason",
                  not eff and "not a residual-stream write" in meta.get("logit_effects", ""),
                  meta.get("logit_effects"))
        db.close()

    # ------------------------------------------------------------------------------------------
    # 5. serve each SAE with its database
    # ------------------------------------------------------------------------------------------
    out = P("cache_prompt")
    gb("cache", "-m", GGUF, "--prompt", PROMPT, "--hooks", f"{RES},{Z}", "--out", out)
    for h in (RES, Z):
        tag = "resid_post" if h == RES else "attn.hook_z"
        w = saes[h]
        _, acts = encode(w, X[h])
        sae_args = ["--sae", npz[h], "--sae-hook", h] if h == RES else ["--sae", sl[h]]
        proc, url = start_server(["-m", GGUF, *sae_args, "--db", dbs[h], "-t", "1"],
                                 P(f"serve_{h}.log"))
        if not check(f"serve {tag}: starts on 127.0.0.1", url is not None
                     and url.startswith("http://127.0.0.1:"),
                     open(P(f"serve_{h}.log")).read()[-300:]):
            continue
        try:
            _, m = http_json(url + "api/model")
            sae = m.get("sae") or {}
            check(f"serve {tag}: /api/model names the hook, d_in, d_sae and jumprelu",
                  m.get("arch") == "gemma2" and sae.get("hook") == h and sae.get("d_in") == WIDTH[h]
                  and sae.get("d_sae") == len(w["b_enc"]) and sae.get("arch") == "jumprelu",
                  {k: m.get(k) for k in ("arch", "sae")})
            st, lst = http_json(url + "api/features?sort=freq&order=desc&limit=500")
            n_fires = (acts > 0).sum(0)
            ids = [s["id"] for s in lst.get("features", [])]
            freq_ok = [s["freq"] for s in lst.get("features", [])] == sorted(
                (n_fires / n_rows).tolist(), reverse=True)
            check(f"serve {tag}: /api/features lists every latent in numpy's frequency order",
                  st == 200 and lst.get("total") == len(w["b_enc"]) and freq_ok
                  and sorted(ids) == list(range(len(w["b_enc"]))), f"{st} total {lst.get('total')}")
            top = int(np.argmax(acts.max(0)))
            st, det = http_json(url + f"api/features/{top}")
            ex = det.get("top_examples", [])
            check(f"serve {tag}: /api/features/{top} (strongest latent) has top examples, the "
                  "first at numpy's max", st == 200 and len(ex) == TOP_K
                  and rel(ex[0]["act"], acts[:, top].max()) <= TOL and len(ex[0]["tokens"]) > 0
                  and ex[0]["acts"][ex[0]["center"]] == ex[0]["act"],
                  f"{st} {len(ex)} examples, act {ex[0]['act'] if ex else None} vs "
                  f"{acts[:, top].max():.5g}")
            st, det = http_json(url + f"api/features/{len(w['b_enc']) - 1}")
            check(f"serve {tag}: a dead latent has no examples", st == 200
                  and det.get("n_fires") == 0 and not det.get("top_examples"), st)
            st, det = http_json(url + f"api/features/{len(w['b_enc'])}")
            check(f"serve {tag}: a latent id beyond d_sae is 404", st == 404, st)
            c = np.load(os.path.join(out, h + ".npy"))
            _, want = encode(w, c.reshape(len(c), -1))
            pick = [int(f) for f in np.argsort(-(want > 0).sum(0), kind="stable")[:8]]
            st, run = http_json(url + "api/run", {"text": PROMPT, "features": pick})
            feats = run.get("features", {})
            worst = max((float(np.abs(np.array(feats[str(f)]) - want[:, f]).max())
                         for f in pick if str(f) in feats), default=np.inf)
            scale = max(1.0, float(want.max()))
            check(f"serve {tag}: /api/run activations = numpy on `cache --prompt` (1e-4)",
                  st == 200 and len(run.get("tokens", [])) == len(c) and len(feats) == len(pick)
                  and worst <= TOL * scale and (want[:, pick] > 0).any(),
                  f"{st} max abs {worst:.2e}, {int((want[:, pick] > 0).sum())} firings")
        finally:
            rc = None
            proc.send_signal(15)
            try:
                rc = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            check(f"serve {tag}: SIGTERM exits 0", rc == 0, rc)

    # A server whose SAE reads a hook of another width does not start.
    bad_dir = P("res_as_z")
    os.makedirs(bad_dir)
    for f in os.listdir(sl[RES]):
        with open(os.path.join(sl[RES], f), "rb") as src, open(os.path.join(bad_dir, f), "wb") as d:
            d.write(src.read())
    cfg = json.load(open(os.path.join(bad_dir, "cfg.json")))
    cfg["metadata"]["hook_name"] = Z
    json.dump(cfg, open(os.path.join(bad_dir, "cfg.json"), "w"))
    proc, url = start_server(["-m", GGUF, "--sae", bad_dir], P("serve_bad.log"))
    if url is not None:
        proc.send_signal(15)
        proc.wait(timeout=120)
    err = open(P("serve_bad.log")).read().strip()
    check("serve with a resid_post SAE named for attn.hook_z: refused, naming the hook and d_in",
          url is None and proc.returncode == 1 and Z in err and "d_in 128" in err
          and "has 192 values per token" in err, err[-300:])

print(f"runtime {time.time() - t_start:.1f} s")
sys.exit(ledger.finish("Gemma Scope"))
