#!/usr/bin/env python3
"""End-to-end checks of the glassbox CLI on bad input and --help.

Every bad input must give exit code 1 and exactly one stderr line "glassbox: error: ..." naming
what is wrong (checked by substring), never a crash or a sanitizer report. Model files with
defects are built here by a small GGUF writer written from the GGUF spec.
usage: cli_test.py GLASSBOX_BINARY REPO_DIR
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

GB, REPO = sys.argv[1], sys.argv[2]
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
failures = []


def run(args, stdin=None):
    p = subprocess.run([GB] + args, capture_output=True, text=True, input=stdin, timeout=900)
    return p.returncode, p.stdout, p.stderr


def expect_error(label, args, needle):
    rc, out, err = run(args)
    lines = [l for l in err.splitlines() if l.strip()]
    ok = (rc == 1 and len(lines) == 1 and lines[0].startswith("glassbox: error:")
          and needle.lower() in lines[0].lower())
    print(f"{'ok  ' if ok else 'FAIL'} {label}: rc={rc} {lines[:3]}")
    if not ok:
        failures.append(label)


def expect_ok(label, args, check=lambda out: True):
    rc, out, err = run(args)
    ok = rc == 0 and check(out)
    print(f"{'ok  ' if ok else 'FAIL'} {label}: rc={rc}")
    if not ok:
        print(err[-2000:])
        failures.append(label)
    return out


# ---- a minimal GGUF v3 writer (spec: ggml docs/gguf.md) ----
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    body = {4: lambda v: struct.pack("<I", v), 6: lambda v: struct.pack("<f", v),
            8: gstr}[vtype](value)
    return gstr(key) + struct.pack("<I", vtype) + body


def gguf(metadata, tensors, version=3, type_override=None, shape_override=None):
    """tensors: list of (name, float32 array row-major, or raw bytes with its shape in
    shape_override); dims are written ne0-first."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    head += b"".join(kv(*m) for m in metadata)
    infos, data, off = b"", b"", 0
    for name, arr in tensors:
        shape = (shape_override or {}).get(name, getattr(arr, "shape", None))
        infos += gstr(name) + struct.pack("<I", len(shape))
        infos += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        infos += struct.pack("<IQ", (type_override or {}).get(name, 0), off)
        blob = arr if isinstance(arr, bytes) else arr.astype("<f4").tobytes()
        pad = (-len(blob)) % 32
        data += blob + b"\0" * pad
        off += len(blob) + pad
    out = head + infos
    out += b"\0" * ((-len(out)) % 32)
    return out + data


def tiny_llama(d=8, mlp=16, layers=1, heads=2, vocab=10, ctx=16, arch="llama", raw=None, **kw):
    """raw: {tensor name: bytes} replacing that tensor's data (give its type in type_override)."""
    rng = np.random.default_rng(0)
    md = [("general.architecture", 8, arch), (f"{arch}.embedding_length", 4, d),
          (f"{arch}.feed_forward_length", 4, mlp), (f"{arch}.block_count", 4, layers),
          (f"{arch}.attention.head_count", 4, heads), (f"{arch}.context_length", 4, ctx),
          (f"{arch}.attention.layer_norm_rms_epsilon", 6, 1e-5)]
    t = [("token_embd.weight", rng.standard_normal((vocab, d))),
         ("output_norm.weight", np.ones(d))]
    for l in range(layers):
        p = f"blk.{l}."
        t += [(p + "attn_norm.weight", np.ones(d)), (p + "attn_q.weight", rng.standard_normal((d, d))),
              (p + "attn_k.weight", rng.standard_normal((d, d))), (p + "attn_v.weight", rng.standard_normal((d, d))),
              (p + "attn_output.weight", rng.standard_normal((d, d))), (p + "ffn_norm.weight", np.ones(d)),
              (p + "ffn_gate.weight", rng.standard_normal((mlp, d))), (p + "ffn_up.weight", rng.standard_normal((mlp, d))),
              (p + "ffn_down.weight", rng.standard_normal((d, mlp)))]
    shapes = dict(kw.pop("shape_override", None) or {})
    shapes.update({n: a.shape for n, a in t if n in (raw or {}) and n not in shapes})
    t = [(n, (raw or {}).get(n, a)) for n, a in t]
    return gguf(md, t, shape_override=shapes, **kw)


# ---- tiny HF checkpoints: config.json + safetensors written by hand (format: u64 LE header
# length N, N bytes of JSON padded with spaces, then the raw little-endian data, no gaps) ----
def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        blob = np.ascontiguousarray(arr, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    js = json.dumps(header).encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def hf_llama(d=32, mlp=64, layers=2, heads=4, vocab=64):
    """(config dict, [(HF tensor name, float32 array)]) of a random LlamaForCausalLM."""
    rng = np.random.default_rng(1)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
              "intermediate_size": mlp, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": heads, "vocab_size": vocab, "rms_norm_eps": 1e-5,
              "max_position_embeddings": 64, "tie_word_embeddings": True}
    t = [("model.embed_tokens.weight", rng.standard_normal((vocab, d)))]
    for l in range(layers):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", np.ones(d)),
              (p + "self_attn.q_proj.weight", rng.standard_normal((d, d))),
              (p + "self_attn.k_proj.weight", rng.standard_normal((d, d))),
              (p + "self_attn.v_proj.weight", rng.standard_normal((d, d))),
              (p + "self_attn.o_proj.weight", rng.standard_normal((d, d))),
              (p + "post_attention_layernorm.weight", np.ones(d)),
              (p + "mlp.gate_proj.weight", rng.standard_normal((mlp, d))),
              (p + "mlp.up_proj.weight", rng.standard_normal((mlp, d))),
              (p + "mlp.down_proj.weight", rng.standard_normal((d, mlp)))]
    t.append(("model.norm.weight", np.ones(d)))
    return config, t



with tempfile.TemporaryDirectory() as tmp:
    def write(name, data):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # --help everywhere: every subcommand `glassbox --help` lists (at least these)
    top = run(["--help"])[1]
    listed = [ln.split()[0] for ln in top.split("Subcommands:", 1)[-1].splitlines()
              if ln.startswith("  ")]
    want = {"info", "generate", "logits", "cache", "tokenize", "convert", "bench", "harvest",
            "convert-sae", "sae-encode"}
    missing = want - set(listed)
    print(f"{'ok  ' if not missing else 'FAIL'} `glassbox --help` lists {len(listed)} subcommands"
          f"{'' if not missing else ', missing ' + str(missing)}")
    if missing:
        failures.append("subcommand list")
    for cmd in [""] + listed:
        expect_ok(f"--help {cmd}", ([cmd] if cmd else []) + ["--help"], lambda o: "--" in o)

    good = write("tiny.gguf", tiny_llama())
    expect_ok("tiny GGUF runs", ["logits", "-m", good, "--tokens", "1,2,3", "--out", os.path.join(tmp, "l.npy")])

    raw = open(MODEL, "rb").read()
    expect_error("missing file", ["info", "-m", os.path.join(tmp, "nope.bin")], "nope.bin")
    expect_error("empty file", ["info", "-m", write("empty.bin", b"")], "empty.bin")
    expect_error("truncated llama2c", ["info", "-m", write("trunc.bin", raw[:100000])], "trunc.bin")
    expect_error("llama2c with extra bytes", ["info", "-m", write("long.bin", raw + b"\0" * 8)], "long.bin")
    bad_hdr = struct.pack("<7i", 64, 172, 5, 7, 4, 512, 512) + raw[28:]
    expect_error("llama2c heads do not divide dim", ["info", "-m", write("heads.bin", bad_hdr)], "heads.bin")
    tg = tiny_llama()
    for cut in [3, 10, 30, 100, 400, len(tg) // 2, len(tg) - 4]:
        expect_error(f"truncated GGUF at {cut}", ["info", "-m", write(f"t{cut}.gguf", tg[:cut])], f"t{cut}.gguf")
    expect_error("GGUF bad version", ["info", "-m", write("v9.gguf", tiny_llama(version=9))], "version")
    expect_error("GGUF unknown architecture", ["info", "-m", write("arch.gguf", tiny_llama(arch="gpt9"))], "gpt9")
    expect_error("GGUF unknown tensor type",
                 ["info", "-m", write("type.gguf", tiny_llama(type_override={"blk.0.attn_q.weight": 99}))],
                 "blk.0.attn_q.weight")
    expect_error("GGUF shape mismatch",
                 ["logits", "-m", write("shape.gguf", tiny_llama(shape_override={"blk.0.ffn_up.weight": (8, 16)})),
                  "--tokens", "1", "--out", os.path.join(tmp, "x.npy")], "blk.0.ffn_up.weight")
    out = os.path.join(tmp, "o.npy")

    # ---- ggml types glassbox does not handle, and rows that are not whole blocks ----
    # IQ2_XXS (16) and TQ1_0 (34) are ggml types the reader does not map: one error naming the
    # tensor and the type by name.
    for tid, tname in [(16, "IQ2_XXS"), (34, "TQ1_0"), (99, "99")]:
        f = write(f"type{tid}.gguf", tiny_llama(type_override={"blk.0.attn_k.weight": tid}))
        expect_error(f"GGUF tensor type {tname}", ["info", "-m", f], "blk.0.attn_k.weight")
        expect_error(f"GGUF tensor type {tname} named", ["info", "-m", f], tname)
    # Q2_K (10) is read (info works) but not computed, nor dequantized by convert.
    q2k = write("q2k.gguf", tiny_llama(d=256, mlp=256, heads=4, raw={"blk.0.attn_q.weight": bytes(256 * 84)},
                                       type_override={"blk.0.attn_q.weight": 10}))
    expect_ok("Q2_K file: info lists it", ["info", "-m", q2k, "--no-hooks"], lambda o: "blk.0.attn_q.weight" in o)
    for cmd in (["logits", "--tokens", "1", "--out", out], ["convert", "-o", os.path.join(tmp, "q2k_out.gguf")]):
        expect_error(f"Q2_K tensor: {cmd[0]} names the tensor", [cmd[0], "-m", q2k] + cmd[1:], "blk.0.attn_q.weight")
        expect_error(f"Q2_K tensor: {cmd[0]} names the type", [cmd[0], "-m", q2k] + cmd[1:], "q2_k")
    # Q8_0 with rows of 40 elements (blocks of 32); Q4_K with rows of 288 (blocks of 256).
    f = write("q8row.gguf", tiny_llama(d=40, mlp=16, heads=4, raw={"blk.0.attn_q.weight": bytes(40 * 34 * 2)},
                                       type_override={"blk.0.attn_q.weight": 8}))
    expect_error("Q8_0 row of 40 elements", ["info", "-m", f], "blk.0.attn_q.weight")
    expect_error("Q8_0 row of 40 elements: block size", ["info", "-m", f], "32")
    f = write("q4krow.gguf", tiny_llama(d=288, mlp=16, heads=4, raw={"blk.0.attn_q.weight": bytes(288 * 144 * 2)},
                                        type_override={"blk.0.attn_q.weight": 12}))
    expect_error("Q4_K row of 288 elements", ["info", "-m", f], "blk.0.attn_q.weight")
    expect_error("Q4_K row of 288 elements: block size", ["info", "-m", f], "256")

    # ---- convert: bad --type; K-quants of rows that are not whole super-blocks ----
    expect_error("convert --type q3_k", ["convert", "-m", MODEL, "-o", os.path.join(tmp, "x.gguf"), "--type", "q3_k"],
                 "q3_k")
    expect_error("convert --type q3_k lists the types",
                 ["convert", "-m", MODEL, "-o", os.path.join(tmp, "x.gguf"), "--type", "q3_k"], "q4_k_m, q5_k_m, q6_k")
    expect_error("convert quantized to llama2.c", ["convert", "-m", MODEL, "-o", os.path.join(tmp, "x.bin"),
                                                   "--type", "q8_0"], "f32")
    expect_error("convert quantized to HF", ["convert", "-m", MODEL, "-o", os.path.join(tmp, "xdir"),
                                             "--type", "q4_0"], "f16")
    # stories260K: d_model 64, d_mlp 172, so no row is a whole 256-element super-block. Like
    # llama.cpp (llama_tensor_get_type), such tensors fall back: Q4_K -> Q5_0, Q5_K -> Q5_1,
    # Q6_K -> Q8_0, and to F16 when the row is not even a multiple of 32 (ffn_down: 172). The
    # tied token embedding is the classifier: Q8_0 when its rows are not whole base blocks.
    sys.path.insert(0, os.path.join(REPO, "tests/reference"))
    import llama_ref
    for qtype, base, more in [("q4_k_m", 6, 8), ("q5_k_m", 7, 8), ("q6_k", 8, 8)]:
        conv = os.path.join(tmp, f"s260_{qtype}.gguf")
        expect_ok(f"convert stories260K --type {qtype}", ["convert", "-m", MODEL, "-o", conv, "--type", qtype])
        types = {}
        llama_ref.read_gguf_raw(conv, types)
        # 5 layers: use_more_bits picks layers 4 (>= 7n/8) and 2 ((l - n/8) % 3 == 2).
        want = {n: 0 if n.endswith("norm.weight") else 1 if "ffn_down" in n else
                more if n == "token_embd.weight" or (("attn_v" in n) and n.split(".")[1] in "24") else base
                for n in types}
        bad = {n: (t, want[n]) for n, t in types.items() if t != want[n]}
        print(f"{'ok  ' if not bad else 'FAIL'} {qtype} fallback types on 64/172-wide rows: {bad or len(types)}")
        if bad:
            failures.append(f"{qtype} fallback types")
        expect_ok(f"{qtype} fallback file runs", ["logits", "-m", conv, "--tokens", "1,2,3", "--out", out])
    # q8_0 / q4_0 of 172-wide rows: llama.cpp refuses; glassbox stores those tensors as F16.
    conv = os.path.join(tmp, "s260_q4_0.gguf")
    expect_ok("convert stories260K --type q4_0", ["convert", "-m", MODEL, "-o", conv, "--type", "q4_0"])
    types = {}
    llama_ref.read_gguf_raw(conv, types)
    if types["blk.0.ffn_down.weight"] != 1 or types["blk.0.ffn_up.weight"] != 2:
        failures.append(f"q4_0 fallback: ffn_down {types['blk.0.ffn_down.weight']}, ffn_up {types['blk.0.ffn_up.weight']}")

    # ---- HF checkpoints that disagree with themselves ----
    def hf_dir(name, config, tensors, shards=None, raw_config=None):
        """Writes tmp/name/{config.json, model.safetensors}; shards: list of lists of tensor
        names, written as model-0000K-of-0000N.safetensors with an index (a shard whose name
        starts with '-' is listed in the index but not written)."""
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(raw_config if raw_config is not None else json.dumps(config))
        if shards is None:
            write(os.path.join(name, "model.safetensors"), safetensors(tensors))
            return d
        weight_map = {}
        for k, names in enumerate(shards):
            fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            weight_map.update({n.lstrip("-"): fname for n in names})
            if not names[0].startswith("-"):
                write(os.path.join(name, fname), safetensors([(n, a) for n, a in tensors if n in names]))
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
        return d

    cfg, tens = hf_llama()
    logits_args = lambda d: ["logits", "-m", d, "--tokens", "1,2", "--out", out]  # noqa: E731
    expect_ok("tiny HF llama runs", logits_args(hf_dir("hf_ok", cfg, tens)))
    names = [n for n, _ in tens]
    half = len(names) // 2
    d = hf_dir("hf_shard", cfg, tens, shards=[names[:half], ["-" + n for n in names[half:]]])
    expect_error("HF index names a missing shard", logits_args(d), "model-00002-of-00002.safetensors")
    d = hf_dir("hf_width", dict(cfg, hidden_size=64), tens)
    expect_error("HF hidden_size 64, tensors 32 wide: field", logits_args(d), "hidden_size is 64")
    expect_error("HF hidden_size 64, tensors 32 wide: tensor", logits_args(d), "model.embed_tokens.weight")
    expect_error("HF hidden_size 64, tensors 32 wide: shape", logits_args(d), "[64, 32]")
    d = hf_dir("hf_layers", dict(cfg, num_hidden_layers=3), tens)
    expect_error("HF num_hidden_layers 3, weights for 2", logits_args(d), "num_hidden_layers is 3")
    expect_error("HF num_hidden_layers 3, weights for 2: found", logits_args(d), "layers 0..1")
    d = hf_dir("hf_layers1", dict(cfg, num_hidden_layers=1), tens)
    expect_error("HF num_hidden_layers 1, weights for 2", logits_args(d), "num_hidden_layers is 1")
    d = hf_dir("hf_missing", cfg, [(n, a) for n, a in tens if n != "model.layers.1.mlp.up_proj.weight"])
    expect_error("HF missing tensor", logits_args(d), "model.layers.1.mlp.up_proj.weight")
    d = hf_dir("hf_vocab", dict(cfg, vocab_size=100), tens)
    expect_error("HF vocab_size mismatch", logits_args(d), "vocab_size is 100")
    expect_error("HF vocab_size mismatch: shape", logits_args(d), "[64, 32]")
    d = hf_dir("hf_mlp", dict(cfg, intermediate_size=48), tens)
    expect_error("HF intermediate_size mismatch", logits_args(d), "intermediate_size is 48")
    d = hf_dir("hf_untied", dict(cfg, tie_word_embeddings=False), tens)
    expect_error("HF untied without lm_head", logits_args(d), "lm_head.weight")
    d = hf_dir("hf_mamba", dict(cfg, architectures=["MambaForCausalLM"]), tens)
    expect_error("HF unsupported architecture", logits_args(d), "MambaForCausalLM")
    d = hf_dir("hf_trunc", None, tens, raw_config=json.dumps(cfg)[:40])
    expect_error("HF truncated config.json", logits_args(d), os.path.join(d, "config.json"))
    d = hf_dir("hf_heads", dict(cfg, num_attention_heads=3), tens)
    expect_error("HF heads do not divide hidden_size", logits_args(d), "num_attention_heads")
    d = hf_dir("hf_strfield", dict(cfg, hidden_size="32"), tens)
    expect_error("HF hidden_size is a string", logits_args(d), "hidden_size")
    d = hf_dir("hf_noconfig", cfg, tens)
    os.remove(os.path.join(d, "config.json"))
    expect_error("HF dir without config.json", logits_args(d), "needs config.json")
    gcfg = {"architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_layer": 1, "n_head": 4,
            "n_positions": 16, "vocab_size": 64}
    rng = np.random.default_rng(2)
    gt = [("wte.weight", rng.standard_normal((64, 32))), ("wpe.weight", rng.standard_normal((16, 32))),
          ("ln_f.weight", np.ones(32)), ("ln_f.bias", np.zeros(32)),
          ("h.0.ln_1.weight", np.ones(32)), ("h.0.ln_1.bias", np.zeros(32)),
          ("h.0.attn.c_attn.weight", rng.standard_normal((32, 96))), ("h.0.attn.c_attn.bias", np.zeros(96)),
          ("h.0.attn.c_proj.weight", rng.standard_normal((32, 32))), ("h.0.attn.c_proj.bias", np.zeros(32)),
          ("h.0.ln_2.weight", np.ones(32)), ("h.0.ln_2.bias", np.zeros(32)),
          ("h.0.mlp.c_fc.weight", rng.standard_normal((32, 128))), ("h.0.mlp.c_fc.bias", np.zeros(128)),
          ("h.0.mlp.c_proj.weight", rng.standard_normal((128, 32))), ("h.0.mlp.c_proj.bias", np.zeros(32))]
    expect_ok("tiny HF gpt2 runs", logits_args(hf_dir("gpt2_ok", gcfg, gt)))
    d = hf_dir("gpt2_ctx", dict(gcfg, n_positions=32), gt)
    expect_error("HF gpt2 n_positions mismatch", logits_args(d), "n_positions is 32")
    d = hf_dir("gpt2_qkv", gcfg, [(n, a[:, :90] if n == "h.0.attn.c_attn.weight" else a) for n, a in gt])
    expect_error("HF gpt2 c_attn width", logits_args(d), "h.0.attn.c_attn.weight")
    expect_error("unknown hook", ["cache", "-m", MODEL, "--tokens", "1,2", "--hooks", "blocks.0.hook_nope",
                                  "--out", tmp], "blocks.0.hook_nope")
    expect_error("hook layer out of range", ["cache", "-m", MODEL, "--tokens", "1,2", "--hooks",
                                             "blocks.5.hook_resid_pre", "--out", tmp], "layers are 0..4")
    expect_error("token id out of range", ["logits", "-m", MODEL, "--tokens", "1,512", "--out", out], "512")
    expect_error("negative token id", ["logits", "-m", MODEL, "--tokens", "1,-3", "--out", out], "-3")
    expect_error("bad token list", ["logits", "-m", MODEL, "--tokens", "1,x", "--out", out], "'x'")
    expect_error("empty prompt", ["generate", "-m", MODEL, "--prompt", "", "-n", "4"], "empty")
    expect_error("prompt longer than context",
                 ["logits", "-m", MODEL, "--tokens", ",".join(["5"] * 513), "--out", out], "context length")
    expect_error("long text prompt",
                 ["generate", "-m", MODEL, "--prompt", "the cat sat. " * 400, "-n", "4"], "context length")
    expect_error("unwritable output", ["logits", "-m", MODEL, "--tokens", "1", "--out",
                                       os.path.join(tmp, "no/such/dir/x.npy")], "x.npy")
    expect_error("no tokenizer found", ["generate", "-m", good, "--prompt", "hi", "-n", "2"], "tokenizer")
    jl = write("in.jsonl", b'{"text": "Once upon a time"}\n{"txt": 3}\n')
    expect_error("jsonl without text", ["tokenize", "-m", MODEL, "--jsonl", jl], "in.jsonl:2")
    expect_error("decode id out of range", ["tokenize", "-m", MODEL, "--decode", "--text", "1,9999"], "9999")

    # chat-template: bad inputs are one error line naming the file (and line) at fault
    conv = write("conv.json", b'[{"role": "user", "content": "Hi"}]')
    tpl = write("ok.jinja", b"{% for m in messages %}{{ m.content }}{% endfor %}")
    expect_error("chat-template missing template file",
                 ["chat-template", "--template", os.path.join(tmp, "nope.jinja"), "--messages", conv],
                 "nope.jinja")
    expect_error("chat-template syntax error",
                 ["chat-template", "--template", write("bad.jinja", b"a\n{% if %}"), "--messages", conv],
                 "bad.jinja: line 2, column 7")
    expect_error("chat-template raise_exception",
                 ["chat-template", "--template", write("raise.jinja", b"{{ raise_exception('no!') }}"),
                  "--messages", conv], "the template raised an exception: no!")
    expect_error("chat-template messages not JSON",
                 ["chat-template", "--template", tpl, "--messages", write("m.json", b"[{")], "messages")
    expect_error("chat-template bad --date",
                 ["chat-template", "--template", tpl, "--messages", conv, "--date", "26/07/2024"], "--date")
    expect_error("chat-template: the model has none",
                 ["chat-template", "-m", MODEL, "--messages", conv], "no chat template")
    out = expect_ok("chat-template renders", ["chat-template", "--template", tpl, "--messages", conv])
    if out != "Hi":
        failures.append(f"chat-template printed {out!r}, expected 'Hi' (nothing added)")

    # Positive paths of tokenize and cache
    jl = write("ok.jsonl", b'{"text": "Once upon a time"}\n{"text": "Lily"}\n')
    enc = expect_ok("tokenize jsonl", ["tokenize", "-m", MODEL, "--jsonl", jl])
    arrays = [json.loads(l) for l in enc.splitlines()]
    if len(arrays) != 2 or arrays[0][0] == 1:
        failures.append("tokenize jsonl: expected 2 arrays without BOS")
    back = expect_ok("decode", ["tokenize", "-m", MODEL, "--decode", "--text", ",".join(map(str, arrays[0]))])
    if back.strip() != "Once upon a time":
        failures.append(f"decode round trip gave {back!r}")
    cdir = os.path.join(tmp, "cache")
    expect_ok("cache all hooks", ["cache", "-m", MODEL, "--prompt", "Hi there", "--hooks", "all", "--out", cdir])
    n_files = len(os.listdir(cdir)) if os.path.isdir(cdir) else 0
    if n_files != 103:
        failures.append(f"cache all: {n_files} files, expected 103")
    a = np.load(os.path.join(cdir, "blocks.4.attn.hook_pattern.npy"))
    if a.shape != (8, 4, 4) or a.dtype != np.float32:
        failures.append(f"pattern shape {a.shape} {a.dtype}")

    # --kv-type: one flag on every command that runs a session; bad values name the flag and the
    # allowed types; bench takes llama-bench's -ctk / -ctv only when they agree.
    for cmd in (["logits", "--tokens", "1,2", "--out", os.path.join(tmp, "kv.npy")],
                ["cache", "--tokens", "1,2", "--hooks", "hook_embed", "--out", os.path.join(tmp, "kvc")],
                ["generate", "--tokens", "1,2", "-n", "2"],
                ["bench", "-p", "4", "-n", "2", "-r", "1", "--no-mem-bw"]):
        expect_error(f"{cmd[0]} --kv-type bogus", [cmd[0], "-m", MODEL] + cmd[1:] + ["--kv-type", "bogus"],
                     "--kv-type")
        expect_error(f"{cmd[0]} --kv-type bogus lists the types",
                     [cmd[0], "-m", MODEL] + cmd[1:] + ["--kv-type", "q8_0"], "f32, f16, bf16")
    expect_error("serve --kv-type bogus", ["serve", "-m", MODEL, "--port", "0", "--kv-type", "f8"], "--kv-type")
    for cmd in (["steer-vector"], ["persona", "extract"], ["persona", "score"], ["persona", "eval"],
                ["score"], ["serve"]):
        expect_ok(f"--help {' '.join(cmd)} lists --kv-type", cmd + ["--help"], lambda o: "--kv-type" in o)
    bench = ["bench", "-m", MODEL, "-p", "4", "-n", "2", "-r", "1", "--no-mem-bw", "-t", "1"]
    expect_error("bench -ctk f16 -ctv bf16", bench + ["-ctk", "f16", "-ctv", "bf16"], "-ctk/--cache-type-k")
    expect_error("bench -ctk q4_0", bench + ["-ctk", "q4_0"], "-ctk/--cache-type-k")
    expect_error("bench -ctk f16 --kv-type f32", bench + ["-ctk", "f16", "--kv-type", "f32"], "--kv-type")
    for flags, want in ((["-ctk", "f16", "-ctv", "f16"], "f16"), (["--kv-type", "bf16"], "bf16"),
                        ([], "f32")):
        out = expect_ok(f"bench {' '.join(flags) or '(default)'}", bench + flags)
        try:
            got = json.loads(out)
        except ValueError:
            got = {}
        f32_bytes = 2 * 5 * 4 * 32 * 4  # 5 layers x 4 rows (n_ctx = p) x kv_dim 32, keys and values
        if got.get("kv_type") != want or got.get("kv_bytes") != f32_bytes // (1 if want == "f32" else 2):
            failures.append(f"bench {flags}: kv_type {got.get('kv_type')} kv_bytes {got.get('kv_bytes')}")
    # The flag reaches the cache: f16 logits differ from f32 ones (slightly).
    outs = {}
    for t in ("f32", "f16"):
        outs[t] = os.path.join(tmp, f"kv_{t}.npy")
        expect_ok(f"logits --kv-type {t}", ["logits", "-m", MODEL, "--tokens", "1,2,3,4,5,6,7,8",
                                            "--out", outs[t], "--kv-type", t])
    if os.path.exists(outs["f16"]) and os.path.exists(outs["f32"]):
        a, b = np.load(outs["f32"]), np.load(outs["f16"])
        if np.array_equal(a, b) or np.abs(a - b).max() > 1e-2:
            failures.append(f"logits --kv-type f16 vs f32: max diff {np.abs(a - b).max()}")

print(f"{len(failures)} failed: {failures}" if failures else "all CLI checks passed")
sys.exit(1 if failures else 0)
