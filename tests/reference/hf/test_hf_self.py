#!/usr/bin/python3
"""Self-checks of the HF reference (hf_ref.py) and of the checkpoints make_hf_models.py writes.

  (i)   Llama: an independent minimal implementation -- q/k weights permuted from HF's rotate_half
        layout to Meta's interleaved layout, RoPE as complex multiplication (torch.polar), GQA by
        repeat_interleave, Llama 3 frequencies by a vectorised torch.where formulation -- agrees
        with hf_ref to 1e-10 on logits and on every hook it can express (rot_q/rot_k after
        un-permuting), for every Llama model including the sharded and llama3-rope ones.
  (ii)  GPT-2: an independent minimal implementation on torch's own layer_norm and
        gelu(approximate="tanh") agrees to 1e-10; causality (a prefix's logits are the first rows
        of the full run); LayerNorm statistics recovered from the hooks; permuting heads
        consistently in c_attn (q, k, v columns and biases) and c_proj rows leaves logits
        unchanged and permutes hook_z; hook_pos_embed / resid_pre relation.
  (iii) Llama 3 rope scaling: inv_freq at the three regimes against numbers computed by hand,
        continuity at both wavelength boundaries, and the llama3 model uses the scaled table.
  (iv)  safetensors: every file is re-read bit-exactly (raw bytes and decoded values against the
        generator's float32 arrays; BF16/F16 against torch's own rounding), header padded to 8,
        buffer tiled without holes, index total_size / weight_map consistent, generation
        deterministic, and the reader rejects corrupted files.
  (v)   Qwen2, Qwen3, Mistral, Phi-3, Gemma 2, Gemma 3: selfcheck_decoders.py -- an independent
        second forward, attention by explicit loops, hook relations, every distinguishing feature
        changing the logits by > 1e-3, and check_hf.py's sequences free of near-ties.
Plus, for every model: resid_post[L] == resid_pre[L+1], pattern rows sum to 1, scores -inf exactly
at the masked positions (causal and sliding window), the hook-name list is complete, unique and in
order, and the model's logits have no float32-scale near-ties.

usage: test_hf_self.py [--models DIR]   (default: generate into a temporary directory)
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_ref  # noqa: E402
import make_hf_models as mk  # noqa: E402
import selfcheck_decoders  # noqa: E402

FAILS = []


def check(ok, msg):
    print(("PASS " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def maxdiff(a, b):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    fin = np.isfinite(b)
    if not np.array_equal(fin, np.isfinite(a)):
        return float("inf")
    return float(np.abs(a[fin] - b[fin]).max()) if fin.any() else 0.0


def seq_for(model, n=160, seed=7):
    rng = np.random.RandomState(seed)
    n = min(n, model.cfg["n_ctx"])
    return [1] + [int(t) for t in rng.randint(0, model.cfg["d_vocab"], n - 1)]


# --------------------------------------------------------------------------------------------
# (i) independent Llama
# --------------------------------------------------------------------------------------------


def hf_to_interleaved(w, n_heads):
    """Rows of each head from HF's [first halves | second halves] order to (2i, 2i+1) pairs."""
    out_dim, in_dim = w.shape
    dh = out_dim // n_heads
    return w.view(n_heads, 2, dh // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def interleaved_to_hf_vec(x):
    """x [..., d_head] interleaved -> HF order."""
    dh = x.shape[-1]
    return x.reshape(*x.shape[:-1], dh // 2, 2).transpose(-1, -2).reshape(x.shape)


def independent_inv_freq(config):
    dh = config["hidden_size"] // config["num_attention_heads"]
    inv = 1.0 / (config.get("rope_theta", 10000.0) **
                 (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    rs = config.get("rope_scaling")
    if rs:
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = torch.where(medium, mid, scaled)
    return inv


def independent_llama(config, t, tokens):
    """Meta-style forward (interleaved pairs, complex RoPE). Returns logits and a few hooks."""
    T = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in t.items()}
    H, KV = config["num_attention_heads"], config["num_key_value_heads"]
    d = config["hidden_size"]
    dh, eps = d // H, config["rms_norm_eps"]
    n = len(tokens)
    freqs = torch.polar(torch.ones(n, dh // 2, dtype=torch.float64),
                        torch.outer(torch.arange(n, dtype=torch.float64),
                                    independent_inv_freq(config)))     # [pos, dh/2] complex

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rope(x):  # [pos, heads, dh] interleaved
        xc = torch.view_as_complex(x.reshape(n, x.shape[1], dh // 2, 2).contiguous())
        return torch.view_as_real(xc * freqs[:, None, :]).reshape(x.shape)

    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    out = {}
    h = T["model.embed_tokens.weight"][torch.tensor(tokens)]
    for L in range(config["num_hidden_layers"]):
        p = f"model.layers.{L}."
        x = rms(h, T[p + "input_layernorm.weight"])
        wq = hf_to_interleaved(T[p + "self_attn.q_proj.weight"], H)
        wk = hf_to_interleaved(T[p + "self_attn.k_proj.weight"], KV)
        q = rope((x @ wq.T).view(n, H, dh))
        k = rope((x @ wk.T).view(n, KV, dh))
        v = (x @ T[p + "self_attn.v_proj.weight"].T).view(n, KV, dh)
        out[f"blocks.{L}.attn.hook_rot_q"] = interleaved_to_hf_vec(q)
        out[f"blocks.{L}.attn.hook_rot_k"] = interleaved_to_hf_vec(k)
        k = torch.repeat_interleave(k, H // KV, dim=1)
        v = torch.repeat_interleave(v, H // KV, dim=1)
        s = q.transpose(0, 1) @ k.permute(1, 2, 0) / math.sqrt(dh) + mask   # [H, q, k]
        out[f"blocks.{L}.attn.hook_attn_scores"] = s
        a = torch.softmax(s, -1) @ v.transpose(0, 1)                       # [H, q, dh]
        out[f"blocks.{L}.attn.hook_z"] = a.transpose(0, 1)
        h = h + a.transpose(0, 1).reshape(n, d) @ T[p + "self_attn.o_proj.weight"].T
        out[f"blocks.{L}.hook_resid_mid"] = h
        x = rms(h, T[p + "post_attention_layernorm.weight"])
        g = x @ T[p + "mlp.gate_proj.weight"].T
        h = h + (F.silu(g) * (x @ T[p + "mlp.up_proj.weight"].T)) @ T[p + "mlp.down_proj.weight"].T
        out[f"blocks.{L}.hook_resid_post"] = h
    h = rms(h, T["model.norm.weight"])
    lm = T["lm_head.weight"] if "lm_head.weight" in T else T["model.embed_tokens.weight"]
    return h @ lm.T, out


def check_llama_independent(name, mdir):
    config, t = hf_ref.read_model_dir(mdir)
    m = hf_ref.HFLlamaRef(config, t)
    toks = seq_for(m)
    logits, cache = m.forward(toks, "all")
    logits2, out = independent_llama(config, t, toks)
    worst = max([maxdiff(logits, logits2)] + [maxdiff(cache[k], v) for k, v in out.items()])
    check(worst < 1e-10, f"(i) {name}: hf_ref == independent complex-RoPE Meta-layout forward on "
          f"{len(toks)} tokens: max diff {worst:.2e} over logits and {len(out)} hooks")
    # hook_q is in HF order: head h is rows h*dh..(h+1)*dh of q_proj, no permutation
    xn = cache["blocks.0.ln1.hook_normalized"] * m.w["model.layers.0.input_layernorm.weight"]
    q = (xn @ m.w["model.layers.0.self_attn.q_proj.weight"].T).view(len(toks), m.cfg["n_heads"], -1)
    check(maxdiff(cache["blocks.0.attn.hook_q"], q) == 0.0,
          f"(i) {name}: hook_q is q_proj output in HF row order")
    # the interleaved formula on HF-layout q differs: the layouts really matter on this model
    m.rope_layout = "interleaved"
    _, bad = m.forward(toks, {"blocks.0.attn.hook_rot_q"})
    m.rope_layout = "half"
    d = maxdiff(bad["blocks.0.attn.hook_rot_q"], cache["blocks.0.attn.hook_rot_q"])
    check(d > 0.1, f"(i) {name}: the wrong (interleaved) pairing changes rot_q by {d:.2f}")
    return m, toks, logits, cache


# --------------------------------------------------------------------------------------------
# (ii) GPT-2
# --------------------------------------------------------------------------------------------


def independent_gpt2(config, t, tokens):
    T = {(k[12:] if k.startswith("transformer.") else k): torch.from_numpy(
        np.array(v, dtype=np.float64)) for k, v in t.items()}
    d, H = config["n_embd"], config["n_head"]
    dh, eps, n = d // H, config["layer_norm_epsilon"], len(tokens)
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    h = T["wte.weight"][torch.tensor(tokens)] + T["wpe.weight"][torch.arange(n)]
    for L in range(config["n_layer"]):
        p = f"h.{L}."
        x = F.layer_norm(h, (d,), T[p + "ln_1.weight"], T[p + "ln_1.bias"], eps)
        qkv = torch.addmm(T[p + "attn.c_attn.bias"], x, T[p + "attn.c_attn.weight"])
        q, k, v = (u.view(n, H, dh).transpose(0, 1) for u in qkv.split(d, dim=1))
        w = (q @ k.transpose(-1, -2)) / float(dh) ** 0.5
        w = torch.where(causal, w, torch.tensor(float("-inf"), dtype=torch.float64))
        a = (torch.softmax(w, -1) @ v).transpose(0, 1).reshape(n, d)
        h = h + torch.addmm(T[p + "attn.c_proj.bias"], a, T[p + "attn.c_proj.weight"])
        x = F.layer_norm(h, (d,), T[p + "ln_2.weight"], T[p + "ln_2.bias"], eps)
        x = F.gelu(torch.addmm(T[p + "mlp.c_fc.bias"], x, T[p + "mlp.c_fc.weight"]),
                   approximate="tanh")
        h = h + torch.addmm(T[p + "mlp.c_proj.bias"], x, T[p + "mlp.c_proj.weight"])
    h = F.layer_norm(h, (d,), T["ln_f.weight"], T["ln_f.bias"], eps)
    return h @ T["wte.weight"].T


def check_gpt2(name, mdir):
    config, t = hf_ref.read_model_dir(mdir)
    m = hf_ref.GPT2Ref(config, t)
    toks = seq_for(m)
    n = len(toks)
    logits, cache = m.forward(toks, "all")
    d = maxdiff(logits, independent_gpt2(config, t, toks))
    check(d < 1e-10, f"(ii) {name}: hf_ref == independent GPT-2 (F.layer_norm, F.gelu tanh, addmm)"
          f" on {n} tokens: logits max diff {d:.2e}")
    # causality
    pre, _ = m.forward(toks[:37])
    d = maxdiff(pre, logits[:37])
    check(d < 1e-12, f"(ii) {name}: causal: logits of a 37-token prefix == first rows ({d:.1e})")
    # embeddings
    d = maxdiff(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    check(d == 0.0 and tuple(cache["hook_pos_embed"].shape) == (n, m.cfg["d_model"]),
          f"(ii) {name}: resid_pre[0] == hook_embed + hook_pos_embed [pos, d_model]")
    # LayerNorm statistics: y = (normalized - b) / w is the standardised input
    worst = 0.0
    for L in range(m.cfg["n_layers"]):
        for ln, src, wn in (("ln1", "hook_resid_pre", "ln_1"), ("ln2", "hook_resid_mid", "ln_2")):
            p = f"blocks.{L}."
            y = (cache[p + ln + ".hook_normalized"] - m.w[f"h.{L}.{wn}.bias"]) / \
                m.w[f"h.{L}.{wn}.weight"]
            xin = cache[p + src]
            var = xin.var(-1, unbiased=False, keepdim=True)
            scale = cache[p + ln + ".hook_scale"]
            worst = max(worst, float(y.mean(-1).abs().max()),
                        maxdiff(scale, torch.sqrt(var + m.cfg["eps"])),
                        maxdiff((y * y).mean(-1, keepdim=True), var / (var + m.cfg["eps"])),
                        maxdiff(y * scale, xin - xin.mean(-1, keepdim=True)))
    check(worst < 1e-10 and tuple(scale.shape) == (n, 1),
          f"(ii) {name}: LayerNorm hooks: scale [pos,1] = sqrt(var+eps), normalized after w,b "
          f"(max deviation {worst:.1e})")
    # head permutation invariance
    perm = torch.from_numpy(np.random.RandomState(3).permutation(m.cfg["n_heads"]))
    d_, dh = m.cfg["d_model"], m.cfg["d_head"]
    cols = torch.cat([(perm[:, None] * dh + torch.arange(dh)).reshape(-1) + part * d_
                      for part in range(3)])
    rows = (perm[:, None] * dh + torch.arange(dh)).reshape(-1)
    t2 = dict(t)
    pre_ = "transformer." if "transformer.wte.weight" in t else ""
    for L in range(m.cfg["n_layers"]):
        p = f"{pre_}h.{L}.attn."
        t2[p + "c_attn.weight"] = t[p + "c_attn.weight"][:, cols.numpy()]
        t2[p + "c_attn.bias"] = t[p + "c_attn.bias"][cols.numpy()]
        t2[p + "c_proj.weight"] = t[p + "c_proj.weight"][rows.numpy(), :]
    m2 = hf_ref.GPT2Ref(config, t2)
    logits2, cache2 = m2.forward(toks, {"blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"})
    d1 = maxdiff(logits2, logits)
    d2 = maxdiff(cache2["blocks.0.attn.hook_z"], cache["blocks.0.attn.hook_z"][:, perm])
    d3 = maxdiff(cache2["blocks.0.attn.hook_pattern"], cache["blocks.0.attn.hook_pattern"][perm])
    check(d1 < 1e-11 and d2 < 1e-12 and d3 < 1e-12 and not torch.equal(perm, torch.sort(perm)[0]),
          f"(ii) {name}: heads permuted by {perm.tolist()} in c_attn/c_proj: logits change "
          f"{d1:.1e}, hook_z/pattern permuted ({max(d2, d3):.1e})")
    return m, toks, logits, cache


# --------------------------------------------------------------------------------------------
# (iii) Llama 3 rope scaling
# --------------------------------------------------------------------------------------------


def check_llama3_rope(mdir):
    # Hand computation, theta 500000, d_head 16, factor 8, low 1, high 4, original context 64:
    #   thresholds: wavelen < 64/4 = 16 kept; wavelen > 64/1 = 64 divided by 8.
    #   i=0: f = 1, wavelen 2 pi = 6.283 < 16                          -> 1
    #   i=1: f = 500000^(-1/8) = exp(-13.1223634/8) = 0.1939227, wavelen 32.4005 (medium):
    #        smooth = (64/32.4005 - 1)/3 = 0.325094; f' = f/8 + smooth * f * 7/8
    #        = 0.0242403 + 0.0551627 = 0.0794030
    #   i=2: f = 500000^(-1/4) = 0.0376060, wavelen 167.08 > 64        -> f/8 = 0.00470075
    #   i=7: f = 500000^(-7/8) = 1.03134e-5                             -> 1.28917e-6
    cfg = dict(d_head=16, rope_theta=500000.0, rope_scaling=mk.LLAMA3_ROPE)
    inv = hf_ref.HFLlamaRef.rope_inv_freq(cfg)
    hand = {0: 1.0, 1: 0.0794030, 2: 0.00470075, 7: 1.28917e-6}
    worst = max(abs(inv[i] - v) / v for i, v in hand.items())
    check(worst < 2e-5, f"(iii) llama3 inv_freq (kept / smoothed / divided) vs hand-computed: "
          f"max rel err {worst:.1e}: {[f'{inv[i]:.7g}' for i in hand]}")
    # continuity at the two wavelength boundaries (16 and 64)
    gaps = []
    for wl in (16.0, 64.0):
        f = 2 * math.pi / wl
        lo, mid, hi = hf_ref.llama3_inv_freq([f * (1 + 1e-9), f, f * (1 - 1e-9)], 8.0, 1.0, 4.0,
                                             64.0)
        gaps.append(max(abs(lo - mid), abs(hi - mid)) / f)
    check(max(gaps) < 1e-8, f"(iii) llama3 scaling continuous at wavelen 16 and 64 "
          f"(rel jumps {gaps[0]:.1e}, {gaps[1]:.1e})")
    f = 2 * math.pi / 32.0  # smooth = (64/32 - 1)/3 = 1/3 -> f' = (2/3) f/8 + (1/3) f = f*5/12
    check(abs(hf_ref.llama3_inv_freq([f], 8.0, 1.0, 4.0, 64.0)[0] - f * 5 / 12) < 1e-15,
          "(iii) llama3 smooth regime at wavelen 32: f * 5/12")
    config, t = hf_ref.read_model_dir(mdir)
    m = hf_ref.HFLlamaRef(config, t)
    d = maxdiff(m.inv_freq, torch.tensor(inv, dtype=torch.float64))
    plain = hf_ref.HFLlamaRef.rope_inv_freq(dict(cfg, rope_scaling=None))
    check(d == 0.0 and abs(float(m.inv_freq[2]) - plain[2] / 8) < 1e-15,
          "(iii) llama_untied_llama3rope uses the scaled frequencies (i=2: plain/8)")


# --------------------------------------------------------------------------------------------
# (iv) safetensors
# --------------------------------------------------------------------------------------------


def check_files(models_dir):
    for name, spec in mk.MODELS.items():
        mdir = os.path.join(models_dir, name)
        src = dict(mk.model_tensors(spec))
        files = sorted(f for f in os.listdir(mdir) if f.endswith(".safetensors"))
        seen, problems = {}, []
        for fn in files:
            path = os.path.join(mdir, fn)
            with open(path, "rb") as fh:
                (hlen,) = struct.unpack("<Q", fh.read(8))
            if hlen % 8:
                problems.append(f"{fn}: header length {hlen} not a multiple of 8")
            header, raw = hf_ref.read_safetensors_raw(path)
            decoded, meta = hf_ref.read_safetensors(path)
            if meta != {"format": "pt"}:
                problems.append(f"{fn}: metadata {meta}")
            for tn, b in raw.items():
                a = src[tn]
                dt = header[tn]["dtype"]
                if b != mk.encode(a, dt):
                    problems.append(f"{tn}: bytes differ")
                ta = torch.from_numpy(a)
                want = {"F32": ta, "F16": ta.half().float(), "BF16": ta.bfloat16().float()}[dt]
                if not np.array_equal(decoded[tn], want.numpy()) or \
                        list(decoded[tn].shape) != list(a.shape):
                    problems.append(f"{tn}: decoded {dt} values differ from torch's rounding")
                seen[tn] = fn
        if set(seen) != set(src):
            problems.append(f"tensor set differs: {sorted(set(src) ^ set(seen))[:4]}")
        index = os.path.join(mdir, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as fh:
                idx = json.load(fh)
            total = sum(a.nbytes for a in src.values())
            if idx["weight_map"] != seen or idx["metadata"]["total_size"] != total:
                problems.append("index weight_map/total_size inconsistent")
            straddle = {k.split(".")[2] for k, f in seen.items() if k.startswith("model.layers")
                        and f == files[0]} & {k.split(".")[2] for k, f in seen.items()
                                              if k.startswith("model.layers") and f == files[1]}
            if not straddle:
                problems.append("no layer straddles the shard boundary")
        check(not problems, f"(iv) {name}: {len(files)} file(s), {len(seen)} tensors re-read "
              f"bit-exactly ({spec['dtype']})" + ("; " + "; ".join(problems[:4]) if problems
                                                    else ""))
    # deterministic: a second generation is byte-identical
    with tempfile.TemporaryDirectory() as tmp:
        for name in mk.MODELS:
            mk.write_model(tmp, name)
        diff = [f"{n}/{f}" for n in mk.MODELS for f in os.listdir(os.path.join(tmp, n))
                if open(os.path.join(tmp, n, f), "rb").read() !=
                open(os.path.join(models_dir, n, f), "rb").read()]
    check(not diff, f"(iv) regenerating gives byte-identical files{': ' + str(diff) if diff else ''}")
    # corrupted files are rejected
    good = open(os.path.join(models_dir, "gpt2", "model.safetensors"), "rb").read()
    (hlen,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + hlen])
    k0 = "transformer.wte.weight"

    def with_header(h):
        js = json.dumps(h).encode()
        js += b" " * (-len(js) % 8)
        return struct.pack("<Q", len(js)) + js + good[8 + hlen:]

    bad_cases = {
        "truncated buffer": good[:-4],
        "header length past EOF": struct.pack("<Q", len(good)) + good[8:],
        "short file": good[:5],
        "bad JSON": struct.pack("<Q", 8) + b"{nope!!}" + good[8 + hlen:],
        "unknown dtype": with_header({**header, k0: {**header[k0], "dtype": "Q4"}}),
        "size/shape mismatch": with_header({**header, k0: {**header[k0],
                                                           "shape": [header[k0]["shape"][0], 1]}}),
        "overlap": with_header({**header, k0: {**header[k0], "data_offsets": [
            header[k0]["data_offsets"][0] + 4, header[k0]["data_offsets"][1] + 4]}}),
    }
    rejected = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, blob in bad_cases.items():
            p = os.path.join(tmp, "bad.safetensors")
            with open(p, "wb") as fh:
                fh.write(blob)
            try:
                hf_ref.read_safetensors(p)
            except (ValueError, struct.error):
                rejected.append(what)
    check(len(rejected) == len(bad_cases), f"(iv) reader rejects {len(rejected)}/{len(bad_cases)} "
          f"corrupted files ({', '.join(sorted(set(bad_cases) - set(rejected))) or 'all'})")


# --------------------------------------------------------------------------------------------


def expected_hook_names(m):
    """The README's per-layer order, rebuilt here from the architecture's features."""
    if m.arch == "gpt2":
        per_layer = hf_ref.gpt2_layer_hook_names
        head, tail = ["hook_embed", "hook_pos_embed"], []
    else:
        def per_layer(L):
            p = f"blocks.{L}."
            qk = ["attn.q_norm.hook_scale", "attn.q_norm.hook_normalized",
                  "attn.k_norm.hook_scale", "attn.k_norm.hook_normalized"] if m.qk_norm else []
            post1 = ["ln1_post.hook_scale", "ln1_post.hook_normalized"] if m.sandwich else []
            post2 = ["ln2_post.hook_scale", "ln2_post.hook_normalized"] if m.sandwich else []
            return [p + x for x in ["hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized",
                                    "attn.hook_q", "attn.hook_k", "attn.hook_v"] + qk +
                    ["attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_attn_scores",
                     "attn.hook_pattern", "attn.hook_z"] + post1 +
                    ["hook_attn_out", "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized",
                     "mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post"] + post2 +
                    ["hook_mlp_out", "hook_resid_post"]]
        head = ["hook_embed"]
    tail = ["ln_final.hook_scale", "ln_final.hook_normalized"]
    return head + [h for L in range(m.cfg["n_layers"]) for h in per_layer(L)] + tail


def check_common(name, m, toks, logits, cache):
    names = m.hook_names()
    ok = len(names) == len(set(names)) == len(cache) and set(names) == set(cache)
    check(ok and names == expected_hook_names(m),
          f"{name}: {len(names)} hook names, unique, in order, all produced by forward('all')")
    d = max(maxdiff(cache[f"blocks.{L}.hook_resid_post"], cache[f"blocks.{L + 1}.hook_resid_pre"])
            for L in range(m.cfg["n_layers"] - 1))
    rs = max(maxdiff(cache[f"blocks.{L}.attn.hook_pattern"].sum(-1),
                     torch.ones(m.cfg["n_heads"], len(toks), dtype=torch.float64))
             for L in range(m.cfg["n_layers"]))
    windows = m.cfg.get("windows") or [None] * m.cfg["n_layers"]
    n = len(toks)
    exact = True
    for L, W in enumerate(windows):  # masked: above the diagonal, or W or more keys back
        masked = torch.tensor([[j > i or (W is not None and i - j >= W) for j in range(n)]
                               for i in range(n)])
        s = cache[f"blocks.{L}.attn.hook_attn_scores"]
        exact = exact and bool(torch.isneginf(s[:, masked]).all()) and bool(
            torch.isfinite(s[:, ~masked]).all())
    wtxt = "" if all(w is None for w in windows) else f" and outside windows {windows}"
    check(d == 0.0 and rs < 1e-12 and exact, f"{name}: resid_post[L] == resid_pre[L+1], pattern "
          f"rows sum to 1 ({rs:.1e}), scores -inf exactly above the diagonal{wtxt}")
    top2 = torch.topk(logits, 2, dim=-1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    check(margin > 1e-4, f"{name}: min top-1/top-2 logit margin over {len(toks)} positions "
          f"{margin:.2e} (max |logit| {float(logits.abs().max()):.1f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", help="directory written by make_hf_models.py (default: a temp dir)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory()
    models = a.models
    if not models or not all(os.path.isdir(os.path.join(models, n)) for n in mk.MODELS):
        models = models or tmp.name
        for n in mk.MODELS:
            mk.write_model(models, n)
    summary = {}
    for name, spec in mk.MODELS.items():
        mdir = os.path.join(models, name)
        if spec["arch"] == "llama":
            res = check_llama_independent(name, mdir)
        elif spec["arch"] == "gpt2":
            res = check_gpt2(name, mdir)
        else:
            res, summary[name] = selfcheck_decoders.check_decoder(name, mdir, check)
        check_common(name, *res)
    x = torch.linspace(-8, 8, 2001, dtype=torch.float64)
    d = maxdiff(hf_ref.gelu_new(x), F.gelu(x, approximate="tanh"))
    check(d < 1e-14, f"(ii) gelu_new == torch gelu(approximate='tanh') on [-8, 8]: {d:.1e}")
    check_llama3_rope(os.path.join(models, "llama_untied_llama3rope"))
    check_files(models)
    for name, v in summary.items():
        print(f"summary {name}: min top-1/top-2 margin {v['margin']:.2e}, max |attn score| "
              f"{v['max_score']:.2f}")
    print(f"test_hf_self: {len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
