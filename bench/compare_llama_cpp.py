#!/usr/bin/python3
"""glassbox vs llama.cpp's llama-bench on the same GGUF files, same thread count, interleaved.

The matrix is models x depths. Each round visits every cell once, in order, and runs llama-bench
(pp p, tg n, -d depth) and then `glassbox bench` with the same -p/-n/-t/-d on it, so that a slow
minute on the shared machine falls on both engines and on every cell alike. Prints one JSON line
per measurement, then a table of medians over rounds: ratios (glassbox / llama.cpp), glassbox's
prefill GFLOP/s and decode GB/s, and the streaming read bandwidth `glassbox bench` measures in the
same run (mem_read_gb_s, first visit of each model). --markdown FILE writes the table with the
date, CPU, threads and both versions (between the bench-table markers when FILE has them, as
docs/benchmarks.md does, else the whole file).

Models: --models a.gguf,b.gguf, or --matrix DIR (every *.gguf in DIR, e.g. the output of
bench/make_bench_models.py, grouped by shape, smallest first), or by default the three small files
of issue #4 (the F32 synth15M GGUF is made here: gen_synth_llama2c.py -> synth15M.bin ->
`glassbox convert --type f32`).

usage: compare_llama_cpp.py --glassbox build/release/glassbox [--shared ../shared] [--work DIR]
                            [-p 512] [-n 64] [-t 2] [--rounds 3] [--reps 3]
                            [--models a.gguf,b.gguf | --matrix DIR] [--depths 0,4096]
                            [--kv-type f16] [--markdown docs/benchmarks.md]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TYPE_ORDER = ["q4_0", "q4_k_m", "q5_k_m", "q6_k", "q8_0", "bf16", "f16", "f32"]
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = [x.strip() for x in r.stderr.splitlines() if x.strip()][-2:] or ["(no message)"]
        raise RuntimeError(f"{os.path.basename(cmd[0])} exit {r.returncode}: "
                           + " / ".join(last)[:200])
    return json.loads(r.stdout)


def llama_bench(binary, model, p, n, t, depth=0, reps=3, kv_type=None, fa=0):
    res = run_json([binary, "-m", model, "-t", str(t), "-p", str(p), "-n", str(n), "-r", str(reps),
                    "-fa", str(fa), "-d", str(depth), "-o", "json"]
                   + (["-ctk", kv_type, "-ctv", kv_type] if kv_type else []))
    pp = next(r for r in res if r["n_prompt"] == p and r["n_gen"] == 0)
    tg = next(r for r in res if r["n_gen"] == n and r["n_prompt"] == 0)
    return pp["avg_ts"], tg["avg_ts"], pp


def glassbox_bench(binary, model, p, n, t, depth=0, mem_bw=False, reps=3, kv_type=None):
    res = run_json([binary, "bench", "-m", model, "-p", str(p), "-n", str(n), "-t", str(t),
                    "-r", str(reps), "-d", str(depth)] + ([] if mem_bw else ["--no-mem-bw"])
                   + (["--kv-type", kv_type] if kv_type else []))
    return res["pp_tok_s"], res["tg_tok_s"], res


def matrix_models(directory):
    """*.gguf in DIR, grouped by name without the type suffix (smallest group first), types in
    TYPE_ORDER within a group."""
    files = sorted(glob.glob(os.path.join(directory, "*.gguf")))
    if not files:
        sys.exit(f"compare_llama_cpp: no *.gguf in {directory}")

    def split(f):
        stem = os.path.basename(f)[:-5]
        for t in TYPE_ORDER:
            if stem.lower().endswith("-" + t):
                return stem[:-len(t) - 1], TYPE_ORDER.index(t)
        return stem, len(TYPE_ORDER)

    group_size = {}
    for f in files:
        g = split(f)[0]
        group_size[g] = min(group_size.get(g, float("inf")), os.path.getsize(f))
    return sorted(files, key=lambda f: (group_size[split(f)[0]], split(f)[0], split(f)[1]))


def default_models(a):
    f32 = os.path.join(a.work, "synth15M-f32.gguf")
    if not os.path.exists(f32):
        raw = os.path.join(a.work, "synth15M.bin")
        subprocess.run([sys.executable, os.path.join(a.shared, "models/gguf/gen_synth_llama2c.py"),
                        raw, "288", "768", "6", "6", "6", "32000", "256", "1234"], check=True)
        tok = os.path.join(a.shared, "models/llama2-tokenizer/tokenizer.bin")
        subprocess.run([a.glassbox, "convert", "-m", raw, "-o", f32, "--type", "f32",
                        "--tokenizer", tok], check=True)
    return [f32, os.path.join(a.shared, "models/gguf/synth15M-q8_0.gguf"),
            os.path.join(a.shared, "models/gguf/synthK-q4_k_m.gguf")]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def glassbox_version():
    r = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True,
                       text=True)
    return r.stdout.strip() or "unknown"


def table_lines(rows, markdown):
    head = ["model", "GB", "depth", "llama pp", "gb pp", "ratio", "llama tg", "gb tg", "ratio",
            "GFLOP/s", "GB/s", "mem GB/s"]
    cells = []
    for r in rows:
        if r.get("error"):
            cells.append([r["name"], "", str(r["depth"]), "failed: " + r["error"][:90]]
                         + [""] * 8)
            continue
        cells.append([r["name"], f"{r['size_gb']:.2f}", str(r["depth"]), f"{r['lpp']:.1f}",
                      f"{r['gpp']:.1f}", f"{r['gpp'] / r['lpp']:.2f}", f"{r['ltg']:.2f}",
                      f"{r['gtg']:.2f}", f"{r['gtg'] / r['ltg']:.2f}", f"{r['gflops']:.1f}",
                      f"{r['gbs']:.1f}", f"{r['mem']:.1f}" if r["mem"] else "-"])
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        return out + ["| " + " | ".join(c) + " |" for c in cells]
    w = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    fmt = lambda c: " ".join(x.ljust(w[0]) if i == 0 else x.rjust(w[i]) for i, x in enumerate(c))
    return [fmt(head)] + [fmt(c) for c in cells]


def write_markdown(path, rows, a, llama_info, elapsed_s, load):
    kv = a.kv_type or "each engine's default (llama.cpp f16, glassbox f32)"
    info = [f"Measured {datetime.date.today().isoformat()} on {cpu_name()}"
            f" ({os.cpu_count()} hardware threads), {platform.node()}; -t {a.t}; -p {a.p} -n {a.n};"
            f" KV cache type {kv}; {a.rounds} round(s) x {a.reps} repetitions, medians;"
            f" {elapsed_s / 60:.0f} min in all; 1-minute load average {min(load):.1f}"
            f"-{max(load):.1f} (before the run and after each cell).",
            f"llama.cpp: llama-bench build {llama_info.get('build_commit', '?')}"
            f" ({llama_info.get('build_number', '?')}), -fa {a.fa}, backend"
            f" {llama_info.get('backends', '?')}; glassbox: {glassbox_version()}"
            f" ({os.path.relpath(a.glassbox)}).",
            "Columns: tok/s (pp = prompt of p tokens in one batch, tg = n decode steps after"
            " `depth` tokens in the cache); ratio = glassbox / llama.cpp; GFLOP/s = glassbox"
            " prefill; GB/s = glassbox decode weight bytes per second; mem GB/s = streaming read"
            " bandwidth measured by `glassbox bench` in the same run.", ""]
    block = "\n".join([BEGIN] + info + table_lines(rows, True) + [END]) + "\n"
    text = open(path).read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):].lstrip("\n")
    else:
        text = block
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--shared", default=os.path.join(HERE, "../../shared"))
    ap.add_argument("--llama-bench", help="default: SHARED/anchors/llama.cpp-0ad4a86/llama-bench")
    ap.add_argument("--work", default="/tmp/glassbox-bench")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="visits of the whole matrix")
    ap.add_argument("--reps", type=int, default=3, help="-r of each llama-bench / glassbox bench")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--models", help="comma-separated GGUF files (default: the three of issue #4)")
    src.add_argument("--matrix", metavar="DIR",
                     help="every *.gguf in DIR (e.g. bench/make_bench_models.py --out DIR)")
    ap.add_argument("--depths", default="0",
                    help="comma-separated KV-cache depths (llama-bench -d), e.g. 0,4096")
    ap.add_argument("--kv-type", help="KV cache type for both engines (llama-bench -ctk X -ctv X,"
                    " glassbox bench --kv-type X); default: pass nothing (each engine's default)."
                    " llama.cpp needs --fa 1 for a quantized V cache (q8_0, q4_0)")
    ap.add_argument("--fa", type=int, choices=[0, 1], default=0,
                    help="llama-bench -fa (flash attention; default 0, as glassbox's path)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    a = ap.parse_args()
    llama = a.llama_bench or os.path.join(a.shared, "anchors/llama.cpp-0ad4a86/llama-bench")
    os.makedirs(a.work, exist_ok=True)
    models = (a.models.split(",") if a.models else matrix_models(a.matrix) if a.matrix
              else default_models(a))
    depths = [int(x) for x in a.depths.split(",")]
    cells = [(m, d) for m in models for d in depths]
    res = {c: {"lpp": [], "ltg": [], "gpp": [], "gtg": [], "gflops": [], "gbs": []} for c in cells}
    mem, size, errors, llama_info = {}, {}, {}, {}
    t_start, load = time.time(), [os.getloadavg()[0]]
    if load[0] > 0.5:
        print(f"compare_llama_cpp: warning: load average {load[0]:.1f} before the run; llama.cpp's"
              " threads spin-wait and its numbers collapse under foreign load (seen: 1B Q4_K_M"
              " tg64 1.4 tok/s, glassbox 46, at load 9): the ratios would mean nothing",
              file=sys.stderr, flush=True)
    for rnd in range(a.rounds):
        for model, depth in cells:
            if (model, depth) in errors:
                continue
            t0 = time.time()
            try:
                lp, lt, info = llama_bench(llama, model, a.p, a.n, a.t, depth, a.reps, a.kv_type,
                                           a.fa)
                gp, gt, g = glassbox_bench(a.glassbox, model, a.p, a.n, a.t, depth,
                                           model not in mem, a.reps, a.kv_type)
            except (RuntimeError, json.JSONDecodeError, StopIteration, KeyError) as e:
                errors[(model, depth)] = str(e) or type(e).__name__
                print(f"compare_llama_cpp: {os.path.basename(model)} depth {depth}: {e}",
                      file=sys.stderr, flush=True)
                continue
            llama_info = llama_info or info
            size[model] = info.get("model_size", 0) / 1e9
            mem.setdefault(model, g.get("mem_read_gb_s"))
            load.append(os.getloadavg()[0])
            r = res[(model, depth)]
            for k, v in (("lpp", lp), ("ltg", lt), ("gpp", gp), ("gtg", gt),
                         ("gflops", g["pp_gflop_s"]), ("gbs", g["tg_gb_s"])):
                r[k].append(v)
            print(json.dumps({"model": os.path.basename(model), "depth": depth, "round": rnd,
                              "llama_pp": lp, "llama_tg": lt, "glassbox_pp": gp,
                              "glassbox_tg": gt, "seconds": round(time.time() - t0, 1),
                              "load1": load[-1]}),
                  flush=True)
    elapsed = time.time() - t_start
    med = statistics.median
    rows = []
    for model, depth in cells:
        row = {"name": os.path.basename(model), "depth": depth}
        r = res[(model, depth)]
        if not r["lpp"]:
            row["error"] = errors.get((model, depth), "no measurement")
        else:
            row.update({k: med(v) for k, v in r.items()})
            row.update(size_gb=size[model], mem=mem.get(model))
        rows.append(row)
    print(f"\n(-p {a.p} -n {a.n} -t {a.t}, kv {a.kv_type or 'default'}, {a.rounds} rounds,"
          f" {elapsed / 60:.1f} min, load average {min(load):.1f}-{max(load):.1f})")
    print("\n".join(table_lines(rows, False)))
    if a.markdown:
        write_markdown(a.markdown, rows, a, llama_info, elapsed, load)


if __name__ == "__main__":
    main()
