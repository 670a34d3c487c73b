#!/usr/bin/env python3
"""glassbox's chat-template rendering against independent renderers, byte for byte.

Every template of conversations.json (files in tests/data/chat_templates/, see PROVENANCE.md
there) is rendered over every conversation, with add_generation_prompt false and true, by
  - `glassbox chat-template --template F --messages M.json [--add-generation-prompt] --bos B
    --eos E --date D [--tools T.json] [--vars V.json]`,
  - @huggingface/jinja (Hugging Face's JavaScript Jinja, pinned, unpacked by scripts/setup.sh into
    build/deps/) under node, through render.mjs, and
  - Python's Jinja2 (Debian's python3-jinja2) set up as transformers' apply_chat_template sets it
    up, through render_jinja2.py.
A case passes when glassbox renders the same bytes as each reference, or when each refuses it and
glassbox's error carries the reference's message (every refusal in the set is the template's own
raise_exception(...)). strftime_now() gets the same fixed date everywhere (TZ=UTC).

--break corrupts each reference result (one byte appended to the text or to the message) before
comparing, on the first rendering of each template (a success or a refusal): every comparison
must then be reported as a mismatch, which proves the check can fail.
A reference whose runtime is missing is skipped (said so); exit 77 when both are.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def first_difference(a: bytes, b: bytes) -> str:
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    ctx = lambda s: s[max(0, n - 40):n + 40].decode("utf-8", "replace")
    return (f"first difference at byte {n} (glassbox {len(a)} bytes, reference {len(b)} bytes)\n"
            f"      glassbox : {ctx(a)!r}\n      reference: {ctx(b)!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glassbox", required=True)
    ap.add_argument("--templates", required=True, help="directory of .jinja files")
    ap.add_argument("--cases", default=os.path.join(HERE, "conversations.json"))
    ap.add_argument("--jinja", required=True, help="the unpacked @huggingface/jinja package")
    ap.add_argument("--node", default="node")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--date", default="2024-07-26T10:30:00")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--every", type=int, default=1, metavar="N",
                    help="check every Nth rendering only (sanitized builds: each is a slow process)")
    ap.add_argument("--break", dest="brk", action="store_true",
                    help="corrupt the reference results; every case must mismatch")
    a = ap.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    env = dict(os.environ, TZ="UTC", LC_ALL="C")
    references = {}  # name -> the command that prints its results
    node = shutil.which(a.node)
    if not node:
        print(f"SKIP reference @huggingface/jinja: node ({a.node}) not found")
    elif not os.path.isfile(os.path.join(a.jinja, "package.json")):
        print(f"SKIP reference @huggingface/jinja: not unpacked in {a.jinja} "
              "(scripts/setup.sh does it)")
    else:
        references["@huggingface/jinja"] = [
            node, os.path.join(HERE, "render.mjs"), "--jinja", a.jinja]
    references["jinja2"] = [sys.executable, os.path.join(HERE, "render_jinja2.py")]
    results_by_ref = {}
    for name, cmd in references.items():
        ref = subprocess.run(cmd + ["--templates", a.templates, "--cases", a.cases,
                                    "--date", a.date], capture_output=True, env=env)
        if ref.returncode == 77:
            print(f"SKIP reference {name}: " + ref.stderr.decode(errors="replace").strip())
            continue
        if ref.returncode != 0:
            print(ref.stderr.decode(errors="replace"))
            print(f"FAIL: the {name} renderer failed")
            return 1
        results_by_ref[name] = json.loads(ref.stdout)
    if not results_by_ref:
        print("SKIP: no reference renderer available")
        return 77
    if a.brk:  # the first rendering of each template is enough to show mismatches are caught
        for name, rs in results_by_ref.items():
            seen = set()
            results_by_ref[name] = [r for r in rs if r["template"] not in seen
                                    and not seen.add(r["template"])]
    if a.every > 1:
        for name, rs in results_by_ref.items():
            results_by_ref[name] = rs[::a.every]
    results = next(iter(results_by_ref.values()))
    with open(a.cases, encoding="utf-8") as f:
        spec = json.load(f)
    templates = {t["file"]: t for t in spec["templates"]}
    cases = {c["name"]: c for c in spec["cases"]}

    # One input file per conversation (and its tools / extra variables).
    inputs = {}
    for name, c in cases.items():
        files = {}
        for key, suffix in (("messages", "messages"), ("tools", "tools"), ("vars", "vars")):
            if key in c:
                path = os.path.join(a.workdir, f"{name}.{suffix}.json")
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(c[key], f, ensure_ascii=False)
                files[key] = path
        inputs[name] = files

    def run(r):
        t = templates[r["template"]]
        files = inputs[r["case"]]
        cmd = [a.glassbox, "chat-template", "--template", os.path.join(a.templates, r["template"]),
               "--messages", files["messages"], "--bos", t["bos_token"], "--eos", t["eos_token"],
               "--date", a.date]
        if r["add_generation_prompt"]:
            cmd.append("--add-generation-prompt")
        if "tools" in files:
            cmd += ["--tools", files["tools"]]
        if "vars" in files:
            cmd += ["--vars", files["vars"]]
        return subprocess.run(cmd, capture_output=True, env=env)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        runs = list(pool.map(run, results))

    failures = 0
    comparisons = 0
    per_template = {}  # template -> [renderings, identical (all refs), same raise (all refs)]
    for i, (r, p) in enumerate(zip(results, runs)):
        label = f"{r['template']} x {r['case']} (add_generation_prompt={r['add_generation_prompt']})"
        stats = per_template.setdefault(r["template"], [0, 0, 0])
        stats[0] += 1
        all_ok = True
        for ref_name, ref_results in results_by_ref.items():
            q = ref_results[i]
            assert (q["template"], q["case"], q["add_generation_prompt"]) == \
                (r["template"], r["case"], r["add_generation_prompt"])
            comparisons += 1
            if q["ok"]:
                expected = q["output"].encode("utf-8") + (b"#" if a.brk else b"")
                ok = p.returncode == 0 and p.stdout == expected
                if not ok and not a.brk:
                    why = (first_difference(p.stdout, expected) if p.returncode == 0 else
                           "glassbox failed: " + p.stderr.decode(errors="replace").strip())
                    print(f"MISMATCH vs {ref_name}: {label}\n    {why}")
            else:
                message = q["error"] + ("#" if a.brk else "")
                ok = p.returncode != 0 and message in p.stderr.decode("utf-8", "replace")
                if not ok and not a.brk:
                    got = (p.stderr.decode(errors="replace").strip() if p.returncode != 0 else
                           "glassbox rendered without error")
                    print(f"MISMATCH vs {ref_name}: {label}\n    reference raised: "
                          f"{q['error']!r}\n    glassbox: {got}")
            failures += 0 if ok else 1
            all_ok = all_ok and ok
        if all_ok:
            stats[1 if p.returncode == 0 else 2] += 1

    refs = " and ".join(results_by_ref)
    print(f"{'template':<52} {'cases':>5} {'identical':>9} {'same raise':>10}")
    for name, (n, same, raised) in per_template.items():
        print(f"{name:<52} {n:>5} {same:>9} {raised:>10}")
    total = len(results)
    identical = sum(s[1] for s in per_template.values())
    raised = sum(s[2] for s in per_template.values())
    if a.brk:
        print(f"--break: {failures} of {comparisons} comparisons with corrupted reference results "
              "reported a mismatch")
        return 0 if failures == comparisons else 1
    print(f"check_chat_templates: {'PASS' if failures == 0 else 'FAIL'} against {refs}: "
          f"{len(per_template)} templates, {total} renderings: {identical} byte-identical, "
          f"{raised} raise the same exception, {failures} of {comparisons} comparisons differ")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
