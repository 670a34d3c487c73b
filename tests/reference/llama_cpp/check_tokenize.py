#!/usr/bin/python3
"""glassbox's GGUF byte-level BPE tokenizer against llama.cpp's own, on the same files.

For each vocabulary (GPT-2, Llama 3: ../shared/models/tokenizers/*/tokenizer.json):
  1. `glassbox convert --vocab-only` writes it into a GGUF;
  2. copies of that GGUF get each tokenizer.ggml.pre value glassbox supports (rewritten here, in
     Python, so that every value is tried on every vocabulary, aliases included);
  3. every corpus line (../shared/corpus/*.txt split on '\\n') and every stress line
     (tests/reference/bpe/stress.jsonl) is encoded by `glassbox tokenize --model F.gguf --jsonl`
     and by llama_cpp_tokenize (llama.cpp's libraries, llama_tokenize with add_special = false,
     parse_special = true); the ids must be identical, line for line.
The supported values are read from glassbox's own refusal message of an unknown value, so a value
added to glassbox is checked here without editing this file.

usage: check_tokenize.py --glassbox BIN --harness BIN --shared DIR --repo DIR --workdir DIR
                         [--stride N]   (every Nth corpus line; the stress lines always)
                         [--pres A,B]   (only these pre values; default: every supported one)
Exit 0 = identical everywhere, 1 = a difference (the first few printed), 77 = shared/ absent.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9
PRE_KEY = "tokenizer.ggml.pre"


def _skip(data, t, pos):
    if t == STRING:
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]
    if t == ARRAY:
        et, n = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if et in SIZES:
            return pos + n * SIZES[et]
        for _ in range(n):
            pos = _skip(data, et, pos)
        return pos
    return pos + SIZES[t]


def _gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def with_pre(src, dst, pre):
    """Copies a tensor-less GGUF with tokenizer.ggml.pre set to `pre` (added when absent)."""
    data = open(src, "rb").read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<IIQQ", data, 0)
    if magic != 0x46554747 or n_tensors != 0:
        raise SystemExit(f"{src}: expected a vocabulary-only GGUF")
    pos, body, found = 24, b"", False
    for _ in range(n_kv):
        start = pos
        klen = struct.unpack_from("<Q", data, pos)[0]
        key = data[pos + 8:pos + 8 + klen].decode()
        t = struct.unpack_from("<I", data, pos + 8 + klen)[0]
        pos = _skip(data, t, pos + 12 + klen)
        if key == PRE_KEY:
            body += _gguf_string(PRE_KEY) + struct.pack("<I", STRING) + _gguf_string(pre)
            found = True
        else:
            body += data[start:pos]
    if not found:
        body += _gguf_string(PRE_KEY) + struct.pack("<I", STRING) + _gguf_string(pre)
        n_kv += 1
    out = struct.pack("<IIQQ", magic, version, 0, n_kv) + body
    out += b"\0" * (-len(out) % 32)  # the (empty) data section starts aligned
    open(dst, "wb").write(out)


def texts(shared, repo, stride):
    lines, index = [], 0
    corpus = os.path.join(shared, "corpus")
    for name in sorted(f for f in os.listdir(corpus) if f.endswith(".txt")):
        for line in open(os.path.join(corpus, name), "rb").read().decode().split("\n"):
            if index % stride == 0:
                lines.append(line)
            index += 1
    with open(os.path.join(repo, "tests/reference/bpe/stress.jsonl"), encoding="utf-8") as f:
        lines += [json.loads(line) for line in f if line.strip()]
    return lines


def supported_pres(gb, vocab_gguf, workdir):
    """The pre values glassbox lists when refusing an unknown one."""
    probe = os.path.join(workdir, "unknown_pre.gguf")
    with_pre(vocab_gguf, probe, "no-such-pre")
    p = subprocess.run([gb, "tokenize", "--model", probe, "--text", "a"], capture_output=True,
                       text=True)
    m = re.search(r"supported: ([^)]*)\)", p.stderr)
    if p.returncode != 1 or not m:
        raise SystemExit(f"glassbox did not refuse an unknown pre with the list: {p.stderr!r}")
    return [s.strip() for s in m.group(1).split(",")]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--glassbox", "--harness", "--shared", "--repo", "--workdir"):
        ap.add_argument(a, required=True)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--pres", help="comma-separated pre values (default: all glassbox supports)")
    a = ap.parse_args()
    tok_dir = os.path.join(a.shared, "models/tokenizers")
    if not os.path.isdir(tok_dir) or not os.path.isdir(os.path.join(a.shared, "corpus")):
        print("skip: ../shared tokenizers or corpus absent")
        return 77
    os.makedirs(a.workdir, exist_ok=True)
    lines = texts(a.shared, a.repo, a.stride)
    jsonl = os.path.join(a.workdir, "texts.jsonl")
    with open(jsonl, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in lines)
    plain = "".join(json.dumps(t) + "\n" for t in lines)
    print(f"{len(lines)} texts (corpus stride {a.stride} + stress lines)")
    failures = []
    for vocab in ("gpt2", "llama3"):
        base = os.path.join(a.workdir, f"{vocab}.gguf")
        subprocess.run([a.glassbox, "convert", "--vocab-only", "--tokenizer",
                        os.path.join(tok_dir, vocab, "tokenizer.json"), "--out", base],
                       check=True, capture_output=True)
        supported = supported_pres(a.glassbox, base, a.workdir)
        pres = a.pres.split(",") if a.pres else supported
        unknown = [p for p in pres if p not in supported]
        if unknown:
            raise SystemExit(f"--pres: {unknown} not supported by glassbox ({supported})")
        for pre in pres:
            path = os.path.join(a.workdir, f"{vocab}.{pre}.gguf")
            with_pre(base, path, pre)
            gb = subprocess.run([a.glassbox, "tokenize", "--model", path, "--jsonl", jsonl],
                                capture_output=True, text=True)
            ll = subprocess.run([a.harness, path], input=plain, capture_output=True, text=True)
            if gb.returncode != 0 or ll.returncode != 0:
                failures.append(f"{vocab} {pre}: glassbox rc {gb.returncode} "
                                f"{gb.stderr.strip()[-300:]!r}; llama.cpp rc {ll.returncode} "
                                f"{ll.stderr.strip()[-300:]!r}")
                print("FAIL " + failures[-1])
                continue
            ours = [json.loads(x) for x in gb.stdout.splitlines()]
            theirs = [json.loads(x) for x in ll.stdout.splitlines()]
            differ = [i for i in range(len(lines))
                      if i >= len(ours) or i >= len(theirs) or ours[i] != theirs[i]]
            ok = not differ and len(ours) == len(theirs) == len(lines)
            print(f"{'PASS' if ok else 'FAIL'} {vocab} pre={pre}: {len(lines) - len(differ)} of "
                  f"{len(lines)} texts identical")
            for i in differ[:3]:
                print(f"  text {lines[i][:80]!r}\n    glassbox  {ours[i] if i < len(ours) else None}"
                      f"\n    llama.cpp {theirs[i] if i < len(theirs) else None}")
            if not ok:
                failures.append(f"{vocab} {pre}: {len(differ)} differ")
    print(f"{len(failures)} failed" if failures else "glassbox = llama.cpp on every file and text")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
