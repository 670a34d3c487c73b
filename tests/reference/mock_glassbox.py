#!/usr/bin/python3
"""A stand-in for the glassbox CLI built on llama_ref.py with outputs rounded to float32, used
only to prove that check_model.py can fail (test_harness.py). MOCK_PERTURB selects one defect:
  hook:<name>   add 2e-4 to one entry of that hook (or of "logits")
  unmask:<L>    put a finite value above the diagonal of blocks.L.attn.hook_attn_scores
  gen:<step>    change the generated id at that step
Implements the subcommands check_model.py uses: logits, cache, generate, tokenize.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402


def main():
    sub = sys.argv[1]
    ap = argparse.ArgumentParser()
    for opt in ("--model", "--tokens", "--out", "--hooks", "--temp", "--ids-out", "--text"):
        ap.add_argument(opt)
    ap.add_argument("-n", type=int)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--bos", action="store_true")
    a = ap.parse_args(sys.argv[2:])
    torch.set_num_threads(1)
    kind, _, arg = os.environ.get("MOCK_PERTURB", "").partition(":")
    m = ref.LlamaRef.load(a.model)
    toks = [int(t) for t in a.tokens.split(",")] if a.tokens else None

    def f32(name, t):
        x = t.to(torch.float32).numpy().copy()
        if kind == "hook" and arg == name:
            x.flat[x.size // 2] += 2e-4
        if kind == "unmask" and name == f"blocks.{arg}.attn.hook_attn_scores":
            x[0, 0, 1] = 0.0
        return x

    if sub == "logits":
        np.save(a.out, f32("logits", m.forward(toks)[0]))
    elif sub == "cache":
        hooks = a.hooks.split(",")
        _, cache = m.forward(toks, set(hooks))
        os.makedirs(a.out, exist_ok=True)
        for h in hooks:
            np.save(os.path.join(a.out, h + ".npy"), f32(h, cache[h]))
    elif sub == "generate":
        ids, _ = m.generate(toks, a.n)
        if kind == "gen":
            ids[int(arg)] = (ids[int(arg)] + 1) % m.cfg["d_vocab"]
        with open(a.ids_out, "w") as f:
            json.dump({"prompt_ids": toks, "generated_ids": ids}, f)
    elif sub == "tokenize":
        if open(a.model, "rb").read(4) == b"GGUF":
            vocab = ref.Llama2cVocab.from_gguf_meta(ref.read_gguf_raw(a.model)[1])
        else:
            vocab = ref.Llama2cVocab.from_file(sorted(glob.glob(
                os.path.join(os.path.dirname(a.model), "tok*.bin")))[0])
        print(json.dumps(vocab.encode(a.text, bos=a.bos)))
    else:
        print(f"mock_glassbox: unknown subcommand {sub}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
