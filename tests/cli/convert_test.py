#!/usr/bin/python3
"""Round trips of `glassbox convert`, per weight type, checked independently in Python.

Source: a random llama2.c model written by shared/models/gguf/gen_synth_llama2c.py (dim 256,
hidden 512, 4 layers, 4 heads, untied classifier, vocab 512) so that every matrix row is a whole
number of 256-element K-quant super-blocks, with stories260K's tok512.bin as its vocabulary.

For every --type T in f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k:
  (a) src.bin -> T.gguf. Read back with tests/reference/llama_ref.py (an independent GGUF reader
      and numpy dequantizer, written from the ggml block layouts): every tensor has the ggml type
      the llama.cpp recipe gives (below), 1-D norms are f32 and bit-exact, and each dequantized
      matrix is within a per-type NMSE bound of the source float32 weights.
  (b) T.gguf -> T2.gguf with the same --type. convert always dequantizes to f32 and quantizes
      again (convert.cpp: retype), so this checks what requantizing its own output preserves, per
      ggml type (REQUANT): F32/F16/BF16/Q8_0 identical bytes; Q4_0 identical values (not always
      bytes: the scale search may return -d with mirrored codes); Q4_K/Q5_K/Q6_K not idempotent
      (the scale searches may settle on a nearby grid for some blocks): values move by <= 2% of
      the tensor's own quantization NMSE and its error vs the source grows by <= 2%.
  (c) glassbox logits on T.gguf vs on src.bin (f32) within a per-type NMSE bound, and vs
      llama_ref's float64 forward on T.gguf's dequantized weights (glassbox's own compute error);
      `generate` runs on T.gguf with the embedded vocabulary.
Float round trips, byte-identical weights:
  src.bin -> HF dir (f32) -> .bin; src.bin -> .gguf (f32) -> .bin; src.bin -> HF dir (f16, bf16)
  -> .gguf of the same type == src.bin -> .gguf directly; the HF q_proj/k_proj rows are HF's
  rotate-half permutation of llama2.c's interleaved wq/wk (checked with HF's own permute formula).
GPT-2: make_hf_models.py's random `gpt2` HF dir -> GGUF f32: logits equal to the HF dir's within
  1e-5, and GGUF -> HF dir gives back the original safetensors tensors byte for byte; HF dir ->
  q4_k_m / q5_k_m GGUF: types (fallbacks included) and logits.
Llama 3 rope scaling: the `llama_untied_llama3rope` HF dir -> GGUF f32 carries rope_freqs.weight
  (llama.cpp's form) and gives the HF dir's logits over 200 positions within 1e-4 (the same model
  without the scaling differs by > 1e-2 there); GGUF rope_freqs -> HF is refused.

Type recipe (llama.cpp llama_tensor_get_type, the rules that apply to these file types, as
implemented in src/model/convert.cpp dtype_for/retype; expected_type() below): 1-D tensors F32;
float types everywhere else; for block types: position_embd never quantized; output.weight (or,
when tied, token_embd.weight) Q6_K, but Q8_0 under q8_0; _m mixes: base Q4_K (Q5_K) for every
other matrix, token embedding included, attn_qkv one step up (Q5_K / Q6_K), and Q6_K for attn_v /
ffn_down of layer l when use_more_bits(l, n): l < n/8 or l >= 7n/8 or (l - n/8) % 3 == 2. For n = 4
that is layers 2 and 3 (as in llama.cpp's shared synthK-q4_k_m.gguf: when it and the generator
are present, the types glassbox picks for the regenerated synthK checkpoint are compared with that
file's, tensor by tensor). Rows that are no whole number of blocks fall back: Q4_K -> Q5_0,
Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 (checked on GPT-2, d_model 64, below).

usage: convert_test.py GLASSBOX_BINARY REPO_DIR SHARED_DIR     exit 77 = skipped (no shared/)
"""
import json
import os
import struct
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

GB, REPO, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(REPO, "tests/reference"))
sys.path.insert(0, os.path.join(REPO, "tests/reference/hf"))
import llama_ref  # noqa: E402  (independent GGUF / llama2.c readers and dequantizers)

GEN = os.path.join(SHARED, "models/gguf/gen_synth_llama2c.py")
SYNTHK_GGUF = os.path.join(SHARED, "models/gguf/synthK-q4_k_m.gguf")
TOK = os.path.join(REPO, "models/stories260K/tok512.bin")
MAKE_HF = os.path.join(REPO, "tests/reference/hf/make_hf_models.py")
if not os.path.exists(GEN):
    print(f"skip: {GEN} not found")
    sys.exit(77)

F32, F16, Q4_0, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 6, 7, 8, 12, 13, 14, 30
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 12: "Q4_K",
              13: "Q5_K", 14: "Q6_K", 30: "BF16"}
# --type -> (ggml type of most matrices, type of the "more bits" tensors).
PLANS = {"f32": (F32, F32), "f16": (F16, F16), "bf16": (BF16, BF16), "q8_0": (Q8_0, Q8_0),
         "q4_0": (Q4_0, Q4_0), "q4_k_m": (Q4_K, Q6_K), "q5_k_m": (Q5_K, Q6_K),
         "q6_k": (Q6_K, Q6_K)}
# Weight NMSE bounds vs the float32 source (max over matrices). Quantization noise is
# step^2/12 relative to the weights' variance, the step set by the code range of a block's
# extremes: 8 bits ~2e-5, 6 bits in 16-element blocks ~3e-4, 5 bits ~1.5e-3, 4 bits ~5e-3. The
# bounds are the Gaussian-data test bounds of docs/quantization.md; these uniform weights have a
# smaller max/rms ratio, so they measure ~2x lower: Q8_0 1.4e-5, Q6_K 1.6e-4, Q5_K 7.5e-4,
# Q4_K 3.0e-3, Q4_0 3.5e-3.
# Rounding to f16 (11 significant bits) leaves an error uniform within half an ulp, ulp 2^-10 to
# 2^-11 of the value: NMSE ~ 2^-20/12 ~ 8e-8 at most (measured 3.6e-8); bf16 (8 bits) 2^-14/12
# ~ 5e-6 at most (measured 2.3e-6). f32 must be exact.
W_NMSE = {"f32": 0.0, "f16": 2e-7, "bf16": 1e-5, "q8_0": 4e-5, "q6_k": 4e-4,
          "q5_k_m": 2e-3, "q4_k_m": 7.5e-3, "q4_0": 7.5e-3}
# Logit NMSE bounds vs the f32 model's logits. This random 4-layer model amplifies relative
# weight noise about 10-16x into the logits' NMSE (measured: f16 12.7x and bf16 9.7x, whose
# products are exact in float32; Q4_0 13x, Q6_K 16x), the block types adding the int8 activation
# rounding (~1.4e-4 here, see C_NMSE). Measured: f16 4.6e-7, bf16 2.3e-5, q8_0 2.9e-4,
# q6_k 2.6e-3, q5_k_m 8.1e-3, q4_k_m 3.0e-2, q4_0 4.6e-2; the bounds are 3x that.
# f32: the weights are bit-identical (W_NMSE 0, checked above), but the logits need not be: some
# OpenBLAS sgemm kernels (OPENBLAS_CORETYPE=Haswell, set on AMD EPYC machines here) round
# differently for differently aligned operands, and .bin and GGUF tensors sit at different
# alignments (measured 4.9e-16, max abs 7e-7; 0 with the SkylakeX kernels); bound 1e-13.
L_NMSE = {"f32": 1e-13, "f16": 1.5e-6, "bf16": 7e-5, "q8_0": 9e-4, "q6_k": 8e-3,
          "q5_k_m": 2.5e-2, "q4_k_m": 9e-2, "q4_0": 0.14}
# glassbox logits vs llama_ref's float64 forward on the same (dequantized) weights: float32
# arithmetic for the float types; the block types add the int8 activation rounding (NMSE ~3e-5
# to 5e-5 per product, amplified like the weight error above). Measured: 4.9e-13 (float types),
# 1.3e-4 to 2.6e-4 (block types); bounds 3x the block types' worst, 200x float32's.
C_NMSE = {"f32": 1e-10, "f16": 1e-10, "bf16": 1e-10, "q8_0": 8e-4, "q6_k": 8e-4, "q5_k_m": 8e-4,
          "q4_k_m": 8e-4, "q4_0": 8e-4}
# What converting a tensor of each ggml type to the same type again preserves (see (b)).
REQUANT = {F32: "bytes", F16: "bytes", BF16: "bytes", Q8_0: "bytes", Q4_0: "values",
           Q4_K: "close", Q5_K: "close", Q6_K: "close"}

failures = []
report = {}


def check(label, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(label)
    return ok


def run(args, timeout=900):
    p = subprocess.run([GB] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"glassbox {' '.join(args)} failed (rc {p.returncode}): {p.stderr[-2000:]}")
    return p.stdout


def nmse(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    den = float(np.mean(ref * ref))
    return float(np.mean((a - ref) ** 2)) / den if den > 0 else float(np.mean((a - ref) ** 2))


def use_more_bits(layer, n):  # llama.cpp src/llama-quant.cpp
    return layer < n // 8 or layer >= 7 * n // 8 or (layer - n // 8) % 3 == 2


BLOCK = {F32: 1, F16: 1, BF16: 1, Q4_0: 32, Q5_0: 32, Q5_1: 32, Q8_0: 32, Q4_K: 256, Q5_K: 256,
         Q6_K: 256}


def expected_type(name, shape, plan, n_layers, has_output=True):
    """The ggml type llama.cpp's llama_tensor_get_type gives a tensor (the rules that apply to
    these file types), then its fallback for rows that are no whole number of blocks."""
    base, more = PLANS[plan]
    if len(shape) < 2:
        return F32  # norms and biases are never quantized
    if base in (F32, F16, BF16):
        return base
    if name == "position_embd.weight":
        return F32  # llama.cpp never quantizes positional embeddings
    t = base
    if name == "output.weight" or (not has_output and name == "token_embd.weight"):
        # the classifier (or the tied embedding standing in for it): Q6_K; Q8_0 stays Q8_0,
        # and Q8_0 when its rows are no whole number of the base type's blocks
        t = Q8_0 if base == Q8_0 or shape[-1] % BLOCK[base] else Q6_K
    elif base != more and name.endswith("attn_qkv.weight"):
        t = Q5_K if base == Q4_K else Q6_K
    elif base != more and name.endswith(("attn_v.weight", "ffn_down.weight")):
        if use_more_bits(int(name.split(".")[1]), n_layers):
            t = more
    if shape[-1] % BLOCK[t]:
        t = {Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0}.get(t, t)
        if shape[-1] % BLOCK[t]:
            t = F16
    return t


def gguf_tensor_bytes(path):
    """{name: (ggml type, raw data bytes)} and the metadata dict, parsed independently of
    glassbox (llama_ref's GGUF cursor; tensor sizes from the ggml block table)."""
    with open(path, "rb") as f:
        data = f.read()
    c = llama_ref._Cursor(data)
    assert c.unpack("<I") == 0x46554747
    c.unpack("<I")
    n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        ne = [c.unpack("<Q") for _ in range(c.unpack("<I"))]
        infos.append((name, ne, c.unpack("<I"), c.unpack("<Q")))
    align = int(meta.get("general.alignment", 32))
    start = (c.pos + align - 1) // align * align
    out = {}
    for name, ne, t, off in infos:
        n = int(np.prod(ne))
        if t in llama_ref.GGML_QUANT:
            _, bs, bb = llama_ref.GGML_QUANT[t]
            size = n // bs * bb
        else:
            size = n * {F32: 4, F16: 2, BF16: 2}[t]
        out[name] = (t, data[start + off:start + off + size])
    return out, meta


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} from a .safetensors file (format: u64 header length,
    JSON header, data buffer)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack_from("<Q", data, 0)[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items()}


def llama2c_weights(path):
    """(header tuple, {name: float32 array}) with the legacy RoPE tables left out (the generator
    fills them with random numbers, the writer with cos/sin; no reader uses them)."""
    with open(path, "rb") as f:
        header = struct.unpack("<7i", f.read(28))
    _, w = llama_ref.read_llama2c(path)
    return header, w


# Source weights under GGUF names (llama_ref's llama2.c reader keys -> GGUF tensor names).
REF_TO_GGUF = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
               "wo": "attn_output", "ffn_norm": "ffn_norm", "gate": "ffn_gate", "up": "ffn_up",
               "down": "ffn_down"}


def gguf_named(w, n_layers):
    out = {"token_embd.weight": w["embed"], "output_norm.weight": w["final_norm"],
           "output.weight": w["unembed"]}
    for L in range(n_layers):
        for ours, theirs in REF_TO_GGUF.items():
            out[f"blk.{L}.{theirs}.weight"] = w[f"{L}.{ours}"]
    return out


def hf_permute(w, n_heads):
    """HF's convert_llama_weights_to_hf.py permute(): interleaved pairs -> rotate-half rows."""
    dim1, dim2 = w.shape
    return w.reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(0, 2, 1, 3).reshape(dim1, dim2)


t_start = time.time()
with tempfile.TemporaryDirectory() as tmp:
    P = lambda name: os.path.join(tmp, name)  # noqa: E731
    DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, CTX = 256, 512, 4, 4, 4, 512, 128
    src = P("src.bin")
    subprocess.run([sys.executable, GEN, src, str(DIM), str(HIDDEN), str(LAYERS), str(HEADS),
                    str(KV_HEADS), str(-VOCAB), str(CTX), "777"], check=True)
    _, src_w = llama2c_weights(src)
    src_named = gguf_named(src_w, LAYERS)

    # 64 token ids spread over the vocabulary (fixed seed), BOS first.
    tokens = [1] + [int(t) for t in np.random.default_rng(5).integers(3, VOCAB, 63)]
    tok_arg = ",".join(map(str, tokens))

    def logits(model):
        out = P("logits.npy")
        run(["logits", "-m", model, "--tokens", tok_arg, "--out", out, "-t", "1"])
        return np.load(out).astype(np.float64)

    ref_logits = logits(src)

    for plan in PLANS:
        g1, g2 = P(f"{plan}.gguf"), P(f"{plan}_again.gguf")
        run(["convert", "-m", src, "-o", g1, "--type", plan, "--tokenizer", TOK])

        # (a) types and dequantized values, read independently of glassbox.
        types = {}
        _, meta, deq = llama_ref.read_gguf_raw(g1, types)
        want = {n: expected_type(n, deq[n].shape, plan, LAYERS) for n in types}
        bad_types = [f"{n}: {TYPE_NAMES.get(t, t)} != {TYPE_NAMES[want[n]]}"
                     for n, t in types.items() if t != want[n]]
        check(f"{plan}: tensor types follow the recipe", not bad_types and set(types) == set(src_named),
              "; ".join(bad_types[:4]) or f"{len(types)} tensors")
        check(f"{plan}: tokenizer embedded", len(meta.get("tokenizer.ggml.tokens", [])) == VOCAB)
        norms_exact = all(np.array_equal(deq[n], src_named[n]) for n in deq if deq[n].ndim == 1)
        check(f"{plan}: 1-D norm weights bit-exact", norms_exact)
        w_err = {n: nmse(deq[n], src_named[n]) for n in deq if deq[n].ndim == 2}
        worst = max(w_err, key=w_err.get)
        by_type = {}
        for n, e in w_err.items():
            by_type.setdefault(TYPE_NAMES[types[n]], []).append(e)
        detail = ", ".join(f"{k} mean {np.mean(v):.3g} max {max(v):.3g}" for k, v in by_type.items())
        check(f"{plan}: weight NMSE <= {W_NMSE[plan]:g}", w_err[worst] <= W_NMSE[plan],
              f"{detail} (worst {worst})")

        # (b) converting the file again to the same type: convert dequantizes to f32 and
        # quantizes again. The property each ggml type has (REQUANT): "bytes" = identical bytes;
        # "values" = identical dequantized values (Q4_0: the scale search may return -d with the
        # codes mirrored for a block that does not use code -8); "close" = the K-quant searches
        # may settle on a nearby grid for a few blocks, so the values move by far less than the
        # type's own quantization error and the error vs the source does not grow.
        run(["convert", "-m", g1, "-o", g2, "--type", plan])
        b1, m1 = gguf_tensor_bytes(g1)
        b2, m2 = gguf_tensor_bytes(g2)
        _, _, deq2 = llama_ref.read_gguf_raw(g2)
        same = [n for n in b1 if n in b2 and b1[n] == b2[n]]
        same_values = [n for n in deq if n in deq2 and np.array_equal(deq[n], deq2[n])]
        moved = max((nmse(deq2[n], deq[n]) / max(w_err[n], 1e-30) for n in w_err), default=0.0)
        grew = max((nmse(deq2[n], src_named[n]) / max(w_err[n], 1e-30) for n in w_err), default=0.0)
        levels = {n: REQUANT[types[n]] for n in b1}
        lacking = [n for n in b1 if n not in b2 or not (
            b1[n] == b2[n] if levels[n] == "bytes" else
            n in same_values if levels[n] == "values" else
            nmse(deq2[n], deq[n]) <= 0.02 * w_err[n]
            and nmse(deq2[n], src_named[n]) <= 1.02 * w_err[n])]
        want_levels = ", ".join(sorted({f"{TYPE_NAMES[types[n]]} {levels[n]}" for n in b1}))
        check(f"{plan}: re-converting to {plan} keeps {want_levels}", not lacking and set(b1) == set(b2),
              f"{len(same)}/{len(b1)} tensors byte-identical, {len(same_values)}/{len(deq)} "
              f"value-identical; worst moved NMSE / own quantization NMSE {moved:.3g}, "
              f"error vs source x{grew:.4f}" + (f"; lacking: {lacking[:3]}" if lacking else ""))
        meta_same = all(m2.get(k) == v for k, v in m1.items() if k != "general.name")
        check(f"{plan}: re-converting keeps the metadata (tokenizer included)",
              meta_same and set(m1) == set(m2))

        # (c) logits vs the f32 model (quantization error, amplified by the model), and vs the
        # float64 reference run on this file's dequantized weights (glassbox's compute error).
        lg = logits(g1)
        l_err = nmse(lg, ref_logits)
        check(f"{plan}: logits NMSE vs f32 model <= {L_NMSE[plan]:g}", l_err <= L_NMSE[plan],
              f"NMSE {l_err:.3g}, max abs {np.max(np.abs(lg - ref_logits)):.3g} "
              f"(max |logit| {np.max(np.abs(ref_logits)):.2f})")
        ref64 = llama_ref.LlamaRef.load(g1).forward(tokens)[0].numpy()
        c_err = nmse(lg, ref64)
        check(f"{plan}: logits NMSE vs float64 on the dequantized weights <= {C_NMSE[plan]:g}",
              c_err <= C_NMSE[plan], f"NMSE {c_err:.3g}, max abs {np.max(np.abs(lg - ref64)):.3g}")
        gen = subprocess.run([GB, "generate", "-m", g1, "--prompt", "Once upon a time", "-n", "8",
                              "--temp", "0", "-t", "1"], capture_output=True, text=True, timeout=900)
        check(f"{plan}: generate runs", gen.returncode == 0 and gen.stdout.startswith("Once upon a time"),
              gen.stderr.strip().splitlines()[-1] if gen.stderr.strip() else "")
        report[plan] = dict(weight_nmse_max=w_err[worst], weight_nmse_by_type=detail,
                            logit_nmse_vs_f32=l_err, logit_nmse_vs_f64_ref=c_err,
                            requant_bytes_identical=f"{len(same)}/{len(b1)}",
                            requant_values_identical=f"{len(same_values)}/{len(deq)}",
                            requant_moved_rel=moved)

    # ---- float round trips through HF safetensors and GGUF back to llama2.c ----
    src_header, _ = llama2c_weights(src)

    def same_llama2c(path):
        header, w = llama2c_weights(path)
        return header == src_header and set(w) == set(src_w) and all(
            w[k].tobytes() == src_w[k].tobytes() for k in w)

    run(["convert", "-m", src, "-o", P("hf_f32"), "--type", "f32"])
    run(["convert", "-m", P("hf_f32"), "-o", P("from_hf.bin")])
    check("llama2c -> HF f32 -> llama2c: identical header and weights", same_llama2c(P("from_hf.bin")))
    run(["convert", "-m", P("f32.gguf"), "-o", P("from_gguf.bin")])
    check("llama2c -> GGUF f32 -> llama2c: identical header and weights", same_llama2c(P("from_gguf.bin")))

    st = read_safetensors(os.path.join(P("hf_f32"), "model.safetensors"))
    q = np.frombuffer(st["model.layers.1.self_attn.q_proj.weight"][2], "<f4").reshape(DIM, DIM)
    k = np.frombuffer(st["model.layers.1.self_attn.k_proj.weight"][2], "<f4").reshape(-1, DIM)
    check("HF q_proj/k_proj = HF permute() of llama2.c wq/wk",
          np.array_equal(q, hf_permute(src_w["1.wq"], HEADS))
          and np.array_equal(k, hf_permute(src_w["1.wk"], KV_HEADS)))
    with open(os.path.join(P("hf_f32"), "config.json")) as f:
        cfg = json.load(f)
    check("HF config.json describes the model",
          (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
           cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"],
           cfg["tie_word_embeddings"]) == (DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, False))

    for plan in ["f16", "bf16"]:
        hf = P(f"hf_{plan}")
        run(["convert", "-m", src, "-o", hf, "--type", plan])
        run(["convert", "-m", hf, "-o", P(f"{plan}_via_hf.gguf"), "--type", plan])
        direct, _ = gguf_tensor_bytes(P(f"{plan}.gguf"))
        via, _ = gguf_tensor_bytes(P(f"{plan}_via_hf.gguf"))
        check(f"llama2c -> HF {plan} -> GGUF {plan} == llama2c -> GGUF {plan} (tensor bytes)",
              direct == via, f"{sum(direct[n] == via.get(n) for n in direct)}/{len(direct)} identical")

    # ---- cross-check of the mix recipe against llama.cpp's own Q4_K_M file ----
    if os.path.exists(SYNTHK_GGUF):
        synthk = P("synthK.bin")
        subprocess.run([sys.executable, GEN, synthk, "256", "768", "4", "4", "4", "32000", "256",
                        "4321"], check=True)
        run(["convert", "-m", synthk, "-o", P("synthK_ours.gguf"), "--type", "q4_k_m"], timeout=900)
        ours, _ = gguf_tensor_bytes(P("synthK_ours.gguf"))
        theirs, _ = gguf_tensor_bytes(SYNTHK_GGUF)
        # llama.cpp writes the shared classifier as output.weight; ours keeps it tied (absent).
        # Our tied token_embd.weight is the classifier, so it takes the type of their output.weight.
        pairs = [(n, n) for n in theirs if n in ours and n != "token_embd.weight"]
        pairs.append(("token_embd.weight", "output.weight"))
        mism = [f"{o}: ours {TYPE_NAMES[ours[o][0]]}, llama.cpp {t} {TYPE_NAMES[theirs[t][0]]}"
                for o, t in pairs if ours[o][0] != theirs[t][0]]
        missing = sorted(set(ours) - set(theirs))
        check("q4_k_m types == llama.cpp's synthK-q4_k_m.gguf, tensor by tensor",
              not mism and not missing, "; ".join(mism[:4] + missing[:4])
              or f"{len(ours)} tensors compared")
        os.remove(synthk)

    # ---- GPT-2: HF dir -> GGUF f32, logits and the way back ----
    subprocess.run([sys.executable, MAKE_HF, "--out", P("hf"), "--only", "gpt2"], check=True,
                   capture_output=True)
    gdir = P("hf/gpt2")
    run(["convert", "-m", gdir, "-o", P("gpt2.gguf"), "--type", "f32"])
    gtok = ",".join(str(t) for t in np.random.default_rng(6).integers(0, 1000, 48))
    run(["logits", "-m", gdir, "--tokens", gtok, "--out", P("g_hf.npy"), "-t", "1"])
    run(["logits", "-m", P("gpt2.gguf"), "--tokens", gtok, "--out", P("g_gguf.npy"), "-t", "1"])
    a, b = np.load(P("g_hf.npy")), np.load(P("g_gguf.npy"))
    err = float(np.max(np.abs(a - b)))
    check("gpt2: HF dir -> GGUF f32 logits within 1e-5 of the HF dir's", err <= 1e-5,
          f"max abs {err:.3g} (max |logit| {np.max(np.abs(a)):.2f})")
    gtypes = {}
    llama_ref.read_gguf_raw(P("gpt2.gguf"), gtypes)
    check("gpt2: GGUF holds fused attn_qkv, all f32",
          "blk.0.attn_qkv.weight" in gtypes and set(gtypes.values()) == {F32})
    for plan in ["q4_k_m", "q5_k_m"]:
        # d_model 64: most rows fall back (Q4_K -> Q5_0, ...); ffn_down rows (256) stay K-quants;
        # the tied token embedding stands in for the classifier (Q6_K -> Q8_0).
        gq = P(f"gpt2_{plan}.gguf")
        run(["convert", "-m", gdir, "-o", gq, "--type", plan])
        gtypes = {}
        _, _, gdeq = llama_ref.read_gguf_raw(gq, gtypes)
        want = {n: expected_type(n, gdeq[n].shape, plan, 2, has_output=False) for n in gtypes}
        bad = [f"{n}: {TYPE_NAMES.get(t, t)} != {TYPE_NAMES[want[n]]}" for n, t in gtypes.items()
               if t != want[n]]
        check(f"gpt2 {plan}: types follow the recipe and its fallbacks", not bad,
              "; ".join(bad[:4]) or ", ".join(sorted({TYPE_NAMES[t] for t in gtypes.values()})))
        run(["logits", "-m", gq, "--tokens", gtok, "--out", P("g_q.npy"), "-t", "1"])
        gl = nmse(np.load(P("g_q.npy")), a)
        # 5-bit types mostly (Q5_0/Q5_1 ~1e-3 weight NMSE); logits ~10x that, as for llama above
        check(f"gpt2 {plan}: logits NMSE vs f32 <= 5e-2", gl <= 5e-2, f"NMSE {gl:.3g}")
    run(["convert", "-m", P("gpt2.gguf"), "-o", P("gpt2_back")])
    orig = read_safetensors(os.path.join(gdir, "model.safetensors"))
    back = read_safetensors(os.path.join(P("gpt2_back"), "model.safetensors"))
    check("gpt2: HF -> GGUF -> HF gives the original tensors byte for byte", orig == back,
          f"{sum(back.get(n) == v for n, v in orig.items())}/{len(orig)} identical, "
          f"{len(back)} written")

    # ---- Llama 3 rope scaling: HF rope_scaling -> GGUF rope_freqs.weight (llama.cpp's form) ----
    subprocess.run([sys.executable, MAKE_HF, "--out", P("hf"), "--only", "llama_untied_llama3rope"],
                   check=True, capture_output=True)
    ldir = P("hf/llama_untied_llama3rope")
    run(["convert", "-m", ldir, "-o", P("l3.gguf"), "--type", "f32"])
    # 200 positions: well past the original 64-token context, where the scaled frequencies matter.
    ltok = ",".join(str(t) for t in np.random.default_rng(7).integers(0, 770, 200))
    run(["logits", "-m", ldir, "--tokens", ltok, "--out", P("l3_hf.npy"), "-t", "1"])
    run(["logits", "-m", P("l3.gguf"), "--tokens", ltok, "--out", P("l3_gguf.npy"), "-t", "1"])
    a = np.load(P("l3_hf.npy"))
    err = float(np.max(np.abs(a - np.load(P("l3_gguf.npy")))))
    ltypes = {}
    _, _, ldeq = llama_ref.read_gguf_raw(P("l3.gguf"), ltypes)
    check("llama3 rope: GGUF holds rope_freqs.weight [head_dim / 2]",
          "rope_freqs.weight" in ldeq and ldeq["rope_freqs.weight"].shape == (8,))
    # GGUF stores the divisors in float32 (as llama.cpp does): a relative 6e-8 on each frequency,
    # ~1e-5 rad of angle at position 200, measured 1.4e-5 on the logits; bound as the references'.
    check("llama3 rope: HF dir -> GGUF f32 logits within 1e-4 of the HF dir's", err <= 1e-4,
          f"max abs {err:.3g}")
    # The check can fail: the same weights without the scaling give other logits at these positions.
    plain = P("l3_plain")
    shutil.copytree(ldir, plain)
    with open(os.path.join(plain, "config.json")) as f:
        cfg = json.load(f)
    del cfg["rope_scaling"]
    with open(os.path.join(plain, "config.json"), "w") as f:
        json.dump(cfg, f)
    run(["logits", "-m", plain, "--tokens", ltok, "--out", P("l3_plain.npy"), "-t", "1"])
    gap = float(np.max(np.abs(a - np.load(P("l3_plain.npy")))))
    check("llama3 rope: without the scaling the logits differ by > 1e-2 (the check can fail)",
          gap > 1e-2, f"max abs {gap:.3g}")
    back = subprocess.run([GB, "convert", "-m", P("l3.gguf"), "-o", P("l3_back")],
                          capture_output=True, text=True)
    check("llama3 rope: GGUF rope_freqs -> HF is refused with a clear message",
          back.returncode == 1 and "rope_freqs" in back.stderr, back.stderr.strip()[-200:])

    # ---- New architectures: refusals where GGUF (as llama.cpp reads it) would mean another model ----
    subprocess.run([sys.executable, MAKE_HF, "--out", P("hf"), "--only", "gemma2_qscale,gemma3"],
                   check=True, capture_output=True)
    q = subprocess.run([GB, "convert", "-m", P("hf/gemma2_qscale"), "-o", P("gq.gguf")],
                       capture_output=True, text=True)
    check("gemma2: query_pre_attn_scalar != head_dim -> GGUF is refused, naming the field",
          q.returncode == 1 and "query_pre_attn_scalar 18" in q.stderr
          and not os.path.exists(P("gq.gguf")), q.stderr.strip()[-200:])
    h = subprocess.run([GB, "convert", "-m", P("hf/gemma3"), "-o", P("g3_back")],
                       capture_output=True, text=True)
    check("gemma3 -> HF safetensors is refused (only llama and gpt2 are written as HF)",
          h.returncode == 1 and "writing gemma3 as an HF checkpoint is not supported" in h.stderr,
          h.stderr.strip()[-200:])

# Vocabulary-only GGUF from a byte-level BPE tokenizer.json (GPT-2, Llama 3): `tokenize` reads it
# with --model (no weights needed) and with --tokenizer, and gives the tokenizer.json's ids
# (tests/unit/gguf_bpe_test.cpp compares the whole corpus in-process).
with tempfile.TemporaryDirectory() as vtmp:
    TEXTS = ["Hello world! It's 2026, isn't it?", "  leading spaces\n\nand 12345 digits",
             "<|endoftext|> special", "caf\u00e9 \U0001F600 \u65e5\u672c"]
    texts = os.path.join(vtmp, "texts.jsonl")
    with open(texts, "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in TEXTS)
    for name in ("gpt2", "llama3"):
        tj = os.path.join(SHARED, "models/tokenizers", name, "tokenizer.json")
        if not os.path.exists(tj):
            continue
        vg = os.path.join(vtmp, f"vocab_{name}.gguf")
        run(["convert", "--vocab-only", "--tokenizer", tj, "--out", vg])
        # One call per way (a 9 MB tokenizer.json takes seconds to load under ASan).
        want = run(["tokenize", "--tokenizer", tj, "--jsonl", texts])
        by_model = run(["tokenize", "--model", vg, "--jsonl", texts])
        by_tok = run(["tokenize", "--tokenizer", vg, "--jsonl", texts])
        check(f"vocab-only GGUF ({name}): tokenize --model / --tokenizer = tokenizer.json ids",
              want == by_model == by_tok and len(want.splitlines()) == len(TEXTS))
        ids = json.loads(want.splitlines()[3])
        back = run(["tokenize", "--model", vg, "--decode", "--text", ",".join(map(str, ids))])
        check(f"vocab-only GGUF ({name}): decode gives the text back",
              back.rstrip("\n") == TEXTS[3], repr(back[:80]))
    p = subprocess.run([GB, "convert", "--vocab-only", "--out", os.path.join(vtmp, "x.gguf")],
                       capture_output=True, text=True)
    check("convert --vocab-only without --tokenizer: exit 1 naming it",
          p.returncode == 1 and "--tokenizer" in p.stderr, p.stderr.strip()[-200:])

print(json.dumps(report, indent=1))
print(f"{time.time() - t_start:.1f} s")
print(f"{len(failures)} failed: {failures}" if failures else "all convert checks passed")
sys.exit(1 if failures else 0)
