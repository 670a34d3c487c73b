#!/usr/bin/python3
"""A stand-in for the glassbox CLI built on hf_ref.py with outputs rounded to float32, used only to
prove that check_hf.py can fail (test_hf_harness.py). MOCK_PERTURB holds defects separated by ';':
  hook:<name>        add 2e-4 to one entry of that hook (or of "logits")
  unmask:<L>         a finite value above the diagonal of blocks.L.attn.hook_attn_scores
  gen:<step>         change the generated id at that step
  info_drop:<name>   `info` (and `cache --hooks all`) leave that hook out
  info_extra:<name>  `info` lists one more hook
  rope_interleaved   Llama RoPE on adjacent pairs (Meta layout) applied to HF-layout q/k
  ln_preaffine       GPT-2 ln*.hook_normalized reported before the LayerNorm weight and bias
  loadfail           every subcommand fails as an engine without HF support would
Implements the subcommands check_hf.py uses: info, logits, cache, generate.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    sub = sys.argv[1]
    ap = argparse.ArgumentParser()
    for opt in ("--model", "--tokens", "--out", "--hooks", "--temp", "--ids-out"):
        ap.add_argument(opt)
    ap.add_argument("-n", type=int)
    ap.add_argument("--ignore-eos", action="store_true")
    a = ap.parse_args(sys.argv[2:])
    defects = {}
    for d in os.environ.get("MOCK_PERTURB", "").split(";"):
        if d:
            kind, _, arg = d.partition(":")
            defects.setdefault(kind, set()).add(arg)
    if "loadfail" in defects:
        print(f"glassbox: error: {a.model}: unsupported model format", file=sys.stderr)
        return 1
    import numpy as np  # noqa: E402 - after the cheap load failure
    import torch
    import hf_ref
    torch.set_num_threads(1)
    m = hf_ref.load(a.model)
    if "rope_interleaved" in defects:
        m.rope_layout = "interleaved"
    names = [h for h in m.hook_names() if h not in defects.get("info_drop", ())]
    toks = [int(t) for t in a.tokens.split(",")] if a.tokens else None

    def f32(name, t):
        if "ln_preaffine" in defects and ".hook_normalized" in name:
            ln = name.split(".")
            if ln[0] == "blocks":
                pre = f"h.{ln[1]}.ln_{ln[2][-1]}."
            else:
                pre = "ln_f."
            t = (t - m.w[pre + "bias"]) / m.w[pre + "weight"]
        x = t.to(torch.float32).numpy().copy()
        if name in defects.get("hook", ()):
            x.flat[x.size // 2] += 2e-4
        if name in {f"blocks.{L}.attn.hook_attn_scores" for L in defects.get("unmask", ())}:
            x[0, 0, 1] = 0.0
        return x

    if sub == "info":
        listed = names + sorted(defects.get("info_extra", ()))
        print(f"model: {a.model} ({m.arch})\nhooks ({len(listed)}):")
        for h in listed:
            print(f"  {h}  [...]")
    elif sub == "logits":
        np.save(a.out, f32("logits", m.forward(toks)[0]))
    elif sub == "cache":
        hooks = names if a.hooks == "all" else a.hooks.split(",")
        _, cache = m.forward(toks, set(hooks))
        os.makedirs(a.out, exist_ok=True)
        for h in hooks:
            np.save(os.path.join(a.out, h + ".npy"), f32(h, cache[h]))
    elif sub == "generate":
        ids, _ = m.generate(toks, a.n)
        for step in defects.get("gen", ()):
            ids[int(step)] = (ids[int(step)] + 1) % m.cfg["d_vocab"]
        with open(a.ids_out, "w") as f:
            json.dump({"prompt_ids": toks, "generated_ids": ids}, f)
    else:
        print(f"mock_glassbox_hf: unknown subcommand {sub}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
