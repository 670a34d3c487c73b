#!/usr/bin/python3
"""Independent float64 PyTorch reference for Llama-family models (llama2.c checkpoints and GGUF).

Written from the architecture and file-format descriptions only (not from glassbox's C++), so
that the engine can be checked against something that shares none of its code paths:
  * readers for llama2.c checkpoints and GGUF v2/v3 (F32, F16, BF16 tensors, and the ggml block
    quantizations Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, dequantized exactly to float64);
  * a float64 forward pass over ONE sequence, full causal attention recomputed from scratch
    (no KV cache), exposing TransformerLens hook values (names verbatim, batch axis dropped);
  * greedy generation that recomputes the whole sequence at every step and records the
    top-1 minus top-2 logit margin (to spot float32/float64 near-ties);
  * a llama2.c vocabulary reader with a SentencePiece-BPE style encoder and a decoder.

CLI:
  llama_ref.py --model PATH --tokens 1,2,3 [--hooks NAME,...|all] [--out-dir DIR] [--generate N]
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
# llama2.c checkpoint reader
# --------------------------------------------------------------------------------------------


def read_llama2c(path):
    """Returns (cfg, weights) with weights as float32 numpy arrays in our canonical names."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        raise ValueError(f"{path}: too short for a llama2.c header")
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    head_dim = dim // n_heads
    kv_dim = dim * n_kv_heads // n_heads
    floats = np.frombuffer(data, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > floats.size:
            raise ValueError(f"{path}: truncated checkpoint")
        a = floats[off:off + n].reshape(shape)
        off += n
        return a

    tok = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    take(seq_len, head_dim // 2)  # legacy freq_cis_real
    take(seq_len, head_dim // 2)  # legacy freq_cis_imag
    wcls = tok if shared else take(vocab, dim)
    if off != floats.size:
        raise ValueError(f"{path}: {floats.size - off} trailing floats")
    cfg = dict(d_model=dim, d_mlp=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv_heads, d_head=head_dim, d_vocab=vocab, n_ctx=seq_len,
               eps=1e-5, rope_theta=10000.0, rope_dims=head_dim)
    w = {"embed": tok, "final_norm": rms_final, "unembed": wcls}
    for L in range(n_layers):
        w[f"{L}.attn_norm"] = rms_att[L]
        w[f"{L}.wq"] = wq[L]
        w[f"{L}.wk"] = wk[L]
        w[f"{L}.wv"] = wv[L]
        w[f"{L}.wo"] = wo[L]
        w[f"{L}.ffn_norm"] = rms_ffn[L]
        w[f"{L}.gate"] = w1[L]
        w[f"{L}.down"] = w2[L]
        w[f"{L}.up"] = w3[L]
    return cfg, w


# --------------------------------------------------------------------------------------------
# GGUF reader (v2 / v3)
# --------------------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


class _Cursor:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("GGUF: unexpected end of file")
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.unpack("<Q")
        if self.pos + n > len(self.data):
            raise ValueError("GGUF: string runs past end of file")
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype in _GGUF_SCALARS:
            return self.unpack(_GGUF_SCALARS[vtype])
        if vtype == GGUF_STRING:
            return self.string()
        if vtype == GGUF_ARRAY:
            etype = self.unpack("<I")
            n = self.unpack("<Q")
            if etype in _GGUF_SCALARS and etype != 7:
                fmt = _GGUF_SCALARS[etype]
                size = struct.calcsize(fmt)
                if self.pos + n * size > len(self.data):
                    raise ValueError("GGUF: array runs past end of file")
                a = np.frombuffer(self.data, dtype=np.dtype(fmt), count=n, offset=self.pos)
                self.pos += n * size
                return a.tolist()
            return [self.value(etype) for _ in range(n)]
        raise ValueError(f"GGUF: unknown metadata value type {vtype}")


def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


# --------------------------------------------------------------------------------------------
# GGML block quantization: numpy dequantizers, written from the published block layouts
# (ggml type id -> name, elements per block, bytes per block). Results are float64 and exact:
# every value is d * scale * code (- dmin * min), products of an f16 and small integers.
# --------------------------------------------------------------------------------------------

GGML_QUANT = {2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24),
              8: ("q8_0", 32, 34), 12: ("q4_k", 256, 144), 13: ("q5_k", 256, 176),
              14: ("q6_k", 256, 210)}


def _f16(blocks, offset):
    """The f16 at byte `offset` of every block, as float64 [n_blocks, 1]."""
    return blocks[:, offset:offset + 2].copy().view("<f2").astype(np.float64)


def _nibbles32(qs):
    """[nb, 16] bytes -> [nb, 32] codes: element j < 16 is the low nibble of byte j, element
    j + 16 its high nibble."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)


def _fifth_bit32(qh4):
    """[nb, 4] bytes (a little-endian u32) -> [nb, 32]: bit j for element j."""
    bits = qh4.copy().view("<u4").astype(np.int64)  # [nb, 1]
    return (bits >> np.arange(32)) & 1


def _k_scales_mins(sc12):
    """Q4_K/Q5_K: 12 bytes -> (6-bit scales, 6-bit mins), each [nb, 8]: sub-blocks 0-3 keep
    their low 6 bits in bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 take their low 4 bits
    from the nibbles of bytes 8-11 and their top 2 bits from the top bits of bytes 0-3 / 4-7."""
    s = sc12.astype(np.int64)
    sc_lo, m_lo = s[:, 0:4] & 63, s[:, 4:8] & 63
    sc_hi = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    m_hi = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return np.concatenate([sc_lo, sc_hi], axis=1), np.concatenate([m_lo, m_hi], axis=1)


def _k_codes(qs128):
    """Q4_K/Q5_K: 128 bytes -> [nb, 8, 32] 4-bit codes: 32-byte chunk c holds sub-block 2c in
    its low nibbles and sub-block 2c + 1 in its high nibbles."""
    q = qs128.reshape(-1, 4, 32).astype(np.int64)
    return np.stack([q & 15, q >> 4], axis=2).reshape(-1, 8, 32)


def dequantize_ggml(ttype, raw, n):
    """raw: uint8 array holding n elements of ggml type `ttype` -> float64 [n]."""
    name, bs, bb = GGML_QUANT[ttype]
    if n % bs:
        raise ValueError(f"{n} elements is not a whole number of {name} blocks")
    b = raw[:n // bs * bb].reshape(n // bs, bb)
    if name == "q8_0":
        x = _f16(b, 0) * b[:, 2:34].view(np.int8).astype(np.float64)
    elif name == "q4_0":
        x = _f16(b, 0) * (_nibbles32(b[:, 2:18]) - 8)
    elif name == "q4_1":
        x = _f16(b, 0) * _nibbles32(b[:, 4:20]) + _f16(b, 2)
    elif name == "q5_0":
        x = _f16(b, 0) * ((_nibbles32(b[:, 6:22]) | _fifth_bit32(b[:, 2:6]) << 4) - 16)
    elif name == "q5_1":
        x = _f16(b, 0) * (_nibbles32(b[:, 8:24]) | _fifth_bit32(b[:, 4:8]) << 4) + _f16(b, 2)
    elif name in ("q4_k", "q5_k"):
        sc, mn = _k_scales_mins(b[:, 4:16])
        if name == "q4_k":
            q = _k_codes(b[:, 16:144])
        else:
            # 5th bit of element l of sub-block j: bit j of qh[l].
            qh = b[:, 16:48].astype(np.int64)
            bit = (qh[:, None, :] >> np.arange(8)[None, :, None]) & 1   # [nb, sub-block, 32]
            q = _k_codes(b[:, 48:176]) | (bit << 4)
        x = (_f16(b, 0)[:, :, None] * sc[:, :, None] * q
             - _f16(b, 2)[:, :, None] * mn[:, :, None])
    elif name == "q6_k":
        ql = b[:, 0:128].astype(np.int64).reshape(-1, 2, 64)
        qh = b[:, 128:192].astype(np.int64).reshape(-1, 2, 32)
        sc = b[:, 192:208].view(np.int8).astype(np.int64)  # one per 16 elements
        # Per half of 128: four runs of 32 = (low nibbles of ql[0:32], of ql[32:64], high
        # nibbles of ql[0:32], of ql[32:64]), topped with bit pairs 0-1, 2-3, 4-5, 6-7 of qh.
        lo4 = [ql[:, :, 0:32] & 15, ql[:, :, 32:64] & 15, ql[:, :, 0:32] >> 4, ql[:, :, 32:64] >> 4]
        q = np.stack([lo4[t] | ((qh >> (2 * t)) & 3) << 4 for t in range(4)], axis=2)
        q = q.reshape(-1, 16, 16) - 32                     # [nb, sub-block of 16, 16]
        x = _f16(b, 208)[:, :, None] * sc[:, :, None] * q
    else:
        raise ValueError(f"no dequantizer for {name}")
    return x.reshape(n)


def read_gguf_raw(path, types_out=None):
    """Returns (version, metadata dict, {name: numpy array in row-major [.., ne1, ne0]}): float32
    for float tensors, float64 (exact) for block-quantized ones. types_out: dict filled with
    {name: ggml type id}."""
    with open(path, "rb") as f:
        data = f.read()
    c = _Cursor(data)
    if c.unpack("<I") != 0x46554747:  # b"GGUF" little-endian
        raise ValueError(f"{path}: not a GGUF file")
    version = c.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"{path}: unsupported GGUF version {version}")
    n_tensors = c.unpack("<Q")
    n_kv = c.unpack("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        vtype = c.unpack("<I")
        meta[key] = c.value(vtype)
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.unpack("<I")
        ne = [c.unpack("<Q") for _ in range(n_dims)]
        ttype = c.unpack("<I")
        offset = c.unpack("<Q")
        infos.append((name, ne, ttype, offset))
        if types_out is not None:
            types_out[name] = ttype
    align = int(meta.get("general.alignment", 32))
    data_start = (c.pos + align - 1) // align * align
    tensors = {}
    for name, ne, ttype, offset in infos:
        n = int(np.prod(ne)) if ne else 1
        shape = tuple(reversed(ne))  # ne0 is the fastest-varying dimension
        start = data_start + offset
        if ttype == 0:
            a = np.frombuffer(data, dtype="<f4", count=n, offset=start)
        elif ttype == 1:
            a = np.frombuffer(data, dtype="<f2", count=n, offset=start).astype(np.float32)
        elif ttype == 30:
            a = _bf16_to_f32(np.frombuffer(data, dtype="<u2", count=n, offset=start))
        elif ttype in GGML_QUANT:
            _, bs, bb = GGML_QUANT[ttype]
            raw = np.frombuffer(data, dtype=np.uint8, count=n // bs * bb, offset=start)
            a = dequantize_ggml(ttype, raw, n)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported type {ttype}")
        tensors[name] = a.reshape(shape)
    return version, meta, tensors


def read_gguf(path, act_groups_out=None):
    """act_groups_out: dict filled with {weight key: 32 or 256} for block-quantized matrices, the
    activation group an int8 engine (llama.cpp: Q8_0 / Q8_K) quantizes their input in."""
    types = {}
    _, meta, t = read_gguf_raw(path, types)
    arch = meta.get("general.architecture", "llama")
    if arch != "llama":
        raise ValueError(f"{path}: architecture {arch!r} is not llama")

    def key(k, default=None):
        v = meta.get(f"llama.{k}", default)
        if v is None:
            raise ValueError(f"{path}: missing metadata llama.{k}")
        return v

    d_model = int(key("embedding_length"))
    n_heads = int(key("attention.head_count"))
    d_head = d_model // n_heads
    embed = t["token_embd.weight"]
    cfg = dict(d_model=d_model, d_mlp=int(key("feed_forward_length")),
               n_layers=int(key("block_count")), n_heads=n_heads,
               n_kv_heads=int(key("attention.head_count_kv", n_heads)), d_head=d_head,
               d_vocab=embed.shape[0], n_ctx=int(key("context_length")),
               eps=float(key("attention.layer_norm_rms_epsilon")),
               rope_theta=float(key("rope.freq_base", 10000.0)),
               rope_dims=int(key("rope.dimension_count", d_head)))
    w = {"embed": embed, "final_norm": t["output_norm.weight"],
         "unembed": t.get("output.weight", embed)}
    names = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
             "wo": "attn_output", "ffn_norm": "ffn_norm", "gate": "ffn_gate", "up": "ffn_up",
             "down": "ffn_down"}
    for L in range(cfg["n_layers"]):
        for ours, theirs in names.items():
            w[f"{L}.{ours}"] = t[f"blk.{L}.{theirs}.weight"]
    if act_groups_out is not None:
        src = {"unembed": "output.weight" if "output.weight" in t else "token_embd.weight"}
        for L in range(cfg["n_layers"]):
            for ours, theirs in names.items():
                src[f"{L}.{ours}"] = f"blk.{L}.{theirs}.weight"
        for key, name in src.items():
            if types[name] in GGML_QUANT:
                act_groups_out[key] = GGML_QUANT[types[name]][1]  # 32, or 256 (K types)
    return cfg, w


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def layer_hook_names(L):
    p = f"blocks.{L}."
    return [p + "hook_resid_pre", p + "ln1.hook_scale", p + "ln1.hook_normalized",
            p + "attn.hook_q", p + "attn.hook_k", p + "attn.hook_v", p + "attn.hook_rot_q",
            p + "attn.hook_rot_k", p + "attn.hook_attn_scores", p + "attn.hook_pattern",
            p + "attn.hook_z", p + "hook_attn_out", p + "hook_resid_mid", p + "ln2.hook_scale",
            p + "ln2.hook_normalized", p + "mlp.hook_pre", p + "mlp.hook_pre_linear",
            p + "mlp.hook_post", p + "hook_mlp_out", p + "hook_resid_post"]


class LlamaRef:
    def __init__(self, cfg, weights, act_groups=None):
        self.cfg = cfg
        # Weight key -> group size for emulating int8 activation quantization (forward with
        # act_quant=True): what an engine computing on quantized blocks does to each input.
        self.act_groups = act_groups or {}
        self.w = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in weights.items()}
        c = cfg
        assert c["d_model"] == c["n_heads"] * c["d_head"], "d_model must be n_heads * d_head"
        assert c["n_heads"] % c["n_kv_heads"] == 0, "n_heads must be a multiple of n_kv_heads"
        assert c["rope_dims"] % 2 == 0 and c["rope_dims"] <= c["d_head"]

    @staticmethod
    def load(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        groups = {}
        cfg, w = read_gguf(path, groups) if magic == b"GGUF" else read_llama2c(path)
        return LlamaRef(cfg, w, groups)

    def hook_names(self):
        names = ["hook_embed"]
        for L in range(self.cfg["n_layers"]):
            names += layer_hook_names(L)
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]

    def _rope(self, x):
        """x: [pos, heads, d_head]. Rotates adjacent pairs (x[2i], x[2i+1]) for i < rope_dims/2
        by angle pos * theta^(-2i/rope_dims); dims past rope_dims are left untouched."""
        n_pos = x.shape[0]
        r = self.cfg["rope_dims"]
        i = torch.arange(r // 2, dtype=DTYPE)
        inv_freq = self.cfg["rope_theta"] ** (-2.0 * i / r)               # [r/2]
        ang = torch.arange(n_pos, dtype=DTYPE)[:, None] * inv_freq[None]   # [pos, r/2]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]  # [pos, 1, r/2]
        out = x.clone()
        x0, x1 = x[..., 0:r:2], x[..., 1:r:2]
        out[..., 0:r:2] = x0 * cos - x1 * sin
        out[..., 1:r:2] = x0 * sin + x1 * cos
        return out

    def _mm(self, x, key, act_quant):
        """x @ W[key]^T; with act_quant, the rows of x first rounded as an int8 engine does for
        a block-quantized W: per group of 32 or 256, codes round(x * 127 / amax) (ties to even)
        in [-127, 127] times amax / 127."""
        group = self.act_groups.get(key) if act_quant else None
        if group:
            xg = x.reshape(x.shape[0], -1, group)
            amax = xg.abs().amax(-1, keepdim=True)
            safe = torch.where(amax > 0, amax, torch.ones_like(amax))
            xg = torch.round(xg * (127.0 / safe)).clamp(-127, 127) * (safe / 127.0)
            x = torch.where(amax > 0, xg, torch.zeros_like(xg)).reshape(x.shape)
        return x @ self.w[key].T

    def _rmsnorm(self, x, hooks, prefix):
        scale = torch.sqrt((x * x).mean(-1, keepdim=True) + self.cfg["eps"])  # [pos, 1]
        normalized = x / scale
        hooks(prefix + ".hook_scale", scale)
        hooks(prefix + ".hook_normalized", normalized)
        return normalized

    def forward(self, tokens, want=None, last_only=False, act_quant=False, patch=None,
                kv_round=None):
        """tokens: list of ids. want: None (no hooks), a set of hook names, or "all".
        act_quant: emulate int8 activations for the block-quantized weights (see _mm).
        kv_round: fn(tensor) -> tensor applied to the rotated keys and the values that attention
        reads (a 16-bit KV cache emulated); the hooks see them unrounded, as glassbox's.
        patch: {resid hook name: fn(tensor) -> tensor} replaces that residual-stream value
        (hook_resid_pre/mid/post only), as a TransformerLens hook returning a new value.
        Returns (logits [pos or 1, d_vocab] float64, {hook name: tensor})."""
        c, w = self.cfg, self.w
        cache = {}

        def hooks(name, t):
            if want is not None and (want == "all" or name in want):
                cache[name] = t.clone()
            if patch and name in patch:
                return patch[name](t)
            return t

        toks = torch.tensor(list(tokens), dtype=torch.long)
        if toks.numel() == 0:
            raise ValueError("empty token sequence")
        if int(toks.min()) < 0 or int(toks.max()) >= c["d_vocab"]:
            raise ValueError("token id out of range")
        n_pos, H, KV, Dh = toks.numel(), c["n_heads"], c["n_kv_heads"], c["d_head"]
        group = H // KV
        x = w["embed"][toks]                                        # [pos, d_model]
        hooks("hook_embed", x)
        mask = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)
        for L in range(c["n_layers"]):
            p = f"blocks.{L}."
            x = hooks(p + "hook_resid_pre", x)
            xn = self._rmsnorm(x, hooks, p + "ln1") * w[f"{L}.attn_norm"]
            q = self._mm(xn, f"{L}.wq", act_quant).reshape(n_pos, H, Dh)
            k = self._mm(xn, f"{L}.wk", act_quant).reshape(n_pos, KV, Dh)
            v = self._mm(xn, f"{L}.wv", act_quant).reshape(n_pos, KV, Dh)
            hooks(p + "attn.hook_q", q)
            hooks(p + "attn.hook_k", k)
            hooks(p + "attn.hook_v", v)
            rq, rk = self._rope(q), self._rope(k)
            hooks(p + "attn.hook_rot_q", rq)
            hooks(p + "attn.hook_rot_k", rk)
            if kv_round is not None:
                rk, v = kv_round(rk), kv_round(v)
            kv_of_head = torch.arange(H) // group                   # query head h -> kv head
            rk_h = rk[:, kv_of_head, :]                              # [pos, H, Dh]
            v_h = v[:, kv_of_head, :]
            scores = torch.einsum("qhd,khd->hqk", rq, rk_h) / math.sqrt(Dh)
            scores = scores.masked_fill(mask, float("-inf"))         # [H, q_pos, k_pos]
            hooks(p + "attn.hook_attn_scores", scores)
            pattern = torch.softmax(scores, dim=-1)
            hooks(p + "attn.hook_pattern", pattern)
            z = torch.einsum("hqk,khd->qhd", pattern, v_h)           # [pos, H, Dh]
            hooks(p + "attn.hook_z", z)
            attn_out = self._mm(z.reshape(n_pos, H * Dh), f"{L}.wo", act_quant)
            hooks(p + "hook_attn_out", attn_out)
            x = x + attn_out
            x = hooks(p + "hook_resid_mid", x)
            xn2 = self._rmsnorm(x, hooks, p + "ln2") * w[f"{L}.ffn_norm"]
            pre = self._mm(xn2, f"{L}.gate", act_quant)              # [pos, d_mlp]
            pre_linear = self._mm(xn2, f"{L}.up", act_quant)
            hooks(p + "mlp.hook_pre", pre)
            hooks(p + "mlp.hook_pre_linear", pre_linear)
            post = pre * torch.sigmoid(pre) * pre_linear
            hooks(p + "mlp.hook_post", post)
            mlp_out = self._mm(post, f"{L}.down", act_quant)
            hooks(p + "hook_mlp_out", mlp_out)
            x = x + mlp_out
            x = hooks(p + "hook_resid_post", x)
        xf = self._rmsnorm(x, hooks, "ln_final") * w["final_norm"]
        if last_only:
            xf = xf[-1:]
        logits = self._mm(xf, "unembed", act_quant)                 # [pos, d_vocab]
        return logits, cache

    def generate(self, prompt, n):
        """Greedy: recompute the full forward each step, append argmax of the last position.
        Returns (generated ids, top-1 minus top-2 margin per step)."""
        seq = list(prompt)
        out, margins = [], []
        for _ in range(n):
            logits, _ = self.forward(seq, last_only=True)
            top2 = torch.topk(logits[-1], 2)
            nxt = int(top2.indices[0])
            margins.append(float(top2.values[0] - top2.values[1]))
            out.append(nxt)
            seq.append(nxt)
        return out, margins


# --------------------------------------------------------------------------------------------
# llama2.c vocabulary: reader, encoder (SentencePiece-BPE style greedy merges), decoder
# --------------------------------------------------------------------------------------------


class Llama2cVocab:
    """pieces: list of bytes (plain space, not U+2581); scores: list of float; usable: optional
    list of bools, False for pieces that the encoder must never produce (control/unknown)."""

    def __init__(self, pieces, scores, usable=None):
        self.pieces, self.scores = list(pieces), list(scores)
        self.index = {}
        for i, p in enumerate(self.pieces):
            if usable is None or usable[i]:
                self.index.setdefault(p, i)

    @staticmethod
    def from_file(path):
        """llama2.c tokenizer .bin: int32 max_token_length, then per id float32 score,
        int32 byte length, raw bytes."""
        with open(path, "rb") as f:
            data = f.read()
        pos = 4
        pieces, scores = [], []
        while pos < len(data):
            score, n = struct.unpack_from("<fi", data, pos)
            pos += 8
            pieces.append(data[pos:pos + n])
            scores.append(score)
            pos += n
        return Llama2cVocab(pieces, scores)

    @staticmethod
    def from_gguf_meta(meta):
        """SentencePiece vocabulary embedded in GGUF metadata (tokenizer.ggml.model == llama)."""
        if meta.get("tokenizer.ggml.model") != "llama":
            return None
        toks = meta["tokenizer.ggml.tokens"]
        scores = meta.get("tokenizer.ggml.scores", [0.0] * len(toks))
        types = meta.get("tokenizer.ggml.token_type", [1] * len(toks))
        pieces = [t.replace("\u2581", " ").encode("utf-8", errors="surrogateescape") for t in toks]
        usable = [ty in (1, 6) for ty in types]  # normal and byte pieces only
        return Llama2cVocab(pieces, scores, usable)

    def encode(self, text, bos=True):
        ids = []
        if text:
            text = " " + text  # dummy prefix, as SentencePiece
        for ch in text:
            b = ch.encode("utf-8")
            if b in self.index:
                ids.append(self.index[b])
            else:
                byte_ids = [self.index.get(b"<0x%02X>" % x) for x in b]
                if all(i is not None for i in byte_ids):
                    ids += [x + 3 for x in b]
                else:
                    ids.append(0)  # vocabulary without byte pieces: <unk>
        while True:
            best, best_i, best_id = None, -1, -1
            for i in range(len(ids) - 1):
                merged = self.pieces[ids[i]] + self.pieces[ids[i + 1]]
                j = self.index.get(merged)
                if j is not None and (best is None or self.scores[j] > best):
                    best, best_i, best_id = self.scores[j], i, j
            if best_i < 0:
                break
            ids[best_i:best_i + 2] = [best_id]
        return ([1] if bos else []) + ids

    def decode_piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            try:
                return bytes([int(p[3:5], 16)])
            except ValueError:
                pass
        return p

    def decode(self, ids):
        out = b""
        for prev, tok in zip(ids, ids[1:]):
            out += self.decode_piece(prev, tok)
        return out.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--text", help="text to encode with --vocab (BOS prepended)")
    ap.add_argument("--vocab", help="llama2.c tokenizer .bin (for --text and decoding)")
    ap.add_argument("--hooks", default="", help="comma-separated hook names, or 'all'")
    ap.add_argument("--out-dir")
    ap.add_argument("--generate", type=int, default=0, metavar="N")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # faster than 2 threads at these sizes
    model = LlamaRef.load(a.model)
    vocab = Llama2cVocab.from_file(a.vocab) if a.vocab else None
    if a.tokens:
        tokens = [int(t) for t in a.tokens.split(",") if t.strip()]
    elif a.text is not None and vocab:
        tokens = vocab.encode(a.text)
    else:
        ap.error("need --tokens, or --text with --vocab")
    want = "all" if a.hooks == "all" else {h for h in a.hooks.split(",") if h}
    if want != "all":
        unknown = want - set(model.hook_names())
        if unknown:
            ap.error(f"unknown hooks: {sorted(unknown)}")
    logits, cache = model.forward(tokens, want or None)
    result = {"config": model.cfg, "tokens": tokens,
              "last_argmax": int(torch.argmax(logits[-1]))}
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        np.save(os.path.join(a.out_dir, "logits.npy"), logits.numpy())
        for name, t in cache.items():
            np.save(os.path.join(a.out_dir, name + ".npy"), t.numpy())
        result["files"] = ["logits.npy"] + [n + ".npy" for n in cache]
    if a.generate:
        ids, margins = model.generate(tokens, a.generate)
        result["generated_ids"] = ids
        result["margins"] = margins
        if vocab:
            result["text"] = vocab.decode(tokens + ids)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
