#!/usr/bin/python3
"""Independent float64 reference for HF checkpoints: LlamaForCausalLM and GPT2LMHeadModel.

Written from the architecture descriptions (HF transformers' modeling conventions, TransformerLens
hook semantics) and the safetensors format description only -- not from glassbox's C++:
  * a safetensors reader (single file, or sharded with model.safetensors.index.json), strict about
    offsets, sizes and dtypes (F64, F32, F16, BF16);
  * a float64 forward over ONE sequence, full causal attention recomputed from scratch (no KV
    cache), exposing the TransformerLens hook values (names verbatim, batch axis dropped);
  * greedy generation recording the top-1 minus top-2 logit margin of every step.

Llama (HF layout): q/k rows of each head are in HF's "rotate_half" order, so RoPE rotates the pairs
(x[i], x[i + d_head/2]) by pos * inv_freq[i], inv_freq[i] = theta^(-2i/d_head), optionally modified
by Llama 3 rope scaling. hook_q / hook_k are in that same HF order (as TransformerLens, which loads
HF Llama weights without permuting them). RMSNorm hooks as TL: hook_scale = sqrt(mean(x^2) + eps)
[pos, 1], hook_normalized = x / scale BEFORE the weight.

GPT-2 (TL without weight processing, i.e. HookedTransformer.from_pretrained_no_processing):
LayerNorm hooks as TL: x centred, hook_scale = sqrt(mean(x^2) + eps) [pos, 1], hook_normalized =
(x / scale) * w + b (AFTER weight and bias). Conv1D weights are [in, out]: y = x @ W + b.
gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Logits tied to wte.

CLI:
  hf_ref.py --model DIR --tokens 1,2,3 [--hooks NAME,...|all] [--out-dir DIR] [--generate N]
writes DIR/logits.npy (float64 [pos, d_vocab]) and DIR/<hook>.npy (float64), prints JSON.

Must run under Debian's /usr/bin/python3 (python3-torch, python3-numpy).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DTYPE = torch.float64

# --------------------------------------------------------------------------------------------
# safetensors reader
# --------------------------------------------------------------------------------------------
# File: u64 little-endian N; N bytes of UTF-8 JSON {name: {"dtype", "shape", "data_offsets":
# [begin, end]}, optional "__metadata__": {str: str}} (may be padded with trailing spaces); then
# the byte buffer. Offsets are relative to the start of the buffer; tensors are row-major,
# little-endian; the ranges must tile the buffer exactly (no holes, no overlaps).

ST_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def bf16_bits_to_f32(u16):
    return (np.asarray(u16, dtype=np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """Returns ({name: numpy array (float32, or float64 for F64)}, metadata dict).
    F16 and BF16 are widened to float32 exactly."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: bad JSON header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    buf_start, buf_len = 8 + n, len(data) - 8 - n
    meta = header.pop("__metadata__", {}) or {}
    tensors, ranges = {}, []
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in ST_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt!r}")
        np_dt, size = ST_DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= begin <= end <= buf_len:
            raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} outside the buffer "
                             f"of {buf_len} bytes")
        if end - begin != count * size:
            raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for shape {shape} {dt}")
        a = np.frombuffer(data, dtype=np_dt, count=count, offset=buf_start + begin)
        if dt == "BF16":
            a = bf16_bits_to_f32(a)
        elif dt == "F16":
            a = a.astype(np.float32)
        tensors[name] = a.reshape(shape)
        ranges.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(ranges):
        if begin != pos:
            raise ValueError(f"{path}: tensor {name} starts at {begin}, expected {pos} "
                             "(hole or overlap in the buffer)")
        pos = end
    if pos != buf_len:
        raise ValueError(f"{path}: {buf_len - pos} trailing bytes after the last tensor")
    return tensors, meta


def read_safetensors_raw(path):
    """(header dict, raw bytes of each tensor) -- for bit-exact comparisons in the self-test."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    raw = {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
           for k, v in header.items() if k != "__metadata__"}
    return header, raw


def read_model_dir(model_dir):
    """Returns (config dict, {tensor name: numpy array}) for an HF model directory: config.json and
    model.safetensors, or model.safetensors.index.json plus the shards it names."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            t, _ = read_safetensors(os.path.join(model_dir, shard))
            for name in t:
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} not mapped to this shard by the index")
            tensors.update(t)
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"index names tensors missing from their shards: {sorted(missing)[:5]}")
    else:
        tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, tensors


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, original_max):
    """Llama 3 rope scaling of inverse frequencies (list/array of floats), elementwise:
    wavelen = 2 pi / f; wavelen < original_max / high_freq_factor: unchanged (high frequencies);
    wavelen > original_max / low_freq_factor: f / factor (low frequencies); otherwise
    smooth = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor) and
    f' = (1 - smooth) * f / factor + smooth * f."""
    out = []
    for f in inv_freq:
        f = float(f)
        wavelen = 2.0 * math.pi / f
        if wavelen < original_max / high_freq_factor:
            out.append(f)
        elif wavelen > original_max / low_freq_factor:
            out.append(f / factor)
        else:
            smooth = (original_max / wavelen - low_freq_factor) / (high_freq_factor -
                                                                    low_freq_factor)
            out.append((1.0 - smooth) * f / factor + smooth * f)
    return out


def causal_mask(n_pos):
    return torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)  # True above diag


class _Base:
    def _hooks_fn(self, want, cache):
        def hooks(name, t):
            if want is not None and (want == "all" or name in want):
                cache[name] = t.clone()
        return hooks

    def _check_tokens(self, tokens):
        toks = torch.tensor(list(tokens), dtype=torch.long)
        if toks.numel() == 0:
            raise ValueError("empty token sequence")
        if int(toks.min()) < 0 or int(toks.max()) >= self.cfg["d_vocab"]:
            raise ValueError("token id out of range")
        if toks.numel() > self.cfg["n_ctx"]:
            raise ValueError(f"{toks.numel()} tokens exceed n_ctx {self.cfg['n_ctx']}")
        return toks

    def generate(self, prompt, n):
        """Greedy: recompute the full forward each step, append argmax of the last position.
        Returns (generated ids, top-1 minus top-2 margin per step)."""
        seq, out, margins = list(prompt), [], []
        for _ in range(n):
            logits, _ = self.forward(seq, last_only=True)
            top2 = torch.topk(logits[-1], 2)
            nxt = int(top2.indices[0])
            margins.append(float(top2.values[0] - top2.values[1]))
            out.append(nxt)
            seq.append(nxt)
        return out, margins

    def _attention(self, q, k, v, hooks, p):
        """q [pos, H, Dh], k/v [pos, KV, Dh]; query head h reads kv head h // (H / KV)."""
        n_pos, H, Dh = q.shape
        kv_of_head = torch.arange(H) // (H // k.shape[1])
        k_h, v_h = k[:, kv_of_head, :], v[:, kv_of_head, :]
        scores = torch.einsum("qhd,khd->hqk", q, k_h) / math.sqrt(Dh)
        scores = scores.masked_fill(causal_mask(n_pos), float("-inf"))  # [H, q_pos, k_pos]
        hooks(p + "attn.hook_attn_scores", scores)
        pattern = torch.softmax(scores, dim=-1)
        hooks(p + "attn.hook_pattern", pattern)
        z = torch.einsum("hqk,khd->qhd", pattern, v_h)                    # [pos, H, Dh]
        hooks(p + "attn.hook_z", z)
        return z.reshape(n_pos, H * Dh)


def _f64(a):
    return torch.from_numpy(np.array(a, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# LlamaForCausalLM
# --------------------------------------------------------------------------------------------


def llama_layer_hook_names(L):
    p = f"blocks.{L}."
    return [p + "hook_resid_pre", p + "ln1.hook_scale", p + "ln1.hook_normalized",
            p + "attn.hook_q", p + "attn.hook_k", p + "attn.hook_v", p + "attn.hook_rot_q",
            p + "attn.hook_rot_k", p + "attn.hook_attn_scores", p + "attn.hook_pattern",
            p + "attn.hook_z", p + "hook_attn_out", p + "hook_resid_mid", p + "ln2.hook_scale",
            p + "ln2.hook_normalized", p + "mlp.hook_pre", p + "mlp.hook_pre_linear",
            p + "mlp.hook_post", p + "hook_mlp_out", p + "hook_resid_post"]


class HFLlamaRef(_Base):
    arch = "llama"

    def __init__(self, config, tensors):
        c = config
        if c.get("model_type") != "llama":
            raise ValueError(f"model_type {c.get('model_type')!r} is not llama")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {c.get('hidden_act')!r} unsupported")
        if c.get("attention_bias") or c.get("mlp_bias"):
            raise ValueError("attention_bias / mlp_bias unsupported by this reference")
        H = int(c["num_attention_heads"])
        d_model = int(c["hidden_size"])
        d_head = int(c.get("head_dim") or d_model // H)
        self.cfg = dict(d_model=d_model, d_mlp=int(c["intermediate_size"]),
                        n_layers=int(c["num_hidden_layers"]), n_heads=H,
                        n_kv_heads=int(c.get("num_key_value_heads") or H), d_head=d_head,
                        d_vocab=int(c["vocab_size"]), n_ctx=int(c["max_position_embeddings"]),
                        eps=float(c["rms_norm_eps"]), rope_theta=float(c.get("rope_theta", 1e4)),
                        rope_scaling=c.get("rope_scaling"),
                        tied=bool(c.get("tie_word_embeddings", False)))
        cfg = self.cfg
        assert H % cfg["n_kv_heads"] == 0, "n_heads must be a multiple of n_kv_heads"
        assert d_head % 2 == 0
        t = dict(tensors)
        expect = {"model.embed_tokens.weight": (cfg["d_vocab"], d_model),
                  "model.norm.weight": (d_model,)}
        if not cfg["tied"]:
            expect["lm_head.weight"] = (cfg["d_vocab"], d_model)
        per_layer = {"input_layernorm.weight": (d_model,),
                     "self_attn.q_proj.weight": (H * d_head, d_model),
                     "self_attn.k_proj.weight": (cfg["n_kv_heads"] * d_head, d_model),
                     "self_attn.v_proj.weight": (cfg["n_kv_heads"] * d_head, d_model),
                     "self_attn.o_proj.weight": (d_model, H * d_head),
                     "post_attention_layernorm.weight": (d_model,),
                     "mlp.gate_proj.weight": (cfg["d_mlp"], d_model),
                     "mlp.up_proj.weight": (cfg["d_mlp"], d_model),
                     "mlp.down_proj.weight": (d_model, cfg["d_mlp"])}
        for L in range(cfg["n_layers"]):
            for k, s in per_layer.items():
                expect[f"model.layers.{L}.{k}"] = s
        # rotary_emb.inv_freq buffers appear in some old checkpoints; they are recomputed here
        extra = {k for k in t if k not in expect and not k.endswith("rotary_emb.inv_freq")}
        if cfg["tied"] and "lm_head.weight" in extra:
            extra.discard("lm_head.weight")  # some tied checkpoints store the copy; ignore it
        if extra:
            raise ValueError(f"unexpected tensors: {sorted(extra)[:5]}")
        for k, s in expect.items():
            if k not in t:
                raise ValueError(f"missing tensor {k}")
            if tuple(t[k].shape) != s:
                raise ValueError(f"tensor {k}: shape {tuple(t[k].shape)}, expected {s}")
        self.w = {k: _f64(t[k]) for k in expect}
        self.embed = self.w["model.embed_tokens.weight"]
        self.unembed = self.embed if cfg["tied"] else self.w["lm_head.weight"]
        self.inv_freq = _f64(self.rope_inv_freq(cfg))
        self.rope_layout = "half"  # "interleaved" exists only for the harness's broken mock

    @staticmethod
    def rope_inv_freq(cfg):
        d = cfg["d_head"]
        inv = [cfg["rope_theta"] ** (-2.0 * i / d) for i in range(d // 2)]
        rs = cfg.get("rope_scaling")
        if rs:
            kind = rs.get("rope_type", rs.get("type"))
            if kind == "default":
                return inv
            if kind != "llama3":
                raise ValueError(f"rope_scaling type {kind!r} unsupported by this reference")
            inv = llama3_inv_freq(inv, float(rs["factor"]), float(rs["low_freq_factor"]),
                                  float(rs["high_freq_factor"]),
                                  float(rs["original_max_position_embeddings"]))
        return inv

    def hook_names(self):
        names = ["hook_embed"]
        for L in range(self.cfg["n_layers"]):
            names += llama_layer_hook_names(L)
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]

    def _rope(self, x):
        """x [pos, heads, d_head]. HF rotate_half: pairs (x[i], x[i + d/2]), angle pos*inv_freq[i]."""
        n_pos, _, d = x.shape
        half = d // 2
        ang = torch.arange(n_pos, dtype=DTYPE)[:, None] * self.inv_freq[None]  # [pos, d/2]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]      # [pos, 1, d/2]
        out = torch.empty_like(x)
        if self.rope_layout == "half":
            x0, x1 = x[..., :half], x[..., half:]
            out[..., :half] = x0 * cos - x1 * sin
            out[..., half:] = x1 * cos + x0 * sin
        else:
            x0, x1 = x[..., 0::2], x[..., 1::2]
            out[..., 0::2] = x0 * cos - x1 * sin
            out[..., 1::2] = x1 * cos + x0 * sin
        return out

    def _rmsnorm(self, x, hooks, prefix):
        scale = torch.sqrt((x * x).mean(-1, keepdim=True) + self.cfg["eps"])  # [pos, 1]
        normalized = x / scale
        hooks(prefix + ".hook_scale", scale)
        hooks(prefix + ".hook_normalized", normalized)
        return normalized

    def forward(self, tokens, want=None, last_only=False):
        """tokens: list of ids; want: None, a set of hook names, or "all".
        Returns (logits [pos or 1, d_vocab] float64, {hook name: tensor})."""
        c, w = self.cfg, self.w
        cache = {}
        hooks = self._hooks_fn(want, cache)
        toks = self._check_tokens(tokens)
        n_pos, H, KV, Dh = toks.numel(), c["n_heads"], c["n_kv_heads"], c["d_head"]
        x = self.embed[toks]                                                   # [pos, d_model]
        hooks("hook_embed", x)
        for L in range(c["n_layers"]):
            p, lw = f"blocks.{L}.", f"model.layers.{L}."
            hooks(p + "hook_resid_pre", x)
            xn = self._rmsnorm(x, hooks, p + "ln1") * w[lw + "input_layernorm.weight"]
            q = (xn @ w[lw + "self_attn.q_proj.weight"].T).reshape(n_pos, H, Dh)
            k = (xn @ w[lw + "self_attn.k_proj.weight"].T).reshape(n_pos, KV, Dh)
            v = (xn @ w[lw + "self_attn.v_proj.weight"].T).reshape(n_pos, KV, Dh)
            hooks(p + "attn.hook_q", q)
            hooks(p + "attn.hook_k", k)
            hooks(p + "attn.hook_v", v)
            rq, rk = self._rope(q), self._rope(k)
            hooks(p + "attn.hook_rot_q", rq)
            hooks(p + "attn.hook_rot_k", rk)
            z = self._attention(rq, rk, v, hooks, p)
            attn_out = z @ w[lw + "self_attn.o_proj.weight"].T
            hooks(p + "hook_attn_out", attn_out)
            x = x + attn_out
            hooks(p + "hook_resid_mid", x)
            xn2 = self._rmsnorm(x, hooks, p + "ln2") * w[lw + "post_attention_layernorm.weight"]
            pre = xn2 @ w[lw + "mlp.gate_proj.weight"].T                        # [pos, d_mlp]
            pre_linear = xn2 @ w[lw + "mlp.up_proj.weight"].T
            hooks(p + "mlp.hook_pre", pre)
            hooks(p + "mlp.hook_pre_linear", pre_linear)
            post = pre * torch.sigmoid(pre) * pre_linear
            hooks(p + "mlp.hook_post", post)
            mlp_out = post @ w[lw + "mlp.down_proj.weight"].T
            hooks(p + "hook_mlp_out", mlp_out)
            x = x + mlp_out
            hooks(p + "hook_resid_post", x)
        xf = self._rmsnorm(x, hooks, "ln_final") * w["model.norm.weight"]
        if last_only:
            xf = xf[-1:]
        return xf @ self.unembed.T, cache                                       # [pos, d_vocab]


# --------------------------------------------------------------------------------------------
# GPT2LMHeadModel
# --------------------------------------------------------------------------------------------


def gpt2_layer_hook_names(L):
    p = f"blocks.{L}."
    return [p + "hook_resid_pre", p + "ln1.hook_scale", p + "ln1.hook_normalized",
            p + "attn.hook_q", p + "attn.hook_k", p + "attn.hook_v", p + "attn.hook_attn_scores",
            p + "attn.hook_pattern", p + "attn.hook_z", p + "hook_attn_out", p + "hook_resid_mid",
            p + "ln2.hook_scale", p + "ln2.hook_normalized", p + "mlp.hook_pre",
            p + "mlp.hook_post", p + "hook_mlp_out", p + "hook_resid_post"]


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class GPT2Ref(_Base):
    arch = "gpt2"
    # Buffers present in old checkpoints (causal mask, -1e4 constant): not weights, ignored.
    IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

    def __init__(self, config, tensors):
        c = config
        if c.get("model_type") != "gpt2":
            raise ValueError(f"model_type {c.get('model_type')!r} is not gpt2")
        if c.get("activation_function", "gelu_new") != "gelu_new":
            raise ValueError(f"activation_function {c.get('activation_function')!r} unsupported")
        if not c.get("scale_attn_weights", True) or c.get("scale_attn_by_inverse_layer_idx") \
                or c.get("reorder_and_upcast_attn"):
            raise ValueError("non-default GPT-2 attention scaling options unsupported")
        d = int(c["n_embd"])
        H = int(c["n_head"])
        self.cfg = dict(d_model=d, d_mlp=int(c.get("n_inner") or 4 * d),
                        n_layers=int(c["n_layer"]), n_heads=H, n_kv_heads=H, d_head=d // H,
                        d_vocab=int(c["vocab_size"]), n_ctx=int(c["n_positions"]),
                        eps=float(c.get("layer_norm_epsilon", 1e-5)))
        cfg = self.cfg
        assert d % H == 0
        t = {}
        for k, v in tensors.items():  # HF files exist with and without the "transformer." prefix
            t[k[len("transformer."):] if k.startswith("transformer.") else k] = v
        expect = {"wte.weight": (cfg["d_vocab"], d), "wpe.weight": (cfg["n_ctx"], d),
                  "ln_f.weight": (d,), "ln_f.bias": (d,)}
        per_layer = {"ln_1.weight": (d,), "ln_1.bias": (d,),
                     "attn.c_attn.weight": (d, 3 * d), "attn.c_attn.bias": (3 * d,),
                     "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,),
                     "ln_2.weight": (d,), "ln_2.bias": (d,),
                     "mlp.c_fc.weight": (d, cfg["d_mlp"]), "mlp.c_fc.bias": (cfg["d_mlp"],),
                     "mlp.c_proj.weight": (cfg["d_mlp"], d), "mlp.c_proj.bias": (d,)}
        for L in range(cfg["n_layers"]):
            for k, s in per_layer.items():
                expect[f"h.{L}.{k}"] = s
        extra = {k for k in t if k not in expect and not k.endswith(self.IGNORED_SUFFIXES)}
        extra.discard("lm_head.weight")  # tied to wte (checked below when present)
        if extra:
            raise ValueError(f"unexpected tensors: {sorted(extra)[:5]}")
        for k, s in expect.items():
            if k not in t:
                raise ValueError(f"missing tensor {k}")
            if tuple(t[k].shape) != s:
                raise ValueError(f"tensor {k}: shape {tuple(t[k].shape)}, expected {s}")
        if "lm_head.weight" in t and not np.array_equal(t["lm_head.weight"], t["wte.weight"]):
            raise ValueError("lm_head.weight differs from wte.weight (untied GPT-2 unsupported)")
        self.w = {k: _f64(t[k]) for k in expect}

    def hook_names(self):
        names = ["hook_embed", "hook_pos_embed"]
        for L in range(self.cfg["n_layers"]):
            names += gpt2_layer_hook_names(L)
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]

    def _layernorm(self, x, wt, b, hooks, prefix):
        x = x - x.mean(-1, keepdim=True)
        scale = torch.sqrt((x * x).mean(-1, keepdim=True) + self.cfg["eps"])  # [pos, 1]
        hooks(prefix + ".hook_scale", scale)
        normalized = (x / scale) * wt + b
        hooks(prefix + ".hook_normalized", normalized)
        return normalized

    def forward(self, tokens, want=None, last_only=False):
        c, w = self.cfg, self.w
        cache = {}
        hooks = self._hooks_fn(want, cache)
        toks = self._check_tokens(tokens)
        n_pos, H, Dh, d = toks.numel(), c["n_heads"], c["d_head"], c["d_model"]
        embed = w["wte.weight"][toks]                                          # [pos, d_model]
        hooks("hook_embed", embed)
        pos_embed = w["wpe.weight"][:n_pos]                                    # [pos, d_model]
        hooks("hook_pos_embed", pos_embed)
        x = embed + pos_embed
        for L in range(c["n_layers"]):
            p, lw = f"blocks.{L}.", f"h.{L}."
            hooks(p + "hook_resid_pre", x)
            xn = self._layernorm(x, w[lw + "ln_1.weight"], w[lw + "ln_1.bias"], hooks, p + "ln1")
            qkv = xn @ w[lw + "attn.c_attn.weight"] + w[lw + "attn.c_attn.bias"]  # [pos, 3d]
            q = qkv[:, :d].reshape(n_pos, H, Dh)
            k = qkv[:, d:2 * d].reshape(n_pos, H, Dh)
            v = qkv[:, 2 * d:].reshape(n_pos, H, Dh)
            hooks(p + "attn.hook_q", q)
            hooks(p + "attn.hook_k", k)
            hooks(p + "attn.hook_v", v)
            z = self._attention(q, k, v, hooks, p)
            attn_out = z @ w[lw + "attn.c_proj.weight"] + w[lw + "attn.c_proj.bias"]
            hooks(p + "hook_attn_out", attn_out)
            x = x + attn_out
            hooks(p + "hook_resid_mid", x)
            xn2 = self._layernorm(x, w[lw + "ln_2.weight"], w[lw + "ln_2.bias"], hooks, p + "ln2")
            pre = xn2 @ w[lw + "mlp.c_fc.weight"] + w[lw + "mlp.c_fc.bias"]     # [pos, d_mlp]
            hooks(p + "mlp.hook_pre", pre)
            post = gelu_new(pre)
            hooks(p + "mlp.hook_post", post)
            mlp_out = post @ w[lw + "mlp.c_proj.weight"] + w[lw + "mlp.c_proj.bias"]
            hooks(p + "hook_mlp_out", mlp_out)
            x = x + mlp_out
            hooks(p + "hook_resid_post", x)
        xf = self._layernorm(x, w["ln_f.weight"], w["ln_f.bias"], hooks, "ln_final")
        if last_only:
            xf = xf[-1:]
        return xf @ w["wte.weight"].T, cache                                   # [pos, d_vocab]


# --------------------------------------------------------------------------------------------


def load(model_dir):
    config, tensors = read_model_dir(model_dir)
    archs = config.get("architectures") or []
    if "LlamaForCausalLM" in archs:
        return HFLlamaRef(config, tensors)
    if "GPT2LMHeadModel" in archs:
        return GPT2Ref(config, tensors)
    raise ValueError(f"{model_dir}: architectures {archs} not supported by this reference")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF model directory")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--hooks", default="", help="comma-separated hook names, or 'all'")
    ap.add_argument("--out-dir")
    ap.add_argument("--generate", type=int, default=0, metavar="N")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load(a.model)
    tokens = [int(t) for t in a.tokens.split(",") if t.strip()]
    want = "all" if a.hooks == "all" else {h for h in a.hooks.split(",") if h}
    if want != "all":
        unknown = want - set(model.hook_names())
        if unknown:
            ap.error(f"unknown hooks: {sorted(unknown)}")
    logits, cache = model.forward(tokens, want or None)
    result = {"arch": model.arch, "config": model.cfg, "tokens": tokens,
              "last_argmax": int(torch.argmax(logits[-1]))}
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        np.save(os.path.join(a.out_dir, "logits.npy"), logits.numpy())
        for name, t in cache.items():
            np.save(os.path.join(a.out_dir, name + ".npy"), t.numpy())
        result["files"] = ["logits.npy"] + [n + ".npy" for n in cache]
    if a.generate:
        result["generated_ids"], result["margins"] = model.generate(tokens, a.generate)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
