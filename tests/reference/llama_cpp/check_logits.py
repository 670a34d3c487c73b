#!/usr/bin/python3
"""glassbox's logits against llama.cpp's on the same GGUF files.

For each file, one sequence of token ids -- deterministic random ids (numpy RandomState(--seed),
in [0, n_vocab)), or with --text the first tokens of a text as glassbox encodes it -- goes through
`glassbox logits --tokens` and through llama_cpp_logits (llama.cpp's libraries: one batch, CPU,
f32 KV cache, flash attention off); the two float32 [n_tokens, n_vocab] arrays are compared:
  max |d|   the largest absolute difference of one logit;
  rel       max |d| / max |llama.cpp logit|;
  mean |d|  over every logit;
  argmax    the share of positions whose most likely next token is the same.
A file passes when rel <= the bound of its weight type and argmax >= that type's share (BOUNDS,
measured with a margin; the numbers are in docs/testing.md, "llama.cpp logits reference").

Files (MODELS below; adding a model is adding an entry):
  --hf-models DIR   the entries with `hf`: random HF models written by
                    tests/reference/hf/make_hf_models.py, converted by `glassbox convert --type T`
  --shared DIR      the entries with `shared`: files in ../shared (converted when `types` is given)
  --gguf F ...      further GGUF files, as they are, at the bound of their weight type
  --only A,B        only these: NAME (every type) or NAME:TYPE

usage: check_logits.py --glassbox BIN --harness BIN --workdir DIR [--hf-models DIR] [--shared DIR]
                       [--gguf F ...] [--only A,B] [--length L] [--seed S] [--text FILE]
                       [--threads N]
Exit 0 = every file within its bound, 1 = a file outside it or a failed run, 77 = the harness or
glassbox missing, or no file to compare.
"""
import argparse
import os
import struct
import subprocess
import sys
import time

import numpy as np

# (relative bound on max |d| / max |logit|, least share of positions with the same argmax) per
# weight type, from the measured agreement with a margin (docs/testing.md). Quantized: llama.cpp
# and glassbox both quantize the activations to int8 for the integer dot products, but not
# identically (llama.cpp rounds the scale of each 32-block to f16, and multiplies Q5_0 / Q5_1 /
# Q4_1 weights with int8 activations where glassbox uses f32), and one code rounding the other
# way anywhere spreads through the later layers: the two differ by about what each differs from
# the same weights computed in f32.
BOUNDS = {
    "f32": (1e-4, 0.99),
    "f16": (3e-3, 0.99),
    "q8_0": (8e-2, 0.85),
    "q4_0": (8e-2, 0.85),
    "q6_k": (8e-2, 0.85),
    "q4_k_m": (1e-1, 0.85),
}
# ggml's GELU (GPT-2, Gemma) looks its value up in a table indexed by the f16-rounded input, so an
# f32 model with GELU agrees only to about f16 precision.
GELU_BOUNDS = {"f32": (5e-3, 0.99)}
# Gemma's logits are small (final soft-cap 5, embedding scale): the same absolute differences as
# the other models' are larger relative to max |logit|.
GEMMA_BOUNDS = {**GELU_BOUNDS, "q8_0": (1e-1, 0.85), "q4_k_m": (2e-1, 0.85)}
ALL = ("f32", "q8_0", "q4_k_m")

# One entry per model; adding a model is adding an entry.
#   name     the label in the table
#   hf       a directory under --hf-models (make_hf_models.py), converted by glassbox for each of
#            `types`;
#   shared   a file under --shared: with `types`, converted by glassbox for each; without, the
#            file as it is (GGUF files written by llama.cpp's own tools, ../shared/models/README.md)
#   length   tokens (default --length), never above the GGUF's context length (glassbox refuses)
#   bounds   overrides of BOUNDS for this model
#   pending  an architecture being added: skipped while its directory is absent or while glassbox
#            refuses it as unsupported (any other failure, and any disagreement, still fails)
MODELS = [
    dict(name="llama_tied", hf="llama_tied", types=ALL),
    dict(name="llama_untied_llama3rope", hf="llama_untied_llama3rope", types=ALL),  # rope_freqs
    dict(name="gpt2", hf="gpt2", types=ALL, bounds=GELU_BOUNDS),
    dict(name="qwen2", hf="qwen2", types=ALL),
    dict(name="qwen3", hf="qwen3", types=ALL),
    # llama.cpp runs MistralForCausalLM as its `llama` architecture, which ignores
    # llama.attention.sliding_window (48 here): the same computation only within the window.
    dict(name="mistral", hf="mistral", types=ALL, length=48),
    # llama.cpp reads phi3.attention.sliding_window but disables Phi's sliding window ("Phi SWA is
    # currently disabled", llama.cpp PR 13676): the same holds within the window (64 here).
    dict(name="phi3", hf="phi3", types=ALL, length=64),
    dict(name="gemma2", hf="gemma2", types=ALL, bounds=GEMMA_BOUNDS),
    dict(name="gemma3", hf="gemma3", types=ALL, bounds=GEMMA_BOUNDS),
    # The trained TinyStories model: the llama2.c checkpoint (context 512) converted by glassbox,
    # and llama.cpp's own conversion of it (which states a context of 128).
    dict(name="stories260K", shared="models/stories260K/stories260K.bin", types=("f32", "q8_0"),
         length=512),
    dict(name="stories260K-f32.gguf", shared="models/gguf/stories260K-f32.gguf"),
    # Random weights quantized by llama.cpp's quantizer: stories15M's shape, and K-quant widths.
    dict(name="synth15M-q8_0.gguf", shared="models/gguf/synth15M-q8_0.gguf"),
    dict(name="synthK-q4_k_m.gguf", shared="models/gguf/synthK-q4_k_m.gguf"),
]

# llama.cpp's general.file_type values (enum llama_ftype), and for a file without that key the
# ggml type of most of its matrices.
FILE_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 7: "q8_0", 15: "q4_k_m", 17: "q5_k_m", 18: "q6_k",
              32: "bf16"}
GGML_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 8: "q8_0", 12: "q4_k_m", 13: "q5_k_m", 14: "q6_k",
              30: "bf16"}

# --------------------------------------------------------------------------------------------
# GGUF metadata: scalar and string values, array lengths, tensor shapes
# --------------------------------------------------------------------------------------------
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read_value(f, t):
    if t == _STRING:
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(n).decode("utf-8", "replace")
    if t == _ARRAY:
        et, n = struct.unpack("<IQ", f.read(12))
        if et in _SCALAR:  # skipped: only the length is kept
            f.seek(n * struct.calcsize(_SCALAR[et]), 1)
        else:
            for _ in range(n):
                _read_value(f, et)
        return ("array", n)
    fmt = _SCALAR[t]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def gguf_info(path):
    """(metadata dict, {tensor name: (shape, ggml type)})."""
    with open(path, "rb") as f:
        magic, version, n_tensors, n_kv = struct.unpack("<IIQQ", f.read(24))
        if magic != 0x46554747 or version < 2:
            raise ValueError(f"{path}: not a GGUF v2/v3 file")
        meta = {}
        for _ in range(n_kv):
            (klen,) = struct.unpack("<Q", f.read(8))
            key = f.read(klen).decode()
            (t,) = struct.unpack("<I", f.read(4))
            meta[key] = _read_value(f, t)
        tensors = {}
        for _ in range(n_tensors):
            (nlen,) = struct.unpack("<Q", f.read(8))
            name = f.read(nlen).decode()
            (n_dims,) = struct.unpack("<I", f.read(4))
            shape = struct.unpack(f"<{n_dims}Q", f.read(8 * n_dims))
            ggml_type, _offset = struct.unpack("<IQ", f.read(12))
            tensors[name] = (shape, ggml_type)
    return meta, tensors


def weight_type(path):
    meta, tensors = gguf_info(path)
    if "general.file_type" in meta:
        return FILE_TYPES.get(meta["general.file_type"], f"ftype {meta['general.file_type']}")
    types = [t for shape, t in tensors.values() if len(shape) == 2]
    common = max(set(types), key=types.count) if types else None
    return GGML_TYPES.get(common, f"ggml type {common}")


# --------------------------------------------------------------------------------------------


def run(cmd):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, time.monotonic() - t0


def failed(what, p):
    """One line on a failed run: its exit status (or signal) and the end of its stderr."""
    status = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"rc {p.returncode}"
    return f"{what} {status}: {p.stderr.strip()[-400:]}"


def compare(ours, ref):
    d = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    scale = float(np.abs(ref).max())
    return dict(max=float(d.max()), rel=float(d.max()) / scale if scale else float("inf"),
                mean=float(d.mean()), argmax=float(np.mean(ours.argmax(1) == ref.argmax(1))))


class Checker:
    def __init__(self, a):
        self.a = a
        self.failures, self.skips, self.rows = [], [], 0

    def skip(self, label, why):
        self.skips.append(label)
        print(f"SKIP {label}: {why}")

    def fail(self, label, why):
        self.failures.append(label)
        print(f"FAIL {label}: {why}", flush=True)

    def token_ids(self, path, n_vocab, length):
        a = self.a
        if not a.text:
            return np.random.RandomState(a.seed).randint(0, n_vocab, size=length).tolist()
        with open(a.text, encoding="utf-8") as f:
            text = f.read()
        p, _ = run([a.glassbox, "tokenize", "--model", path, "--bos", "--text", text])
        if p.returncode != 0:
            raise RuntimeError(failed("glassbox tokenize", p))
        return [int(t) for t in p.stdout.strip().strip("[]").split(",")][:length]

    def check(self, label, path, wtype, length, bounds):
        """Compares glassbox with llama.cpp on one GGUF file (wtype None: the file's own weight
        type); prints one table line."""
        a = self.a
        try:
            meta, tensors = gguf_info(path)
            wtype = wtype or weight_type(path)
        except (OSError, ValueError, struct.error) as e:
            return self.fail(label, str(e))
        arch = meta.get("general.architecture", "?")
        if "token_embd.weight" not in tensors:
            return self.fail(label, f"{path}: no token_embd.weight")
        n_vocab = tensors["token_embd.weight"][0][1]
        length = min(length, meta.get(f"{arch}.context_length", length))
        try:
            ids = self.token_ids(path, n_vocab, length)
        except RuntimeError as e:
            return self.fail(label, str(e))
        stem = os.path.join(a.workdir, label.replace(":", "-"))
        with open(stem + ".ids", "w") as f:
            f.write(",".join(map(str, ids)) + "\n")
        p, gb_s = run([a.glassbox, "logits", "--model", path, "--tokens", ",".join(map(str, ids)),
                       "--out", stem + ".glassbox.npy", "--threads", str(a.threads)])
        if p.returncode != 0:
            return self.fail(label, failed("glassbox logits", p))
        p, ll_s = run([a.harness, "--model", path, "--tokens-file", stem + ".ids",
                       "--out", stem + ".llama_cpp.npy", "--threads", str(a.threads)])
        if p.returncode != 0:
            return self.fail(label, failed("llama_cpp_logits", p))
        ours, ref = np.load(stem + ".glassbox.npy"), np.load(stem + ".llama_cpp.npy")
        if ours.shape != ref.shape:
            return self.fail(label, f"shapes differ: glassbox {ours.shape}, llama.cpp {ref.shape}")
        if wtype not in bounds:
            return self.fail(label, f"no bound for weight type {wtype!r} ({list(bounds)})")
        m = compare(ours, ref)
        rel_bound, argmax_bound = bounds[wtype]
        ok = m["rel"] <= rel_bound and m["argmax"] >= argmax_bound
        self.rows += 1
        print(f"{'PASS' if ok else 'FAIL'} {label:30s} {arch:7s} {wtype:7s} {len(ids):4d} "
              f"{m['max']:9.2e} {m['rel']:9.2e} {m['mean']:9.2e} {m['argmax']:7.4f}  "
              f"{rel_bound:7.0e} {argmax_bound:5.2f}  {gb_s:5.2f} {ll_s:5.2f}", flush=True)
        if not ok:
            self.failures.append(label)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--harness", required=True, help="llama_cpp_logits")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--hf-models", help="directory of the make_hf_models.py models")
    ap.add_argument("--shared", help="the ../shared directory")
    ap.add_argument("--gguf", nargs="*", default=[], help="further GGUF files")
    ap.add_argument("--only", default="", help="NAME or NAME:TYPE entries, comma-separated")
    ap.add_argument("--length", type=int, default=128, help="tokens per sequence (default 128)")
    ap.add_argument("--seed", type=int, default=1234, help="of the random token ids")
    ap.add_argument("--text", help="a text file: its first tokens (BOS first), not random ids")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    for what, path in (("harness", a.harness), ("glassbox", a.glassbox)):
        if not os.access(path, os.X_OK):
            print(f"skip: the {what} {path} is missing")
            return 77
    only = {s for s in a.only.split(",") if s}
    os.makedirs(a.workdir, exist_ok=True)
    c = Checker(a)
    print(f"{'':5s}{'file':30s} {'arch':7s} {'type':7s} {'n':>4s} {'max |d|':>9s} {'rel':>9s} "
          f"{'mean |d|':>9s} {'argmax':>7s}  {'<= rel':>7s} {'>= arg':>5s}  {'gb_s':>5s} "
          f"{'ll_s':>5s}")

    for m in MODELS:
        root = a.hf_models if "hf" in m else a.shared
        if not root:
            continue
        name = m["name"]
        types = m.get("types")
        if only and name not in only and not any(f"{name}:{t}" in only for t in types or ()):
            continue
        src = os.path.join(root, m.get("hf") or m.get("shared"))
        bounds = {**BOUNDS, **m.get("bounds", {})}
        length = m.get("length", a.length)
        if not os.path.exists(src):
            # ../shared may lack a file, and a model may not be written yet; the fixture's may not
            if m.get("pending") or "shared" in m or not os.path.isdir(root):
                c.skip(name, f"{src} absent")
            else:
                c.fail(name, f"{src} absent (fixture hf_models)")
            continue
        if not types:
            c.check(name, src, None, length, bounds)
            continue
        for t in types:
            label = f"{name}:{t}"
            if only and name not in only and label not in only:
                continue
            out = os.path.join(a.workdir, f"{name}-{t}.gguf")
            p, _ = run([a.glassbox, "convert", "--model", src, "--out", out, "--type", t])
            if p.returncode != 0:
                if m.get("pending") and "is not supported" in p.stderr:
                    c.skip(name, p.stderr.strip().splitlines()[-1])
                    break
                c.fail(label, failed("glassbox convert", p))
                continue
            c.check(label, out, t, length, bounds)

    for path in a.gguf:
        name = os.path.basename(path)
        if only and name not in only:
            continue
        if not os.path.isfile(path):
            c.skip(name, f"{path} absent")
            continue
        c.check(name, path, None, a.length, BOUNDS)

    if c.failures:
        print(f"{len(c.failures)} failed: {', '.join(c.failures)}")
        return 1
    if c.rows == 0:
        print("skip: no file to compare")
        return 77
    print(f"glassbox = llama.cpp within the bounds on {c.rows} files"
          + (f" ({len(c.skips)} skipped)" if c.skips else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
