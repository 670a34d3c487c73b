#!/usr/bin/python3
"""Synthetic GGUF benchmark models with the shapes of Llama-3.2-1B, Llama-3.2-3B and Llama-3.1-8B.

Random weights (meaningless text), real shapes: the 128,256-token Llama 3 vocabulary embedded, the
1B and 3B with tied embeddings (the classifier is the embedding), the 8B with its own output
matrix, rope theta 500000 with the llama3 rope scaling of the real config.json files. For each
shape: a Hugging Face directory (config.json, model.safetensors in BF16 written in chunks,
tokenizer.json + tokenizer_config.json from shared/models/tokenizers/llama3), then
`glassbox convert DIR --type T -o OUT/NAME-T.gguf` for each type (all cores), then the directory
is deleted (--keep-hf keeps it). Files that exist are skipped, so an interrupted run resumes.

Weights: N(0, 1/fan_in) for every matrix (embedding: N(0, 0.02^2)), norm weights 1; numpy's
PCG64 seeded with (--seed, tensor index), so a file is the same on every run and machine (each
tensor's weights are drawn from a table of 65,536 normal samples, which is enough for speed work).

usage: make_bench_models.py --glassbox build/release/glassbox [--out DIR] [--shapes 1b,3b,8b]
                            [--types q4_k_m,q8_0,bf16] [--verify] [--keep-hf] [--threads N]

Disk: the BF16 intermediate is 2 bytes per parameter (1B 2.5 GB, 3B 6.4 GB, 8B 16.1 GB) and is
deleted after its conversions; the outputs (see SHAPES' sizes below) stay. RAM: `glassbox
convert` holds the whole output file in memory before writing it (8B Q8_0: 8.5 GB).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# The real config.json values (meta-llama/Llama-3.2-1B, -3B, Llama-3.1-8B); only the weights are
# not theirs.
SHAPES = {
    "1b": dict(name="llama-3.2-1b", hidden_size=2048, num_hidden_layers=16,
               intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
               tie_word_embeddings=True, rope_factor=32.0, types=["q4_k_m", "q8_0", "bf16"]),
    "3b": dict(name="llama-3.2-3b", hidden_size=3072, num_hidden_layers=28,
               intermediate_size=8192, num_attention_heads=24, num_key_value_heads=8, head_dim=128,
               tie_word_embeddings=True, rope_factor=32.0, types=["q4_k_m", "q8_0", "bf16"]),
    "8b": dict(name="llama-3.1-8b", hidden_size=4096, num_hidden_layers=32,
               intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
               head_dim=128, tie_word_embeddings=False, rope_factor=8.0,
               types=["q4_k_m", "q8_0"]),
}
VOCAB = 128256
# Approximate bytes per parameter of each output type, for the disk check only.
BYTES_PER_PARAM = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q6_k": 210 / 256,
                   "q5_k_m": 0.74, "q4_k_m": 0.64, "q4_0": 18 / 32}
CHUNK = 1 << 25  # elements generated and written at a time (64 MB of BF16)


def tensors(s):
    """(HF name, [rows, cols] or [n], init std or None for ones), in file order."""
    d, f = s["hidden_size"], s["intermediate_size"]
    q, kv = s["num_attention_heads"] * s["head_dim"], s["num_key_value_heads"] * s["head_dim"]
    out = [("model.embed_tokens.weight", [VOCAB, d], 0.02)]
    for l in range(s["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", [d], None),
                (p + "self_attn.q_proj.weight", [q, d], d ** -0.5),
                (p + "self_attn.k_proj.weight", [kv, d], d ** -0.5),
                (p + "self_attn.v_proj.weight", [kv, d], d ** -0.5),
                (p + "self_attn.o_proj.weight", [d, q], q ** -0.5),
                (p + "post_attention_layernorm.weight", [d], None),
                (p + "mlp.gate_proj.weight", [f, d], d ** -0.5),
                (p + "mlp.up_proj.weight", [f, d], d ** -0.5),
                (p + "mlp.down_proj.weight", [d, f], f ** -0.5)]
    out.append(("model.norm.weight", [d], None))
    if not s["tie_word_embeddings"]:
        out.append(("lm_head.weight", [VOCAB, d], d ** -0.5))
    return out


def n_params(s):
    return sum(int(np.prod(shape)) for _, shape, _ in tensors(s))


def config_json(s):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": s["hidden_size"], "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"], "head_dim": s["head_dim"],
        "vocab_size": VOCAB, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": s["rope_factor"],
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192},
        "tie_word_embeddings": s["tie_word_embeddings"], "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "bos_token_id": 128000,
        "eos_token_id": 128001, "torch_dtype": "bfloat16",
    }


def to_bf16(x):
    """float32 array -> uint16 BF16 bits, rounded to nearest even (no NaNs arise here)."""
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
            ).astype("<u2")


def write_safetensors(path, s, seed):
    """model.safetensors in BF16, one chunk of at most CHUNK elements in memory at a time."""
    specs = tensors(s)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in specs:
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    t0, done = time.time(), 0
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for i, (name, shape, std) in enumerate(specs):
            n = int(np.prod(shape))
            if std is None:
                f.write(np.full(n, 0x3F80, dtype="<u2").data)  # 1.0 in BF16
            else:
                # 65,536 normal samples, indexed by uniform 16-bit draws: a normal distribution
                # at ~5x the speed of drawing each weight (8B: minutes, not a quarter hour).
                rng = np.random.default_rng([seed, i])
                table = to_bf16(rng.standard_normal(65536, dtype=np.float32) * np.float32(std))
                for start in range(0, n, CHUNK):
                    m = min(CHUNK, n - start)
                    idx = rng.bit_generator.random_raw((m + 3) // 4).view("<u2")[:m]
                    f.write(table[idx].data)
            done += n * 2
            if name.endswith("down_proj.weight") or name == "lm_head.weight":
                print(f"  {path}: {done / 1e9:6.2f} / {offset / 1e9:.2f} GB"
                      f" ({time.time() - t0:.0f} s)", flush=True)
    os.replace(tmp, path)


def make_hf_dir(hf, s, tokenizer_dir, seed):
    done_marker = os.path.join(hf, ".complete")
    if os.path.exists(done_marker):
        print(f"  {hf}: exists, reused", flush=True)
        return
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump(config_json(s), f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(hf, name))
    write_safetensors(os.path.join(hf, "model.safetensors"), s, seed)
    open(done_marker, "w").close()


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def verify(gguf, glassbox, llama_bench):
    """Both engines load the file and run a few tokens (glassbox bench, llama-bench)."""
    for cmd in ([glassbox, "bench", "-m", gguf, "-p", "16", "-n", "4", "-t", "2", "-r", "1",
                 "--no-mem-bw"],
                [llama_bench, "-m", gguf, "-t", "2", "-p", "16", "-n", "4", "-r", "1", "-o",
                 "json"]):
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"make_bench_models: {os.path.basename(cmd[0])} failed on {gguf}:\n"
                     f"{r.stderr[-2000:]}")
        print(f"  verified with {os.path.basename(cmd[0])} ({time.time() - t0:.0f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True, help="the glassbox binary (Release build)")
    ap.add_argument("--out", default="bench-models",
                    help="output directory (default ./bench-models)")
    ap.add_argument("--work", help="directory for the BF16 HF intermediate (default: --out)")
    ap.add_argument("--shapes", default="1b,3b,8b", help="comma-separated of 1b, 3b, 8b")
    ap.add_argument("--types", help="comma-separated glassbox convert types for every shape "
                    "(default: q4_k_m,q8_0,bf16; 8b: q4_k_m,q8_0)")
    ap.add_argument("--threads", type=int, help="glassbox convert --threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer-dir",
                    default=os.path.join(HERE, "../../shared/models/tokenizers/llama3"))
    ap.add_argument("--keep-hf", action="store_true", help="keep the BF16 HF directory")
    ap.add_argument("--verify", action="store_true",
                    help="load each file in glassbox bench and llama-bench (-p 16 -n 4)")
    ap.add_argument("--llama-bench", default=os.path.join(
        HERE, "../../shared/anchors/llama.cpp-0ad4a86/llama-bench"))
    ap.add_argument("--dry-run", action="store_true", help="print the plan and sizes only")
    a = ap.parse_args()
    work = a.work or a.out
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(a.tokenizer_dir, name)):
            sys.exit(f"make_bench_models: {a.tokenizer_dir}/{name} not found (--tokenizer-dir)")
    for key in a.shapes.split(","):
        if key not in SHAPES:
            sys.exit(f"make_bench_models: unknown shape '{key}' (one of {', '.join(SHAPES)})")
        s = SHAPES[key]
        types = a.types.split(",") if a.types else s["types"]
        params = n_params(s)
        todo = [(t, os.path.join(a.out, f"synth-{s['name']}-{t}.gguf")) for t in types]
        todo = [(t, p) for t, p in todo if not os.path.exists(p) or print(f"{p}: exists, skipped")]
        hf = os.path.join(work, f"synth-{s['name']}-hf")
        hf_bytes = params * 2
        out_bytes = sum(params * BYTES_PER_PARAM[t] for t, _ in todo)
        print(f"{s['name']}: {params / 1e9:.2f} B parameters; BF16 intermediate"
              f" {hf_bytes / 1e9:.1f} GB; to write: {', '.join(t for t, _ in todo) or 'nothing'}"
              f" (~{out_bytes / 1e9:.1f} GB)", flush=True)
        if not todo or a.dry_run:
            continue
        need_work = 0 if os.path.exists(os.path.join(hf, ".complete")) else hf_bytes
        same_fs = os.stat(work).st_dev == os.stat(a.out).st_dev
        for path, need in ([(a.out, need_work + out_bytes)] if same_fs
                           else [(work, need_work), (a.out, out_bytes)]):
            if free_bytes(path) < need + (1 << 30):
                sys.exit(f"make_bench_models: {path} has {free_bytes(path) / 1e9:.1f} GB free; "
                         f"{s['name']} needs {need / 1e9:.1f} GB + 1 GB margin")
        biggest = max(params * BYTES_PER_PARAM[t] for t, _ in todo)
        avail = mem_available()
        if avail is not None and avail < biggest + (2 << 30):
            print(f"warning: {avail / 1e9:.1f} GB of RAM available; glassbox convert holds the "
                  f"whole output ({biggest / 1e9:.1f} GB) in memory", flush=True)
        t0 = time.time()
        make_hf_dir(hf, s, a.tokenizer_dir, a.seed)
        print(f"  HF directory in {time.time() - t0:.0f} s", flush=True)
        for t, path in todo:
            t0 = time.time()
            cmd = [a.glassbox, "convert", "-m", hf, "--type", t, "-o", path]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            subprocess.run(cmd, check=True)
            print(f"  {path}: {os.path.getsize(path):,} bytes in {time.time() - t0:.0f} s",
                  flush=True)
            if a.verify:
                verify(path, a.glassbox, a.llama_bench)
        if not a.keep_hf:
            shutil.rmtree(hf)
            print(f"  removed {hf}", flush=True)


if __name__ == "__main__":
    main()
