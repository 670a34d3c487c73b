#!/usr/bin/python3
"""`glassbox steer-vector` against the independent float64 NumPy reference
(tests/reference/steer/steer_ref.py) on stories260K and data/steer/happy_sad_pairs.jsonl.

  1. every text's blocks.L.hook_resid_post is dumped with `glassbox cache --prompt`; the reference
     reduces them (last token / mean) and computes mean_diff and pca directions per layer
  2. steer-vector's outputs (.gguf read by the reference's own GGUF reader, .npy, .safetensors)
     match them within 1e-5 (max abs), for pca/mean_diff, last/mean, --no-normalize,
     --positive/--negative text files of different sizes, explicit --layers
  3. --info lists a written GGUF; a GGUF written by the reference's writer loads back the same
  4. bad input: malformed control-vector GGUFs (wrong width, direction.0, direction.x, F16,
     missing metadata, truncated), a bad pairs line, layer 0 into a GGUF, pca with unequal
     sets, an unknown method: exit 1 with one "glassbox: error:" line naming the culprit
With --break the reference perturbs its vectors and the script must then report failures.
usage: steer_vector_test.py GLASSBOX REPO_DIR [--break]
"""
import json
import os
import shutil
import sys
import tempfile

try:
    import numpy as np
except ImportError:  # pragma: no cover
    print("skip: numpy missing")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference", "steer"))
from cli_util import Ledger, runner  # noqa: E402
import steer_ref  # noqa: E402

TOL = 1e-5


def main():
    binary, repo = sys.argv[1], sys.argv[2]
    breaking = "--break" in sys.argv
    gb = runner(binary)
    led = Ledger()
    model = os.path.join(repo, "models", "stories260K", "stories260K.bin")
    pairs_path = os.path.join(repo, "data", "steer", "happy_sad_pairs.jsonl")
    pairs = [json.loads(line) for line in open(pairs_path) if line.strip()]
    pos_texts = [p["positive"] for p in pairs]
    neg_texts = [p["negative"] for p in pairs]
    n_layers = 5
    layers = list(range(n_layers))
    hooks = ",".join(f"blocks.{L}.hook_resid_post" for L in layers)
    tmp = tempfile.mkdtemp(prefix="steer_vector_test_")

    # 1. activations of every text, straight from `glassbox cache`.
    acts = {}  # text -> {layer: [n_tokens, d_model]}
    for i, text in enumerate(sorted(set(pos_texts + neg_texts))):
        d = os.path.join(tmp, f"cache{i}")
        gb("cache", "-m", model, "-t", "1", "--prompt", text, "--hooks", hooks, "--out", d)
        acts[text] = {L: np.load(os.path.join(d, f"blocks.{L}.hook_resid_post.npy")) for L in layers}

    def ref(pos, neg, method, how, normalize, lays):
        out = {}
        for L in lays:
            P = np.stack([steer_ref.reduce(acts[t][L], how) for t in pos])
            N = np.stack([steer_ref.reduce(acts[t][L], how) for t in neg])
            v = steer_ref.pca_diff(P, N) if method == "pca" else steer_ref.mean_diff(P, N, normalize)
            if breaking:
                v = v + 1e-4
            out[L] = v
        return out

    def compare(label, got, want):
        if not led.check(f"{label}: layers", sorted(got) == sorted(want), f"{sorted(got)} vs {sorted(want)}"):
            return
        err = max(float(np.max(np.abs(np.asarray(got[L], np.float64) - want[L]))) for L in want)
        led.check(f"{label}: max abs error {err:.2e} <= {TOL}", err <= TOL)

    def npy_rows(path, lays):
        arr = np.load(path)
        return {L: arr[L] for L in lays}

    # 2. each method and format against the reference.
    out = os.path.join(tmp, "pca.gguf")
    gb("steer-vector", "-m", model, "-t", "1", "--pairs", pairs_path, "--out", out)
    meta, got = steer_ref.read_control_vector_gguf(out)
    led.check("gguf metadata", meta.get("controlvector.model_hint") == "llama"
              and meta.get("controlvector.layer_count") == n_layers - 1, meta)
    want = ref(pos_texts, neg_texts, "pca", "last", True, range(1, n_layers))
    compare("pca last -> gguf (default layers 1..4)", got, want)
    for L, v in got.items():
        P = np.stack([acts[t][L][-1] for t in pos_texts]) @ v
        N = np.stack([acts[t][L][-1] for t in neg_texts]) @ v
        led.check(f"pca layer {L}: positives project higher in most pairs", np.sum(P > N) >= np.sum(P < N))

    out = os.path.join(tmp, "md.npy")
    gb("steer-vector", "-m", model, "-t", "1", "--pairs", pairs_path, "--method", "mean_diff",
       "--layers", "0,2,4", "--out", out)
    compare("mean_diff last -> npy (layers 0,2,4)", npy_rows(out, [0, 2, 4]),
            ref(pos_texts, neg_texts, "mean_diff", "last", True, [0, 2, 4]))
    norms = [np.linalg.norm(r) for r in np.load(out)[[0, 2, 4]]]
    led.check("mean_diff rows are unit norm", all(abs(n - 1) < 1e-5 for n in norms), norms)

    out = os.path.join(tmp, "pca_mean.safetensors")
    gb("steer-vector", "-m", model, "-t", "1", "--pairs", pairs_path, "--reduce", "mean",
       "--layers", "all", "--out", out)
    st_meta, st = steer_ref.read_safetensors(out)
    compare("pca mean -> safetensors", {int(k.split(".")[1]): v for k, v in st.items()},
            ref(pos_texts, neg_texts, "pca", "mean", True, range(1, n_layers)))

    pos_file, neg_file = os.path.join(tmp, "pos.txt"), os.path.join(tmp, "neg.txt")
    open(pos_file, "w").write("\n".join(pos_texts[:10]) + "\n\n")
    open(neg_file, "w").write("\n".join(neg_texts[:15]) + "\n")
    out = os.path.join(tmp, "raw.npy")
    gb("steer-vector", "-m", model, "-t", "1", "--positive", pos_file, "--negative", neg_file,
       "--method", "mean_diff", "--no-normalize", "--reduce", "mean", "--layers", "1,3",
       "--out", out)
    compare("mean_diff raw, 10 vs 15 texts -> npy", npy_rows(out, [1, 3]),
            ref(pos_texts[:10], neg_texts[:15], "mean_diff", "mean", False, [1, 3]))

    # 3. --info, and a GGUF written by the reference's own writer loads back the same.
    p = gb("steer-vector", "--info", os.path.join(tmp, "pca.gguf"))
    led.check("--info lists direction.1..4", all(f"direction.{L}  blocks.{L}.hook_resid_post" in p.stdout
                                                  for L in range(1, n_layers)), p.stdout)
    d_model = len(got[1])
    vec = np.arange(d_model, dtype="<f4") / d_model

    def good_meta(count=1):
        return [("general.architecture", 8, "controlvector"), ("controlvector.model_hint", 8, "llama"),
                ("controlvector.layer_count", 5, count)]

    ext = os.path.join(tmp, "ext.gguf")
    steer_ref.write_gguf(ext, good_meta(2), [("direction.2", 0, (d_model,), vec.tobytes()),
                                             ("direction.3", 0, (d_model,), (-vec).tobytes())])
    p = gb("steer-vector", "--info", ext)
    led.check("--info on an externally written GGUF", "direction.2" in p.stdout and
              "direction.3" in p.stdout and f"d_model {d_model}" in p.stdout, p.stdout)

    # 4. bad input: one clear error line, exit 1.
    def bad(label, args, *parts):
        p = gb(*args, check_rc=False)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        ok = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("glassbox: error:")
              and all(s in lines[0] for s in parts))
        led.check(f"bad input: {label}", ok, f"rc {p.returncode}: {p.stderr.strip()[:300]}")

    f32 = vec.tobytes()
    cases = [
        ("wrong width", good_meta(2), [("direction.1", 0, (d_model,), f32),
                                       ("direction.2", 0, (d_model - 1,), f32[:-4])],
         "direction.2 has width"),
        ("direction.0", good_meta(), [("direction.0", 0, (d_model,), f32)], "direction.0"),
        ("direction.x", good_meta(), [("direction.x", 0, (d_model,), f32)], "'direction.x'"),
        ("other name", good_meta(), [("output.weight", 0, (d_model,), f32)], "'output.weight'"),
        ("F16", good_meta(), [("direction.1", 1, (d_model,), vec.astype("<f2").tobytes())],
         "has type f16"),
        ("missing architecture", good_meta()[1:], [("direction.1", 0, (d_model,), f32)],
         "general.architecture"),
        ("missing layer_count", good_meta()[:2], [("direction.1", 0, (d_model,), f32)],
         "controlvector.layer_count"),
    ]
    for label, meta_, tensors, part in cases:
        path = os.path.join(tmp, f"bad_{label.replace(' ', '_')}.gguf")
        steer_ref.write_gguf(path, meta_, tensors)
        bad(f"control vector with {label}", ["steer-vector", "--info", path], path, part)
    trunc = os.path.join(tmp, "trunc.gguf")
    data = open(os.path.join(tmp, "pca.gguf"), "rb").read()
    open(trunc, "wb").write(data[:len(data) // 2])
    bad("truncated control vector", ["steer-vector", "--info", trunc], trunc)
    badpairs = os.path.join(tmp, "bad_pairs.jsonl")
    open(badpairs, "w").write('{"positive": "a", "negative": "b"}\n{"positive": "c"}\n')
    bad("pairs line without negative", ["steer-vector", "-m", model, "--pairs", badpairs, "--out",
                                        os.path.join(tmp, "x.gguf")], "bad_pairs.jsonl:2", "negative")
    bad("layer 0 into a GGUF", ["steer-vector", "-m", model, "-t", "1", "--pairs", pairs_path,
                                "--layers", "0,1", "--out", os.path.join(tmp, "l0.gguf")], "block 0")
    bad("pca with 10 vs 15 texts", ["steer-vector", "-m", model, "-t", "1", "--positive", pos_file,
                                    "--negative", neg_file, "--out", os.path.join(tmp, "u.npy")],
        "10 positives and 15 negatives")
    bad("unknown method", ["steer-vector", "-m", model, "--pairs", pairs_path, "--method", "svd",
                           "--out", os.path.join(tmp, "m.npy")], "'svd'")
    bad("layer out of range", ["steer-vector", "-m", model, "-t", "1", "--pairs", pairs_path,
                               "--layers", "7", "--out", os.path.join(tmp, "r.npy")], "layer 7")
    shutil.rmtree(tmp, ignore_errors=True)
    return led.finish("steer-vector")


if __name__ == "__main__":
    sys.exit(main())
