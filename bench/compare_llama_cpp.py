#!/usr/bin/python3
"""glassbox vs llama.cpp's llama-bench on the same GGUF files, same thread count, interleaved.

For each model, depth and round: llama-bench (pp p, tg n, -d depth), then `glassbox bench` with the
same -p/-n/-t/-d; prints one JSON line per measurement and a table of ratios (medians over rounds)
with glassbox's decode GB/s beside the streaming read bandwidth `glassbox bench` measures in the
same run (mem_read_gb_s, first round of each model). The F32 synth15M
GGUF is made here: gen_synth_llama2c.py -> synth15M.bin -> `glassbox convert --type f32`.

usage: compare_llama_cpp.py --glassbox build/release/glassbox [--shared ../shared] [--work DIR]
                            [-p 512] [-n 64] [-t 2] [--rounds 3] [--models a.gguf,b.gguf]
                            [--depths 0,4096]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def llama_bench(binary, model, p, n, t, depth=0):
    res = run_json([binary, "-m", model, "-t", str(t), "-p", str(p), "-n", str(n), "-r", "3",
                    "-fa", "0", "-d", str(depth), "-o", "json"])
    pp = next(r["avg_ts"] for r in res if r["n_prompt"] == p and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in res if r["n_gen"] == n and r["n_prompt"] == 0)
    return pp, tg


def glassbox_bench(binary, model, p, n, t, depth=0, mem_bw=False):
    res = run_json([binary, "bench", "-m", model, "-p", str(p), "-n", str(n), "-t", str(t),
                    "-r", "3", "-d", str(depth)] + ([] if mem_bw else ["--no-mem-bw"]))
    return res["pp_tok_s"], res["tg_tok_s"], res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../shared"))
    ap.add_argument("--work", default="/tmp/glassbox-bench")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", help="comma-separated GGUF files (default: the three of issue #4)")
    ap.add_argument("--depths", default="0",
                    help="comma-separated KV-cache depths (llama-bench -d), e.g. 0,4096")
    a = ap.parse_args()
    llama = os.path.join(a.shared, "anchors/llama.cpp-0ad4a86/llama-bench")
    os.makedirs(a.work, exist_ok=True)
    if a.models:
        models = a.models.split(",")
    else:
        f32 = os.path.join(a.work, "synth15M-f32.gguf")
        if not os.path.exists(f32):
            raw = os.path.join(a.work, "synth15M.bin")
            subprocess.run([sys.executable, os.path.join(a.shared, "models/gguf/gen_synth_llama2c.py"),
                            raw, "288", "768", "6", "6", "6", "32000", "256", "1234"], check=True)
            tok = os.path.join(a.shared, "models/llama2-tokenizer/tokenizer.bin")
            subprocess.run([a.glassbox, "convert", "-m", raw, "-o", f32, "--type", "f32",
                            "--tokenizer", tok], check=True)
        models = [f32, os.path.join(a.shared, "models/gguf/synth15M-q8_0.gguf"),
                  os.path.join(a.shared, "models/gguf/synthK-q4_k_m.gguf")]
    rows = []
    for model in models:
        mem = None
        for depth in [int(x) for x in a.depths.split(",")]:
            lpp, ltg, gpp, gtg, gflops, gbs = [], [], [], [], [], []
            for _ in range(a.rounds):
                x, y = llama_bench(llama, model, a.p, a.n, a.t, depth)
                lpp.append(x)
                ltg.append(y)
                x, y, res = glassbox_bench(a.glassbox, model, a.p, a.n, a.t, depth, mem is None)
                mem = mem or res.get("mem_read_gb_s")
                gpp.append(x)
                gtg.append(y)
                gflops.append(res["pp_gflop_s"])
                gbs.append(res["tg_gb_s"])
                print(json.dumps({"model": os.path.basename(model), "depth": depth,
                                  "llama_pp": lpp[-1], "llama_tg": ltg[-1],
                                  "glassbox_pp": gpp[-1], "glassbox_tg": gtg[-1]}), flush=True)
            med = statistics.median
            rows.append((os.path.basename(model), depth, med(lpp), med(gpp), med(ltg), med(gtg),
                         med(gflops), med(gbs), mem or 0.0))
    print(f"\n{'model':24} {'depth':>6} {'llama pp':>9} {'gb pp':>9} {'ratio':>6} {'llama tg':>9}"
          f" {'gb tg':>9} {'ratio':>6} {'GFLOP/s':>8} {'GB/s':>6} {'mem GB/s':>8}"
          f"   (-p {a.p} -n {a.n} -t {a.t})")
    for name, depth, lp, gp, lt, gt, gf, gb, mem in rows:
        print(f"{name:24} {depth:6d} {lp:9.0f} {gp:9.0f} {gp / lp:6.2f} {lt:9.1f} {gt:9.1f}"
              f" {gt / lt:6.2f} {gf:8.1f} {gb:6.1f} {mem:8.1f}")

if __name__ == "__main__":
    main()
