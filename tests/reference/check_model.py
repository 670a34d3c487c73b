#!/usr/bin/python3
"""Compares the glassbox CLI (float32) with the independent float64 reference (llama_ref.py).

Per model and per token sequence (BOS + a fixed-seed pseudo-random sequence; and, where the model
has a real vocabulary, a TinyStories paragraph tokenized by `glassbox tokenize`):
  * logits                                        max abs error <= 1e-4
  * blocks.L.hook_resid_pre / hook_attn_out / hook_mlp_out, every L   <= 1e-4 (required)
  * every other hook (embed, ln scales/normalized, q/k/v, rot_q/rot_k, attn_scores (finite
    entries; -inf positions must coincide), pattern, z, resid_mid/post, mlp pre/pre_linear/post,
    ln_final)                                     <= 1e-4 unless listed in LOOSER below
  * greedy generation (-n 64 --temp 0 --ignore-eos): every generated id equals the float64
    argmax given glassbox's own history (one causal reference forward over prompt+generated,
    which is equivalent to recomputing the sequence at each step); a disagreement where the
    float64 top-1/top-2 margin is < 1e-5 is reported as a near-tie, not a failure
  * glassbox tokenize agrees with the reference SentencePiece-BPE encoder (when a vocab is known)
Prints, per check, max abs error and NMSE = sum((a-b)^2)/sum(b^2), a per-family table, and a
final summary line. Exit 0 pass, 1 fail, 77 skip (model absent).

Block-quantized GGUF: the reference runs in float64 on the exactly dequantized weights, while the
engine rounds each matmul input to int8 (as llama.cpp does). That error is allowed and bounded by
the options --logits-tol / --hook-tol (absolute), --rel-tol (relative to max|ref|, per tensor)
and --nmse-tol; --act-quant also runs the reference with the same int8 rounding emulated and
prints its distance from the exact reference beside glassbox's, so the bounds can be read
against the error the rounding itself causes. --near-tie widens the greedy near-tie margin.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402

TOL = 1e-4
NEAR_TIE = 1e-5
REQUIRED = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")
# Hook families allowed a looser, magnitude-relative bound: max abs <= max(TOL, rel * max|ref|).
# Attention scores are the one family that needs it: trained stories260K has |q|, |k| up to ~45
# and scores up to |s| ~ 260, where float32 spacing alone is 3e-5; q and k each carry ~1e-6
# relative float32 error, so s = q.k/sqrt(d_head) carries ~1e-6 x |s| (measured 2.7e-4 abs,
# 1.0e-6 relative, NMSE 2e-13). Their consequences (pattern, z, attn_out) stay under 1e-4 abs.
LOOSER = {"attn.hook_attn_scores": (3e-6, "|scores| up to ~260; float32 ~1e-6 relative")}

PARAGRAPH = ("Once upon a time, there was a little girl named Lily. She loved to play in the "
             "garden with her dog, Max. One sunny day, Lily found a big red ball under a tree. "
             "\"Look, Max!\" she said. \"Let's play!\" Max wagged his tail and ran after the ball. "
             "They played all day until the sun went down. Lily was tired but happy. She gave Max "
             "a hug and said, \"You are my best friend.\" Then they went inside to eat dinner with "
             "Mom and Dad. The next morning, Lily could not find the ball. She looked under her "
             "bed and behind the door, but it was not there. She felt sad. Max barked and ran to "
             "the garden. The ball was next to the flowers! Lily smiled and said, \"Thank you, Max."
             " You are a good dog.\" From that day on, they always put the ball in a box after they"
             " played.")
SHORT_PROMPT = "Once upon a time"


class Report:
    def __init__(self, quiet):
        self.quiet = quiet
        self.failures, self.notes, self.n = [], [], 0
        self.family = {}  # (seq, family) -> [max abs, max nmse, max rel, n]

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


class Tolerances:
    logits = TOL    # max abs on logits
    hooks = TOL     # max abs on hooks
    rel = 0.0       # bound = max(abs tol, rel * max|ref|)
    nmse = None     # also require NMSE <= this
    near_tie = NEAR_TIE


TOLS = Tolerances()


def nmse_of(a, b):
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    fin = np.isfinite(d)
    den = float((np.asarray(b, dtype=np.float64)[fin] ** 2).sum())
    num = float((d[fin] ** 2).sum())
    return num / den if den > 0 else num


def compare(rep, seq_name, name, a, b, emulated=None):
    """a: glassbox array (float32), b: reference tensor (float64). emulated: the reference with
    int8 activations (--act-quant), reported for scale."""
    b = b.numpy() if isinstance(b, torch.Tensor) else b
    label = f"[{seq_name}] {name}"
    if a is None:
        rep.result(False, f"{label}: glassbox did not produce it")
        return
    if tuple(a.shape) != tuple(b.shape):
        rep.result(False, f"{label}: shape {tuple(a.shape)} != reference {tuple(b.shape)}")
        return
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
    rel = max_abs / mag if mag > 0 else max_abs
    fam = family_of(name)
    abs_tol = TOLS.logits if name == "logits" else TOLS.hooks
    bound, why = max(abs_tol, TOLS.rel * mag), ""
    if fam in LOOSER and LOOSER[fam][0] * mag > bound:
        bound, why = LOOSER[fam][0] * mag, " (looser: " + LOOSER[fam][1] + ")"
    where = ""
    if max_abs > bound and both.any():
        with np.errstate(invalid="ignore"):
            full = np.where(both, np.abs(a - b), -1.0)
        where = f" worst at index {list(np.unravel_index(int(full.argmax()), a.shape))}"
    if TOLS.nmse is not None and nmse > TOLS.nmse:
        problems.append(f"nmse above {TOLS.nmse:.1e}")
    emu = ""
    emu_nmse = 0.0
    if emulated is not None:
        e = emulated.numpy() if isinstance(emulated, torch.Tensor) else emulated
        ef = np.isfinite(b)
        emu_abs = float(np.abs(e[ef] - b[ef]).max()) if ef.any() else 0.0
        emu_nmse = nmse_of(np.where(ef, e, 0), np.where(ef, b, 0))
        emu = f" [int8-acts reference: max_abs={emu_abs:.3e} nmse={emu_nmse:.3e}]"
    ok = not problems and max_abs <= bound
    rep.result(ok, f"{label}: max_abs={max_abs:.3e} nmse={nmse:.3e} max|ref|={mag:.3g} "
               f"rel={rel:.2e} (tol {bound:.1e}){why}{emu}{where}" +
               ("; " + "; ".join(problems) if problems else ""))
    s = rep.family.setdefault((seq_name, fam), [0.0, 0.0, 0.0, 0, 0.0])
    s[0], s[1], s[2], s[3] = max(s[0], max_abs), max(s[1], nmse), max(s[2], rel), s[3] + 1
    s[4] = max(s[4], emu_nmse)


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

    def tokenize(self, text):
        return json.loads(self.run("tokenize", "--text", text, "--bos"))

    def logits(self, tokens):
        out = os.path.join(self.workdir, "logits.npy")
        self.run("logits", "--tokens", ",".join(map(str, tokens)), "--out", out)
        return np.load(out)

    def cache(self, tokens, hooks, tag):
        out = os.path.join(self.workdir, "cache_" + tag)
        self.run("cache", "--tokens", ",".join(map(str, tokens)), "--hooks", ",".join(hooks),
                 "--out", out)
        return {h: np.load(os.path.join(out, h + ".npy")) for h in hooks
                if os.path.exists(os.path.join(out, h + ".npy"))}

    def generate(self, tokens, n):
        out = os.path.join(self.workdir, "gen.json")
        self.run("generate", "--tokens", ",".join(map(str, tokens)), "-n", str(n), "--temp", "0",
                 "--ignore-eos", "--ids-out", out)
        with open(out) as f:
            return json.load(f)


def check_sequence(rep, gb, model, seq_name, tokens, act_quant=False):
    print(f"--- sequence {seq_name}: {len(tokens)} tokens, first {tokens[:12]}", flush=True)
    names = model.hook_names()
    logits_ref, cache_ref = model.forward(tokens, "all")
    logits_emu, cache_emu = (model.forward(tokens, "all", act_quant=True) if act_quant
                             else (None, {}))
    try:
        compare(rep, seq_name, "logits", gb.logits(tokens), logits_ref, logits_emu)
    except Exception as e:  # noqa: BLE001 - report and continue with the other checks
        rep.result(False, f"[{seq_name}] logits: {e}")
    try:
        got = gb.cache(tokens, names, seq_name)
    except Exception as e:  # noqa: BLE001
        # maybe an unknown hook name: retry one by one to find which are missing
        print(f"NOTE cache with all hooks failed ({e}); retrying hook by hook", flush=True)
        got = {}
        for h in names:
            try:
                got.update(gb.cache(tokens, [h], seq_name))
            except Exception as e2:  # noqa: BLE001
                rep.result(False, f"[{seq_name}] {h}: {str(e2)[-200:]}")
                got[h] = "reported"
    for h in names:
        if isinstance(got.get(h), str):
            continue
        compare(rep, seq_name, h, got.get(h), cache_ref[h], cache_emu.get(h))


def check_generation(rep, gb, model, gen_name, prompt, n):
    label = f"[gen {gen_name}]"
    try:
        res = gb.generate(prompt, n)
    except Exception as e:  # noqa: BLE001
        rep.result(False, f"{label} generate: {e}")
        return
    gen = [int(t) for t in res.get("generated_ids", [])]
    if [int(t) for t in res.get("prompt_ids", [])] != list(prompt):
        rep.result(False, f"{label} prompt_ids {res.get('prompt_ids')} != {list(prompt)}")
    if len(gen) != n:
        rep.result(False, f"{label} {len(gen)} generated ids, expected {n}")
        if not gen:
            return
    full = list(prompt) + gen
    # Causal reference over the whole sequence: row t is the float64 prediction after full[:t+1].
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
            if margin < TOLS.near_tie:
                ties.append(f"step {i}: agreed on {tok} with float64 margin {margin:.2e}")
            continue
        gap = float(row[best] - row[tok])
        msg = (f"step {i} (pos {len(prompt) + i}): glassbox {tok} (ref logit {float(row[tok]):.6f})"
               f" vs ref argmax {best} (logit {float(row[best]):.6f}), gap {gap:.2e}")
        (ties if gap < TOLS.near_tie else bad).append(msg)
    for t in ties:
        rep.note(f"{label} near-tie: {t}")
    rep.result(not bad, f"{label} greedy {len(gen)} ids from a {len(prompt)}-token prompt: "
               f"{len(gen) - len(bad)}/{len(gen)} steps agree with float64 argmax, min top-2 "
               f"margin {min_margin:.3e}, near-ties {len(ties)}"
               + ("; " + "; ".join(bad[:5]) if bad else ""),
               always=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True, help="path to the glassbox CLI binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--vocab", help="llama2.c tokenizer .bin of the model (GGUF: embedded); "
                    "enables the text sequence, the text prompt and the tokenizer check")
    ap.add_argument("--seq-len", type=int, default=160)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--glassbox-arg", action="append", default=[],
                    help="extra argument passed to every glassbox call (repeatable)")
    ap.add_argument("--workdir", help="keep glassbox outputs here (default: a temp dir)")
    ap.add_argument("--quiet", action="store_true", help="print only failures and the tables")
    ap.add_argument("--logits-tol", type=float, default=TOL, help="max abs error on logits")
    ap.add_argument("--hook-tol", type=float, default=TOL, help="max abs error on hooks")
    ap.add_argument("--rel-tol", type=float, default=0.0,
                    help="also allow max abs <= REL * max|ref| per tensor (quantized weights)")
    ap.add_argument("--nmse-tol", type=float, help="also require NMSE <= this per tensor")
    ap.add_argument("--near-tie", type=float, default=NEAR_TIE,
                    help="greedy disagreements with a float64 gap below this are notes")
    ap.add_argument("--act-quant", action="store_true",
                    help="also run the reference with int8 activations emulated and report it")
    a = ap.parse_args()
    TOLS.logits, TOLS.hooks, TOLS.rel = a.logits_tol, a.hook_tol, a.rel_tol
    TOLS.nmse, TOLS.near_tie = a.nmse_tol, a.near_tie
    torch.set_num_threads(1)  # faster than 2 threads at these sizes on the CI machine
    if not os.path.exists(a.model):
        print(f"SKIP: model {a.model} not found")
        return 77
    if not os.path.exists(a.glassbox):
        print(f"FAIL: glassbox binary {a.glassbox} not found")
        return 1
    model = ref.LlamaRef.load(a.model)
    c = model.cfg
    vocab = None
    if a.vocab and not os.path.exists(a.vocab):
        print(f"NOTE vocabulary {a.vocab} not found: random-token checks only")
    elif a.vocab:
        vocab = ref.Llama2cVocab.from_file(a.vocab)
    elif open(a.model, "rb").read(4) == b"GGUF":
        vocab = ref.Llama2cVocab.from_gguf_meta(ref.read_gguf_raw(a.model)[1])
    print(f"model {a.model}: {json.dumps(c)}", flush=True)
    rep = Report(a.quiet)
    tmp = tempfile.TemporaryDirectory()
    workdir = a.workdir or tmp.name
    os.makedirs(workdir, exist_ok=True)
    gb = Glassbox(os.path.abspath(a.glassbox), a.model, a.glassbox_arg, workdir)

    n_seq = min(a.seq_len, c["n_ctx"])
    rng = np.random.RandomState(a.seed)
    random_seq = [1] + [int(t) for t in rng.randint(3, c["d_vocab"], n_seq - 1)]
    seqs = [("random", random_seq)]
    short_prompt = random_seq[:8]
    if vocab is not None:
        text_ids = None
        try:
            text_ids = [int(t) for t in gb.tokenize(PARAGRAPH)]
            mine = vocab.encode(PARAGRAPH)
            rep.result(text_ids == mine, f"tokenize: glassbox ids of the paragraph "
                       f"({len(text_ids)}) "
                       f"{'equal' if text_ids == mine else 'DIFFER from'} the reference encoder's"
                       + ("" if text_ids == mine else f" (glassbox {text_ids[:20]}..., reference "
                                                       f"{mine[:20]}...)"), always=True)
            short_prompt = [int(t) for t in gb.tokenize(SHORT_PROMPT)]
        except Exception as e:  # noqa: BLE001
            rep.result(False, f"tokenize: {e}")
        if text_ids:
            if len(text_ids) < min(128, n_seq):
                rep.note(f"text sequence only {len(text_ids)} tokens; repeating the paragraph")
                while len(text_ids) < n_seq:
                    text_ids += text_ids[1:]
            seqs.append(("text", text_ids[:n_seq]))
    for name, toks in seqs:
        check_sequence(rep, gb, model, name, toks, a.act_quant and bool(model.act_groups))

    long_len = min(n_seq, c["n_ctx"] - a.gen)
    check_generation(rep, gb, model, "short", short_prompt, a.gen)
    if long_len > len(short_prompt):
        check_generation(rep, gb, model, "long", random_seq[:long_len], a.gen)

    print("\nper-family max over layers (max_abs / nmse / rel = max_abs / max|ref|):")
    for (seq, fam), (m, nm, rel, n, emu) in sorted(rep.family.items(), key=lambda kv: kv[0]):
        req = " (required)" if fam in REQUIRED or fam == "logits" else ""
        req += f" (looser: {LOOSER[fam][0]:g} x max|ref|)" if fam in LOOSER else ""
        req += f" int8-acts ref nmse={emu:.3e}" if emu else ""
        print(f"  {seq:7s} {fam:26s} max_abs={m:.3e} nmse={nm:.3e} rel={rel:.2e} "
              f"[{n} tensors]{req}")
    status = "PASS" if not rep.failures else "FAIL"
    print(f"\ncheck_model {os.path.basename(a.model)}: {status}: {rep.n} checks, "
          f"{len(rep.failures)} failed, {sum('near-tie' in x for x in rep.notes)} near-tie notes")
    return 0 if not rep.failures else 1


if __name__ == "__main__":
    sys.exit(main())
