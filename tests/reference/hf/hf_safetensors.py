#!/usr/bin/python3
"""Strict safetensors reader for the HF reference (hf_ref.py re-exports everything here).

Written from the safetensors format description, not from glassbox's C++ and without the
`safetensors` package: single files, or sharded checkpoints with model.safetensors.index.json.
Must run under Debian's /usr/bin/python3 (python3-numpy).
"""
import json
import os
import struct

import numpy as np

# --------------------------------------------------------------------------------------------
# safetensors reader
# --------------------------------------------------------------------------------------------
# File: u64 little-endian N; N bytes of UTF-8 JSON {name: {"dtype", "shape", "data_offsets":
# [begin, end]}, optional "__metadata__": {str: str}} (may be padded with trailing spaces); then
# the byte buffer. Offsets are relative to the start of the buffer; tensors are row-major,
# little-endian; the ranges must tile the buffer exactly (no holes, no overlaps).

ST_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def bf16_bits_to_f32(u16):
    return (np.asarray(u16, dtype=np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """Returns ({name: numpy array (float32, or float64 for F64)}, metadata dict).
    F16 and BF16 are widened to float32 exactly."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: bad JSON header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    buf_start, buf_len = 8 + n, len(data) - 8 - n
    meta = header.pop("__metadata__", {}) or {}
    tensors, ranges = {}, []
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in ST_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt!r}")
        np_dt, size = ST_DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= begin <= end <= buf_len:
            raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} outside the buffer "
                             f"of {buf_len} bytes")
        if end - begin != count * size:
            raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for shape {shape} {dt}")
        a = np.frombuffer(data, dtype=np_dt, count=count, offset=buf_start + begin)
        if dt == "BF16":
            a = bf16_bits_to_f32(a)
        elif dt == "F16":
            a = a.astype(np.float32)
        tensors[name] = a.reshape(shape)
        ranges.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(ranges):
        if begin != pos:
            raise ValueError(f"{path}: tensor {name} starts at {begin}, expected {pos} "
                             "(hole or overlap in the buffer)")
        pos = end
    if pos != buf_len:
        raise ValueError(f"{path}: {buf_len - pos} trailing bytes after the last tensor")
    return tensors, meta


def read_safetensors_raw(path):
    """(header dict, raw bytes of each tensor) -- for bit-exact comparisons in the self-test."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    raw = {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
           for k, v in header.items() if k != "__metadata__"}
    return header, raw


def read_model_dir(model_dir):
    """Returns (config dict, {tensor name: numpy array}) for an HF model directory: config.json and
    model.safetensors, or model.safetensors.index.json plus the shards it names."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            t, _ = read_safetensors(os.path.join(model_dir, shard))
            for name in t:
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} not mapped to this shard by the index")
            tensors.update(t)
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"index names tensors missing from their shards: {sorted(missing)[:5]}")
    else:
        tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, tensors
