#!/usr/bin/python3
"""Interventions on `glassbox logits` / `generate` against the independent float64 reference
(tests/reference/llama_ref.py, its patch= facility on residual hooks), on stories260K.

llama.cpp control-vector semantics (src/llama-adapter.cpp, common/common.cpp), computed here
independently: each file's direction.N tensors are multiplied by the file's scale (1 for
--control-vector, S for --control-vector-scaled FILE S) and summed over files; direction.N is
added at every position to the output of layer N (blocks.N.hook_resid_post) for
START <= N <= END (--control-vector-layer-range, inclusive; default 1 .. n_layer), never N = 0.
The control-vector GGUFs are written by the tiny GGUF writer below (not glassbox's).

Checks (logits max abs error <= 1e-4, as tests/reference/check_model.py; also NMSE printed):
  * --control-vector, --control-vector-scaled (repeated, summed with a plain one), layer ranges
  * discrimination: the off-by-one placements (output of block N-1; N counted from 1) and a
    missing scale differ from glassbox by > 100x the tolerance, so the checks can fail
  * --steer FILE:LAYER:ALPHA (.npy [d_model], [n_layers, d_model], a full hook name, a .gguf),
    --ablate, --cap, --clamp / --scale-latent (a SAELens dir written here), --steer-from,
    several combined
  * alpha = 0 reproduces the unsteered logits bit for bit
  * generate --temp 0: steered greedy ids are the reference's argmax given the same history
    (incremental decode is steered too), and differ from the unsteered ones
  * bad specs: exit 1 and one error line naming the flag (and the file for a wrong width)
usage: interventions_test.py GLASSBOX REPO_DIR [--break]   (--break: the reference puts the
control vector one layer early; the script must then fail)
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import urllib.request

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    print("skip: numpy/torch missing")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "reference", "sae"))
from cli_util import Ledger, runner  # noqa: E402
import llama_ref as ref  # noqa: E402
import sae_ref  # noqa: E402

TOL = 1e-4


def write_control_vector(path, directions, d_model, hint="llama"):
    """GGUF v3 as llama.cpp's control vectors (repeng's export): general.architecture
    "controlvector", controlvector.model_hint, controlvector.layer_count, F32 direction.N."""
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [(b"general.architecture", 8, s("controlvector")),
          (b"controlvector.model_hint", 8, s(hint)),
          (b"controlvector.layer_count", 4, struct.pack("<I", len(directions)))]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(directions), len(kv))
    for key, vtype, val in kv:
        out += struct.pack("<Q", len(key)) + key + struct.pack("<I", vtype) + val
    blobs, off = [], 0
    for n in sorted(directions):
        raw = np.asarray(directions[n], dtype="<f4").tobytes()
        assert len(raw) == 4 * d_model
        out += s(f"direction.{n}") + struct.pack("<IQIQ", 1, d_model, 0, off)
        blobs.append(raw + b"\0" * ((32 - len(raw) % 32) % 32))
        off += len(blobs[-1])
    out += b"\0" * ((32 - len(out) % 32) % 32)
    with open(path, "wb") as f:
        f.write(out + b"".join(blobs))


def stored(v):
    """The float64 value a float32 file holds."""
    return torch.from_numpy(np.asarray(v, dtype=np.float32).astype(np.float64))


class Patch:
    """Residual-stream edits for LlamaRef.forward(patch=...), applied in insertion order."""

    def __init__(self):
        self.edits = {}

    def add(self, name, fn):
        self.edits.setdefault(name, []).append(fn)
        return self

    def dict(self):
        def chain(fns):
            def run(t):
                for fn in fns:
                    t = fn(t)
                return t
            return run
        return {name: chain(fns) for name, fns in self.edits.items()}


def rows_from(fn, p0):
    """Applies fn only to rows at positions >= p0."""
    def run(t):
        t = t.clone()
        t[p0:] = fn(t[p0:])
        return t
    return run


def llama_cpp_cvec(files, n_layers, start=-1, end=-1):
    """common_control_vector_load + llama_adapter_cvec: {N: summed scaled direction}."""
    total = {}
    for dirs, scale in files:
        for n, v in dirs.items():
            assert n > 0, "llama.cpp rejects direction.0"
            total[n] = total.get(n, 0) + stored(v) * scale
    start = 1 if start <= 0 else start
    end = n_layers if end <= 0 else end
    return {n: v for n, v in total.items() if start <= n <= end and 1 <= n < n_layers}


def main():
    glassbox, repo = sys.argv[1], sys.argv[2]
    broken = "--break" in sys.argv[3:]
    model_path = os.path.join(repo, "models", "stories260K", "stories260K.bin")
    if not os.path.exists(model_path):
        print("skip: stories260K missing")
        return 77
    gb = runner(glassbox)
    led = Ledger()
    model = ref.LlamaRef.load(model_path)
    rng = np.random.default_rng(7)
    tokens = [1] + [int(t) for t in rng.integers(2, model.cfg["d_vocab"], 23)]
    tmp = tempfile.mkdtemp(prefix="gb_interventions_")
    try:
        return checks(gb, led, model, model_path, tokens, tmp, broken)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def checks(gb, led, model, model_path, tokens, tmp, broken):
    d, n_layers = model.cfg["d_model"], model.cfg["n_layers"]
    tok_arg = ",".join(map(str, tokens))

    def path(name):
        return os.path.join(tmp, name)

    def logits(*flags):
        out = path("logits.npy")
        gb("logits", "--model", model_path, "--tokens", tok_arg, "--out", out, *flags)
        return np.load(out).astype(np.float64)

    def reference(patch):
        lg, _ = model.forward(tokens, patch=patch.dict() if patch else None)
        return lg.numpy()

    def compare(label, got, want, min_effect=None):
        err = float(np.abs(got - want).max())
        nmse = float(((got - want) ** 2).sum() / (want ** 2).sum())
        ok = err <= TOL
        detail = f"max abs {err:.2e} nmse {nmse:.1e}"
        if min_effect is not None:  # the intervention must move the logits well past TOL
            effect = float(np.abs(want - base_ref).max())
            ok = ok and effect > min_effect
            detail += f", effect {effect:.2e}"
        led.check(label, ok, detail)
        return err

    base = logits()
    base_ref = reference(None)
    compare("unsteered logits", base, base_ref)

    # Residual norms at this scale are O(1); directions of norm ~2 move the logits by O(1).
    def rand_dirs(layers, seed):
        g = np.random.default_rng(seed)
        return {n: (g.standard_normal(d) * 0.3).astype(np.float32) for n in layers}

    cv_a = rand_dirs(range(1, n_layers), 1)          # direction.1 .. direction.4
    cv_b = rand_dirs([2, 3], 2)
    write_control_vector(path("a.gguf"), cv_a, d)
    write_control_vector(path("b.gguf"), cv_b, d)
    # The GGUF writer is checked against the reference's independent GGUF reader.
    _, meta, tensors = ref.read_gguf_raw(path("a.gguf"))
    led.check("test GGUF writer round trip (reference reader)",
              meta["general.architecture"] == "controlvector" and sorted(tensors) ==
              sorted(f"direction.{n}" for n in cv_a) and
              all(np.array_equal(tensors[f"direction.{n}"], cv_a[n]) for n in cv_a))

    def cvec_patch(cvec, shift=0):
        p = Patch()
        for n, v in cvec.items():
            if 0 <= n - shift < n_layers:
                p.add(f"blocks.{n - shift}.hook_resid_post", lambda t, v=v: t + v)
        return p

    shift = 1 if broken else 0
    cases = [
        ("--control-vector", ["--control-vector", path("a.gguf")], [(cv_a, 1.0)], None),
        ("--control-vector-scaled", ["--control-vector-scaled", path("a.gguf"), "-1.75"],
         [(cv_a, -1.75)], None),
        ("control vectors summed",
         ["--control-vector", path("a.gguf"), "--control-vector-scaled", path("b.gguf"), "2.5",
          "--control-vector-scaled", path("a.gguf"), "0.5"],
         [(cv_a, 1.0), (cv_b, 2.5), (cv_a, 0.5)], None),
        ("--control-vector-layer-range 2 3",
         ["--control-vector", path("a.gguf"), "--control-vector-layer-range", "2", "3"],
         [(cv_a, 1.0)], (2, 3)),
        ("--control-vector-layer-range 0 1 (layer 0 never steered)",
         ["--control-vector", path("a.gguf"), "--control-vector-layer-range", "0", "1"],
         [(cv_a, 1.0)], (0, 1)),
        ("--control-vector-layer-range 4 9",
         ["--control-vector-scaled", path("a.gguf"), "3", "--control-vector-layer-range", "4",
          "9"], [(cv_a, 3.0)], (4, 9)),
    ]
    for label, flags, files, rng_ in cases:
        start, end = rng_ if rng_ else (-1, -1)
        cvec = llama_cpp_cvec(files, n_layers, start, end)
        got = logits(*flags)
        compare(label, got, reference(cvec_patch(cvec, shift)), min_effect=100 * TOL)
        # The same test against wrong semantics must fail.
        for wrong, wpatch in [("one layer early", cvec_patch(cvec, 1)),
                              ("counted from 1", cvec_patch(cvec, -1))]:
            err = float(np.abs(got - reference(wpatch)).max())
            led.check(f"  {label}: {wrong} is detected", err > 100 * TOL, f"{err:.2e}")
    # The scale is honoured: a scale of 1 differs from the scaled run.
    err = float(np.abs(logits("--control-vector", path("a.gguf")) -
                       logits("--control-vector-scaled", path("a.gguf"), "-1.75")).max())
    led.check("  scale changes the result", err > 100 * TOL, f"{err:.2e}")

    # ---- --steer / --ablate / --cap / --clamp -------------------------------------------
    v = (np.random.default_rng(3).standard_normal(d) * 0.5).astype(np.float32)
    np.save(path("v.npy"), v)
    table = (np.random.default_rng(4).standard_normal((n_layers, d)) * 0.4).astype(np.float32)
    np.save(path("table.npy"), table)
    vv = stored(v)

    compare("--steer v.npy:2:3", logits("--steer", path("v.npy") + ":2:3"),
            reference(Patch().add("blocks.2.hook_resid_post", lambda t: t + 3 * vv)),
            min_effect=100 * TOL)
    compare("--steer table.npy:blocks.1.hook_resid_mid:-2 (row 1 of [n_layers, d_model])",
            logits("--steer", path("table.npy") + ":blocks.1.hook_resid_mid:-2"),
            reference(Patch().add("blocks.1.hook_resid_mid",
                                  lambda t: t - 2 * stored(table[1]))), min_effect=100 * TOL)
    compare("--steer a.gguf:3:2 (direction.3)", logits("--steer", path("a.gguf") + ":3:2"),
            reference(Patch().add("blocks.3.hook_resid_post", lambda t: t + 2 * stored(cv_a[3]))),
            min_effect=100 * TOL)
    compare("--steer-from 10", logits("--steer", path("v.npy") + ":2:3", "--steer-from", "10"),
            reference(Patch().add("blocks.2.hook_resid_post",
                                  rows_from(lambda t: t + 3 * vv, 10))), min_effect=100 * TOL)
    led.check("alpha = 0 reproduces the unsteered logits exactly",
              np.array_equal(logits("--steer", path("v.npy") + ":2:0"), base))

    # Ablation and capping along the mean residual direction at layer 1 (a large component).
    _, cache = model.forward(tokens, want={"blocks.1.hook_resid_post"})
    mean_dir = cache["blocks.1.hook_resid_post"].mean(0).numpy().astype(np.float32)
    np.save(path("mean_dir.npy"), mean_dir)
    u = stored(mean_dir) / stored(mean_dir).norm()

    def ablate(t):
        return t - (t @ u)[:, None] * u[None]

    proj = cache["blocks.1.hook_resid_post"] @ u
    cap = float(np.median(proj.numpy()))

    def capped(t):
        return t - torch.clamp(t @ u - cap, min=0)[:, None] * u[None]

    compare("--ablate mean_dir.npy:1", logits("--ablate", path("mean_dir.npy") + ":1"),
            reference(Patch().add("blocks.1.hook_resid_post", ablate)), min_effect=100 * TOL)
    compare(f"--cap mean_dir.npy:1:{cap:.4f} (median projection)",
            logits("--cap", f"{path('mean_dir.npy')}:1:{cap!r}"),
            reference(Patch().add("blocks.1.hook_resid_post", capped)), min_effect=100 * TOL)

    # A SAELens relu SAE at blocks.2.hook_resid_post; clamp keeps the error term:
    # x <- x + (value - a_j) W_dec[j]  (= decode(acts') + x - decode(acts)).
    gen = torch.Generator().manual_seed(5)
    d_sae = 96
    w = {"W_enc": torch.randn(d, d_sae, generator=gen, dtype=torch.float64) / d ** 0.5,
         "b_enc": torch.randn(d_sae, generator=gen, dtype=torch.float64) * 0.1,
         "W_dec": torch.randn(d_sae, d, generator=gen, dtype=torch.float64) / d_sae ** 0.5,
         "b_dec": torch.randn(d, generator=gen, dtype=torch.float64) * 0.1}
    sae_dir = path("sae")
    os.makedirs(sae_dir)
    sae_ref.write_safetensors(os.path.join(sae_dir, "sae_weights.safetensors"),
                              {n: (t, "F32") for n, t in w.items()})
    with open(os.path.join(sae_dir, "cfg.json"), "w") as f:
        json.dump({"architecture": "standard", "d_in": d, "d_sae": d_sae, "dtype": "float32",
                   "device": "cpu", "apply_b_dec_to_input": True,
                   "normalize_activations": "none",
                   "metadata": {"model_name": "stories260K",
                                "hook_name": "blocks.2.hook_resid_post"}}, f)
    ws = {n: sae_ref.stored(t, "F32") for n, t in w.items()}
    _, cache2 = model.forward(tokens, want={"blocks.2.hook_resid_post"})
    acts = torch.relu((cache2["blocks.2.hook_resid_post"] - ws["b_dec"]) @ ws["W_enc"]
                      + ws["b_enc"])
    j = int(acts.mean(0).argmax())

    def latent_edit(fn):
        def run(t):
            a = torch.relu((t - ws["b_dec"]) @ ws["W_enc"] + ws["b_enc"])[:, j]
            return t + (fn(a) - a)[:, None] * ws["W_dec"][j][None]
        return run

    compare(f"--clamp sae:{j}:8", logits("--clamp", f"{sae_dir}:{j}:8"),
            reference(Patch().add("blocks.2.hook_resid_post",
                                  latent_edit(lambda a: torch.full_like(a, 8.0)))),
            min_effect=100 * TOL)
    compare(f"--scale-latent sae:{j}:-3", logits("--scale-latent", f"{sae_dir}:{j}:-3"),
            reference(Patch().add("blocks.2.hook_resid_post", latent_edit(lambda a: -3 * a))),
            min_effect=100 * TOL)
    led.check("--scale-latent factor 1 reproduces the unsteered logits exactly",
              np.array_equal(logits("--scale-latent", f"{sae_dir}:{j}:1"), base))

    # Everything at once; on one hook, control vectors first, then --steer, --ablate, --cap.
    cvec = llama_cpp_cvec([(cv_a, 0.5)], n_layers, 1, 2)
    p = cvec_patch(cvec, shift)
    p.add("blocks.1.hook_resid_post", lambda t: t + 3 * vv)
    p.add("blocks.1.hook_resid_post", ablate)
    p.add("blocks.2.hook_resid_post", latent_edit(lambda a: torch.full_like(a, 2.0)))
    compare("combined: control vector + steer + ablate + clamp",
            logits("--control-vector-scaled", path("a.gguf"), "0.5",
                   "--control-vector-layer-range", "1", "2", "--steer", path("v.npy") + ":1:3",
                   "--ablate", path("mean_dir.npy") + ":1", "--clamp", f"{sae_dir}:{j}:2"),
            reference(p), min_effect=100 * TOL)

    # ---- generate --temp 0 --------------------------------------------------------------
    def generate(*flags):
        out = path("ids.json")
        gb("generate", "--model", model_path, "--tokens", ",".join(map(str, tokens[:6])), "-n", "24",
           "--temp", "0", "--ignore-eos", "--ids-out", out, *flags)
        with open(out) as f:
            r = json.load(f)
        return r["prompt_ids"], r["generated_ids"]

    prompt, plain = generate()
    flags = ["--control-vector-scaled", path("a.gguf"), "4"]
    _, steered = generate(*flags)
    led.check("generate: strong control vector changes the greedy continuation",
              steered != plain, f"{plain[:8]} vs {steered[:8]}")
    seq = prompt + steered
    lg, _ = model.forward(seq, patch=cvec_patch(llama_cpp_cvec([(cv_a, 4.0)], n_layers),
                                                shift).dict())
    bad = []
    for i, t in enumerate(steered):
        row = lg[len(prompt) - 1 + i]
        top2 = torch.topk(row, 2).values
        if int(row.argmax()) != t and float(top2[0] - top2[1]) > 1e-5:
            bad.append(i)
    led.check("generate: steered greedy ids = reference argmax (decode steps steered)", not bad,
              f"mismatch at {bad[:5]}")
    _, steer_gen = generate("--steer", path("v.npy") + ":2:8")
    led.check("generate: strong --steer changes the greedy continuation", steer_gen != plain)

    # ---- the same flags on `glassbox serve` (server-wide, as llama-server) ------------------
    server_check(led, model_path, ["--control-vector-scaled", path("a.gguf"), "4",
                                   "--control-vector-layer-range", "2", "4"])

    # ---- errors ---------------------------------------------------------------------------
    def error(label, flags, *parts):
        out = path("err.npy")
        p = gb("logits", "--model", model_path, "--tokens", tok_arg, "--out", out, *flags,
               check_rc=False)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        ok = p.returncode != 0 and len(lines) >= 1 and all(x in p.stderr for x in parts)
        led.check(f"error: {label}", ok, f"rc {p.returncode}: {p.stderr.strip()[-300:]}")

    np.save(path("narrow.npy"), np.ones(d - 1, np.float32))
    write_control_vector(path("narrow.gguf"), {1: np.ones(d - 1)}, d - 1)
    error("--steer without ALPHA", ["--steer", path("v.npy") + ":2"], "--steer", "FILE:LAYER:ALPHA")
    error("--steer bad alpha", ["--steer", path("v.npy") + ":2:abc"], "--steer", "abc")
    error("--steer layer out of range", ["--steer", path("v.npy") + ":5:1"], "--steer", "layer 5")
    error("--steer wrong width names the file", ["--steer", path("narrow.npy") + ":1:1"],
          "--steer", "narrow.npy", "width")
    error("--ablate missing file", ["--ablate", path("none.npy") + ":1"], "--ablate", "none.npy")
    error("--cap without MAX", ["--cap", path("v.npy") + ":1"], "--cap", "FILE:LAYER:MAX")
    error("--clamp latent out of range", ["--clamp", f"{sae_dir}:{d_sae}:1"], "--clamp",
          str(d_sae))
    error("--control-vector wrong n_embd names the file",
          ["--control-vector", path("narrow.gguf")], "narrow.gguf")
    error("--control-vector-scaled bad scale",
          ["--control-vector-scaled", path("a.gguf"), "x"], "--control-vector-scaled")
    error("--control-vector-layer-range without a vector",
          ["--control-vector-layer-range", "1", "2"], "--control-vector-layer-range")
    return led.finish("interventions")


def server_check(led, model_path, flags):
    """Greedy /v1/completions of a server started with `flags` = `generate --temp 0` with them
    (which the checks above tie to the reference), and differs from the unsteered text."""
    glassbox = sys.argv[1]
    prompt, n = "Once upon a time", 24

    def cli(*extra):
        p = subprocess.run([glassbox, "generate", "--model", model_path, "--prompt", prompt,
                            "-n", str(n), "--temp", "0", "--ignore-eos", *extra],
                           capture_output=True, text=True, timeout=900, check=True)
        return p.stdout.rstrip("\n")

    srv = subprocess.Popen([glassbox, "serve", "--model", model_path, "--port", "0", *flags],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = srv.stdout.readline().split("serving ", 1)[1].strip()
        body = json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0,
                           "ignore_eos": True}).encode()
        req = urllib.request.Request(url + "v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            text = json.load(r)["choices"][0]["text"]
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=120)
    steered = cli(*flags)
    led.check("serve with control-vector flags: greedy completion = generate with the same flags",
              prompt + text == steered, f"{text!r} vs {steered!r}")
    led.check("serve with control-vector flags: differs from the unsteered text",
              prompt + text != cli(), text)


if __name__ == "__main__":
    sys.exit(main())
