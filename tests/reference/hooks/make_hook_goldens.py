#!/usr/bin/python3
"""Writes tests/data/hooks/<arch>.txt: the TransformerLens hook names of each architecture, in
forward order, as the independent float64 reference (tests/reference/hf/hf_ref.py) lists them --
never from glassbox. One name per line; per-block names as "blocks.{L}.<suffix>" (the block
pattern, repeated for every layer), model-level names verbatim.

usage: make_hook_goldens.py --models DIR (make_hf_models.py output) --out tests/data/hooks
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import hf_ref  # noqa: E402

# golden name -> the reference model that stands for the architecture (mistral is llama + a window)
ARCHS = {"llama": "llama_tied", "gpt2": "gpt2", "qwen2": "qwen2", "qwen3": "qwen3",
         "mistral": "mistral", "phi3": "phi3", "gemma2": "gemma2", "gemma3": "gemma3"}


def pattern(names):
    out = []
    for n in names:
        if n.startswith("blocks."):
            layer, suffix = n[len("blocks."):].split(".", 1)
            if layer != "0":
                continue
            out.append("blocks.{L}." + suffix)
        else:
            out.append(n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for arch, model in ARCHS.items():
        names = pattern(hf_ref.load(os.path.join(a.models, model)).hook_names())
        with open(os.path.join(a.out, arch + ".txt"), "w") as f:
            f.write("# TransformerLens hook names of %s in forward order, written by\n"
                    "# tests/reference/hooks/make_hook_goldens.py from hf_ref.py (model %s)\n"
                    % (arch, model))
            f.write("\n".join(names) + "\n")
        print(f"{arch}: {len(names)} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
