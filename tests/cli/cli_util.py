"""Helpers shared by the CLI end-to-end scripts: a pass/fail ledger, running the binary, the
kill -9 driver that interrupts a long job at chosen points, and writing a small SAELens SAE."""
import json
import os
import signal
import subprocess


class Ledger:
    def __init__(self):
        self.failures = []

    def check(self, label, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + str(detail) if detail else ''}")
        if not ok:
            self.failures.append(label)
        return ok

    def finish(self, what):
        print(f"{len(self.failures)} failed: {self.failures}" if self.failures
              else f"all {what} checks passed")
        return 1 if self.failures else 0


def runner(binary):
    """gb(*args, check_rc=True) -> CompletedProcess; raises on a nonzero exit when check_rc."""
    def gb(*args, check_rc=True):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=900)
        if check_rc and p.returncode != 0:
            raise RuntimeError(f"glassbox {' '.join(args)}: rc {p.returncode}: {p.stderr[-1500:]}")
        return p
    return gb


def kill_at(cmd, site, n, timeout=900):
    """Runs cmd with GLASSBOX_KILL_AT=site:n (src/core/test_hooks.h): the program kills itself
    with SIGKILL when its progress at `site` reaches n, a kill -9 at a known place whatever the
    machine's speed. Returns True when it did (the run was interrupted there), False when the
    run ended first (the point lies beyond the job)."""
    env = dict(os.environ, GLASSBOX_KILL_AT=f"{site}:{n}")
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       timeout=timeout)
    return p.returncode == -signal.SIGKILL


def write_saelens(path, w, hook):
    """A SAELens relu ("standard") SAE from numpy arrays W_enc [d_in, d_sae], b_enc, W_dec, b_dec:
    cfg.json + sae_weights.safetensors (F32)."""
    import numpy as np
    os.makedirs(path)
    header, blobs, off = {}, [], 0
    for name, t in w.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(path, "sae_weights.safetensors"), "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump({"architecture": "standard", "d_in": int(w["W_enc"].shape[0]),
                   "d_sae": int(w["b_enc"].shape[0]), "dtype": "float32", "device": "cpu",
                   "apply_b_dec_to_input": True, "normalize_activations": "none",
                   "metadata": {"hook_name": hook}}, f)
