#!/usr/bin/python3
"""`glassbox probe train|eval` end to end on the committed demo data (data/probe/, README there).

  1. train on quote_train.jsonl with quote_eval.jsonl held out, every layer's hook_resid_post:
     one probe file per layer, metrics.json, auroc.svg, a table; best held-out AUROC >= 0.9
  2. the shuffled-label control (training labels permuted, held-out labels true): held-out AUROC
     of every layer within 0.5 +- 0.15. With 100 + 100 held-out texts a chance AUROC has sd
     sqrt((n1 + n0 + 1) / (12 n1 n0)) = 0.041, so 0.15 is ~3.7 sd. The layers are not
     independent: they share one permutation, whose chance agreement with the true labels
     (~1/sqrt(400) in correlation) moves them together (seed 0: 0.56-0.58), so no tighter
     bound on their mean is claimed
  3. `probe eval` of the saved probes (directory and single file) gives metrics.json's numbers
     exactly; `--text` gives one probability per token
  4. tests/reference/probe/probe_ref.py (independent numpy fit on `glassbox cache` features) on a
     smaller training run, and the same with --break, which must fail
  5. bad input: a missing label, a label of 2, an empty file, an unknown hook, a missing file:
     exit 1 with one "glassbox: error:" line naming the problem
usage: probe_test.py GLASSBOX REPO_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cli_util import Ledger, runner  # noqa: E402

GB, REPO = sys.argv[1], sys.argv[2]
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
TRAIN = os.path.join(REPO, "data/probe/quote_train.jsonl")
EVAL = os.path.join(REPO, "data/probe/quote_eval.jsonl")
REF = os.path.join(HERE, "..", "reference", "probe", "probe_ref.py")
ledger = Ledger()
check = ledger.check
gb = runner(GB)


def train(out, *extra, data=TRAIN, held=EVAL):
    p = gb("probe", "train", "-m", MODEL, "--data", data, "--eval", held, "--out", out, *extra)
    return p, json.load(open(os.path.join(out, "metrics.json")))


def bad(label, args, part):
    p = gb(*args, check_rc=False)
    lines = p.stderr.strip().splitlines()
    check(label, p.returncode == 1 and len(lines) == 1 and lines[0].startswith("glassbox: error:")
          and part in lines[0], f"rc {p.returncode}: {p.stderr.strip()[:300]}")


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "probes")
    p, m = train(out)
    print(p.stdout)
    hooks = [r["hook"] for r in m["layers"]]
    check("one probe per layer", hooks == [f"blocks.{L}.hook_resid_post" for L in range(5)] and
          all(os.path.exists(os.path.join(out, f"{h}.probe.json")) for h in hooks), hooks)
    check("plot written", open(os.path.join(out, "auroc.svg")).read().startswith("<svg"))
    check("table printed", all(h in p.stdout for h in hooks) and "best:" in p.stdout)
    aucs = [r["heldout_auroc"] for r in m["layers"]]
    check("best held-out AUROC >= 0.9", max(aucs) >= 0.9, [round(a, 4) for a in aucs])
    check("metrics complete", all(0 < r["lambda"] and 0 <= r["cv_auroc"] <= 1 and
                                  0 <= r["heldout_accuracy"] <= 1 for r in m["layers"]))

    ctl = os.path.join(tmp, "control")
    _, mc = train(ctl, "--shuffle-labels")
    caucs = [r["heldout_auroc"] for r in mc["layers"]]
    check("shuffled-label control near 0.5",
          all(abs(a - 0.5) <= 0.15 for a in caucs),
          [round(a, 4) for a in caucs])
    check("control probes are marked", json.load(open(os.path.join(
        ctl, "blocks.0.hook_resid_post.probe.json")))["shuffled_labels"] is True)

    ev = json.loads(gb("probe", "eval", "-m", MODEL, "--probe", out, "--data", EVAL).stdout)
    same = [(e["hook"], e["auroc"], e["accuracy"]) for e in ev["probes"]] == \
        [(r["hook"], r["heldout_auroc"], r["heldout_accuracy"]) for r in m["layers"]]
    check("eval of the reloaded probes = training's held-out numbers", same and ev["n"] == 200,
          ev["probes"][:1])
    one = os.path.join(out, "blocks.3.hook_resid_post.probe.json")
    ev1 = json.loads(gb("probe", "eval", "-m", MODEL, "--probe", one, "--data", EVAL).stdout)
    check("eval of one probe file", len(ev1["probes"]) == 1 and
          ev1["probes"][0]["auroc"] == m["layers"][3]["heldout_auroc"])
    tx = json.loads(gb("probe", "eval", "-m", MODEL, "--probe", one, "--text",
                       'She said, "Let us go').stdout)
    ps = tx["p"]["blocks.3.hook_resid_post"]
    check("--text scores every token", len(ps) == len(tx["tokens"]) > 3 and
          all(0 <= v <= 1 for v in ps), [round(v, 3) for v in ps])

    # Reference check on a smaller run (the reference runs `glassbox cache` once per text).
    small_tr, small_ev = os.path.join(tmp, "small_train.jsonl"), os.path.join(tmp, "small_eval.jsonl")
    with open(TRAIN) as f, open(small_tr, "w") as g:
        g.writelines(f.readlines()[:120])
    with open(EVAL) as f, open(small_ev, "w") as g:
        g.writelines(f.readlines()[:60])
    small = os.path.join(tmp, "small")
    # -t 1 on both sides: `cache -t 1` then gives bit-identical features (other thread counts
    # differ in float32 rounding, ~1e-7 relative).
    train(small, "--hooks", "blocks.1.hook_resid_post,blocks.4.hook_resid_post", "--folds", "3",
          "--seed", "5", "-t", "1", data=small_tr, held=small_ev)
    # The --break run reuses the features the clean run read from `glassbox cache`.
    ref = [sys.executable, REF, "--glassbox", GB, "--model", MODEL, "--probe-dir", small,
           "--data", small_tr, "--eval", small_ev, "--features", os.path.join(tmp, "feats.npz")]
    r = subprocess.run(ref, capture_output=True, text=True, timeout=900)
    print(r.stdout)
    check("independent numpy reference", r.returncode == 0, r.stderr[-500:])
    r = subprocess.run(ref + ["--break"], capture_output=True, text=True, timeout=900)
    check("the reference can fail (--break perturbs its features)", r.returncode == 1,
          r.stdout.strip().splitlines()[-1:])

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    t = ["probe", "train", "-m", MODEL, "--out", os.path.join(tmp, "bad")]
    bad("missing label", t + ["--data", write("a.jsonl", '{"text": "a b c"}\n')], ':1: no "label"')
    bad("label not 0/1", t + ["--data", write("b.jsonl", '{"text": "a", "label": 0}\n'
                                                          '{"text": "b", "label": 2}\n')],
        ':2: "label" must be 0, 1')
    bad("empty file", t + ["--data", write("c.jsonl", "")], "no examples")
    bad("unknown hook", t + ["--data", TRAIN, "--hooks", "blocks.9.hook_resid_post"], "blocks.9")
    bad("missing file", t + ["--data", os.path.join(tmp, "nope.jsonl")], "nope.jsonl")
    bad("missing probe", ["probe", "eval", "-m", MODEL, "--probe", os.path.join(tmp, "x.json"),
                          "--data", EVAL], "x.json")

sys.exit(ledger.finish("probe"))
