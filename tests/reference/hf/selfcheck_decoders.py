#!/usr/bin/python3
"""Self-checks of hf_ref.py's Qwen2 / Qwen3 / Mistral / Phi-3 / Gemma 2 / Gemma 3 classes (run by
test_hf_self.py, section (v)):

  (v-a) an independent second forward written from the configs, differently: RoPE as complex
        multiplication on activations permuted to Meta's interleaved layout (q/k norm weights and
        biases permuted with them; only the first r dims for Phi-3's partial rotary), masks from
        explicit loops over the keys each query sees, soft-capping as cap (2 sigmoid(2x/cap) - 1),
        Gemma's (1 + w) folded into the norm weights and sqrt(d_model) into a copy of the
        embedding matrix (as TransformerLens does), Phi-3's fused projections applied whole and
        their outputs split, layer kinds from the config's own rule (Gemma 2 even layers, Gemma 3
        (i + 1) % sliding_window_pattern), GQA by repeat_interleave, torch's F.silu / F.gelu;
        must equal hf_ref within 1e-10 on logits and hook_embed, rot_q/rot_k, attn_scores, z,
        attn_out, resid_mid, mlp_out, resid_post of every layer;
  (v-b) attention recomputed entry by entry in Python floats (math.tanh, math.exp) on a short
        sequence longer than the window, from hf_ref's rot_q / rot_k / v hooks: scores (scale,
        soft-cap, the window's -inf), pattern and z;
  (v-c) hook relations stated in the README (bias added, per-head norm scale x normalized == q,
        RoPE identity at position 0 and on Phi-3's pass-through dims, Gemma's post-norm hooks,
        hook_embed scaled, fused rows split in order, soft-capped ranges);
  (v-d) each distinguishing feature matters: turning it off (or getting it subtly wrong) changes
        the logits on check_hf.py's 160-token sequence by more than 1e-3, so an engine that
        ignores it fails check_hf.py;
  (v-e) check_hf.py's own sequences (BOS + RandomState(1234), and greedy 64 from 8 and from 160
        tokens): float64 top-1/top-2 margins >= 1e-3, max |attention score| reported.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import hf_ref

def _maxdiff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    fin = np.isfinite(b)
    if a.shape != b.shape or not np.array_equal(fin, np.isfinite(a)):
        return float("inf")
    return float(np.abs(a[fin] - b[fin]).max()) if fin.any() else 0.0


def check_sequence(config, d_vocab, n_ctx, n=160, seed=1234):
    """check_hf.py's random sequence: BOS (config's bos_token_id, else 1) + RandomState ids."""
    bos = config.get("bos_token_id")
    rng = np.random.RandomState(seed)
    return [1 if bos is None else int(bos)] + [int(t) for t in
                                               rng.randint(0, d_vocab, min(n, n_ctx) - 1)]


# --------------------------------------------------------------------------------------------
# (v-a) the independent forward
# --------------------------------------------------------------------------------------------


def layer_kinds(c):
    """True for a sliding-window layer, from each architecture's own rule."""
    n, mt = c["num_hidden_layers"], c["model_type"]
    if mt == "gemma2":
        return [i % 2 == 0 for i in range(n)]
    if mt == "gemma3_text":
        kinds = [(i + 1) % c["sliding_window_pattern"] != 0 for i in range(n)]
        assert kinds == [t == "sliding_attention" for t in c["layer_types"]]
        return kinds
    if mt in ("mistral", "phi3"):
        return [c.get("sliding_window") is not None] * n
    assert not c.get("use_sliding_window")  # qwen2 / qwen3 files: the window is switched off
    return [False] * n


def loop_mask(n, window):
    """Additive mask from the list of keys each query sees: max(0, i - W + 1) .. i."""
    rows = []
    for i in range(n):
        first = 0 if window is None else max(0, i - window + 1)
        rows.append([0.0 if first <= j <= i else float("-inf") for j in range(n)])
    return torch.tensor(rows, dtype=torch.float64)


def independent_decoder(config, t, tokens):
    c = config
    mt = c["model_type"]
    gemma = mt.startswith("gemma")
    T = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in t.items()}
    H, KV, d = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"]
    dh = c.get("head_dim") or d // H
    r = int(dh * c.get("partial_rotary_factor", 1.0))
    n, eps = len(tokens), c["rms_norm_eps"]
    # interleaved order of one head: (x[0], x[r/2]), (x[1], x[r/2 + 1]), ..., then dims r..dh
    perm = [i for p in range(r // 2) for i in (p, p + r // 2)] + list(range(r, dh))
    unperm = list(np.argsort(perm))

    def freqs(theta, factor=1.0):
        inv = 1.0 / (theta ** (torch.arange(0, r, 2, dtype=torch.float64) / r)) / factor
        return torch.polar(torch.ones(n, r // 2, dtype=torch.float64),
                           torch.outer(torch.arange(n, dtype=torch.float64), inv))

    def rope(x, fr):  # x [pos, heads, dh], interleaved in the first r dims
        xc = torch.view_as_complex(x[..., :r].reshape(n, x.shape[1], r // 2, 2).contiguous())
        rot = torch.view_as_real(xc * fr[:, None, :]).reshape(n, x.shape[1], r)
        return torch.cat([rot, x[..., r:]], dim=-1)

    def w_(name):  # Gemma's (1 + w) folded into the weight
        return T[name] + 1.0 if gemma else T[name]

    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * wt

    def cap(x, cp):  # tanh(x) = 2 sigmoid(2x) - 1
        return x if cp is None else cp * (2.0 * torch.sigmoid(2.0 * x / cp) - 1.0)

    rs = c.get("rope_scaling") or {}
    global_fr = freqs(c["rope_theta"], float(rs["factor"]) if rs.get("rope_type") == "linear"
                      else 1.0)
    local_fr = freqs(c["rope_local_base_freq"]) if mt == "gemma3_text" else global_fr
    kinds = layer_kinds(c)
    masks = {False: loop_mask(n, None), True: loop_mask(n, c.get("sliding_window"))}
    scale = c["query_pre_attn_scalar"] ** -0.5 if gemma else dh ** -0.5
    E = T["model.embed_tokens.weight"]
    E_in = E * math.sqrt(d) if gemma else E  # TransformerLens folds the scale into W_E
    out = {}
    h = E_in[torch.tensor(tokens)]
    out["hook_embed"] = h
    for L in range(c["num_hidden_layers"]):
        p, b = f"model.layers.{L}.", f"blocks.{L}."
        x = rms(h, w_(p + "input_layernorm.weight"))
        if mt == "phi3":
            q, k, v = torch.split(x @ T[p + "self_attn.qkv_proj.weight"].T,
                                  [H * dh, KV * dh, KV * dh], dim=-1)
        else:
            q, k, v = (x @ T[p + f"self_attn.{m}_proj.weight"].T for m in "qkv")
            if p + "self_attn.q_proj.bias" in T:
                q, k, v = (u + T[p + f"self_attn.{m}_proj.bias"] for u, m in zip((q, k, v), "qkv"))
        q = q.reshape(n, H, dh)[..., perm]
        k = k.reshape(n, KV, dh)[..., perm]
        v = v.reshape(n, KV, dh)
        if p + "self_attn.q_norm.weight" in T:
            q = rms(q, w_(p + "self_attn.q_norm.weight")[perm])
            k = rms(k, w_(p + "self_attn.k_norm.weight")[perm])
        fr = local_fr if kinds[L] else global_fr
        q, k = rope(q, fr), rope(k, fr)
        out[b + "attn.hook_rot_q"] = q[..., unperm]
        out[b + "attn.hook_rot_k"] = k[..., unperm]
        k = torch.repeat_interleave(k, H // KV, dim=1)
        v = torch.repeat_interleave(v, H // KV, dim=1)
        s = cap(torch.einsum("ihd,jhd->hij", q, k) * scale, c.get("attn_logit_softcapping"))
        s = s + masks[kinds[L]]
        out[b + "attn.hook_attn_scores"] = s
        z = torch.einsum("hij,jhd->ihd", torch.softmax(s, -1), v)
        out[b + "attn.hook_z"] = z
        a = z.reshape(n, H * dh) @ T[p + "self_attn.o_proj.weight"].T
        if gemma:
            a = rms(a, w_(p + "post_attention_layernorm.weight"))
        out[b + "hook_attn_out"] = a
        h = h + a
        out[b + "hook_resid_mid"] = h
        x = rms(h, w_(p + ("pre_feedforward_layernorm.weight" if gemma else
                           "post_attention_layernorm.weight")))
        if mt == "phi3":
            g, u = (x @ T[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        else:
            g, u = x @ T[p + "mlp.gate_proj.weight"].T, x @ T[p + "mlp.up_proj.weight"].T
        y = (F.gelu(g, approximate="tanh") if gemma else F.silu(g)) * u
        y = y @ T[p + "mlp.down_proj.weight"].T
        if gemma:
            y = rms(y, w_(p + "post_feedforward_layernorm.weight"))
        out[b + "hook_mlp_out"] = y
        h = h + y
        out[b + "hook_resid_post"] = h
    h = rms(h, w_("model.norm.weight"))
    logits = h @ (T["lm_head.weight"] if "lm_head.weight" in T else E).T
    return cap(logits, c.get("final_logit_softcapping")), out


# --------------------------------------------------------------------------------------------
# (v-b) attention by explicit loops
# --------------------------------------------------------------------------------------------


def loop_attention(m, cache, L, n):
    """Max deviation of hf_ref's scores / pattern / z of layer L from a Python-float loop."""
    c = m.cfg
    H, KV, Dh = c["n_heads"], c["n_kv_heads"], c["d_head"]
    W, cp = c["windows"][L], c["attn_softcap"]
    sc = c["attn_scale"] if c["attn_scale"] is not None else 1.0 / math.sqrt(Dh)
    p = f"blocks.{L}.attn."
    q, k, v, S, P, Z = (cache[p + h].tolist() for h in ("hook_rot_q", "hook_rot_k", "hook_v",
                                                         "hook_attn_scores", "hook_pattern",
                                                         "hook_z"))
    worst = 0.0
    for h in range(H):
        g = h // (H // KV)
        for i in range(n):
            row = []
            for j in range(n):
                if j > i or (W is not None and j <= i - W):
                    row.append(None)
                    if S[h][i][j] != float("-inf"):
                        return float("inf")
                    continue
                s = sum(a * b for a, b in zip(q[i][h], k[j][g])) * sc
                if cp is not None:
                    s = cp * math.tanh(s / cp)
                row.append(s)
                worst = max(worst, abs(s - S[h][i][j]))
            top = max(s for s in row if s is not None)
            e = [0.0 if s is None else math.exp(s - top) for s in row]
            tot = math.fsum(e)
            for j in range(n):
                worst = max(worst, abs(e[j] / tot - P[h][i][j]))
            for dd in range(Dh):
                zz = math.fsum(e[j] / tot * v[j][g][dd] for j in range(n))
                worst = max(worst, abs(zz - Z[i][h][dd]))
    return worst


# --------------------------------------------------------------------------------------------
# (v-c) hook relations
# --------------------------------------------------------------------------------------------


def hook_relations(m, toks, cache):
    """[(what, max deviation)] for the README's hook semantics of this architecture."""
    c, out = m.cfg, []
    n, H, KV, Dh, f = len(toks), c["n_heads"], c["n_kv_heads"], c["d_head"], c["d_mlp"]
    nw = (lambda w: 1.0 + w) if m.gemma_norm else (lambda w: w)
    emb = m.embed[torch.tensor(toks)] * (math.sqrt(c["d_model"]) if m.gemma_norm else 1.0)
    out.append(("hook_embed == W_E[tokens]" + (" * sqrt(d_model)" if m.gemma_norm else ""),
                _maxdiff(cache["hook_embed"], emb)))
    for L, lw in enumerate(m.layers):
        b, fw = f"blocks.{L}.", f"model.layers.{L}."
        xn = cache[b + "ln1.hook_normalized"] * nw(lw["ln1"])
        if m.arch == "phi3":
            qkv = xn @ m.w[fw + "self_attn.qkv_proj.weight"].T
            want = {"q": qkv[:, :H * Dh], "k": qkv[:, H * Dh:(H + KV) * Dh],
                    "v": qkv[:, (H + KV) * Dh:]}
            gu = cache[b + "ln2.hook_normalized"] * nw(lw["ln2"]) @ m.w[
                fw + "mlp.gate_up_proj.weight"].T
            out.append((f"L{L} mlp.hook_pre / hook_pre_linear = first / second d_mlp rows of "
                        "gate_up_proj", max(_maxdiff(cache[b + "mlp.hook_pre"], gu[:, :f]),
                                            _maxdiff(cache[b + "mlp.hook_pre_linear"], gu[:, f:]))))
        else:
            want = {x: xn @ m.w[fw + f"self_attn.{x}_proj.weight"].T for x in "qkv"}
            if "q_bias" in lw:
                want = {x: want[x] + m.w[fw + f"self_attn.{x}_proj.bias"] for x in "qkv"}
        dev = max(_maxdiff(cache[b + f"attn.hook_{x}"], want[x].reshape(n, -1, Dh)) for x in "qkv")
        out.append((f"L{L} hook_q/k/v = ln1 output @ W^T" + (" + bias" if "q_bias" in lw else "")
                    + (" (fused rows q, k, v)" if m.arch == "phi3" else ""), dev))
        q, k = cache[b + "attn.hook_q"], cache[b + "attn.hook_k"]
        if m.qk_norm:
            dev = 0.0
            for x, heads, src in (("q", H, q), ("k", KV, k)):
                sc = cache[b + f"attn.{x}_norm.hook_scale"]
                nz = cache[b + f"attn.{x}_norm.hook_normalized"]
                ok = tuple(sc.shape) == (n, heads, 1) and tuple(nz.shape) == (n, heads, Dh)
                dev = max(dev, _maxdiff(nz * sc, src) if ok else float("inf"),
                          _maxdiff(sc, torch.sqrt(src.pow(2).mean(-1, keepdim=True) + c["eps"])))
                src_rot = nz * nw(lw[f"{x}_norm"])
                dev = max(dev, _maxdiff(cache[b + f"attn.hook_rot_{x}"][0], src_rot[0]))
            out.append((f"L{L} q_norm/k_norm: scale [pos, heads, 1], normalized * scale == hook_q/k"
                        ", rot at pos 0 == normalized * " + ("(1 + w)" if m.gemma_norm else "w"),
                        dev))
        else:
            out.append((f"L{L} rot_q/rot_k at pos 0 == hook_q/k (angle 0)",
                        max(_maxdiff(cache[b + "attn.hook_rot_q"][0], q[0]),
                            _maxdiff(cache[b + "attn.hook_rot_k"][0], k[0]))))
        r = c["rotary_dims"]
        if r < Dh:
            dev = max(_maxdiff(cache[b + "attn.hook_rot_q"][..., r:], q[..., r:]),
                      _maxdiff(cache[b + "attn.hook_rot_k"][..., r:], k[..., r:]))
            moved = float((cache[b + "attn.hook_rot_q"][1:, :, :r] - q[1:, :, :r]).abs().max())
            out.append((f"L{L} partial rotary: dims {r}..{Dh} unrotated (rotated part moves "
                        f"{moved:.2f})", dev if moved > 0.1 else float("inf")))
        if m.sandwich:
            h = {k[len(b):]: v for k, v in cache.items() if k.startswith(b)}
            a = h["attn.hook_z"].reshape(n, -1) @ lw["o"].T
            mo = h["mlp.hook_post"] @ lw["down"].T
            dev = max(_maxdiff(h["ln1_post.hook_normalized"] * h["ln1_post.hook_scale"], a),
                      _maxdiff(h["hook_attn_out"],
                               h["ln1_post.hook_normalized"] * (1.0 + lw["ln1_post"])),
                      _maxdiff(h["ln2_post.hook_normalized"] * h["ln2_post.hook_scale"], mo),
                      _maxdiff(h["hook_mlp_out"],
                               h["ln2_post.hook_normalized"] * (1.0 + lw["ln2_post"])),
                      _maxdiff(h["hook_resid_mid"], h["hook_resid_pre"] + h["hook_attn_out"]),
                      _maxdiff(h["ln2.hook_normalized"] * h["ln2.hook_scale"],
                               h["hook_resid_mid"]))
            out.append((f"L{L} ln1_post / ln2_post hooks on z @ W_O^T / the MLP output, attn_out / "
                        "mlp_out = normalized * (1 + w), ln2 = pre_feedforward norm of resid_mid",
                        dev))
        if c["attn_softcap"] is not None:
            s = cache[b + "attn.hook_attn_scores"]
            top = float(s[torch.isfinite(s)].abs().max())
            out.append((f"L{L} soft-capped scores: max |s| {top:.2f} < cap {c['attn_softcap']}",
                        0.0 if top < c["attn_softcap"] else float("inf")))
    return out


# --------------------------------------------------------------------------------------------
# (v-d) features that must matter
# --------------------------------------------------------------------------------------------


def _set(attr, value):
    def f(m):
        setattr(m, attr, value)
    return f


def _cfg(key, fn):
    def f(m):
        m.cfg[key] = fn(m)
    return f


def _layers(fn):
    def f(m):
        for lw in m.layers:
            fn(lw)
    return f


def _inv_freqs(fn):
    def f(m):
        m.inv_freqs = [hf_ref._f64(x) for x in fn(m)]
    return f


def _table(m, theta, scaling=None, dims=None):
    return hf_ref.inv_freq_table(dims or m.cfg["rotary_dims"], theta, scaling)


def _swap_gate_up(lw):
    lw["gate"], lw["up"] = lw["up"], lw["gate"]


def _plain_qk_norm(lw):  # (1 + w) -> w, i.e. store w - 1
    lw["q_norm"], lw["k_norm"] = lw["q_norm"] - 1.0, lw["k_norm"] - 1.0


def _gelu_erf(m):
    m._act = F.gelu


def _gemma_pattern(m):
    w = m.cfg["windows"]
    W = next(x for x in w if x is not None)
    return [W if i % 2 == 0 else None for i in range(len(w))]


FEATURES = {
    "qwen2": [("q_proj bias dropped", _layers(lambda lw: lw.update(q_bias=0 * lw["q_bias"]))),
              ("k_proj bias dropped", _layers(lambda lw: lw.update(k_bias=0 * lw["k_bias"]))),
              ("v_proj bias dropped", _layers(lambda lw: lw.update(v_bias=0 * lw["v_bias"])))],
    "qwen3": [("q/k norm skipped", _set("qk_norm", False)),
              ("q/k norm weight ignored", _layers(lambda lw: lw.update(
                  q_norm=1 + 0 * lw["q_norm"], k_norm=1 + 0 * lw["k_norm"])))],
    "mistral": [("sliding window ignored", _cfg("windows", lambda m: [None] * len(m.layers))),
                ("window sees W + 1 keys (i - j <= W)",
                 _cfg("windows", lambda m: [w + 1 for w in m.cfg["windows"]]))],
    "phi3": [("full rotary (r = d_head)", _inv_freqs(
        lambda m: [_table(m, m.cfg["rope_theta"], dims=m.cfg["d_head"])] * len(m.layers))),
             ("sliding window ignored", _cfg("windows", lambda m: [None] * len(m.layers))),
             ("gate_up_proj halves swapped", _layers(_swap_gate_up))],
    "gemma2": [("attention soft-cap ignored", _cfg("attn_softcap", lambda m: None)),
               ("final soft-cap ignored", _cfg("final_softcap", lambda m: None)),
               ("sliding window ignored", _cfg("windows", lambda m: [None] * len(m.layers))),
               ("window on odd layers instead of even", _cfg("windows", lambda m: [
                   m.cfg["windows"][i - 1 if i % 2 else i + 1] for i in range(len(m.layers))])),
               ("norms multiply by w, not 1 + w", _set("gemma_norm", False)),
               ("embeddings not scaled by sqrt(d_model)", _set("embed_scale", 1.0)),
               ("post-attention / post-feedforward norms skipped", _set("sandwich", False)),
               ("GELU (erf) instead of GELU-tanh", _gelu_erf)],
    "gemma3": [("q/k norm skipped", _set("qk_norm", False)),
               ("q/k norm multiplies by w, not 1 + w", _layers(_plain_qk_norm)),
               ("global RoPE (theta 1e6, linear /4) on local layers too", _inv_freqs(
                   lambda m: [m.inv_freqs[2]] * len(m.layers))),
               ("local RoPE (theta 1e4) on the global layer too", _inv_freqs(
                   lambda m: [m.inv_freqs[0]] * len(m.layers))),
               ("linear rope scaling ignored on the global layer", _inv_freqs(
                   lambda m: [x if w is not None else _table(m, m.cfg["rope_theta"]) for x, w in
                              zip(m.inv_freqs, m.cfg["windows"])])),
               ("Gemma 2's layer pattern (even layers local)", _cfg("windows", _gemma_pattern)),
               ("sliding window ignored", _cfg("windows", lambda m: [None] * len(m.layers))),
               ("embeddings not scaled by sqrt(d_model)", _set("embed_scale", 1.0)),
               ("norms multiply by w, not 1 + w", _set("gemma_norm", False))],
}


def feature_deltas(arch, mdir, seq, logits):
    """[(feature, max |change of logits|)] for each way of getting `arch` wrong."""
    out = []
    for what, change in FEATURES[arch]:
        m = hf_ref.load(mdir)
        m.inv_freqs = [x.clone() for x in m.inv_freqs]
        change(m)
        changed, _ = m.forward(seq)
        out.append((what, float((changed - logits).abs().max())))
    return out


# --------------------------------------------------------------------------------------------


def check_decoder(name, mdir, check):
    """Runs (v-a)..(v-e) on one model directory; returns what check_common needs and a summary
    {min margin, max |score|} for the report."""
    config, t = hf_ref.read_model_dir(mdir)
    m = hf_ref.load(mdir)
    seq = check_sequence(config, m.cfg["d_vocab"], m.cfg["n_ctx"])
    logits, cache = m.forward(seq, "all")
    # (v-a)
    logits2, hooks2 = independent_decoder(config, t, seq)
    worst = max([_maxdiff(logits, logits2)] + [_maxdiff(cache[k], v) for k, v in hooks2.items()])
    check(worst < 1e-10, f"(v-a) {name}: hf_ref == independent forward (complex RoPE on "
          f"interleaved activations, loop masks, sigmoid soft-cap, folded norms) on {len(seq)} "
          f"tokens: max diff {worst:.2e} over logits and {len(hooks2)} hooks")
    # (v-b): one sliding layer (or layer 0) and, for mixed models, one full layer
    windows = m.cfg["windows"]
    n_short = min(len(seq), max([w for w in windows if w is not None], default=16) + 24)
    layers = sorted({next((i for i, w in enumerate(windows) if w is not None), 0),
                     next((i for i, w in enumerate(windows) if w is None), 0)})
    _, short = m.forward(seq[:n_short], "all")
    dev = max(loop_attention(m, short, L, n_short) for L in layers)
    check(dev < 1e-12, f"(v-b) {name}: scores/pattern/z of layers {layers} by explicit loops on "
          f"{n_short} tokens (windows {[windows[L] for L in layers]}, soft-cap "
          f"{m.cfg['attn_softcap']}): max diff {dev:.1e}")
    # (v-c)
    rel = hook_relations(m, seq, cache)
    bad = [f"{w} ({d:.1e})" for w, d in rel if not d < 1e-12]
    check(not bad, f"(v-c) {name}: {len(rel)} hook relations hold"
          + (": " + "; ".join(bad[:3]) if bad else f" (e.g. {rel[1][0]})"))
    # (v-d)
    deltas = feature_deltas(m.arch, mdir, seq, logits)
    weak = [f"{w} ({d:.1e})" for w, d in deltas if not d > 1e-3]
    check(not weak, f"(v-d) {name}: every feature changes the logits by > 1e-3: "
          + ", ".join(f"{w} {d:.3g}" for w, d in deltas))
    # (v-e)
    top2 = torch.topk(logits, 2, dim=-1).values
    margins = [float((top2[:, 0] - top2[:, 1]).min())]
    for prompt in (seq[:8], seq[:min(len(seq), m.cfg["n_ctx"] - 64)]):
        margins.append(min(m.generate(prompt, 64)[1]))
    smax = max(float(cache[k][torch.isfinite(cache[k])].abs().max()) for k in cache
               if k.endswith("hook_attn_scores"))
    check(min(margins) >= 1e-3 and 3.0 < smax < 20.0,
          f"(v-e) {name}: check_hf sequences: min top-1/top-2 margin {min(margins):.2e} "
          f"(160 tokens {margins[0]:.2e}, greedy from 8 {margins[1]:.2e}, from "
          f"{min(len(seq), m.cfg['n_ctx'] - 64)} {margins[2]:.2e}), max |attn score| {smax:.2f}")
    return (m, seq, logits, cache), {"margin": min(margins), "max_score": smax}
