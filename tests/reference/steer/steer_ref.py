"""Independent reference for `glassbox steer-vector` (float64 NumPy, no glassbox code).

Given per-text activations (the [n_tokens, d_model] blocks.L.hook_resid_post arrays that
`glassbox cache` dumps as .npy), computes the steering directions the way docs/steering.md
specifies them, and reads the files glassbox writes with its own minimal parsers:

  reduce(act, "last"|"mean")     one row per text
  mean_diff(P, N, normalize)     mean(P) - mean(N), unit norm by default
  pca_diff(P, N)                 repeng's pca_diff: first principal component (SVD of the centred
                                 paired differences P - N, as sklearn's PCA centres), unit norm,
                                 sign by repeng's vote over pairs, ties by the mean projection
  read_control_vector_gguf(path) {N: direction} from a llama.cpp control-vector GGUF
  read_safetensors(path)         {name: array} for F32 tensors
  write_gguf(path, meta, tensors) a tiny GGUF v3 writer (for malformed-file tests)
"""
import json
import struct

import numpy as np


def reduce(act, how):
    act = np.asarray(act, dtype=np.float64)
    assert act.ndim == 2, act.shape
    return act[-1] if how == "last" else act.mean(axis=0)


def mean_diff(pos, neg, normalize=True):
    v = np.asarray(pos, np.float64).mean(axis=0) - np.asarray(neg, np.float64).mean(axis=0)
    return v / np.linalg.norm(v) if normalize else v


def pca_diff(pos, neg):
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    diff = pos - neg
    diff = diff - diff.mean(axis=0)
    _, _, vt = np.linalg.svd(diff, full_matrices=False)
    v = vt[0] / np.linalg.norm(vt[0])
    pp, nn = pos @ v, neg @ v
    higher, lower = int(np.sum(pp > nn)), int(np.sum(pp < nn))
    if lower > higher or (lower == higher and np.sum(pp - nn) < 0):
        v = -v
    return v


# --- GGUF (ggml docs/gguf.md), only what control vectors use ---
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}


def _read_value(buf, off, vtype):
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack_from(fmt, buf, off)[0], off + struct.calcsize(fmt)
    if vtype == 8:
        (n,) = struct.unpack_from("<Q", buf, off)
        return buf[off + 8:off + 8 + n].decode("utf-8"), off + 8 + n
    if vtype == 9:
        etype, n = struct.unpack_from("<IQ", buf, off)
        off += 12
        items = []
        for _ in range(n):
            item, off = _read_value(buf, off, etype)
            items.append(item)
        return items, off
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf(path):
    buf = open(path, "rb").read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    assert magic == b"GGUF" and version in (2, 3), (magic, version)
    off = 24
    meta = {}
    for _ in range(n_kv):
        key, off = _read_value(buf, off, 8)
        (vtype,) = struct.unpack_from("<I", buf, off)
        meta[key], off = _read_value(buf, off + 4, vtype)
    infos = []
    for _ in range(n_tensors):
        name, off = _read_value(buf, off, 8)
        (n_dims,) = struct.unpack_from("<I", buf, off)
        ne = struct.unpack_from(f"<{n_dims}Q", buf, off + 4)
        gtype, toff = struct.unpack_from("<IQ", buf, off + 4 + 8 * n_dims)
        off += 4 + 8 * n_dims + 12
        infos.append((name, ne, gtype, toff))
    align = int(meta.get("general.alignment", 32))
    data = (off + align - 1) // align * align
    tensors = {}
    for name, ne, gtype, toff in infos:
        assert gtype == 0, f"{name}: ggml type {gtype}, expected F32"
        n = int(np.prod(ne))
        tensors[name] = np.frombuffer(buf, "<f4", n, data + toff).reshape(tuple(reversed(ne)))
    return meta, tensors


def read_control_vector_gguf(path):
    meta, tensors = read_gguf(path)
    assert meta["general.architecture"] == "controlvector", meta
    assert meta["controlvector.layer_count"] == len(tensors), meta
    out = {}
    for name, t in tensors.items():
        assert name.startswith("direction."), name
        out[int(name[len("direction."):])] = t.astype(np.float64)
    return meta, out


def read_safetensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(buf[8 + n + b:8 + n + e], "<f4").reshape(info["shape"])
    return header.get("__metadata__", {}), out


def _gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, meta, tensors):
    """meta: [(key, vtype, value)] with vtype 4 (u32), 5 (i32) or 8 (string);
    tensors: [(name, ggml_type, ne tuple, raw bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for key, vtype, value in meta:
        out += _gguf_str(key) + struct.pack("<I", vtype)
        out += _gguf_str(value) if vtype == 8 else struct.pack(_SCALARS[vtype], value)
    off = 0
    offsets = []
    for name, gtype, ne, raw in tensors:
        offsets.append(off)
        out += _gguf_str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        out += struct.pack("<IQ", gtype, off)
        off += (len(raw) + 31) // 32 * 32
    out += b"\0" * ((-len(out)) % 32)
    for (_, _, _, raw), o in zip(tensors, offsets):
        out += raw + b"\0" * ((-len(raw)) % 32)
    open(path, "wb").write(out)
