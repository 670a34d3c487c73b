#!/usr/bin/env python3
"""Independent reference for `glassbox sae-encode` (torch/numpy only; no glassbox code).

Writes SAEs with random weights in each library's on-disk format by hand (SAELens cfg.json +
sae_weights.safetensors, sparsify cfg.json + sae.safetensors, Gemma Scope params.npz via np.savez
and np.savez_compressed), random inputs, and the expected encodings computed in float64 following
each library's own encode rule:
  SAELens  (sae_lens/saes/*.py): sae_in = x - b_dec * apply_b_dec_to_input;
           hidden_pre = sae_in @ W_enc + b_enc;
           standard: relu(hidden_pre); topk: topk(hidden_pre, k) then relu on the kept values;
           jumprelu: relu(hidden_pre) * (hidden_pre > threshold)
  sparsify (sparsify/sparse_coder.py, fused_encoder.py): pre = relu((x - b_dec) @ encoder.weight.T
           + encoder.bias); keep the top k
  Gemma Scope (the official tutorial's JumpReLUSAE): pre = x @ W_enc + b_enc;
           acts = (pre > threshold) * relu(pre)
Then runs `glassbox sae-encode` on each and compares: max |got - ref| <= 1e-5 * max(1, max |ref|)
(float32 products of length d_in against float64), and the sets of active latents must agree.
Also checks `glassbox convert-sae` round trips (SAELens topk -> sparsify -> SAELens) encode the
same. With --break, the files are corrupted after the reference is computed (a flipped
apply_b_dec_to_input, a perturbed weight, a wrong k) and the script exits 0 only if *every*
case then reports a mismatch: the comparison can fail.
Exit 0 = pass, 1 = mismatch, 77 = skipped (no torch).
"""
import argparse
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    print("skipped: numpy/torch missing")
    sys.exit(77)

REL_TOL = 1e-5
D_IN, D_SAE, N, K = 24, 96, 37, 7


def write_safetensors(path, tensors, metadata=None):
    """safetensors by hand: u64 LE header length | JSON header | raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, (t, dtype) in tensors.items():
        if dtype == "F32":
            raw = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        elif dtype == "BF16":
            raw = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        elif dtype == "F16":
            raw = t.to(torch.float16).contiguous().numpy().astype("<f2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stored(t, dtype):
    """The float64 value the file holds (what the reference must use)."""
    if dtype == "BF16":
        return t.to(torch.bfloat16).to(torch.float64)
    if dtype == "F16":
        return t.to(torch.float16).to(torch.float64)
    return t.to(torch.float32).to(torch.float64)


def rand_weights(gen, jump=False):
    w = {
        "W_enc": torch.randn(D_IN, D_SAE, generator=gen, dtype=torch.float64) / D_IN ** 0.5,
        "b_enc": torch.randn(D_SAE, generator=gen, dtype=torch.float64) * 0.3,
        "W_dec": torch.randn(D_SAE, D_IN, generator=gen, dtype=torch.float64) / D_SAE ** 0.5,
        "b_dec": torch.randn(D_IN, generator=gen, dtype=torch.float64) * 0.5,
    }
    if jump:
        # Mostly positive thresholds, a few negative (where relu and the mask differ).
        w["threshold"] = torch.rand(D_SAE, generator=gen, dtype=torch.float64) * 0.6 - 0.1
    return w


# ---- the libraries' encode rules, float64 ----
def saelens_encode(x, w, arch, apply_b_dec, k=None):
    sae_in = x - w["b_dec"] * float(apply_b_dec)
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    if arch == "standard":
        return torch.relu(pre)
    if arch == "topk":
        top = torch.topk(pre, k, dim=-1)
        out = torch.zeros_like(pre)
        out.scatter_(-1, top.indices, torch.relu(top.values))
        return out
    if arch == "jumprelu":
        return torch.relu(pre) * (pre > w["threshold"]).to(pre)
    raise ValueError(arch)


def sparsify_encode(x, enc_w, enc_b, b_dec, k):
    pre = torch.relu((x - b_dec) @ enc_w.T + enc_b)
    top = torch.topk(pre, k, dim=-1, sorted=False)
    out = torch.zeros_like(pre)
    out.scatter_(-1, top.indices, top.values)
    return out


def gemma_encode(x, w):
    pre = x @ w["W_enc"] + w["b_enc"]
    return (pre > w["threshold"]).to(pre) * torch.relu(pre)


# ---- writers ----
def saelens_dir(path, w, arch, apply_b_dec, k=None, dtype="F32", legacy=False):
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "sae_weights.safetensors"),
                      {n: (t, dtype) for n, t in w.items()})
    if legacy:  # a pre-6.0 config: top-level metadata, topk as standard + activation_fn_str
        cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE,
               "dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype],
               "device": "cpu", "model_name": "gpt2", "hook_name": "blocks.1.hook_resid_pre",
               "hook_layer": 1, "hook_head_index": None,
               "activation_fn_str": "topk" if arch == "topk" else "relu",
               "activation_fn_kwargs": {"k": k} if arch == "topk" else {},
               "apply_b_dec_to_input": apply_b_dec, "finetuning_scaling_factor": False,
               "sae_lens_training_version": "3.13.0", "prepend_bos": True,
               "normalize_activations": "none", "context_size": 128}
    else:
        cfg = {"architecture": arch, "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32",
               "device": "cpu", "apply_b_dec_to_input": apply_b_dec,
               "normalize_activations": "none", "reshape_activations": "none",
               "metadata": {"model_name": "gpt2", "hook_name": "blocks.2.hook_resid_post",
                            "sae_lens_version": "6.5.1", "sae_lens_training_version": "6.5.1"}}
        if arch == "topk":
            cfg["k"] = k
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def sparsify_dir(path, enc_w, enc_b, w_dec, b_dec, k):
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "sae.safetensors"),
                      {"encoder.weight": (enc_w, "F32"), "encoder.bias": (enc_b, "F32"),
                       "W_dec": (w_dec, "F32"), "b_dec": (b_dec, "F32")}, {"format": "pt"})
    cfg = {"activation": "topk", "expansion_factor": D_SAE // D_IN, "normalize_decoder": True,
           "num_latents": 0, "k": k, "multi_topk": False, "skip_connection": False,
           "transcode": False, "d_in": D_IN}
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def gemma_npz(path, w, compressed):
    os.makedirs(path, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    save(os.path.join(path, "params.npz"),
         **{n: t.to(torch.float32).numpy() for n, t in w.items()})


def compare(name, got, ref):
    err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    scale = max(1.0, float(np.max(np.abs(ref))))
    support_diff = int(np.sum((got != 0) != (ref != 0)))
    ok = got.shape == ref.shape and err <= REL_TOL * scale and support_diff == 0
    print(f"{'ok      ' if ok else 'MISMATCH'} {name}: shape {got.shape} max abs err {err:.3g} "
          f"(tol {REL_TOL * scale:.3g}), active {int((ref != 0).sum())}, "
          f"support differences {support_diff}")
    return ok


def run(glassbox, args):
    return subprocess.run([glassbox] + args, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--break", dest="brk", action="store_true",
                    help="corrupt each SAE after computing the reference; pass iff all mismatch")
    a = ap.parse_args()
    wd = os.path.join(a.workdir, "sae_break" if a.brk else "sae_ref")
    os.makedirs(wd, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(N, D_IN, generator=gen, dtype=torch.float64) * 1.5
    x32 = x.to(torch.float32)
    xin = x32.to(torch.float64)
    np.save(os.path.join(wd, "x.npy"), x32.numpy())

    cases = []  # (name, sae path, expected float64 array)
    # SAELens standard, apply_b_dec_to_input = True
    w = rand_weights(gen)
    p = os.path.join(wd, "saelens_standard")
    saelens_dir(p, w, "standard", True)
    cases.append(("saelens standard", p, saelens_encode(xin, {n: stored(t, "F32") for n, t in w.items()}, "standard", True)))
    # SAELens topk (6.x config)
    w = rand_weights(gen)
    p = os.path.join(wd, "saelens_topk")
    saelens_dir(p, w, "topk", True, k=K)
    cases.append(("saelens topk", p, saelens_encode(xin, {n: stored(t, "F32") for n, t in w.items()}, "topk", True, K)))
    # SAELens jumprelu, apply_b_dec_to_input = False
    w = rand_weights(gen, jump=True)
    p = os.path.join(wd, "saelens_jumprelu")
    saelens_dir(p, w, "jumprelu", False)
    cases.append(("saelens jumprelu", p, saelens_encode(xin, {n: stored(t, "F32") for n, t in w.items()}, "jumprelu", False)))
    # SAELens pre-6.0 config, topk via activation_fn_str, bf16 weights
    w = rand_weights(gen)
    p = os.path.join(wd, "saelens_legacy_topk_bf16")
    saelens_dir(p, w, "topk", True, k=K, dtype="BF16", legacy=True)
    cases.append(("saelens legacy topk bf16", p, saelens_encode(xin, {n: stored(t, "BF16") for n, t in w.items()}, "topk", True, K)))
    # sparsify
    w = rand_weights(gen)
    enc_w = w["W_enc"].T.contiguous()
    p = os.path.join(wd, "sparsify")
    sparsify_dir(p, enc_w, w["b_enc"], w["W_dec"], w["b_dec"], K)
    cases.append(("sparsify topk", p, sparsify_encode(xin, stored(enc_w, "F32"), stored(w["b_enc"], "F32"), stored(w["b_dec"], "F32"), K)))
    # Gemma Scope params.npz, stored and deflated
    for compressed in (False, True):
        w = rand_weights(gen, jump=True)
        p = os.path.join(wd, "gemmascope_" + ("deflate" if compressed else "stored"))
        gemma_npz(p, w, compressed)
        cases.append((f"gemma scope npz ({'savez_compressed' if compressed else 'savez'})",
                      os.path.join(p, "params.npz"), gemma_encode(xin, {n: stored(t, "F32") for n, t in w.items()})))

    if a.brk:
        for name, path, _ in cases:
            corrupt(path)

    ok_all, mismatches = True, 0
    for name, path, ref in cases:
        out = os.path.join(wd, "acts_%d.npy" % cases.index((name, path, ref)))
        r = run(a.glassbox, ["sae-encode", "--sae", path, "--input", os.path.join(wd, "x.npy"), "--out", out])
        if r.returncode != 0:
            print(f"FAILED   {name}: glassbox exited {r.returncode}: {r.stderr.strip()}")
            ok_all = False
            continue
        ok = compare(name, np.load(out), ref.numpy())
        ok_all &= ok
        mismatches += not ok

    if not a.brk:
        # convert-sae round trip: SAELens topk -> sparsify -> SAELens, each encoding like the source.
        src = os.path.join(wd, "saelens_topk")
        ref = cases[1][2].numpy()
        for step, (inp, to, out_dir) in enumerate([(src, "sparsify", os.path.join(wd, "rt_sparsify")),
                                                    (os.path.join(wd, "rt_sparsify"), "saelens", os.path.join(wd, "rt_saelens"))]):
            r = run(a.glassbox, ["convert-sae", "--in", inp, "--to", to, "--out", out_dir])
            if r.returncode != 0:
                print(f"FAILED   convert-sae to {to}: {r.stderr.strip()}")
                ok_all = False
                continue
            out = os.path.join(wd, f"rt{step}.npy")
            r = run(a.glassbox, ["sae-encode", "--sae", out_dir, "--input", os.path.join(wd, "x.npy"), "--out", out])
            ok_all &= r.returncode == 0 and compare(f"round trip -> {to}", np.load(out), ref)
        # The converted sparsify file must hold exactly the transposed encoder.
        st = read_safetensors_f32(os.path.join(wd, "rt_sparsify", "sae.safetensors"))
        w_src = read_safetensors_f32(os.path.join(src, "sae_weights.safetensors"))
        exact = (np.array_equal(st["encoder.weight"], w_src["W_enc"].T)
                 and all(np.array_equal(st[a_], w_src[b_]) for a_, b_ in
                         [("encoder.bias", "b_enc"), ("W_dec", "W_dec"), ("b_dec", "b_dec")]))
        print(("ok      " if exact else "MISMATCH") + " sparsify file holds the SAELens weights bit for bit")
        ok_all &= exact
        return 0 if ok_all else 1
    print(f"--break: {mismatches} of {len(cases)} corrupted cases reported a mismatch")
    return 0 if mismatches == len(cases) else 1


def read_safetensors_f32(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        assert info["dtype"] == "F32"
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
    return out


def corrupt(path):
    """Deliberate defects, one per format, applied after the reference was computed."""
    if path.endswith(".npz"):
        # Shift b_enc by +0.5 in the archive (rewritten in the same form).
        with np.load(path) as z:
            arrays = {k: z[k].copy() for k in z.files}
        arrays["b_enc"] = arrays["b_enc"] + np.float32(0.5)
        compressed = "deflate" in path
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        return
    cfg_path = os.path.join(path, "cfg.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if "num_latents" in cfg:  # sparsify: wrong k
        cfg["k"] = cfg["k"] + 1
    elif cfg.get("activation_fn_str") == "topk":
        cfg["activation_fn_kwargs"]["k"] -= 1
    else:  # SAELens: flip the b_dec rule
        cfg["apply_b_dec_to_input"] = not cfg["apply_b_dec_to_input"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)


if __name__ == "__main__":
    sys.exit(main())
