#!/usr/bin/python3
"""Checks the reference's numpy dequantizers (llama_ref.dequantize_ggml) two independent ways:

 1. against ggml's own C dequantizer (dequantize_row_* in the llama.cpp anchor's libggml-base.so,
    called through ctypes) on random blocks of every supported type: every element equal within
    float32 rounding;
 2. against the float32 weights the two shared quantized GGUF files were made from (regenerated
    bit-exactly with gen_synth_llama2c.py): Q8_0 elements within 0.6 d of the original (half a
    step, plus the f16 rounding of d), and per-tensor NMSE of Q4_K / Q6_K within what their bits
    allow for uniform weights (4 bits: ~5e-3 with llama.cpp's search; 6 bits: ~3e-4).

usage: test_dequant.py --shared DIR [--workdir DIR]. Exit 0 pass, 1 fail, 77 nothing to check.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402

FAILS = []


def check(ok, line):
    print(("PASS " if ok else "FAIL ") + line, flush=True)
    if not ok:
        FAILS.append(line)


def random_blocks(ttype, n_blocks, rng):
    name, _, bb = ref.GGML_QUANT[ttype]
    raw = rng.integers(0, 256, size=(n_blocks, bb), dtype=np.uint8)
    fields = {"q6_k": [208]}.get(name, [0, 2] if name in ("q4_1", "q5_1", "q4_k", "q5_k") else [0])
    for f in fields:
        d = rng.uniform(0.001, 0.05, size=n_blocks).astype("<f2")
        raw[:, f:f + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def against_ggml(lib_path):
    lib = ctypes.CDLL(lib_path)
    rng = np.random.default_rng(1234)
    for ttype, (name, bs, _) in sorted(ref.GGML_QUANT.items()):
        fn = getattr(lib, "dequantize_row_" + name.replace("_k", "_K"))
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        n_blocks = 64
        raw = random_blocks(ttype, n_blocks, rng)
        n = n_blocks * bs
        out = np.zeros(n, dtype=np.float32)
        fn(raw.ctypes.data, out.ctypes.data, n)
        mine = ref.dequantize_ggml(ttype, raw, n)
        err = float(np.abs(mine - out).max())
        mag = float(np.abs(mine).max())
        # ggml computes in float32 (one or two roundings); ours is the exact value.
        check(err <= 2.5e-7 * mag, f"{name}: numpy dequantizer vs ggml dequantize_row_{name} on "
              f"{n_blocks} random blocks: max abs {err:.2e} (max |x| {mag:.3g})")


def against_originals(shared, workdir):
    gen = os.path.join(shared, "models/gguf/gen_synth_llama2c.py")
    models = [("synth15M-q8_0.gguf", "synth15M.bin", "288 768 6 6 6 32000 256 1234"),
              ("synthK-q4_k_m.gguf", "synthK.bin", "256 768 4 4 4 32000 256 4321")]
    checked = 0
    for gguf_name, bin_name, args in models:
        gguf = os.path.join(shared, "models/gguf", gguf_name)
        if not (os.path.exists(gguf) and os.path.exists(gen)):
            print(f"NOTE {gguf_name} or the generator absent: skipped")
            continue
        orig_path = os.path.join(workdir, bin_name)
        subprocess.run([sys.executable, gen, orig_path] + args.split(), check=True)
        _, orig = ref.read_llama2c(orig_path)
        _, deq = ref.read_gguf(gguf)
        _, meta, _ = ref.read_gguf_raw(gguf)
        per_type = {}
        for key, w in deq.items():
            if w.dtype != np.float64:
                continue  # float tensors (norms) are stored as is
            o = orig["embed"] if key == "unembed" else orig[key]
            if w.shape != o.shape:
                check(False, f"{gguf_name} {key}: shape {w.shape} != original {o.shape}")
                continue
            o = o.astype(np.float64)
            nmse = float(((w - o) ** 2).sum() / (o ** 2).sum())
            kind = "q8_0" if "q8_0" in gguf_name else ("q6_k" if _is_q6(key, gguf_name) else "q4_k")
            s = per_type.setdefault(kind, [0.0, 0])
            s[0], s[1] = max(s[0], nmse), s[1] + 1
            if kind == "q8_0":
                blocks = np.abs(w.reshape(-1, 32) - o.reshape(-1, 32)).max(axis=1)
                step = np.abs(o.reshape(-1, 32)).max(axis=1) / 127
                worst = float((blocks / np.maximum(step, 1e-30)).max())
                if worst > 0.6:
                    check(False, f"{gguf_name} {key}: an element is {worst:.3f} steps off")
        bounds = {"q8_0": 2e-5, "q4_k": 6e-3, "q6_k": 4e-4}
        for kind, (worst, count) in sorted(per_type.items()):
            check(worst <= bounds[kind], f"{gguf_name}: {count} {kind} tensors vs the float32 "
                  f"originals: worst NMSE {worst:.3e} (bound {bounds[kind]:.0e})")
        checked += 1
        os.remove(orig_path)
    return checked


def _is_q6(key, gguf_name):
    # llama.cpp's Q4_K_M preset on this 4-layer model (see shared/models/README.md).
    return "q4_k_m" in gguf_name and key in ("unembed", "2.wv", "3.wv", "2.down", "3.down")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    lib = os.path.join(a.shared, "anchors/llama.cpp-0ad4a86/libggml-base.so")
    did = 0
    if os.path.exists(lib):
        against_ggml(lib)
        did += 1
    else:
        print(f"NOTE {lib} absent: ggml cross-check skipped")
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        did += against_originals(a.shared, tmp)
    if did == 0:
        print("SKIP: nothing to check")
        return 77
    print(f"test_dequant: {'PASS' if not FAILS else 'FAIL'}: {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
