#!/usr/bin/python3
"""Writes small random HF checkpoints (config.json + safetensors) for the reference checks.

Every model is deterministic from its seed (numpy RandomState, stable across numpy versions), and
the safetensors files are written here byte by byte -- not by glassbox, not by the safetensors
library. Weight scales keep activations O(1), attention patterns peaked but not one-hot, and
logits of a few units (clear argmax margins in float32).

  llama_tied               LlamaForCausalLM, GQA 8 heads / 2 kv heads, rope_theta 500000,
                           tie_word_embeddings (no lm_head.weight), d_mlp 352, F32
  llama_untied_llama3rope  GQA 8/2, Llama 3 rope scaling (factor 8, original context 64, so all
                           three frequency regimes occur with d_head 16), lm_head.weight, vocab 777
  llama_sharded            d_model 96, 6 heads / 3 kv, 3 layers, rope_theta 10000, eps 1e-6,
                           model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json,
                           the shard boundary falling inside a layer
  llama_bf16               as llama_tied but untied and stored as BF16 (torch_dtype bfloat16)
  gpt2                     GPT2LMHeadModel, tensors named "transformer.*", no lm_head.weight, F32
  gpt2_noprefix            names without the prefix plus the attn.bias / attn.masked_bias buffers,
                           like openai-community/gpt2's model.safetensors; d_model 96, 3 layers
  gpt2_f16                 as gpt2 but stored as F16 (torch_dtype float16)
  qwen2                    Qwen2ForCausalLM: biases on q/k/v_proj, tied, rope_theta 1e6,
                           use_sliding_window false (sliding_window 4096 present but ignored)
  qwen3                    Qwen3ForCausalLM: head_dim 32 with d_model 64 / 4 heads, per-head
                           q_norm / k_norm, untied
  mistral                  MistralForCausalLM: sliding_window 48 (< the 160-token check sequence)
  phi3                     Phi3ForCausalLM: fused qkv_proj and gate_up_proj, partial_rotary_factor
                           0.5, sliding_window 64
  gemma2                   Gemma2ForCausalLM: (1 + w) norms, sandwich norms, embeddings *
                           sqrt(d_model), attention soft-cap 8, final soft-cap 5, window 40 on even
                           layers, GELU-tanh, tied
  gemma3                   Gemma3ForCausalLM (gemma3_text): Gemma 2 without soft-caps + (1 + w)
                           q_norm / k_norm, layers 0,1,3 local (window 40, RoPE base 10000) and 2
                           global (rope_theta 1e6, linear rope scaling factor 4)

usage: make_hf_models.py --out DIR [--only NAME,NAME]   -> DIR/<NAME>/...
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}

MODELS = {
    "llama_tied": dict(arch="llama", seed=101, d_model=128, d_mlp=352, n_layers=2, n_heads=8,
                       n_kv_heads=2, d_vocab=1000, theta=500000.0, eps=1e-5, n_ctx=256,
                       tied=True, dtype="F32", bos=1, eos=2),
    "llama_untied_llama3rope": dict(arch="llama", seed=102, d_model=128, d_mlp=256, n_layers=2,
                                    n_heads=8, n_kv_heads=2, d_vocab=777, theta=500000.0,
                                    eps=1e-5, n_ctx=512, tied=False, dtype="F32", bos=770,
                                    eos=771, rope_scaling=LLAMA3_ROPE),
    "llama_sharded": dict(arch="llama", seed=103, d_model=96, d_mlp=256, n_layers=3, n_heads=6,
                          n_kv_heads=3, d_vocab=512, theta=10000.0, eps=1e-6, n_ctx=256,
                          tied=False, dtype="F32", bos=1, eos=2, shards=2),
    "llama_bf16": dict(arch="llama", seed=104, d_model=128, d_mlp=352, n_layers=2, n_heads=8,
                       n_kv_heads=2, d_vocab=1000, theta=500000.0, eps=1e-5, n_ctx=256,
                       tied=False, dtype="BF16", bos=1, eos=2),
    "gpt2": dict(arch="gpt2", seed=201, d_model=64, n_layers=2, n_heads=4, d_vocab=1000,
                 n_ctx=256, eps=1e-5, prefix=True, buffers=False, dtype="F32"),
    "gpt2_noprefix": dict(arch="gpt2", seed=202, d_model=96, n_layers=3, n_heads=6, d_vocab=800,
                          n_ctx=192, eps=1e-5, prefix=False, buffers=True, dtype="F32"),
    "gpt2_f16": dict(arch="gpt2", seed=203, d_model=64, n_layers=2, n_heads=4, d_vocab=1000,
                     n_ctx=256, eps=1e-5, prefix=True, buffers=False, dtype="F16"),
    # Llama-family decoders (decoder_tensors): d_head explicit; qk: std of q/k_proj times
    # sqrt(d_model); qk_norm: mean of the q/k norm weights (as stored)
    "qwen2": dict(arch="qwen2", seed=301, d_model=64, d_mlp=192, n_layers=2, n_heads=4,
                  n_kv_heads=2, d_head=16, d_vocab=900, theta=1e6, eps=1e-6, n_ctx=256,
                  tied=True, dtype="F32", bos=880, eos=881, qk=1.5, embed=0.5, bias=0.5),
    "qwen3": dict(arch="qwen3", seed=332, d_model=64, d_mlp=192, n_layers=3, n_heads=4,
                  n_kv_heads=2, d_head=32, d_vocab=1000, theta=1e6, eps=1e-6, n_ctx=256,
                  tied=False, dtype="F32", bos=1, eos=2, qk=1.0, embed=1.0, qk_norm=1.7),
    "mistral": dict(arch="mistral", seed=303, d_model=64, d_mlp=192, n_layers=2, n_heads=4,
                    n_kv_heads=1, d_head=16, d_vocab=1000, theta=10000.0, eps=1e-5, n_ctx=256,
                    tied=False, dtype="F32", bos=1, eos=2, qk=1.5, embed=1.0, window=48),
    "phi3": dict(arch="phi3", seed=324, d_model=96, d_mlp=256, n_layers=2, n_heads=6,
                 n_kv_heads=2, d_head=16, d_vocab=1000, theta=10000.0, eps=1e-5, n_ctx=256,
                 tied=False, dtype="F32", bos=1, eos=32, qk=1.5, embed=1.0, window=64,
                 partial_rotary=0.5),
    "gemma2": dict(arch="gemma2", seed=305, d_model=128, d_mlp=256, n_layers=4, n_heads=4,
                   n_kv_heads=2, d_head=32, d_vocab=1000, theta=10000.0, eps=1e-6, n_ctx=256,
                   tied=True, dtype="F32", bos=2, eos=1, qk=2.0, embed=0.15, window=40,
                   attn_softcap=8.0, final_softcap=5.0),
    # query_pre_attn_scalar != head_dim: what HF computes, which GGUF cannot state (convert
    # refuses it); an engine scaling by 1/sqrt(head_dim) fails here.
    "gemma2_qscale": dict(arch="gemma2", seed=305, d_model=128, d_mlp=256, n_layers=4, n_heads=4,
                          n_kv_heads=2, d_head=32, d_vocab=1000, theta=10000.0, eps=1e-6,
                          n_ctx=256, tied=True, dtype="BF16", bos=2, eos=1, qk=2.0, embed=0.15,
                          window=40, attn_softcap=8.0, final_softcap=5.0, q_pre=18),
    "gemma3": dict(arch="gemma3", seed=336, d_model=64, d_mlp=192, n_layers=4, n_heads=4,
                   n_kv_heads=1, d_head=32, d_vocab=1000, theta=1e6, eps=1e-6, n_ctx=256,
                   tied=True, dtype="F32", bos=2, eos=1, qk=1.0, embed=0.15, window=40,
                   qk_norm=0.7, pattern=3, local_theta=10000.0,
                   rope_scaling={"rope_type": "linear", "factor": 4.0}),
}

TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}

# --------------------------------------------------------------------------------------------
# safetensors writer (format: u64 LE header length N, N bytes of JSON padded with spaces to a
# multiple of 8, then the little-endian tensor bytes in header order, no gaps)
# --------------------------------------------------------------------------------------------


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16). No NaNs expected."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def encode(a, dtype):
    """float32 array -> (little-endian bytes, dtype name) in the requested storage type."""
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype, metadata=None):
    """tensors: list of (name, float32 numpy array). Returns the number of data bytes."""
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        b = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    return off


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------


class Rand:
    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)

    def normal(self, shape, std, mean=0.0):
        return (mean + std * self.rng.standard_normal(shape)).astype(np.float32)


def llama_tensors(s):
    r = Rand(s["seed"])
    d, f, H, KV, V = s["d_model"], s["d_mlp"], s["n_heads"], s["n_kv_heads"], s["d_vocab"]
    dh = d // H
    t = [("model.embed_tokens.weight", r.normal((V, d), 0.3 if s["tied"] else 1.0))]
    for L in range(s["n_layers"]):
        p = f"model.layers.{L}."
        t += [(p + "input_layernorm.weight", r.normal((d,), 0.1, 1.0)),
              (p + "self_attn.q_proj.weight", r.normal((H * dh, d), 1.5 / np.sqrt(d))),
              (p + "self_attn.k_proj.weight", r.normal((KV * dh, d), 1.5 / np.sqrt(d))),
              (p + "self_attn.v_proj.weight", r.normal((KV * dh, d), 1.0 / np.sqrt(d))),
              (p + "self_attn.o_proj.weight", r.normal((d, H * dh), 1.0 / np.sqrt(H * dh))),
              (p + "post_attention_layernorm.weight", r.normal((d,), 0.1, 1.0)),
              (p + "mlp.gate_proj.weight", r.normal((f, d), 1.0 / np.sqrt(d))),
              (p + "mlp.up_proj.weight", r.normal((f, d), 1.0 / np.sqrt(d))),
              (p + "mlp.down_proj.weight", r.normal((d, f), 1.0 / np.sqrt(f)))]
    t.append(("model.norm.weight", r.normal((d,), 0.1, 1.0)))
    if not s["tied"]:
        t.append(("lm_head.weight", r.normal((V, d), 0.5)))
    return t


def llama_config(s):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
         "hidden_size": s["d_model"], "intermediate_size": s["d_mlp"],
         "num_hidden_layers": s["n_layers"], "num_attention_heads": s["n_heads"],
         "num_key_value_heads": s["n_kv_heads"], "head_dim": s["d_model"] // s["n_heads"],
         "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
         "attention_dropout": 0.0, "initializer_range": 0.02, "pretraining_tp": 1,
         "rms_norm_eps": s["eps"], "rope_theta": s["theta"],
         "rope_scaling": s.get("rope_scaling"), "max_position_embeddings": s["n_ctx"],
         "vocab_size": s["d_vocab"], "tie_word_embeddings": s["tied"],
         "bos_token_id": s["bos"], "eos_token_id": s["eos"], "use_cache": True,
         "torch_dtype": TORCH_DTYPE[s["dtype"]], "transformers_version": "4.44.0"}
    return c


def decoder_tensors(s):
    """Qwen2/Qwen3/Mistral/Phi-3/Gemma 2/Gemma 3 tensors in HF module order. Norm weights ~N(1, 0.1)
    (Gemma: stored w ~N(0, 0.1), applied as 1 + w); q/k norm weights ~N(qk_norm, 0.1), chosen so
    scores reach ~10-15 after normalization."""
    r = Rand(s["seed"])
    arch, d, f, H, KV, V = (s["arch"], s["d_model"], s["d_mlp"], s["n_heads"], s["n_kv_heads"],
                            s["d_vocab"])
    dh = s["d_head"]
    gemma = arch.startswith("gemma")

    def norm(n, mean=None):
        return r.normal((n,), 0.1, (0.0 if gemma else 1.0) if mean is None else mean)

    t = [("model.embed_tokens.weight", r.normal((V, d), s["embed"]))]
    for L in range(s["n_layers"]):
        p = f"model.layers.{L}."
        q = r.normal((H * dh, d), s["qk"] / np.sqrt(d))
        k = r.normal((KV * dh, d), s["qk"] / np.sqrt(d))
        v = r.normal((KV * dh, d), 1.0 / np.sqrt(d))
        t.append((p + "input_layernorm.weight", norm(d)))
        if arch == "phi3":  # one [(H + 2 KV) dh, d] matrix: q rows, k rows, v rows
            t.append((p + "self_attn.qkv_proj.weight", np.concatenate([q, k, v])))
        else:
            t.append((p + "self_attn.q_proj.weight", q))
            if "bias" in s:
                t.append((p + "self_attn.q_proj.bias", r.normal((H * dh,), s["bias"])))
            t.append((p + "self_attn.k_proj.weight", k))
            if "bias" in s:
                t.append((p + "self_attn.k_proj.bias", r.normal((KV * dh,), s["bias"])))
            t.append((p + "self_attn.v_proj.weight", v))
            if "bias" in s:
                t.append((p + "self_attn.v_proj.bias", r.normal((KV * dh,), 0.2)))
        t.append((p + "self_attn.o_proj.weight", r.normal((d, H * dh), 1.0 / np.sqrt(H * dh))))
        if "qk_norm" in s:
            t += [(p + "self_attn.q_norm.weight", norm(dh, s["qk_norm"])),
                  (p + "self_attn.k_norm.weight", norm(dh, s["qk_norm"]))]
        gate = r.normal((f, d), 1.0 / np.sqrt(d))
        up = r.normal((f, d), 1.0 / np.sqrt(d))
        t.append((p + "post_attention_layernorm.weight", norm(d)))
        if gemma:
            t.append((p + "pre_feedforward_layernorm.weight", norm(d)))
        if arch == "phi3":  # [2 d_mlp, d]: gate rows, then up rows
            t.append((p + "mlp.gate_up_proj.weight", np.concatenate([gate, up])))
        else:
            t += [(p + "mlp.gate_proj.weight", gate), (p + "mlp.up_proj.weight", up)]
        t.append((p + "mlp.down_proj.weight", r.normal((d, f), 1.0 / np.sqrt(f))))
        if gemma:
            t.append((p + "post_feedforward_layernorm.weight", norm(d)))
    t.append(("model.norm.weight", norm(d)))
    if not s["tied"]:
        t.append(("lm_head.weight", r.normal((V, d), 0.5)))
    return t


def decoder_config(s):
    arch, n = s["arch"], s["n_layers"]
    c = {"architectures": [ARCHITECTURE[arch]], "model_type": MODEL_TYPE.get(arch, arch),
         "hidden_size": s["d_model"], "intermediate_size": s["d_mlp"], "num_hidden_layers": n,
         "num_attention_heads": s["n_heads"], "num_key_value_heads": s["n_kv_heads"],
         "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.02,
         "rms_norm_eps": s["eps"], "rope_theta": s["theta"],
         "rope_scaling": s.get("rope_scaling"), "max_position_embeddings": s["n_ctx"],
         "vocab_size": s["d_vocab"], "tie_word_embeddings": s["tied"],
         "bos_token_id": s["bos"], "eos_token_id": s["eos"], "use_cache": True,
         "torch_dtype": TORCH_DTYPE[s["dtype"]], "transformers_version": "4.51.0"}
    if s["d_head"] != s["d_model"] // s["n_heads"] or arch in ("qwen3", "gemma2", "gemma3"):
        c["head_dim"] = s["d_head"]
    if arch in ("qwen2", "qwen3"):  # as Qwen's own configs: a window stated but switched off
        c.update(use_sliding_window=False, sliding_window=4096 if arch == "qwen2" else None,
                 max_window_layers=n)
    if arch == "qwen3":
        c["attention_bias"] = False
    if arch in ("mistral", "phi3"):
        c["sliding_window"] = s["window"]
    if arch == "phi3":
        c.update(partial_rotary_factor=s["partial_rotary"], attention_bias=False,
                 original_max_position_embeddings=s["n_ctx"], resid_pdrop=0.0, embd_pdrop=0.0,
                 pad_token_id=s["eos"])
    if arch.startswith("gemma"):
        c.update(hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
                 head_dim=s["d_head"], query_pre_attn_scalar=s.get("q_pre", s["d_head"]),
                 attention_bias=False,
                 sliding_window=s["window"], attn_logit_softcapping=s.get("attn_softcap"),
                 final_logit_softcapping=s.get("final_softcap"), pad_token_id=0,
                 cache_implementation="hybrid")
    if arch == "gemma3":
        c.update(rope_local_base_freq=s["local_theta"], sliding_window_pattern=s["pattern"],
                 layer_types=["sliding_attention" if (i + 1) % s["pattern"] else "full_attention"
                              for i in range(n)])
    return c


ARCHITECTURE = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                "mistral": "MistralForCausalLM", "phi3": "Phi3ForCausalLM",
                "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
MODEL_TYPE = {"gemma3": "gemma3_text"}


def model_tensors(s):
    return {"llama": llama_tensors, "gpt2": gpt2_tensors}.get(s["arch"], decoder_tensors)(s)


def model_config(s):
    return {"llama": llama_config, "gpt2": gpt2_config}.get(s["arch"], decoder_config)(s)


def gpt2_tensors(s):
    r = Rand(s["seed"])
    d, V, P = s["d_model"], s["d_vocab"], s["n_ctx"]
    pre = "transformer." if s["prefix"] else ""
    t = [(pre + "wte.weight", r.normal((V, d), 0.5)), (pre + "wpe.weight", r.normal((P, d), 0.3))]
    for L in range(s["n_layers"]):
        p = f"{pre}h.{L}."
        c_attn = np.concatenate([r.normal((d, 2 * d), 1.5 / np.sqrt(d)),   # q, k columns
                                 r.normal((d, d), 1.0 / np.sqrt(d))], axis=1)  # v columns
        t += [(p + "ln_1.weight", r.normal((d,), 0.1, 1.0)),
              (p + "ln_1.bias", r.normal((d,), 0.05))]
        if s["buffers"]:  # the causal-mask buffer as old checkpoints store it: [1, 1, P, P]
            t.append((p + "attn.bias", np.tril(np.ones((P, P), np.float32))[None, None]))
        t += [(p + "attn.c_attn.weight", c_attn),
              (p + "attn.c_attn.bias", r.normal((3 * d,), 0.1)),
              (p + "attn.c_proj.weight", r.normal((d, d), 1.0 / np.sqrt(d))),
              (p + "attn.c_proj.bias", r.normal((d,), 0.02))]
        if s["buffers"]:
            t.append((p + "attn.masked_bias", np.array(-1e4, np.float32)))
        t += [(p + "ln_2.weight", r.normal((d,), 0.1, 1.0)),
              (p + "ln_2.bias", r.normal((d,), 0.05)),
              (p + "mlp.c_fc.weight", r.normal((d, 4 * d), 1.0 / np.sqrt(d))),
              (p + "mlp.c_fc.bias", r.normal((4 * d,), 0.1)),
              (p + "mlp.c_proj.weight", r.normal((4 * d, d), 1.0 / np.sqrt(4 * d))),
              (p + "mlp.c_proj.bias", r.normal((d,), 0.02))]
    t += [(pre + "ln_f.weight", r.normal((d,), 0.1, 1.0)), (pre + "ln_f.bias", r.normal((d,), 0.05))]
    return t


def gpt2_config(s):
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "n_embd": s["d_model"], "n_layer": s["n_layers"], "n_head": s["n_heads"],
            "n_positions": s["n_ctx"], "n_ctx": s["n_ctx"], "n_inner": None,
            "vocab_size": s["d_vocab"], "layer_norm_epsilon": s["eps"],
            "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
            "attn_pdrop": 0.1, "initializer_range": 0.02, "scale_attn_weights": True,
            "use_cache": True, "bos_token_id": s["d_vocab"] - 1, "eos_token_id": s["d_vocab"] - 1,
            "torch_dtype": TORCH_DTYPE[s["dtype"]], "transformers_version": "4.44.0"}


def write_model(out_dir, name):
    s = MODELS[name]
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):  # a previous run may have left other layouts behind
        if old.endswith((".safetensors", ".json")):
            os.remove(os.path.join(d, old))
    tensors, config = model_tensors(s), model_config(s)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    n = s.get("shards", 1)
    if n == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, s["dtype"])
        return
    # split by bytes into n contiguous groups, as save_pretrained does (a layer may straddle)
    sizes = np.cumsum([a.nbytes for _, a in tensors])
    total = int(sizes[-1])
    groups = [[] for _ in range(n)]
    for (tname, a), end in zip(tensors, sizes):
        groups[min(n - 1, int((end - 1) * n // total))].append((tname, a))
    weight_map, data_bytes = {}, 0
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        data_bytes += write_safetensors(os.path.join(d, fname), g, s["dtype"])
        weight_map.update({tname: fname for tname, _ in g})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": data_bytes}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory receiving one folder per model")
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {list(MODELS)}")
    for name in names:
        write_model(a.out, name)
        print(f"wrote {os.path.join(a.out, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
