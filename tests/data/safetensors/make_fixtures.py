#!/usr/bin/python3
"""Writes the safetensors test fixtures with numpy + json + struct only, from the published format
(huggingface/safetensors README), sharing no code with glassbox:

  u64 little-endian header length N | N bytes of JSON padded with spaces | tensor bytes

Usage: make_fixtures.py OUT_DIR   (the committed copies live beside this script)
  OUT_DIR/tiny.safetensors        every dtype glassbox reads, plus I8 (listed, not loadable);
                                  tensors stored in the order given, so f32.matrix follows 5 bytes
                                  of u8 and is misaligned (glassbox must copy it)
  OUT_DIR/sharded/                model.safetensors.index.json + two shards
"""
import json
import os
import struct
import sys

import numpy as np


def bf16_bits(values):
    """Top 16 bits of float32 (the values used are exact in bfloat16)."""
    return (np.asarray(values, dtype="<f4").view("<u4") >> 16).astype("<u2")


def write(path, tensors, metadata=None):
    """tensors: list of (name, safetensors dtype, shape, little-endian numpy array)."""
    header = {}
    blobs = []
    offset = 0
    for name, dtype, shape, array in tensors:
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata  # last: the key may appear anywhere
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main(out):
    os.makedirs(os.path.join(out, "sharded"), exist_ok=True)
    write(os.path.join(out, "tiny.safetensors"), [
        ("u8.bytes", "U8", [5], np.arange(1, 6, dtype="u1")),
        ("f32.matrix", "F32", [2, 3], np.arange(6, dtype="<f4") * 0.5 - 1.0),
        ("f16.vec", "F16", [4], np.array([1.0, -2.0, 0.5, 65504.0], dtype="<f2")),
        ("bf16.mat", "BF16", [2, 2], bf16_bits([1.0, -2.0, 3.5, -0.15625])),
        ("f64.scalar", "F64", [], np.array(np.pi, dtype="<f8")),
        ("i32.vec", "I32", [3], np.array([-1, 0, 2**31 - 1], dtype="<i4")),
        ("i64.vec", "I64", [2], np.array([-2**40, 7], dtype="<i8")),
        ("empty", "F32", [0, 4], np.zeros((0, 4), dtype="<f4")),
        ("i8.unsupported", "I8", [3], np.array([-1, 0, 1], dtype="i1")),
        ("model.layers.0.self_attn.q_proj.weight", "F32", [4, 2],
         np.arange(8, dtype="<f4") / 8),
    ], metadata={"format": "pt", "note": "h\u00e9llo \"quoted\""})

    shard1 = [("model.embed_tokens.weight", "F32", [3, 2], np.arange(6, dtype="<f4")),
              ("model.norm.weight", "F32", [2], np.array([1.0, 2.0], dtype="<f4"))]
    shard2 = [("lm_head.weight", "F16", [3, 2], np.arange(6, dtype="<f2") - 3)]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    write(os.path.join(out, "sharded", names[0]), shard1, {"format": "pt"})
    write(os.path.join(out, "sharded", names[1]), shard2, {"format": "pt"})
    weight_map = {t[0]: names[0] for t in shard1}
    weight_map.update({t[0]: names[1] for t in shard2})
    total = sum(np.asarray(t[3]).nbytes for t in shard1 + shard2)
    with open(os.path.join(out, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
