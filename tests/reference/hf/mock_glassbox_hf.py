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
  convertfail        `convert` exits 1
  gguf_hf_order      from a `llama` GGUF, hook_q/k/rot_q/rot_k in HF order (not the file's)
Implements the subcommands check_hf.py uses: info, logits, cache, generate, and convert, whose
"GGUF" is a header only: general.architecture as llama.cpp's converter names it (Mistral ->
llama) and mock.hf_dir, the HF directory the other subcommands then read. From a `llama` GGUF the
q/k hooks list d_head in the file's interleaved-pair order, as docs/hooks.md says glassbox does.
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


GGUF_ARCH = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama",
             "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Phi3ForCausalLM": "phi3",
             "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
             "GPT2LMHeadModel": "gpt2"}


def write_gguf_header(path, kv):
    """GGUF v3, no tensors, string values only."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for k, v in kv.items():
        kb, vb = k.encode(), v.encode()
        out += struct.pack("<Q", len(kb)) + kb + struct.pack("<IQ", 8, len(vb)) + vb
    with open(path, "wb") as f:
        f.write(out)


def read_gguf_header(path):
    with open(path, "rb") as f:
        data = f.read()
    (n_kv,) = struct.unpack_from("<Q", data, 16)
    pos, kv = 24, {}
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, pos)
        key = data[pos + 8:pos + 8 + n].decode()
        (vt, m) = struct.unpack_from("<IQ", data, pos + 8 + n)
        assert vt == 8
        kv[key] = data[pos + 20 + n:pos + 20 + n + m].decode()
        pos += 20 + n + m
    return kv


def main():
    sub = sys.argv[1]
    ap = argparse.ArgumentParser()
    for opt in ("--model", "--tokens", "--out", "--hooks", "--temp", "--ids-out", "--type"):
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
    if sub == "convert":
        if "convertfail" in defects:
            print(f"glassbox: error: convert {a.model}: unsupported architecture", file=sys.stderr)
            return 1
        with open(os.path.join(a.model, "config.json")) as f:
            arch = GGUF_ARCH[json.load(f)["architectures"][0]]
        write_gguf_header(a.out, {"general.architecture": arch, "general.file_type": a.type,
                                  "mock.hf_dir": os.path.abspath(a.model)})
        return 0
    gguf_arch = None
    if os.path.isfile(a.model):  # a "GGUF" written by convert above
        kv = read_gguf_header(a.model)
        a.model, gguf_arch = kv["mock.hf_dir"], kv["general.architecture"]
    interleave = gguf_arch == "llama" and "gguf_hf_order" not in defects
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
        if interleave and name.split(".")[-2:] in (["attn", "hook_q"], ["attn", "hook_k"],
                                                   ["attn", "hook_rot_q"], ["attn", "hook_rot_k"]):
            d = t.shape[-1]  # [..., 2, d/2] -> [..., d/2, 2]: x0, x_{d/2}, x1, x_{d/2+1}, ...
            t = t.reshape(*t.shape[:-1], 2, d // 2).transpose(-1, -2).reshape(t.shape)
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
