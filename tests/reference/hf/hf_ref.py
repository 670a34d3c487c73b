#!/usr/bin/python3
"""Independent float64 reference for HF checkpoints: the Llama family (Llama, Qwen2, Qwen3,
Mistral, Phi-3, Gemma 2, Gemma 3 text) and GPT-2.

Written from the architecture descriptions (HF transformers' modeling conventions, TransformerLens
hook semantics) and the safetensors format description only -- not from glassbox's C++:
  * a safetensors reader (hf_safetensors.py, re-exported here), strict about offsets, sizes and
    dtypes (F64, F32, F16, BF16);
  * a float64 forward over ONE sequence, attention recomputed from scratch (no KV cache),
    exposing the TransformerLens hook values (names verbatim, batch axis dropped);
  * greedy generation recording the top-1 minus top-2 logit margin of every step.

Llama family (HF layout): q/k rows of each head are in HF's "rotate_half" (NEOX) order, so RoPE
rotates the pairs (x[i], x[i + r/2]) of the first r = rotary dims (r = d_head unless Phi-3's
partial_rotary_factor) by pos * inv_freq[i], inv_freq[i] = theta^(-2i/r), optionally rescaled
(Llama 3, linear); the other d_head - r dims pass unchanged. hook_q / hook_k are in that same HF
order (as TransformerLens, which loads HF weights without permuting them). RMSNorm hooks as TL:
hook_scale = sqrt(mean(x^2) + eps) [pos, 1] (per head: [pos, heads, 1]), hook_normalized =
x / scale BEFORE the weight (Gemma multiplies by 1 + w, the others by w). What differs per
architecture -- attention biases, per-head q/k norms, sliding windows, soft-capping, Gemma's
sandwich norms and embedding scale, fused Phi-3 projections -- is listed in each class.

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
import sys

import numpy as np
import torch

from hf_safetensors import (ST_DTYPES, bf16_bits_to_f32, read_model_dir,  # noqa: F401
                            read_safetensors, read_safetensors_raw)

DTYPE = torch.float64

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


def attention_mask(n_pos, window=None):
    """True where query i may NOT read key j: j > i, or, with a sliding window W, i - j >= W
    (the query sees the W keys i-W < j <= i, as HF's sliding-window masks)."""
    mask = causal_mask(n_pos)
    if window is not None:
        i = torch.arange(n_pos)[:, None]
        mask = mask | (i - torch.arange(n_pos)[None, :] >= window)
    return mask


def gelu_new(x):
    """GPT-2's gelu_new; also HF's "gelu_pytorch_tanh" (Gemma's hidden_activation)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softcap(x, cap):
    """Gemma 2 soft-capping: cap * tanh(x / cap)."""
    return cap * torch.tanh(x / cap)


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

    def _attention(self, q, k, v, hooks, p, scale=None, cap=None, window=None):
        """q [pos, H, Dh], k/v [pos, KV, Dh]; query head h reads kv head h // (H / KV).
        scores = q.k * scale (default 1/sqrt(Dh)), then cap * tanh(scores / cap) when capped,
        then -inf where attention_mask(pos, window) is set."""
        n_pos, H, Dh = q.shape
        kv_of_head = torch.arange(H) // (H // k.shape[1])
        k_h, v_h = k[:, kv_of_head, :], v[:, kv_of_head, :]
        scores = torch.einsum("qhd,khd->hqk", q, k_h)
        scores = scores / math.sqrt(Dh) if scale is None else scores * scale
        if cap is not None:
            scores = softcap(scores, cap)
        scores = scores.masked_fill(attention_mask(n_pos, window), float("-inf"))  # [H, q, k]
        hooks(p + "attn.hook_attn_scores", scores)
        pattern = torch.softmax(scores, dim=-1)
        hooks(p + "attn.hook_pattern", pattern)
        z = torch.einsum("hqk,khd->qhd", pattern, v_h)                    # [pos, H, Dh]
        hooks(p + "attn.hook_z", z)
        return z.reshape(n_pos, H * Dh)


def _f64(a):
    return torch.from_numpy(np.array(a, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Llama-family decoders: one skeleton (_DecoderRef), one small class per architecture
# --------------------------------------------------------------------------------------------


def decoder_layer_hook_names(L, qk_norm=False, sandwich=False):
    """Per-layer TL hook names in forward order; qk_norm: Qwen3 / Gemma 3 per-head q/k norms,
    sandwich: Gemma's post-attention / post-feedforward norms (ln1_post, ln2_post)."""
    p = f"blocks.{L}."
    names = [p + "hook_resid_pre", p + "ln1.hook_scale", p + "ln1.hook_normalized",
             p + "attn.hook_q", p + "attn.hook_k", p + "attn.hook_v"]
    if qk_norm:
        names += [p + "attn.q_norm.hook_scale", p + "attn.q_norm.hook_normalized",
                  p + "attn.k_norm.hook_scale", p + "attn.k_norm.hook_normalized"]
    names += [p + "attn.hook_rot_q", p + "attn.hook_rot_k", p + "attn.hook_attn_scores",
              p + "attn.hook_pattern", p + "attn.hook_z"]
    if sandwich:
        names += [p + "ln1_post.hook_scale", p + "ln1_post.hook_normalized"]
    names += [p + "hook_attn_out", p + "hook_resid_mid", p + "ln2.hook_scale",
              p + "ln2.hook_normalized", p + "mlp.hook_pre", p + "mlp.hook_pre_linear",
              p + "mlp.hook_post"]
    if sandwich:
        names += [p + "ln2_post.hook_scale", p + "ln2_post.hook_normalized"]
    return names + [p + "hook_mlp_out", p + "hook_resid_post"]


def llama_layer_hook_names(L):
    return decoder_layer_hook_names(L)


def inv_freq_table(d, theta, scaling=None):
    """Inverse frequencies theta^(-2i/d), i < d/2, d = rotary dims; scaling: HF rope_scaling
    (None / "default", "linear": all divided by factor, "llama3": llama3_inv_freq)."""
    inv = [theta ** (-2.0 * i / d) for i in range(d // 2)]
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return [f / float(scaling["factor"]) for f in inv]
    if kind == "llama3":
        return llama3_inv_freq(inv, float(scaling["factor"]), float(scaling["low_freq_factor"]),
                               float(scaling["high_freq_factor"]),
                               float(scaling["original_max_position_embeddings"]))
    raise ValueError(f"rope_scaling type {kind!r} unsupported by this reference")


def layer_windows(types, window, n_layers):
    """Per-layer sliding window (None = full attention) from HF's layer_types list."""
    if len(types) != n_layers or set(types) - {"sliding_attention", "full_attention"}:
        raise ValueError(f"layer_types {types} is not {n_layers} of sliding/full_attention")
    if "sliding_attention" in types and not (isinstance(window, int) and window >= 1):
        raise ValueError(f"sliding_window {window!r} must be a positive integer")
    return [window if t == "sliding_attention" else None for t in types]


class _DecoderRef(_Base):
    """RMSNorm pre-norm decoder with RoPE, GQA and a gated MLP, and the per-architecture switches
    (instance attributes, read at forward time, so the self-test can turn each one off):

      gemma_norm    every RMSNorm multiplies by (1 + w) instead of w
      sandwich      post-attention / post-feedforward norms on the sublayer outputs
      qk_norm       per-head RMSNorm on q and k after the projection, before RoPE
      embed_scale   embeddings multiplied by it (Gemma: sqrt(d_model)); hook_embed after it
      act           "silu" or "gelu_tanh", applied to the gate
      cfg["windows"][L], cfg["attn_scale"], cfg["attn_softcap"], cfg["final_softcap"]
      inv_freqs[L]  the layer's RoPE inverse frequencies (2 * len = rotary dims)
      layers[L]     {"ln1", "q", "k", "v", "o", "ln2", "gate", "up", "down"} plus optional
                    "q_bias", "k_bias", "v_bias", "q_norm", "k_norm", "ln1_post", "ln2_post"
    """
    gemma_norm = False
    sandwich = False
    qk_norm = False
    embed_scale = 1.0
    act = "silu"
    rope_layout = "half"  # "interleaved" exists only for the harness's broken mock
    tied_default = False

    def _base_cfg(self, c):
        if c.get("model_type") != self.model_type:
            raise ValueError(f"model_type {c.get('model_type')!r} is not {self.model_type}")
        if "rope_parameters" in c:  # transformers 5's form; its defaults are not guessed here
            raise ValueError("rope_parameters configs unsupported by this reference")
        H = int(c["num_attention_heads"])
        d_model = int(c["hidden_size"])
        d_head = int(c.get("head_dim") or d_model // H)
        cfg = dict(d_model=d_model, d_mlp=int(c["intermediate_size"]),
                   n_layers=int(c["num_hidden_layers"]), n_heads=H,
                   n_kv_heads=int(c.get("num_key_value_heads") or H), d_head=d_head,
                   d_vocab=int(c["vocab_size"]), n_ctx=int(c["max_position_embeddings"]),
                   eps=float(c["rms_norm_eps"]), rope_theta=float(c.get("rope_theta", 1e4)),
                   rope_scaling=c.get("rope_scaling"), rotary_dims=d_head,
                   tied=bool(c.get("tie_word_embeddings", self.tied_default)),
                   windows=[None] * int(c["num_hidden_layers"]), attn_scale=None,
                   attn_softcap=None, final_softcap=None)
        assert H % cfg["n_kv_heads"] == 0, "n_heads must be a multiple of n_kv_heads"
        assert d_head % 2 == 0
        return cfg

    def _load(self, tensors, bias=False, qk_norm=False, sandwich=False, fused=False):
        """Checks names and shapes, keeps self.w (float64, file names) and self.layers
        (canonical names; Phi-3's fused qkv_proj / gate_up_proj split by rows)."""
        cfg = self.cfg
        d, H, KV, Dh, f = (cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"], cfg["d_head"],
                           cfg["d_mlp"])
        expect = {"model.embed_tokens.weight": (cfg["d_vocab"], d), "model.norm.weight": (d,)}
        if not cfg["tied"]:
            expect["lm_head.weight"] = (cfg["d_vocab"], d)
        per_layer = {"input_layernorm.weight": (d,), "self_attn.o_proj.weight": (d, H * Dh),
                     "post_attention_layernorm.weight": (d,),
                     "mlp.down_proj.weight": (d, f)}
        if fused:
            per_layer.update({"self_attn.qkv_proj.weight": ((H + 2 * KV) * Dh, d),
                              "mlp.gate_up_proj.weight": (2 * f, d)})
        else:
            per_layer.update({"self_attn.q_proj.weight": (H * Dh, d),
                              "self_attn.k_proj.weight": (KV * Dh, d),
                              "self_attn.v_proj.weight": (KV * Dh, d),
                              "mlp.gate_proj.weight": (f, d), "mlp.up_proj.weight": (f, d)})
        if bias:
            per_layer.update({"self_attn.q_proj.bias": (H * Dh,),
                              "self_attn.k_proj.bias": (KV * Dh,),
                              "self_attn.v_proj.bias": (KV * Dh,)})
        if qk_norm:
            per_layer.update({"self_attn.q_norm.weight": (Dh,), "self_attn.k_norm.weight": (Dh,)})
        if sandwich:
            per_layer.update({"pre_feedforward_layernorm.weight": (d,),
                              "post_feedforward_layernorm.weight": (d,)})
        for L in range(cfg["n_layers"]):
            for k, s in per_layer.items():
                expect[f"model.layers.{L}.{k}"] = s
        t = dict(tensors)
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
        self.w = w = {k: _f64(t[k]) for k in expect}
        self.embed = w["model.embed_tokens.weight"]
        self.unembed = self.embed if cfg["tied"] else w["lm_head.weight"]
        self.final_norm = w["model.norm.weight"]
        self.layers = []
        for L in range(cfg["n_layers"]):
            g = {k: w[f"model.layers.{L}.{k}"] for k in per_layer}
            lw = {"ln1": g["input_layernorm.weight"], "o": g["self_attn.o_proj.weight"],
                  "down": g["mlp.down_proj.weight"]}
            if fused:  # rows: q heads, then k heads, then v heads; gate rows, then up rows
                qkv = g["self_attn.qkv_proj.weight"]
                lw.update(q=qkv[:H * Dh], k=qkv[H * Dh:(H + KV) * Dh], v=qkv[(H + KV) * Dh:],
                          gate=g["mlp.gate_up_proj.weight"][:f],
                          up=g["mlp.gate_up_proj.weight"][f:])
            else:
                lw.update(q=g["self_attn.q_proj.weight"], k=g["self_attn.k_proj.weight"],
                          v=g["self_attn.v_proj.weight"], gate=g["mlp.gate_proj.weight"],
                          up=g["mlp.up_proj.weight"])
            if bias:
                lw.update(q_bias=g["self_attn.q_proj.bias"], k_bias=g["self_attn.k_proj.bias"],
                          v_bias=g["self_attn.v_proj.bias"])
            if qk_norm:
                lw.update(q_norm=g["self_attn.q_norm.weight"], k_norm=g["self_attn.k_norm.weight"])
            if sandwich:  # Gemma: post_attention_layernorm is the attention output's norm
                lw.update(ln1_post=g["post_attention_layernorm.weight"],
                          ln2=g["pre_feedforward_layernorm.weight"],
                          ln2_post=g["post_feedforward_layernorm.weight"])
            else:
                lw["ln2"] = g["post_attention_layernorm.weight"]
            self.layers.append(lw)
        self.inv_freqs = [_f64(self.rope_inv_freq(cfg))] * cfg["n_layers"]

    @staticmethod
    def rope_inv_freq(cfg):
        return inv_freq_table(cfg.get("rotary_dims") or cfg["d_head"], cfg["rope_theta"],
                              cfg.get("rope_scaling"))

    def hook_names(self):
        names = ["hook_embed"]
        for L in range(self.cfg["n_layers"]):
            names += decoder_layer_hook_names(L, self.qk_norm, self.sandwich)
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]

    def _rope(self, x, inv_freq):
        """x [pos, heads, d_head]. HF rotate_half on the first r = 2 len(inv_freq) dims: pairs
        (x[i], x[i + r/2]), angle pos*inv_freq[i]; dims r.. pass unchanged."""
        n_pos = x.shape[0]
        half = inv_freq.numel()
        r = 2 * half
        ang = torch.arange(n_pos, dtype=DTYPE)[:, None] * inv_freq[None]   # [pos, r/2]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]  # [pos, 1, r/2]
        out = x.clone()
        if self.rope_layout == "half":
            x0, x1 = x[..., :half], x[..., half:r]
            out[..., :half] = x0 * cos - x1 * sin
            out[..., half:r] = x1 * cos + x0 * sin
        else:
            x0, x1 = x[..., 0:r:2], x[..., 1:r:2]
            out[..., 0:r:2] = x0 * cos - x1 * sin
            out[..., 1:r:2] = x1 * cos + x0 * sin
        return out

    def _rmsnorm(self, x, hooks, prefix):
        scale = torch.sqrt((x * x).mean(-1, keepdim=True) + self.cfg["eps"])  # [..., 1]
        normalized = x / scale
        hooks(prefix + ".hook_scale", scale)
        hooks(prefix + ".hook_normalized", normalized)
        return normalized

    def _norm(self, x, weight, hooks, prefix):
        return self._rmsnorm(x, hooks, prefix) * ((1.0 + weight) if self.gemma_norm else weight)

    def _act(self, x):
        if self.act == "silu":
            return x * torch.sigmoid(x)
        return gelu_new(x)

    def forward(self, tokens, want=None, last_only=False):
        """tokens: list of ids; want: None, a set of hook names, or "all".
        Returns (logits [pos or 1, d_vocab] float64, {hook name: tensor})."""
        c = self.cfg
        cache = {}
        hooks = self._hooks_fn(want, cache)
        toks = self._check_tokens(tokens)
        n_pos, H, KV, Dh = toks.numel(), c["n_heads"], c["n_kv_heads"], c["d_head"]
        x = self.embed[toks]                                                   # [pos, d_model]
        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        hooks("hook_embed", x)
        for L, lw in enumerate(self.layers):
            p = f"blocks.{L}."
            hooks(p + "hook_resid_pre", x)
            xn = self._norm(x, lw["ln1"], hooks, p + "ln1")
            q, k, v = xn @ lw["q"].T, xn @ lw["k"].T, xn @ lw["v"].T
            if "q_bias" in lw:
                q, k, v = q + lw["q_bias"], k + lw["k_bias"], v + lw["v_bias"]
            q = q.reshape(n_pos, H, Dh)
            k = k.reshape(n_pos, KV, Dh)
            v = v.reshape(n_pos, KV, Dh)
            hooks(p + "attn.hook_q", q)
            hooks(p + "attn.hook_k", k)
            hooks(p + "attn.hook_v", v)
            if self.qk_norm:  # per head, over d_head: scale [pos, heads, 1]
                q = self._norm(q, lw["q_norm"], hooks, p + "attn.q_norm")
                k = self._norm(k, lw["k_norm"], hooks, p + "attn.k_norm")
            rq, rk = self._rope(q, self.inv_freqs[L]), self._rope(k, self.inv_freqs[L])
            hooks(p + "attn.hook_rot_q", rq)
            hooks(p + "attn.hook_rot_k", rk)
            z = self._attention(rq, rk, v, hooks, p, c["attn_scale"], c["attn_softcap"],
                                c["windows"][L])
            attn_out = z @ lw["o"].T
            if self.sandwich:
                attn_out = self._norm(attn_out, lw["ln1_post"], hooks, p + "ln1_post")
            hooks(p + "hook_attn_out", attn_out)
            x = x + attn_out
            hooks(p + "hook_resid_mid", x)
            xn2 = self._norm(x, lw["ln2"], hooks, p + "ln2")
            pre = xn2 @ lw["gate"].T                                           # [pos, d_mlp]
            pre_linear = xn2 @ lw["up"].T
            hooks(p + "mlp.hook_pre", pre)
            hooks(p + "mlp.hook_pre_linear", pre_linear)
            post = self._act(pre) * pre_linear
            hooks(p + "mlp.hook_post", post)
            mlp_out = post @ lw["down"].T
            if self.sandwich:
                mlp_out = self._norm(mlp_out, lw["ln2_post"], hooks, p + "ln2_post")
            hooks(p + "hook_mlp_out", mlp_out)
            x = x + mlp_out
            hooks(p + "hook_resid_post", x)
        xf = self._norm(x, self.final_norm, hooks, "ln_final")
        if last_only:
            xf = xf[-1:]
        logits = xf @ self.unembed.T                                           # [pos, d_vocab]
        if c["final_softcap"] is not None:
            logits = softcap(logits, c["final_softcap"])
        return logits, cache


def _check_act(c, want):
    act = c.get("hidden_activation") or c.get("hidden_act") or want
    if act != want:
        raise ValueError(f"hidden activation {act!r} unsupported (expected {want})")


class HFLlamaRef(_DecoderRef):
    """LlamaForCausalLM: no biases, full attention, optional Llama 3 rope scaling."""
    arch = model_type = "llama"

    def __init__(self, config, tensors):
        c = config
        self.cfg = self._base_cfg(c)
        _check_act(c, "silu")
        if c.get("attention_bias") or c.get("mlp_bias"):
            raise ValueError("attention_bias / mlp_bias unsupported by this reference")
        self._load(tensors)
        self.inv_freq = self.inv_freqs[0]


def _qwen_windows(c, n_layers):
    """Qwen2/Qwen3: no window unless use_sliding_window; then layer_types, or the layers
    i >= max_window_layers (the HF config's rule for building layer_types)."""
    if not c.get("use_sliding_window"):
        return [None] * n_layers
    types = c.get("layer_types") or [
        "sliding_attention" if i >= int(c.get("max_window_layers", 0)) else "full_attention"
        for i in range(n_layers)]
    return layer_windows(types, c.get("sliding_window"), n_layers)


class Qwen2Ref(_DecoderRef):
    """Qwen2ForCausalLM: Llama + biases on q_proj/k_proj/v_proj (not o_proj); sliding window only
    with use_sliding_window (sliding_window is ignored otherwise)."""
    arch = model_type = "qwen2"

    def __init__(self, config, tensors):
        self.cfg = self._base_cfg(config)
        _check_act(config, "silu")
        self.cfg["windows"] = _qwen_windows(config, self.cfg["n_layers"])
        self._load(tensors, bias=True)


class Qwen3Ref(_DecoderRef):
    """Qwen3ForCausalLM: Llama + explicit head_dim + per-head RMSNorm q_norm / k_norm [head_dim]
    (weight w) on q and k after the projection, before RoPE; attention_bias false only."""
    arch = model_type = "qwen3"
    qk_norm = True

    def __init__(self, config, tensors):
        self.cfg = self._base_cfg(config)
        _check_act(config, "silu")
        if config.get("attention_bias"):
            raise ValueError("attention_bias unsupported by this reference")
        self.cfg["windows"] = _qwen_windows(config, self.cfg["n_layers"])
        self._load(tensors, qk_norm=True)


class MistralRef(_DecoderRef):
    """MistralForCausalLM: Llama + sliding_window (when not null) on every layer."""
    arch = model_type = "mistral"

    def __init__(self, config, tensors):
        self.cfg = self._base_cfg(config)
        _check_act(config, "silu")
        n = self.cfg["n_layers"]
        w = config.get("sliding_window")
        self.cfg["windows"] = [None] * n if w is None else layer_windows(
            ["sliding_attention"] * n, w, n)
        self._load(tensors)


class Phi3Ref(_DecoderRef):
    """Phi3ForCausalLM: fused qkv_proj [(H + 2 KV) d_head, d] (q rows, then k, then v), fused
    gate_up_proj [2 d_mlp, d] (gate rows, then up), partial rotary (r = int(d_head *
    partial_rotary_factor), inv_freq theta^(-2i/r)), sliding_window (when not null) on every
    layer, rope_scaling null only (no longrope)."""
    arch = model_type = "phi3"

    def __init__(self, config, tensors):
        c = config
        self.cfg = self._base_cfg(c)
        _check_act(c, "silu")
        if c.get("rope_scaling"):
            raise ValueError("Phi-3 rope_scaling (longrope/su/yarn) unsupported by this reference")
        r = int(self.cfg["d_head"] * float(c.get("partial_rotary_factor", 1.0)))
        if r % 2 or not 0 < r <= self.cfg["d_head"]:
            raise ValueError(f"rotary dims {r} must be even and in 1..d_head")
        self.cfg["rotary_dims"] = r
        n, w = self.cfg["n_layers"], c.get("sliding_window")
        self.cfg["windows"] = [None] * n if w is None else layer_windows(
            ["sliding_attention"] * n, w, n)
        self._load(tensors, fused=True)


class Gemma2Ref(_DecoderRef):
    """Gemma2ForCausalLM: embeddings * sqrt(d_model); RMSNorm * (1 + w); sandwich norms
    (input_layernorm -> attn -> post_attention_layernorm -> +; pre_feedforward_layernorm -> MLP ->
    post_feedforward_layernorm -> +); scores * query_pre_attn_scalar^-0.5 then
    attn_logit_softcapping * tanh(s / cap), then the mask; sliding window on the
    "sliding_attention" layers (default: layer_idx % 2 == 0); MLP down(gelu_tanh(gate) * up);
    logits final_logit_softcapping * tanh(l / cap); always tied."""
    arch = model_type = "gemma2"
    gemma_norm = sandwich = True
    act = "gelu_tanh"
    tied_default = True

    def _gemma_cfg(self, c):
        self.cfg = cfg = self._base_cfg(c)
        _check_act(c, "gelu_pytorch_tanh")
        if c.get("attention_bias"):
            raise ValueError("attention_bias unsupported by this reference")
        if not cfg["tied"]:
            raise ValueError("untied Gemma unsupported by this reference")
        self.embed_scale = math.sqrt(cfg["d_model"])
        cfg["attn_scale"] = float(c.get("query_pre_attn_scalar", 256)) ** -0.5  # HF default
        for key, name in (("attn_logit_softcapping", "attn_softcap"),
                          ("final_logit_softcapping", "final_softcap")):
            cfg[name] = None if c.get(key) is None else float(c[key])
        return cfg

    def __init__(self, config, tensors):
        cfg = self._gemma_cfg(config)
        n = cfg["n_layers"]
        types = config.get("layer_types") or [
            "sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
        cfg["windows"] = layer_windows(types, config.get("sliding_window"), n)
        self._load(tensors, sandwich=True)


class Gemma3Ref(Gemma2Ref):
    """Gemma3ForCausalLM (model_type gemma3_text): Gemma 2 + per-head q_norm / k_norm [head_dim]
    (Gemma RMSNorm, (1 + w)) after the projection, before RoPE; soft-capping only where the
    config sets it (null in Gemma 3); layer i local (sliding window) iff (i + 1) %
    sliding_window_pattern != 0, or as layer_types says (both must agree when present); local
    layers use RoPE base rope_local_base_freq without scaling, global layers rope_theta with
    rope_scaling (e.g. linear: inv_freq / factor)."""
    arch = "gemma3"
    model_type = "gemma3_text"
    qk_norm = True

    def __init__(self, config, tensors):
        c = config
        cfg = self._gemma_cfg(c)
        n = cfg["n_layers"]
        types = c.get("layer_types")
        pattern = c.get("sliding_window_pattern")
        if pattern is not None:
            from_pattern = ["sliding_attention" if (i + 1) % int(pattern) else "full_attention"
                            for i in range(n)]
            if types is not None and list(types) != from_pattern:
                raise ValueError(f"layer_types {types} disagrees with sliding_window_pattern "
                                 f"{pattern}")
            types = from_pattern
        if types is None:  # HF's default pattern: 5 local : 1 global
            types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n)]
        cfg["windows"] = layer_windows(types, c.get("sliding_window"), n)
        cfg["rope_local_base_freq"] = float(c.get("rope_local_base_freq", 10000.0))
        self._load(tensors, qk_norm=True, sandwich=True)
        local = _f64(self.rope_inv_freq(dict(cfg, rope_theta=cfg["rope_local_base_freq"],
                                             rope_scaling=None)))
        self.inv_freqs = [local if w is not None else self.inv_freqs[0] for w in cfg["windows"]]


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


ARCHITECTURES = {"LlamaForCausalLM": HFLlamaRef, "Qwen2ForCausalLM": Qwen2Ref,
                 "Qwen3ForCausalLM": Qwen3Ref, "MistralForCausalLM": MistralRef,
                 "Phi3ForCausalLM": Phi3Ref, "Gemma2ForCausalLM": Gemma2Ref,
                 "Gemma3ForCausalLM": Gemma3Ref, "GPT2LMHeadModel": GPT2Ref}


def load(model_dir):
    config, tensors = read_model_dir(model_dir)
    archs = config.get("architectures") or []
    for a in archs:
        if a in ARCHITECTURES:
            return ARCHITECTURES[a](config, tensors)
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
