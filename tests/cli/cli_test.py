#!/usr/bin/env python3
"""End-to-end checks of the glassbox CLI on bad input and --help.

Every bad input must give exit code 1 and exactly one stderr line "glassbox: error: ..." naming
what is wrong (checked by substring), never a crash or a sanitizer report. Model files with
defects are built here by a small GGUF writer written from the GGUF spec.
usage: cli_test.py GLASSBOX_BINARY REPO_DIR
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

GB, REPO = sys.argv[1], sys.argv[2]
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
failures = []


def run(args, stdin=None):
    p = subprocess.run([GB] + args, capture_output=True, text=True, input=stdin, timeout=120)
    return p.returncode, p.stdout, p.stderr


def expect_error(label, args, needle):
    rc, out, err = run(args)
    lines = [l for l in err.splitlines() if l.strip()]
    ok = (rc == 1 and len(lines) == 1 and lines[0].startswith("glassbox: error:")
          and needle.lower() in lines[0].lower())
    print(f"{'ok  ' if ok else 'FAIL'} {label}: rc={rc} {lines[:3]}")
    if not ok:
        failures.append(label)


def expect_ok(label, args, check=lambda out: True):
    rc, out, err = run(args)
    ok = rc == 0 and check(out)
    print(f"{'ok  ' if ok else 'FAIL'} {label}: rc={rc}")
    if not ok:
        print(err[-2000:])
        failures.append(label)
    return out


# ---- a minimal GGUF v3 writer (spec: ggml docs/gguf.md) ----
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    body = {4: lambda v: struct.pack("<I", v), 6: lambda v: struct.pack("<f", v),
            8: gstr}[vtype](value)
    return gstr(key) + struct.pack("<I", vtype) + body


def gguf(metadata, tensors, version=3, type_override=None, shape_override=None):
    """tensors: list of (name, float32 array row-major); dims are written ne0-first."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    head += b"".join(kv(*m) for m in metadata)
    infos, data, off = b"", b"", 0
    for name, arr in tensors:
        shape = (shape_override or {}).get(name, arr.shape)
        infos += gstr(name) + struct.pack("<I", len(shape))
        infos += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        infos += struct.pack("<IQ", (type_override or {}).get(name, 0), off)
        blob = arr.astype("<f4").tobytes()
        pad = (-len(blob)) % 32
        data += blob + b"\0" * pad
        off += len(blob) + pad
    out = head + infos
    out += b"\0" * ((-len(out)) % 32)
    return out + data


def tiny_llama(d=8, mlp=16, layers=1, heads=2, vocab=10, ctx=16, arch="llama", **kw):
    rng = np.random.default_rng(0)
    md = [("general.architecture", 8, arch), (f"{arch}.embedding_length", 4, d),
          (f"{arch}.feed_forward_length", 4, mlp), (f"{arch}.block_count", 4, layers),
          (f"{arch}.attention.head_count", 4, heads), (f"{arch}.context_length", 4, ctx),
          (f"{arch}.attention.layer_norm_rms_epsilon", 6, 1e-5)]
    t = [("token_embd.weight", rng.standard_normal((vocab, d))),
         ("output_norm.weight", np.ones(d))]
    for l in range(layers):
        p = f"blk.{l}."
        t += [(p + "attn_norm.weight", np.ones(d)), (p + "attn_q.weight", rng.standard_normal((d, d))),
              (p + "attn_k.weight", rng.standard_normal((d, d))), (p + "attn_v.weight", rng.standard_normal((d, d))),
              (p + "attn_output.weight", rng.standard_normal((d, d))), (p + "ffn_norm.weight", np.ones(d)),
              (p + "ffn_gate.weight", rng.standard_normal((mlp, d))), (p + "ffn_up.weight", rng.standard_normal((mlp, d))),
              (p + "ffn_down.weight", rng.standard_normal((d, mlp)))]
    return gguf(md, t, **kw)


with tempfile.TemporaryDirectory() as tmp:
    def write(name, data):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # --help everywhere
    for cmd in ["", "info", "generate", "logits", "cache", "tokenize"]:
        expect_ok(f"--help {cmd}", ([cmd] if cmd else []) + ["--help"], lambda o: "--" in o)

    good = write("tiny.gguf", tiny_llama())
    expect_ok("tiny GGUF runs", ["logits", "-m", good, "--tokens", "1,2,3", "--out", os.path.join(tmp, "l.npy")])

    raw = open(MODEL, "rb").read()
    expect_error("missing file", ["info", "-m", os.path.join(tmp, "nope.bin")], "nope.bin")
    expect_error("empty file", ["info", "-m", write("empty.bin", b"")], "empty.bin")
    expect_error("truncated llama2c", ["info", "-m", write("trunc.bin", raw[:100000])], "trunc.bin")
    expect_error("llama2c with extra bytes", ["info", "-m", write("long.bin", raw + b"\0" * 8)], "long.bin")
    bad_hdr = struct.pack("<7i", 64, 172, 5, 7, 4, 512, 512) + raw[28:]
    expect_error("llama2c heads do not divide dim", ["info", "-m", write("heads.bin", bad_hdr)], "heads.bin")
    tg = tiny_llama()
    for cut in [3, 10, 30, 100, 400, len(tg) // 2, len(tg) - 4]:
        expect_error(f"truncated GGUF at {cut}", ["info", "-m", write(f"t{cut}.gguf", tg[:cut])], f"t{cut}.gguf")
    expect_error("GGUF bad version", ["info", "-m", write("v9.gguf", tiny_llama(version=9))], "version")
    expect_error("GGUF unknown architecture", ["info", "-m", write("arch.gguf", tiny_llama(arch="gpt9"))], "gpt9")
    expect_error("GGUF unknown tensor type",
                 ["info", "-m", write("type.gguf", tiny_llama(type_override={"blk.0.attn_q.weight": 99}))],
                 "blk.0.attn_q.weight")
    expect_error("GGUF shape mismatch",
                 ["logits", "-m", write("shape.gguf", tiny_llama(shape_override={"blk.0.ffn_up.weight": (8, 16)})),
                  "--tokens", "1", "--out", os.path.join(tmp, "x.npy")], "blk.0.ffn_up.weight")
    out = os.path.join(tmp, "o.npy")
    expect_error("unknown hook", ["cache", "-m", MODEL, "--tokens", "1,2", "--hooks", "blocks.0.hook_nope",
                                  "--out", tmp], "blocks.0.hook_nope")
    expect_error("hook layer out of range", ["cache", "-m", MODEL, "--tokens", "1,2", "--hooks",
                                             "blocks.5.hook_resid_pre", "--out", tmp], "layers are 0..4")
    expect_error("token id out of range", ["logits", "-m", MODEL, "--tokens", "1,512", "--out", out], "512")
    expect_error("negative token id", ["logits", "-m", MODEL, "--tokens", "1,-3", "--out", out], "-3")
    expect_error("bad token list", ["logits", "-m", MODEL, "--tokens", "1,x", "--out", out], "'x'")
    expect_error("empty prompt", ["generate", "-m", MODEL, "--prompt", "", "-n", "4"], "empty")
    expect_error("prompt longer than context",
                 ["logits", "-m", MODEL, "--tokens", ",".join(["5"] * 513), "--out", out], "context length")
    expect_error("long text prompt",
                 ["generate", "-m", MODEL, "--prompt", "the cat sat. " * 400, "-n", "4"], "context length")
    expect_error("unwritable output", ["logits", "-m", MODEL, "--tokens", "1", "--out",
                                       os.path.join(tmp, "no/such/dir/x.npy")], "x.npy")
    expect_error("no tokenizer found", ["generate", "-m", good, "--prompt", "hi", "-n", "2"], "tokenizer")
    jl = write("in.jsonl", b'{"text": "Once upon a time"}\n{"txt": 3}\n')
    expect_error("jsonl without text", ["tokenize", "-m", MODEL, "--jsonl", jl], "in.jsonl:2")
    expect_error("decode id out of range", ["tokenize", "-m", MODEL, "--decode", "--text", "1,9999"], "9999")

    # Positive paths of tokenize and cache
    jl = write("ok.jsonl", b'{"text": "Once upon a time"}\n{"text": "Lily"}\n')
    enc = expect_ok("tokenize jsonl", ["tokenize", "-m", MODEL, "--jsonl", jl])
    arrays = [json.loads(l) for l in enc.splitlines()]
    if len(arrays) != 2 or arrays[0][0] == 1:
        failures.append("tokenize jsonl: expected 2 arrays without BOS")
    back = expect_ok("decode", ["tokenize", "-m", MODEL, "--decode", "--text", ",".join(map(str, arrays[0]))])
    if back.strip() != "Once upon a time":
        failures.append(f"decode round trip gave {back!r}")
    cdir = os.path.join(tmp, "cache")
    expect_ok("cache all hooks", ["cache", "-m", MODEL, "--prompt", "Hi there", "--hooks", "all", "--out", cdir])
    n_files = len(os.listdir(cdir)) if os.path.isdir(cdir) else 0
    if n_files != 103:
        failures.append(f"cache all: {n_files} files, expected 103")
    a = np.load(os.path.join(cdir, "blocks.4.attn.hook_pattern.npy"))
    if a.shape != (8, 4, 4) or a.dtype != np.float32:
        failures.append(f"pattern shape {a.shape} {a.dtype}")

print(f"{len(failures)} failed: {failures}" if failures else "all CLI checks passed")
sys.exit(1 if failures else 0)
