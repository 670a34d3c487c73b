#!/usr/bin/python3
"""Builds the labelled probe datasets under data/probe/ from the embedded TinyStories excerpts
(stories separated by <|endoftext|>). Deterministic: the same seed gives the same bytes.

Tasks:
  quote    snippets of a story cut at a word boundary; label 1 when the cut falls inside a
           quotation (an odd number of '"' before it), 0 otherwise. The model must track this to
           predict a closing quote, so it should be readable from the last token's residual
           stream. Snippets whose last word touches a '"' are skipped (that would make the last
           token itself give the answer away). Classes are balanced.
  trigger  two-sentence snippets; in half of them (label 1) the word "dragon" is inserted at a
           random word position. A planted-word detector; with --pool mean it is easy already at
           the embedding, with the default last-token pooling the model must carry it forward.
Train rows come from tinystories_train_excerpt.txt, held-out rows from
tinystories_eval_excerpt.txt (different stories).

usage: make_probe_data.py [--task quote|trigger] [--seed 1] [--n-train 400] [--n-eval 200]
                          [--out data/probe]
"""
import argparse
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "data", "corpus")
MAX_CHARS = 240


def stories(name):
    with open(os.path.join(CORPUS, name), encoding="utf-8") as f:
        text = f.read()
    return [" ".join(s.split()) for s in text.split("<|endoftext|>") if s.strip()]


def quote_rows(pool, n, rng):
    pool = [s for s in pool if s.count('"') >= 2]
    rows, want = [], {0: n // 2, 1: n - n // 2}
    seen = set()
    while want[0] or want[1]:
        story = rng.choice(pool)
        words = story.split(" ")
        cut = rng.randrange(6, len(words) + 1)
        if '"' in words[cut - 1]:
            continue
        # Start at the beginning of a sentence so the snippet reads naturally and stays short.
        head = " ".join(words[:cut])
        starts = [0] + [m.end() for m in re.finditer(r'[.!?]"? ', head)]
        # Only starts outside a quotation, so the snippet's own quote count gives the state.
        starts = [s for s in starts if len(head) - s <= MAX_CHARS and len(head) - s >= 30
                  and head[:s].count('"') % 2 == 0]
        if not starts:
            continue
        text = head[rng.choice(starts):]
        label = text.count('"') % 2
        if not want[label] or text in seen:
            continue
        seen.add(text)
        want[label] -= 1
        rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def trigger_rows(pool, n, rng, word="dragon"):
    sents = []
    for s in pool:
        parts = re.split(r'(?<=[.!?])\s+', s)
        for i in range(0, len(parts) - 1, 2):
            t = " ".join(parts[i:i + 2])
            if 40 <= len(t) <= 180 and word not in t.lower():
                sents.append(t)
    rng.shuffle(sents)
    rows = []
    for i, t in enumerate(sents[:n]):
        label = i % 2
        if label:
            w = t.split(" ")
            w.insert(rng.randrange(0, len(w) + 1), word)
            t = " ".join(w)
        rows.append({"text": t, "label": label})
    rng.shuffle(rows)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["quote", "trigger"], default="quote")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "probe"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    make = quote_rows if a.task == "quote" else trigger_rows
    os.makedirs(a.out, exist_ok=True)
    for split, name, n in [("train", "tinystories_train_excerpt.txt", a.n_train),
                           ("eval", "tinystories_eval_excerpt.txt", a.n_eval)]:
        rows = make(stories(name), n, rng)
        path = os.path.join(a.out, f"{a.task}_{split}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{path}: {len(rows)} rows, {sum(r['label'] for r in rows)} positive")


if __name__ == "__main__":
    main()
