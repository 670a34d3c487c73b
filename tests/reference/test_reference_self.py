#!/usr/bin/python3
"""Self-checks of the float64 reference (llama_ref.py) against PUBLISHED outputs, before it is
trusted to judge glassbox:
  1. stories260K greedy generation from "Once upon a time" reproduces llama2.c run.c's published
     text (run -t 0 -n 64), and the 256-step story from BOS matches the published fragments;
  2. BabyLlama (tok105) likewise (-n 64 and -n 256);
  3. the GGUF conversion of stories260K (written by llama.cpp's converter) gives the same logits
     and hooks as the llama2.c checkpoint, and its embedded vocabulary encodes like tok512.bin;
  4. the GGUF reader handles metadata of every value type, general.alignment, and F16 / BF16
     tensors (a file written here, compared with torch's own half/bfloat16 rounding);
  5. internal consistency: causality (a prefix's logits equal the prefix of the full run),
     resid_post[L] == resid_pre[L+1], pattern rows sum to 1, and RoPE against an independent
     complex-number formulation (as in Meta's reference code).
run.c semantics: -n N runs N positions starting from BOS, so N - (len(prompt) - 1) tokens are
sampled after the prompt; generation stops at BOS (id 1).

usage: test_reference_self.py --shared SHARED_DIR [--repo-models REPO/models]
Exit 0 on success, 1 on failure, 77 when no model is found at all (ctest SKIP_RETURN_CODE).
"""
import argparse
import os
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402

STORIES_64 = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
              "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
              "too high.\nLily")
STORIES_256_START = ("Once upon a time, there was a little girl named Lily. She loved to play "
                     "outside in the park.")
STORIES_256_MIDDLE = ("Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't "
                      "know what to do. She said, \"I want to play with your ball, but I can't "
                      "find it.\"")
STORIES_256_END = "Her mom said, \"Don't worry, Lily. We can help you."
BABY_64 = "Once upon a time, there was a little girl named Lily. She loved"
BABY_256 = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the sunshine. One day, she went to the park with her mommy and daddy. She saw a big "
            "box on the ground. She wanted to play with it, but she was too heavy. She was so "
            "happy t")

failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run_c_generate(model, vocab, prompt, steps):
    """Emulates llama2.c run.c greedy (-t 0 -n steps -i prompt) on the reference."""
    ids = vocab.encode(prompt) if prompt else [1]
    n = steps - (len(ids) - 1)
    gen, margins = model.generate(ids, n)
    if 1 in gen:
        gen = gen[:gen.index(1)]
    return vocab.decode(ids + gen), ids, gen, margins


def self_generation(name, model_path, vocab_path, checks):
    model = ref.LlamaRef.load(model_path)
    vocab = ref.Llama2cVocab.from_file(vocab_path)
    for prompt, steps, test in checks:
        text, ids, gen, margins = run_c_generate(model, vocab, prompt, steps)
        print(f"  {name} -n {steps} prompt {prompt!r}: prompt ids {ids}, min top-2 margin "
              f"{min(margins):.4g}")
        check(test(text), f"{name}: greedy -n {steps} from {prompt!r} matches the published text"
              + ("" if test(text) else f"; got {text!r}"))
    return model, vocab


def rope_complex(x, theta):
    """Meta-style RoPE: view adjacent pairs as complex numbers, multiply by e^{i pos freq}."""
    n_pos, _, d = x.shape
    freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.outer(torch.arange(n_pos, dtype=torch.float64), freqs)
    rot = torch.polar(torch.ones_like(ang), ang)[:, None, :]
    xc = torch.view_as_complex(x.reshape(n_pos, x.shape[1], d // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(x.shape)


def check_internal(model):
    toks = [1] + list(np.random.RandomState(7).randint(3, model.cfg["d_vocab"], 63))
    logits, cache = model.forward(toks, "all")
    short, _ = model.forward(toks[:20])
    check(torch.allclose(short, logits[:20], rtol=0, atol=1e-10),
          "causality: logits of a 20-token prefix equal the first 20 rows of the full run")
    ok = all(torch.equal(cache[f"blocks.{L}.hook_resid_post"],
                         cache[f"blocks.{L + 1}.hook_resid_pre"])
             for L in range(model.cfg["n_layers"] - 1))
    check(ok, "resid_post[L] == resid_pre[L+1]")
    pat = cache["blocks.0.attn.hook_pattern"]
    check(torch.allclose(pat.sum(-1), torch.ones(pat.shape[:-1], dtype=torch.float64), atol=1e-12)
          and float(pat.triu(1).abs().max()) == 0.0, "pattern rows sum to 1, zero above diagonal")
    q, rq = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_rot_q"]
    err = float((rope_complex(q, model.cfg["rope_theta"]) - rq).abs().max())
    check(err < 1e-12, f"RoPE equals the complex-number formulation (max abs {err:.2e})")
    c = model.cfg
    shapes = {"hook_embed": (64, c["d_model"]), "blocks.0.ln1.hook_scale": (64, 1),
              "blocks.0.attn.hook_q": (64, c["n_heads"], c["d_head"]),
              "blocks.0.attn.hook_k": (64, c["n_kv_heads"], c["d_head"]),
              "blocks.0.attn.hook_attn_scores": (c["n_heads"], 64, 64),
              "blocks.0.mlp.hook_post": (64, c["d_mlp"]),
              "ln_final.hook_normalized": (64, c["d_model"])}
    bad = {k: tuple(cache[k].shape) for k, v in shapes.items() if tuple(cache[k].shape) != v}
    check(not bad and set(cache) == set(model.hook_names()), f"hook shapes and names {bad or ''}")


# --- a minimal GGUF writer, only to exercise the reader on types the shared files lack ---

def _gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, meta, tensors, align):
    """meta: list of (key, type, value); tensors: list of (name, np array row-major, ggml type)."""
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}

    def val(t, v):
        if t == 8:
            return _gguf_str(v)
        if t == 9:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(val(et, x) for x in items)
        return struct.pack(fmt[t], v)

    out = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(meta))
    for k, t, v in meta:
        out += _gguf_str(k) + struct.pack("<I", t) + val(t, v)
    blobs, offset = [], 0
    for name, a, ty in tensors:
        if ty == 0:
            raw = a.astype("<f4").tobytes()
        elif ty == 1:
            raw = a.astype("<f2").tobytes()
        else:  # BF16 via torch's rounding
            bf16 = torch.from_numpy(np.array(a)).to(torch.bfloat16)
            raw = bf16.view(torch.int16).numpy().tobytes()
        out += _gguf_str(name) + struct.pack("<I", a.ndim)
        out += b"".join(struct.pack("<Q", d) for d in reversed(a.shape))
        out += struct.pack("<IQ", ty, offset)
        blobs.append(raw)
        offset += (len(raw) + align - 1) // align * align
    out += b"\0" * ((-len(out)) % align)
    for raw in blobs:
        out += raw + b"\0" * ((-len(raw)) % align)
    with open(path, "wb") as f:
        f.write(out)


def check_gguf_types(cfg, w, tmpdir):
    c = cfg
    meta = [("general.architecture", 8, "llama"), ("general.alignment", 4, 64),
            ("test.u8", 0, 200), ("test.i8", 1, -5), ("test.u16", 2, 60000), ("test.i16", 3, -300),
            ("test.i32", 5, -70000), ("test.f32", 6, 0.5), ("test.bool", 7, True),
            ("test.u64", 10, 2 ** 40), ("test.i64", 11, -2 ** 40), ("test.f64", 12, 0.25),
            ("test.arr_str", 9, (8, ["a", "bc"])),
            ("test.arr_arr", 9, (9, [(5, [1, 2]), (5, [3])])),
            ("llama.embedding_length", 4, c["d_model"]),
            ("llama.feed_forward_length", 4, c["d_mlp"]),
            ("llama.block_count", 4, c["n_layers"]),
            ("llama.attention.head_count", 4, c["n_heads"]),
            ("llama.attention.head_count_kv", 4, c["n_kv_heads"]),
            ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
            ("llama.context_length", 4, c["n_ctx"])]
    names = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
             "wo": "attn_output", "ffn_norm": "ffn_norm", "gate": "ffn_gate", "up": "ffn_up",
             "down": "ffn_down"}
    tensors = [("token_embd.weight", w["embed"], 1), ("output_norm.weight", w["final_norm"], 0)]
    for L in range(c["n_layers"]):
        for ours, theirs in names.items():
            ty = 0 if "norm" in ours else (30 if L % 2 else 1)
            tensors.append((f"blk.{L}.{theirs}.weight", w[f"{L}.{ours}"], ty))
    path = os.path.join(tmpdir, "mixed.gguf")
    write_gguf(path, meta, tensors, 64)
    _, m, t = ref.read_gguf_raw(path)
    want = {k: v for k, _, v in meta if k.startswith("test.")}
    got = {k: v for k, v in m.items() if k.startswith("test.")}
    ok_meta = (got["test.arr_str"] == ["a", "bc"] and got["test.arr_arr"] == [[1, 2], [3]] and
               all(got[k] == v for k, v in want.items() if not k.startswith("test.arr")))
    check(ok_meta, f"GGUF metadata of all value types round-trips {'' if ok_meta else got}")
    ok = True
    for name, a, ty in tensors:
        exp = torch.from_numpy(np.ascontiguousarray(a))
        exp = {0: exp, 1: exp.half().float(), 30: exp.bfloat16().float()}[ty].numpy()
        ok &= t[name].shape == a.shape and np.array_equal(t[name], exp)
    check(ok, "GGUF F32/F16/BF16 tensors with alignment 64 decode to torch's rounding")
    cfg2, _ = ref.read_gguf(path)
    check(cfg2["rope_dims"] == c["d_head"] and cfg2["rope_theta"] == 10000.0,
          "GGUF defaults: rope.dimension_count = head_dim, rope.freq_base = 10000")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="")
    ap.add_argument("--repo-models", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)  # faster than 2 threads at these sizes

    def find(*rel):
        for root in (a.repo_models, os.path.join(a.shared, "models") if a.shared else ""):
            if root and os.path.exists(os.path.join(root, *rel)):
                return os.path.join(root, *rel)
        return None

    s_bin, s_tok = find("stories260K", "stories260K.bin"), find("stories260K", "tok512.bin")
    b_bin, b_tok = find("babyllama-tok105", "model5000.bin"), find("babyllama-tok105", "tok105.bin")
    gguf = find("gguf", "stories260K-f32.gguf")
    ran = False
    if s_bin and s_tok:
        ran = True
        model, vocab = self_generation("stories260K", s_bin, s_tok, [
            ("Once upon a time", 64, lambda t: t == STORIES_64),
            ("", 256, lambda t: t.startswith(STORIES_256_START) and STORIES_256_MIDDLE in t
             and t.endswith(STORIES_256_END))])
        check_internal(model)
        cfg, w = ref.read_llama2c(s_bin)
        with tempfile.TemporaryDirectory() as d:
            check_gguf_types(cfg, w, d)
        if gguf:
            g = ref.LlamaRef.load(gguf)
            toks = [1] + list(np.random.RandomState(3).randint(3, 512, 127))
            la, ca = g.forward(toks, "all")
            lb, cb = model.forward(toks, "all")
            # the GGUF stores eps as float32(1e-5), hence ~1e-10 rather than bit-exact agreement
            err = max(float((ca[k] - cb[k]).abs().nan_to_num().max()) for k in ca)
            err = max(err, float((la - lb).abs().max()))
            check(err < 1e-8, f"stories260K-f32.gguf matches stories260K.bin: logits and all hooks "
                  f"max abs {err:.2e}")
            _, meta, _ = ref.read_gguf_raw(gguf)
            gv = ref.Llama2cVocab.from_gguf_meta(meta)
            text = ("Once upon a time, Tom and Sue found a shiny key under a big tree. "
                    "\"Let's open the old box!\" said Sue. Über café ☃ 123.")
            same = gv.encode(text) == vocab.encode(text)
            check(same and vocab.decode(vocab.encode(text)) == text,
                  "GGUF-embedded vocabulary encodes like tok512.bin; decode(encode(text)) == text")
    if b_bin and b_tok:
        ran = True
        self_generation("babyllama", b_bin, b_tok, [
            ("Once upon a time", 64, lambda t: t == BABY_64),
            ("Once upon a time", 256, lambda t: t == BABY_256)])
    if not ran:
        print("SKIP: no reference model found")
        return 77
    print(f"test_reference_self: {len(failures)} failure(s)"
          + (": " + "; ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
