#!/usr/bin/python3
"""Proves that check_hf.py can fail: runs it against mock_glassbox_hf.py (the float32-rounded
reference posing as the CLI) clean, once per architecture, which must pass, and with injected
defects, each of which must produce its own FAIL line -- including the two layout mistakes an HF
loader is most likely to make (RoPE pairing on HF-layout q/k; TL's LayerNorm hook placement) and
a model that does not load; and --via-gguf: clean through the mock's `convert` (Gemma 3, and
Llama with the q/k hooks in the GGUF's interleaved order), q/k hooks of a `llama` GGUF in HF
order, and a conversion that fails. Several defects share one run (each must still be caught by name) to
keep the number of mock processes, each importing torch, small.

usage: test_hf_harness.py --models DIR   (written by make_hf_models.py)
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# (model, defects, expected exit, {defect: substrings that one FAIL line must contain}[,
#  extra check_hf arguments])
CASES = [
    ("llama_tied", [], 0, {}),
    ("llama_tied",
     ["hook:blocks.1.attn.hook_rot_k", "hook:logits", "unmask:1", "gen:5",
      "info_drop:blocks.0.mlp.hook_pre_linear", "info_extra:hook_pos_embed"], 1,
     {"hook:blocks.1.attn.hook_rot_k": ["[random] blocks.1.attn.hook_rot_k:", "max_abs=2.0"],
      "hook:logits": ["[random] logits:", "max_abs=2.0"],
      "unmask:1": ["[random] blocks.1.attn.hook_attn_scores:", "-inf positions differ"],
      "gen:5": ["[gen short]", "step 5 "],
      "info_drop:blocks.0.mlp.hook_pre_linear": [
          "[random] blocks.0.mlp.hook_pre_linear: glassbox did not produce it"],
      "info_drop+info_extra": ["info:", "missing ['blocks.0.mlp.hook_pre_linear']",
                               "extra ['hook_pos_embed']"]}),
    ("llama_untied_llama3rope", ["rope_interleaved"], 1,
     {"rope_interleaved": ["[random] blocks.0.attn.hook_rot_q:"],
      "rope_interleaved (logits)": ["[random] logits:"]}),
    ("llama_tied", ["loadfail"], 1,
     {"loadfail": ["info:", "unsupported model format"],
      "loadfail (logits)": ["[random] logits:", "exited 1"]}),
    ("gpt2", [], 0, {}),
    ("gpt2", ["ln_preaffine", "hook:hook_pos_embed"], 1,
     {"ln_preaffine": ["[random] blocks.0.ln1.hook_normalized:"],
      "ln_preaffine (final)": ["[random] ln_final.hook_normalized:"],
      "hook:hook_pos_embed": ["[random] hook_pos_embed:", "max_abs=2.0"]}),
    # the newer architectures' features need no defect runs here: test_hf_self.py (v-d) shows that
    # ignoring each changes the logits by > 1e-3, far above the 2e-4 caught above
    ("gemma3", [], 0, {}, ["--via-gguf", "f32", "--seq-len", "64"]),
    # a `llama` GGUF: q/k hooks in the file's interleaved order pass, HF order fails
    ("llama_untied_llama3rope", [], 0, {}, ["--via-gguf", "f32"]),
    ("llama_untied_llama3rope", ["gguf_hf_order"], 1,
     {"gguf_hf_order": ["[random] blocks.0.attn.hook_q:"],
      "gguf_hf_order (rot_k)": ["[random] blocks.1.attn.hook_rot_k:"]}, ["--via-gguf", "f32"]),
    ("qwen2", ["convertfail"], 1,
     {"convertfail": ["convert:", "exited 1", "unsupported architecture"]},
     ["--via-gguf", "f32"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    mock = os.path.join(HERE, "mock_glassbox_hf.py")
    bad = []
    for model, defects, want, expect, *extra in CASES:
        env = dict(os.environ, MOCK_PERTURB=";".join(defects))
        cmd = [sys.executable, os.path.join(HERE, "check_hf.py"), "--glassbox", mock,
               "--model", os.path.join(a.models, model), "--quiet", "--seq-len", "24",
               "--gen", "8"] + (extra[0] if extra else [])
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        fails = [ln for ln in p.stdout.splitlines() if ln.startswith("FAIL ")]
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-300:]
        label = f"{model} defects {';'.join(defects) or '(none)'}" + \
            (f" {' '.join(extra[0])}" if extra else "")
        ok = p.returncode == want
        print(f"{'PASS' if ok else 'FAIL'} {label}: check_hf exit {p.returncode}, expected "
              f"{want}: {last}", flush=True)
        for what, subs in expect.items():
            hit = [ln for ln in fails if all(s in ln for s in subs)]
            print(f"  {'PASS' if hit else 'FAIL'} {what} caught"
                  + (f": {hit[0][:160]}" if hit else f" (no FAIL line with {subs})"), flush=True)
            ok = ok and bool(hit)
        if not ok:
            bad.append(label)
            print(p.stdout[-3000:], p.stderr[-2000:])
    print(f"test_hf_harness: {len(bad)} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
