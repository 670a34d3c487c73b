#!/usr/bin/env python3
"""Independent float64 reference for glassbox's SAE training gradients (torch autograd only; no
glassbox code). For each architecture it writes random weights and a batch as .npy, computes the
loss and its gradients with PyTorch autograd in float64 following the papers, runs
sae_grad_tool (glassbox's sae/train_grad.h) on the same files and compares every gradient tensor.

Objectives (written from the papers, not from glassbox):
  relu      Anthropic "Circuits Updates - April 2024": pre = x W_enc + b_enc, f = relu(pre),
            loss = mean_r ||x - (f W_dec + b_dec)||^2 + l1 * mean_r sum_i f_i ||W_dec_i||
  topk      Gao et al. 2024: pre = (x - b_dec) W_enc + b_enc; keep the k largest pre per row,
            relu; AuxK: the aux_k largest pre among dead latents reconstruct e = x - x_hat
            (detached); aux = aux_coeff * normalized_mse(e_hat, e + b_dec) with e_hat including
            b_dec (OpenAI's code), normalized by mean_r ||e_r - mean(e)||^2
  batchtopk Bussmann et al. 2024: the k * n largest relu(pre) over the whole batch; same AuxK
  jumprelu  Rajamanoharan et al. 2024: pre = (x - b_dec) W_enc + b_enc (SAELens's trainer
            default), a = pre * H(pre - theta), theta = exp(log_theta),
            loss = mse + l0 * mean_r sum_i H(pre_i - theta_i); custom autograd functions with the
            rectangle-kernel straight-through estimators of the paper (pseudo-derivatives only
            w.r.t. theta)
Data are drawn so that no selection is within MARGIN of a tie (top-k cut, relu at 0, thresholds,
window edges): float32 vs float64 rounding cannot change which latents are active.

Tolerance: per tensor, max |glassbox - ref| <= TOL * max|ref| (float32 sums of at most a few
hundred products against float64). The 2-thread and 1-thread runs must be bit-identical.
With --break every case is also run corrupted (one gradient element nudged by 0.2% of max|ref|;
the tool given a wrong k / coefficient / bandwidth) and the script passes only if every corrupted
run is reported as a mismatch. Exit 0 = pass, 1 = mismatch, 77 = skipped (no torch).
"""
import argparse
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    print("skipped: numpy/torch missing")
    sys.exit(77)

TOL = 5e-6
MARGIN = 1e-4
torch.set_default_dtype(torch.float64)


def rect(u):
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, bw):
        ctx.save_for_backward(z, theta)
        ctx.bw = bw
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        z, theta = ctx.saved_tensors
        bw = ctx.bw
        gz = g * (z > theta).to(z.dtype)
        gt = (-(theta / bw) * rect((z - theta) / bw) * g).sum(0)
        return gz, gt, None


class Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, bw):
        ctx.save_for_backward(z, theta)
        ctx.bw = bw
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        z, theta = ctx.saved_tensors
        bw = ctx.bw
        gt = (-(1.0 / bw) * rect((z - theta) / bw) * g).sum(0)
        return torch.zeros_like(z), gt, None


def reference(arch, P, x, dead, opt):
    """Loss terms and autograd gradients in float64."""
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    x = torch.tensor(x, dtype=torch.float64)
    n = x.shape[0]
    sae_in = x - P["b_dec"] if arch in ("topk", "batchtopk", "jumprelu") else x
    pre = sae_in @ P["W_enc"] + P["b_enc"]
    if arch == "relu":
        a = torch.relu(pre)
    elif arch == "topk":
        vals, idx = pre.topk(opt["k"], dim=1)
        a = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    elif arch == "batchtopk":
        flat = torch.relu(pre).flatten()
        vals, idx = flat.topk(opt["k"] * n)
        a = torch.zeros_like(flat).scatter(0, idx, vals).view_as(pre)
    else:
        theta = torch.exp(P["log_threshold"])
        a = JumpReLU.apply(pre, theta, opt["bandwidth"])
    x_hat = a @ P["W_dec"] + P["b_dec"]
    mse = ((x_hat - x) ** 2).sum(1).mean()
    sparsity = torch.zeros(())
    if arch == "relu":
        sparsity = opt["sparsity"] * (a * P["W_dec"].norm(dim=1)).sum(1).mean()
    elif arch == "jumprelu":
        sparsity = opt["sparsity"] * Step.apply(pre, theta, opt["bandwidth"]).sum(1).mean()
    aux = torch.zeros(())
    if dead is not None and dead.any() and arch in ("topk", "batchtopk"):
        dmask = torch.tensor(dead.astype(bool))
        m = min(opt["aux_k"], int(dmask.sum()))
        masked = torch.where(dmask, pre, torch.full_like(pre, -float("inf")))
        vals, idx = masked.topk(m, dim=1)
        aa = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
        e = (x - x_hat).detach()
        e_hat = aa @ P["W_dec"] + P["b_dec"]
        target = e + P["b_dec"].detach()
        aux = opt["aux_coeff"] * ((e_hat - target) ** 2).sum(1).mean() / (
            (e - e.mean(0)) ** 2).sum(1).mean()
    loss = mse + sparsity + aux
    loss.backward()
    grads = {k: v.grad.numpy() for k, v in P.items()}
    return [loss.item(), mse.item(), float(sparsity), float(aux)], grads, pre.detach().numpy()


def margins_ok(arch, pre, P, dead, opt):
    """No decision within MARGIN of its boundary."""
    n = pre.shape[0]
    if arch == "relu":
        return np.abs(pre).min() > MARGIN
    if arch == "jumprelu":
        th = np.exp(P["log_threshold"].astype(np.float64))
        hb = opt["bandwidth"] / 2
        return min(np.abs(pre - th).min(), np.abs(pre - th - hb).min(),
                   np.abs(pre - th + hb).min()) > MARGIN
    if arch == "topk":
        s = -np.sort(-pre, axis=1)
        k = opt["k"]
        if (s[:, k - 1] - s[:, k]).min() <= MARGIN or np.abs(s[:, :k]).min() <= MARGIN:
            return False
    else:
        r = np.sort(np.maximum(pre, 0).ravel())[::-1]
        M = opt["k"] * n
        if r[M] <= 0 or r[M - 1] - r[M] <= MARGIN:
            return False
    if dead is not None and dead.any():
        d = -np.sort(-pre[:, dead.astype(bool)], axis=1)
        m = min(opt["aux_k"], int(dead.sum()))
        if np.abs(d[:, :m]).min() <= MARGIN:
            return False
        if m < d.shape[1] and (d[:, m - 1] - d[:, m]).min() <= MARGIN:
            return False
    return True


CASES = [
    # name, arch, n, d_in, d_sae, options, dead fraction
    ("relu", "relu", 40, 16, 64, dict(sparsity=0.7), 0.0),
    ("topk", "topk", 40, 16, 64, dict(k=5), 0.0),
    ("topk_auxk", "topk", 40, 16, 64, dict(k=5, aux_k=6, aux_coeff=0.5), 0.3),
    ("batchtopk_auxk", "batchtopk", 40, 16, 64, dict(k=5, aux_k=6, aux_coeff=0.5), 0.3),
    ("jumprelu", "jumprelu", 40, 16, 64, dict(sparsity=0.3, bandwidth=0.2), 0.0),
    # more rows than one block of the row-parallel code (kRowBlock = 128)
    ("topk_big", "topk", 300, 24, 96, dict(k=7, aux_k=9, aux_coeff=0.25), 0.2),
]

# Corruptions for --break: tool options changed after the reference is computed.
BREAKS = {
    "relu": dict(sparsity=0.77),
    "topk": dict(k=6),
    "topk_auxk": dict(aux_coeff=0.6),
    "batchtopk_auxk": dict(k=4),
    "jumprelu": dict(bandwidth=0.25),
    "topk_big": dict(aux_k=8),
}


def make_case(arch, n, d_in, d_sae, dead_frac, seed):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    P = {
        "W_enc": (rng.standard_normal((d_in, d_sae)) / np.sqrt(d_in)).astype(f32),
        "b_enc": (0.1 * rng.standard_normal(d_sae)).astype(f32),
        "W_dec": (rng.standard_normal((d_sae, d_in)) * rng.uniform(0.1, 0.6, (d_sae, 1))).astype(f32),
        "b_dec": (0.2 * rng.standard_normal(d_in)).astype(f32),
    }
    if arch == "jumprelu":
        P["log_threshold"] = np.log(rng.uniform(0.05, 0.6, d_sae)).astype(f32)
    x = rng.standard_normal((n, d_in)).astype(f32)
    dead = (rng.uniform(size=d_sae) < dead_frac).astype(np.uint8) if dead_frac > 0 else None
    return P, x, dead


def run_tool(tool, d, arch, opt, threads):
    cmd = [tool, d, arch, str(opt.get("k", 1)), str(opt.get("aux_k", 0)),
           repr(opt.get("aux_coeff", 0.0)), repr(opt.get("sparsity", 0.0)),
           repr(opt.get("bandwidth", 1e-3)), str(threads)]
    subprocess.run(cmd, check=True)
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["log_threshold"] if arch == "jumprelu" else [])
    g = {k: np.load(os.path.join(d, "grad_%s.npy" % k)) for k in names}
    return np.load(os.path.join(d, "loss.npy")), g


def compare(ref_loss, ref_g, loss, g):
    """Returns (ok, lines, worst relative error)."""
    lines, ok, worst = [], True, 0.0
    for k, r in ref_g.items():
        err = np.abs(g[k].astype(np.float64) - r).max()
        scale = max(np.abs(r).max(), 1e-30)
        rel = err / scale
        worst = max(worst, rel)
        good = rel <= TOL
        ok &= bool(good)
        lines.append("  grad %-13s max|err| %.3e  max|ref| %.3e  rel %.2e %s" %
                     (k, err, scale, rel, "" if good else "MISMATCH"))
    for i, name in enumerate(["loss", "mse", "sparsity", "aux"]):
        rel = abs(loss[i] - ref_loss[i]) / max(abs(ref_loss[i]), 1e-12)
        good = rel <= 1e-5 or abs(ref_loss[i]) < 1e-12 and abs(loss[i]) < 1e-9
        ok &= bool(good)
        lines.append("  %-8s glassbox %.9g  ref %.9g %s" % (name, loss[i], ref_loss[i],
                                                            "" if good else "MISMATCH"))
    return ok, lines, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--break", dest="brk", action="store_true")
    args = ap.parse_args()
    all_ok = True
    broken_detected = 0
    broken_total = 0
    for ci, (name, arch, n, d_in, d_sae, opt, dead_frac) in enumerate(CASES):
        for seed in range(1000 * ci, 1000 * ci + 200):
            P, x, dead = make_case(arch, n, d_in, d_sae, dead_frac, seed)
            ref_loss, ref_g, pre = reference(arch, P, x, dead, opt)
            if margins_ok(arch, pre, P, dead, opt):
                break
        else:
            print("%s: no tie-free sample found" % name)
            return 1
        d = os.path.join(args.workdir, "sae_train_" + name)
        os.makedirs(d, exist_ok=True)
        for k, v in P.items():
            np.save(os.path.join(d, k + ".npy"), v)
        np.save(os.path.join(d, "x.npy"), x)
        if os.path.exists(os.path.join(d, "dead.npy")):
            os.remove(os.path.join(d, "dead.npy"))
        if dead is not None:
            np.save(os.path.join(d, "dead.npy"), dead)
        loss, g = run_tool(args.tool, d, arch, opt, 2)
        ok, lines, worst = compare(ref_loss, ref_g, loss, g)
        loss1, g1 = run_tool(args.tool, d, arch, opt, 1)
        same = all(np.array_equal(g[k], g1[k]) for k in g) and np.array_equal(loss, loss1)
        ok &= same
        print("%s (%s, n %d, d_in %d, d_sae %d, seed %d, l0 %.2f): %s, worst rel %.2e, "
              "1 vs 2 threads %s" % (name, arch, n, d_in, d_sae, seed, loss[4],
                                     "ok" if ok else "MISMATCH", worst,
                                     "bit-identical" if same else "DIFFER"))
        for line in lines:
            print(line)
        all_ok &= ok
        if args.brk:
            # 1. the comparison itself: one gradient element nudged.
            keys = list(ref_g)
            key = keys[ci % len(keys)]
            g2 = {k: v.copy() for k, v in g.items()}
            flat = g2[key].reshape(-1)
            flat[len(flat) // 2] += 2e-3 * np.abs(ref_g[key]).max()
            ok2, _, _ = compare(ref_loss, ref_g, loss, g2)
            broken_total += 1
            broken_detected += not ok2
            print("  break (grad_%s nudged): %s" % (key, "detected" if not ok2 else "MISSED"))
            # 2. the math: glassbox run with a wrong option.
            bad = dict(opt, **BREAKS[name])
            loss3, g3 = run_tool(args.tool, d, arch, bad, 2)
            ok3, _, _ = compare(ref_loss, ref_g, loss3, g3)
            broken_total += 1
            broken_detected += not ok3
            print("  break (%s): %s" % (BREAKS[name], "detected" if not ok3 else "MISSED"))
    if args.brk:
        print("corrupted runs detected: %d of %d" % (broken_detected, broken_total))
        return 0 if all_ok and broken_detected == broken_total else 1
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
