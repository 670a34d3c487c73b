#!/usr/bin/python3
"""Compares the glassbox CLI (float32) with the float64 HF reference (hf_ref.py) on one HF model
directory (config.json + safetensors of any architecture hf_ref.py knows: Llama, Qwen2, Qwen3,
Mistral, Phi-3, Gemma 2, Gemma 3, GPT-2).

With --via-gguf TYPE, `glassbox convert --model DIR --out WORKDIR/model.gguf --type TYPE` runs
first and every check below runs on that GGUF file instead, against the same float64 reference
of the directory. The bounds do not change, so only lossless conversions can pass (f32; f16 /
bf16 of a checkpoint stored so). Hooks are the same except where the file's layout shows through,
as docs/hooks.md states: a GGUF whose general.architecture is `llama` holds Q/K rows in
interleaved-pair order (llama.cpp's converters permute them for `llama` only), and glassbox lists
the d_head axis of hook_q / hook_k / hook_rot_q / hook_rot_k in that order, so the reference's
are permuted likewise (x[..., i // 2 + (i % 2) * d_head / 2] at index i); other architectures keep
the HF (NEOX) order.

  * `glassbox info` lists exactly the reference's hook names (per architecture)
  * logits                                           max abs error <= 1e-4
  * every hook (`glassbox cache --hooks all`), same shape (TL shapes, batch axis dropped),
    max abs error <= 1e-4; attention scores: -inf positions must coincide, finite entries
    within max(1e-4, 3e-6 * max|ref|) (as check_model.py: s = q.k/sqrt(d_head) carries float32's
    ~1e-6 relative error, and a converted real model has |scores| in the hundreds)
  * greedy generation (-n 64 --temp 0 --ignore-eos): every id equals the float64 argmax given
    glassbox's own history; a disagreement with float64 margin < 1e-5 is a near-tie (NOTE)
Sequences: BOS (config's bos_token_id) + numpy RandomState(seed) ids, min(160, n_ctx) tokens, and
its first 5 tokens. A model glassbox cannot load FAILS (no skip).
Prints max abs error, NMSE = sum((a-b)^2)/sum(b^2) and max|ref| per check, a per-family table and
a summary line `check_hf NAME: PASS|FAIL: ...`. Exit 0 pass, 1 fail.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_ref  # noqa: E402

TOL = 1e-4
NEAR_TIE = 1e-5
# Relative bound for attention scores only: max abs <= max(TOL, SCORE_REL * max|ref|).
SCORE_REL = 3e-6


class Report:
    def __init__(self, quiet):
        self.quiet = quiet
        self.failures, self.notes, self.n = [], [], 0
        self.family = {}  # (seq, family) -> [max abs, max nmse, max |ref|, n]

    def result(self, ok, line, always=False):
        self.n += 1
        if not ok:
            self.failures.append(line)
        if not ok or always or not self.quiet:
            print(("PASS " if ok else "FAIL ") + line, flush=True)

    def note(self, line):
        self.notes.append(line)
        print("NOTE " + line, flush=True)


def family_of(name):
    parts = name.split(".")
    return ".".join(parts[2:]) if parts[0] == "blocks" else name


def compare(rep, seq_name, name, a, b):
    """a: glassbox array (float32 expected), b: reference tensor (float64)."""
    b = b.numpy() if isinstance(b, torch.Tensor) else b
    label = f"[{seq_name}] {name}"
    if a is None:
        rep.result(False, f"{label}: glassbox did not produce it")
        return
    if tuple(a.shape) != tuple(b.shape):
        rep.result(False, f"{label}: shape {tuple(a.shape)} != reference {tuple(b.shape)}")
        return
    if a.dtype != np.float32:
        rep.note(f"{label}: dtype {a.dtype}, the CLI contract says float32")
    a = a.astype(np.float64)
    fin = np.isfinite(b)
    problems = []
    if not np.array_equal(np.isneginf(a), np.isneginf(b)):
        bad = np.argwhere(np.isneginf(a) != np.isneginf(b))
        problems.append(f"-inf positions differ at {len(bad)} entries, first {bad[0].tolist()}")
    if np.isnan(a).any() or np.isposinf(a).any():
        problems.append(f"{int((~np.isfinite(a) & ~np.isneginf(a)).sum())} NaN/+inf entries")
    both = fin & np.isfinite(a)
    d = np.abs(a[both] - b[both]) if both.any() else np.zeros(1)
    max_abs = float(d.max())
    denom = float((b[both] ** 2).sum())
    nmse = float((d ** 2).sum() / denom) if denom > 0 else float((d ** 2).sum())
    mag = float(np.abs(b[fin]).max()) if fin.any() else 0.0
    tol = max(TOL, SCORE_REL * mag) if name.endswith("hook_attn_scores") else TOL
    where = ""
    if max_abs > tol and both.any():
        with np.errstate(invalid="ignore"):  # -inf - -inf where both are masked
            full = np.where(both, np.abs(a - b), -1.0)
        idx = np.unravel_index(int(full.argmax()), a.shape)
        where = (f" worst at index {[int(i) for i in idx]} (glassbox {a[idx]:.6g}, "
                 f"reference {b[idx]:.6g})")
    ok = not problems and max_abs <= tol
    rep.result(ok, f"{label}: max_abs={max_abs:.3e} nmse={nmse:.3e} max|ref|={mag:.3g} "
               f"(tol {tol:.1e}){where}" + ("; " + "; ".join(problems) if problems else ""))
    s = rep.family.setdefault((seq_name, family_of(name)), [0.0, 0.0, 0.0, 0])
    s[0], s[1], s[2], s[3] = max(s[0], max_abs), max(s[1], nmse), max(s[2], mag), s[3] + 1


class Glassbox:
    def __init__(self, binary, model, extra, workdir):
        self.binary, self.model, self.extra, self.workdir = binary, model, extra, workdir

    def run(self, sub, *args, timeout=900):
        cmd = [self.binary, sub, "--model", self.model] + list(args) + self.extra
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            err = (p.stderr.decode(errors="replace") or p.stdout.decode(errors="replace")).strip()
            raise RuntimeError(f"`{' '.join(cmd)[:300]}` exited {p.returncode}: {err[-600:]}")
        return p.stdout.decode(errors="replace")

    def hook_list(self):
        """Hook names from `glassbox info`: the lines after 'hooks (N):', '  NAME  [shape]'."""
        lines = self.run("info").splitlines()
        start = [i for i, ln in enumerate(lines) if ln.strip().startswith("hooks (")]
        if not start:
            raise RuntimeError("`glassbox info` printed no 'hooks (N):' line")
        head = lines[start[0]].strip()
        n = int(head[len("hooks ("):head.index(")")])
        names = []
        for ln in lines[start[0] + 1:]:
            if not ln.startswith((" ", "\t")) or not ln.strip():
                break
            names.append(ln.split()[0])
        return n, names

    def logits(self, tokens, tag):
        out = os.path.join(self.workdir, f"logits_{tag}.npy")
        self.run("logits", "--tokens", ",".join(map(str, tokens)), "--out", out)
        return np.load(out)

    def cache(self, tokens, hooks, tag):
        """hooks: 'all' or a list. Returns {name: array} for every .npy written."""
        out = os.path.join(self.workdir, "cache_" + tag)
        self.run("cache", "--tokens", ",".join(map(str, tokens)), "--hooks",
                 hooks if isinstance(hooks, str) else ",".join(hooks), "--out", out)
        return {f[:-4]: np.load(os.path.join(out, f)) for f in sorted(os.listdir(out))
                if f.endswith(".npy")}

    def generate(self, tokens, n):
        out = os.path.join(self.workdir, "gen.json")
        self.run("generate", "--tokens", ",".join(map(str, tokens)), "-n", str(n), "--temp", "0",
                 "--ignore-eos", "--ids-out", out)
        with open(out) as f:
            return json.load(f)


def check_hook_list(rep, gb, model):
    want = model.hook_names()
    try:
        n, names = gb.hook_list()
    except Exception as e:  # noqa: BLE001 - report and go on
        rep.result(False, f"info: {e}", always=True)
        return
    missing = [h for h in want if h not in set(names)]
    extra = [h for h in names if h not in set(want)]
    dup = len(names) != len(set(names))
    ok = not missing and not extra and not dup and n == len(names)
    rep.result(ok, f"info: glassbox lists {len(names)} hooks (header says {n}), reference "
               f"{len(want)} ({model.arch})" + (f"; missing {missing[:8]}" if missing else "")
               + (f"; extra {extra[:8]}" if extra else "") + ("; duplicates" if dup else ""),
               always=True)


QK_HOOKS = ("attn.hook_q", "attn.hook_k", "attn.hook_rot_q", "attn.hook_rot_k",
            "attn.q_norm.hook_normalized", "attn.k_norm.hook_normalized")


def to_interleaved(x):
    """[..., d_head] from HF's rotate-half order to interleaved pairs (x0, x_{d/2}, x1, ...)."""
    d = x.shape[-1]
    return x[..., [i // 2 + (i % 2) * (d // 2) for i in range(d)]]


def gguf_metadata(path):
    """{key: value} of a GGUF v2/v3 header (scalars and strings; arrays skipped as None)."""
    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
               11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        pos += n
        return data[pos - n:pos].decode("utf-8", errors="replace")

    def value(t):
        if t in scalars:
            return take(scalars[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            for _ in range(n):
                value(et)
            return None
        raise ValueError(f"{path}: GGUF metadata type {t} unknown")

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    pos = 4
    if take("<I") not in (2, 3):
        raise ValueError(f"{path}: GGUF version is not 2 or 3")
    take("<Q")  # tensor count
    meta = {}
    for _ in range(take("<Q")):
        key = string()
        meta[key] = value(take("<I"))
    return meta


def check_sequence(rep, gb, model, seq_name, tokens, interleaved_qk=False):
    print(f"--- sequence {seq_name}: {len(tokens)} tokens, first {tokens[:12]}", flush=True)
    names = model.hook_names()
    logits_ref, cache_ref = model.forward(tokens, "all")
    if interleaved_qk:
        cache_ref = {k: to_interleaved(v) if k.endswith(QK_HOOKS) else v
                     for k, v in cache_ref.items()}
    loads = True
    try:
        compare(rep, seq_name, "logits", gb.logits(tokens, seq_name), logits_ref)
    except Exception as e:  # noqa: BLE001
        rep.result(False, f"[{seq_name}] logits: {e}", always=True)
        loads = False
    got = None
    for attempt in ("all", names):
        try:
            got = gb.cache(tokens, attempt, seq_name)
            break
        except Exception as e:  # noqa: BLE001
            rep.note(f"[{seq_name}] cache --hooks {'all' if attempt == 'all' else '<list>'} "
                     f"failed: {str(e)[-400:]}")
    if got is None and not loads:
        rep.result(False, f"[{seq_name}] cache: glassbox runs neither logits nor cache; "
                   f"{len(names)} hooks unchecked", always=True)
        return
    if got is None:  # the model runs: find out which names are rejected
        got = {}
        for h in names:
            try:
                got.update(gb.cache(tokens, [h], seq_name + "_1"))
            except Exception as e:  # noqa: BLE001
                rep.result(False, f"[{seq_name}] {h}: {str(e)[-200:]}")
                got[h] = "reported"
    extra = sorted(set(got) - set(names))
    if extra:
        rep.result(False, f"[{seq_name}] cache --hooks all wrote hooks the reference does not "
                   f"have: {extra[:8]}")
    for h in names:
        if not isinstance(got.get(h), str):
            compare(rep, seq_name, h, got.get(h), cache_ref[h])


def check_generation(rep, gb, model, gen_name, prompt, n):
    label = f"[gen {gen_name}]"
    try:
        res = gb.generate(prompt, n)
    except Exception as e:  # noqa: BLE001
        rep.result(False, f"{label} generate: {e}", always=True)
        return
    gen = [int(t) for t in res.get("generated_ids", [])]
    if [int(t) for t in res.get("prompt_ids", [])] != list(prompt):
        rep.result(False, f"{label} prompt_ids {res.get('prompt_ids')} != {list(prompt)}")
    if len(gen) != n:
        rep.result(False, f"{label} {len(gen)} generated ids, expected {n}")
        if not gen:
            return
    full = list(prompt) + gen
    # one causal forward: row t is the float64 prediction after full[:t+1]
    logits, _ = model.forward(full[:-1])
    rows = logits[len(prompt) - 1:]
    bad, ties, min_margin = [], [], float("inf")
    for i, tok in enumerate(gen):
        row = rows[i]
        top2 = torch.topk(row, 2)
        best = int(top2.indices[0])
        margin = float(top2.values[0] - top2.values[1])
        min_margin = min(min_margin, margin)
        if tok == best:
            if margin < NEAR_TIE:
                ties.append(f"step {i}: agreed on {tok} with float64 margin {margin:.2e}")
            continue
        gap = float(row[best] - row[tok])
        msg = (f"step {i} (pos {len(prompt) + i}): glassbox {tok} (ref logit {float(row[tok]):.6f})"
               f" vs ref argmax {best} (logit {float(row[best]):.6f}), gap {gap:.2e}")
        (ties if gap < NEAR_TIE else bad).append(msg)
    for t in ties:
        rep.note(f"{label} near-tie: {t}")
    rep.result(not bad, f"{label} greedy {len(gen)} ids from a {len(prompt)}-token prompt: "
               f"{len(gen) - len(bad)}/{len(gen)} steps agree with float64 argmax, min top-2 "
               f"margin {min_margin:.3e}, near-ties {len(ties)}"
               + ("; " + "; ".join(bad[:5]) if bad else ""), always=True)


def convert_to_gguf(rep, binary, model_dir, wtype, workdir):
    """`glassbox convert` of the HF directory to WORKDIR/model.gguf; the path, or None (FAIL)."""
    out = os.path.join(workdir, "model.gguf")
    if os.path.exists(out):
        os.remove(out)  # never check a file left by an earlier run
    cmd = [binary, "convert", "--model", model_dir, "--out", out, "--type", wtype]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=900)
    except subprocess.TimeoutExpired:
        rep.result(False, f"convert: `{' '.join(cmd)[:300]}` timed out", always=True)
        return None
    if p.returncode != 0 or not os.path.isfile(out):
        err = (p.stderr.decode(errors="replace") or p.stdout.decode(errors="replace")).strip()
        rep.result(False, f"convert: `{' '.join(cmd)[:300]}` exited {p.returncode}"
                   + ("" if p.returncode else " without writing the file") + f": {err[-600:]}",
                   always=True)
        return None
    rep.result(True, f"convert: {model_dir} -> {out} ({wtype}, {os.path.getsize(out)} bytes)",
               always=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True, help="path to the glassbox CLI binary")
    ap.add_argument("--model", required=True, help="HF model directory")
    ap.add_argument("--seq-len", type=int, default=160)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--glassbox-arg", action="append", default=[],
                    help="extra argument passed to every glassbox call (repeatable)")
    ap.add_argument("--workdir", help="keep glassbox outputs here (default: a temp dir)")
    ap.add_argument("--quiet", action="store_true", help="print only failures and the tables")
    ap.add_argument("--via-gguf", metavar="TYPE",
                    help="convert the directory to WORKDIR/model.gguf with `glassbox convert "
                         "--type TYPE` first and check that file (default: the directory)")
    a = ap.parse_args()
    torch.set_num_threads(1)  # faster than 2 threads at these sizes
    name = os.path.basename(os.path.normpath(a.model))
    if a.via_gguf:
        name += f" (via GGUF {a.via_gguf})"
    if not os.path.exists(os.path.join(a.model, "config.json")):
        print(f"check_hf {name}: FAIL: no config.json in {a.model} (run make_hf_models.py)")
        return 1
    if not os.path.exists(a.glassbox):
        print(f"check_hf {name}: FAIL: glassbox binary {a.glassbox} not found")
        return 1
    model = hf_ref.load(a.model)
    c = model.cfg
    print(f"model {a.model} ({model.arch}): {json.dumps(c)}", flush=True)
    with open(os.path.join(a.model, "config.json")) as f:
        bos = json.load(f).get("bos_token_id")
    bos = 1 if bos is None else int(bos)
    rep = Report(a.quiet)
    tmp = tempfile.TemporaryDirectory()
    workdir = a.workdir or tmp.name
    os.makedirs(workdir, exist_ok=True)
    target = a.model
    if a.via_gguf:
        target = convert_to_gguf(rep, os.path.abspath(a.glassbox), a.model, a.via_gguf, workdir)
        if target is None:
            print(f"\ncheck_hf {name}: FAIL: {rep.n} checks, {len(rep.failures)} failed "
                  "(conversion)")
            return 1
    interleaved_qk = False
    if a.via_gguf:
        try:
            gguf_arch = gguf_metadata(target).get("general.architecture")
        except (ValueError, struct.error) as e:
            gguf_arch = None
            rep.result(False, f"convert: {target} unreadable: {e}", always=True)
        interleaved_qk = gguf_arch == "llama"
        print(f"GGUF general.architecture {gguf_arch!r}: hook_q/k/rot_q/rot_k compared in "
              f"{'interleaved-pair' if interleaved_qk else 'HF (NEOX)'} d_head order", flush=True)
    gb = Glassbox(os.path.abspath(a.glassbox), target, a.glassbox_arg, workdir)

    check_hook_list(rep, gb, model)
    n_seq = min(a.seq_len, c["n_ctx"])
    rng = np.random.RandomState(a.seed)
    random_seq = [bos] + [int(t) for t in rng.randint(0, c["d_vocab"], n_seq - 1)]
    for seq_name, toks in (("random", random_seq), ("short", random_seq[:5])):
        check_sequence(rep, gb, model, seq_name, toks, interleaved_qk)
    check_generation(rep, gb, model, "short", random_seq[:8], a.gen)
    long_len = min(n_seq, c["n_ctx"] - a.gen)
    if long_len > 8:
        check_generation(rep, gb, model, "long", random_seq[:long_len], a.gen)

    print("\nper-family max over layers (max_abs / nmse / max|ref|):")
    for (seq, fam), (m, nm, mag, n) in sorted(rep.family.items()):
        print(f"  {seq:7s} {fam:26s} max_abs={m:.3e} nmse={nm:.3e} max|ref|={mag:.3g} "
              f"[{n} tensors]")
    status = "PASS" if not rep.failures else "FAIL"
    print(f"\ncheck_hf {name}: {status}: {rep.n} checks, {len(rep.failures)} failed, "
          f"{sum('near-tie' in x for x in rep.notes)} near-tie notes")
    return 0 if not rep.failures else 1


if __name__ == "__main__":
    sys.exit(main())
