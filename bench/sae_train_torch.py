#!/usr/bin/env python3
"""The PyTorch baseline for bench_sae_train: the same TopK SAE training step (OpenAI recipe:
x - b_dec, top-k of the pre-activations, relu, dense decoder matmul, MSE, unit-norm decoder with
the gradient's parallel part removed, Adam) in float32 on the CPU, written the way a plain PyTorch
trainer does it (dense latents, autograd). Prints one JSON object with tokens/s.

  /usr/bin/python3 bench/sae_train_torch.py [--threads 2] [--steps 10]
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-in", type=int, default=288)
    ap.add_argument("--d-sae", type=int, default=4608)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d_in, d_sae, k, n = args.d_in, args.d_sae, args.k, args.batch

    # Synthetic sparse data as in bench_sae_train.cpp (values differ; the work does not).
    dirs = torch.nn.functional.normalize(torch.randn(2 * d_sae, d_in), dim=1)
    batches = []
    for _ in range(4):
        idx = torch.randint(0, 2 * d_sae, (n, 8))
        coef = torch.empty(n, 8).exponential_()
        batches.append((coef[:, :, None] * dirs[idx]).sum(1) + 0.05 * torch.randn(n, d_in))

    W_dec = torch.nn.functional.normalize(torch.randn(d_sae, d_in), dim=1)
    params = {
        "W_enc": torch.nn.Parameter(W_dec.t().clone()),
        "b_enc": torch.nn.Parameter(torch.zeros(d_sae)),
        "W_dec": torch.nn.Parameter(W_dec.clone()),
        "b_dec": torch.nn.Parameter(batches[0].mean(0)),
    }
    opt = torch.optim.Adam(params.values(), lr=2e-4)

    def step(x):
        pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
        vals, idx = pre.topk(k, dim=1)
        acts = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
        x_hat = acts @ params["W_dec"] + params["b_dec"]
        loss = ((x_hat - x) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W, g = params["W_dec"], params["W_dec"].grad
            g -= (g * W).sum(1, keepdim=True) * W
        opt.step()
        with torch.no_grad():
            params["W_dec"].div_(params["W_dec"].norm(dim=1, keepdim=True))
        return loss.item()

    times = []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        step(batches[s % 4])
        if s >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"benchmark": "sae_train_torch", "torch": torch.__version__,
                      "threads": args.threads, "d_in": d_in, "d_sae": d_sae, "k": k, "batch": n,
                      "step_ms": med * 1e3, "tokens_per_s": n / med}, indent=1))


if __name__ == "__main__":
    main()
