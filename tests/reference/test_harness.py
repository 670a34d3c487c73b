#!/usr/bin/python3
"""Proves that check_model.py can fail: runs it against mock_glassbox.py (the float32-rounded
reference) once clean, which must pass, and once per injected defect, each of which must fail.

usage: test_harness.py --model stories260K.bin   (tok*.bin beside it)
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [("", 0), ("hook:blocks.2.hook_resid_pre", 1), ("hook:logits", 1),
         ("unmask:1", 1), ("gen:10", 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print(f"SKIP: {a.model} not found")
        return 77
    # the mock is a python script: wrap it so check_model can exec it like a binary
    mock = os.path.join(HERE, "mock_glassbox.py")
    bad = []
    for perturb, want in CASES:
        env = dict(os.environ, MOCK_PERTURB=perturb)
        cmd = [sys.executable, os.path.join(HERE, "check_model.py"), "--glassbox", mock,
               "--model", a.model, "--quiet", "--seq-len", "40", "--gen", "12"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-300:]
        ok = p.returncode == want
        print(f"{'PASS' if ok else 'FAIL'} defect {perturb or '(none)'}: check_model exit "
              f"{p.returncode}, expected {want}: {last}")
        if not ok:
            bad.append(perturb)
            print(p.stdout[-3000:], p.stderr[-2000:])
    print(f"test_harness: {len(bad)} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
