#!/usr/bin/python3
"""ctest fixture: writes the synth15M float32 llama2.c checkpoint (random weights, stories15M
shape) with the shared generator, and puts the Llama 2 vocabulary beside it as tokenizer.bin.
Reuses an existing file whose sha256 matches. Exit 77 (skip) when the generator is absent.

usage: make_synth.py --script gen_synth_llama2c.py --out DIR/synth15M.bin
                     [--tokenizer tokenizer.bin] [--gen-args "dim hidden ... seed" --sha256 HEX]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

ARGS = ["288", "768", "6", "6", "6", "32000", "256", "1234"]
SHA256 = "78f7d95774270902817f656f2b47bf1ba3d833b14d64f718a8f3418886e453a2"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--gen-args", help="generator arguments (dim hidden layers heads kv_heads "
                    "vocab seq_len seed) instead of the synth15M ones; needs --sha256")
    ap.add_argument("--sha256", help="expected sha256 of the file made with --gen-args")
    a = ap.parse_args()
    args, want = (a.gen_args.split(), a.sha256) if a.gen_args else (ARGS, SHA256)
    if not os.path.exists(a.script):
        print(f"SKIP: generator {a.script} not found")
        return 77
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    if not (os.path.exists(a.out) and sha256(a.out) == want):
        tmp = a.out + ".tmp"
        subprocess.run([sys.executable, a.script, tmp] + args, check=True)
        digest = sha256(tmp)
        if digest != want:
            print(f"FAIL: generated checkpoint has sha256 {digest}, expected {want}")
            return 1
        os.replace(tmp, a.out)
        print(f"wrote {a.out}")
    else:
        print(f"{a.out} already present (sha256 ok)")
    if a.tokenizer and os.path.exists(a.tokenizer):
        shutil.copyfile(a.tokenizer, os.path.join(os.path.dirname(os.path.abspath(a.out)),
                                                  "tokenizer.bin"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
