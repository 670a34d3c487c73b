"""Helpers shared by the CLI end-to-end scripts: a pass/fail ledger, running the binary, the
kill -9 driver that interrupts a long job at chosen points, writing a small SAELens SAE, and
adding a string to a GGUF's metadata (a chat template)."""
import json
import os
import signal
import struct
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


def gguf_add_string(src, dst, key, value):
    """Copies the GGUF file `src` to `dst` with one more string metadata entry."""
    gguf_add_metadata(src, dst, {key: value})


def gguf_add_metadata(src, dst, entries):
    """Copies the GGUF file `src` to `dst` with more metadata entries (format: src/io/gguf.h):
    a str value is written as a string, an int as uint32. Tensor data offsets are relative to
    the data section, so only the padding before it changes."""
    data = open(src, "rb").read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF"
    pos = 24
    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    alignment = 32

    def skip_value(t, p):
        if t in scalar:
            return p + scalar[t]
        if t == 8:
            (n,) = struct.unpack_from("<Q", data, p)
            return p + 8 + n
        assert t == 9
        et, n = struct.unpack_from("<IQ", data, p)
        p += 12
        for _ in range(n):
            p = skip_value(et, p)
        return p

    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", data, pos)
        k = data[pos + 8:pos + 8 + klen].decode()
        pos += 8 + klen
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if k == "general.alignment":
            (alignment,) = struct.unpack_from("<I", data, pos)
        pos = skip_value(t, pos)
    kv_end = pos
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    infos_end = pos
    data_start = (infos_end + alignment - 1) // alignment * alignment
    new_kv = b""
    for key, value in entries.items():
        kb = key.encode()
        new_kv += struct.pack("<Q", len(kb)) + kb
        if isinstance(value, str):
            vb = value.encode()
            new_kv += struct.pack("<IQ", 8, len(vb)) + vb
        else:
            new_kv += struct.pack("<II", 4, value)
    head = (struct.pack("<4sIQQ", magic, version, n_tensors, n_kv + len(entries))
            + data[24:kv_end] + new_kv
            + data[kv_end:infos_end])
    head += b"\0" * (-len(head) % alignment)
    with open(dst, "wb") as f:
        f.write(head + data[data_start:])
