"""`glassbox explain` and `glassbox score` (issue #8, docs/autointerp.md) on features whose true
explanation is known by construction.

1. Token features: an SAE on hook_embed of stories260K whose latent j fires exactly on token t_j
   (encoder column E[t_j] / |E[t_j]|^2, bias halfway between 1 and the largest ratio any other
   token's embedding reaches, checked here with numpy). After `analyze`, the offline explainer must
   quote t_j's word first; detection and fuzzing of that explanation by the offline judge must
   reach balanced accuracy >= 0.9, and a wrong explanation (another latent's word) 0.5 +- 0.15.
2. Intervention: an SAE on the last block's residual stream with two latents whose decoder rows
   are +u and -u, u the direction that raises the word's logit (W_U[t] / ln_final.w). Both are
   labelled with that word. Clamping the first must make generations express the label more than
   unsteered ones (positive score), the second not (score <= 0), with a margin between them.
3. The LLM client end to end: a scripted OpenAI-compatible endpoint (tests/autointerp/
   scripted_endpoint.py) answering 500s, 429 with Retry-After, slow replies past the timeout,
   malformed JSON and replies without content, then at a seeded random rate: every feature is
   explained, each paid for once; a rerun asks nothing; the same endpoint as an LLM judge
   (it answers judge prompts by the explanation's quoted terms) scores the right explanations
   >= 0.9 and gives the offline judge's intervention values; a run killed with -9 mid-way
   resumes without asking again for finished features; 401 without the API key; glassbox's own
   server as the endpoint.
usage: autointerp_test.py <glassbox binary> <repo root>
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from cli_util import Ledger, kill_at, runner, write_saelens  # noqa: E402
from llama_ref import Llama2cVocab, read_llama2c  # noqa: E402

WORDS = ["Lily", "happy", "mom", "big"]
ENDPOINT = os.path.join(HERE, "..", "autointerp", "scripted_endpoint.py")


def token_sae(E, ids, rng):
    """Latent j fires (activation > 0) exactly where the token is ids[j]."""
    d = E.shape[1]
    w_enc = np.zeros((d, len(ids)))
    b_enc = np.zeros(len(ids))
    for j, t in enumerate(ids):
        col = E[t] / (E[t] @ E[t])
        r = E @ col
        r[t] = -np.inf
        assert r.max() < 0.9, (t, r.max())
        w_enc[:, j] = col
        b_enc[j] = -(1 + r.max()) / 2
    w_dec = rng.standard_normal((len(ids), d))
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    return {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": np.zeros(d)}


def scores(db, explainer, method):
    with sqlite3.connect(db) as c:
        return {f: v for f, v in c.execute(
            "SELECT feature, value FROM scores WHERE explainer=? AND method=? AND judge='offline'",
            (explainer, method))}


def put_explanations(db, explainer, texts):
    with sqlite3.connect(db) as c:
        for f, text in texts.items():
            c.execute("INSERT OR REPLACE INTO explanations VALUES (?,?,?,?,?,?,?,?,?)",
                      (f, explainer, text, "test", "test", "", "2026-01-01T00:00:00Z", 0, 0))


def check_token_features(led, gb, tmp, model, corpus, E, ids):
    sae = os.path.join(tmp, "sae_embed")
    write_saelens(sae, token_sae(E, ids, np.random.default_rng(1)), "hook_embed")
    db = os.path.join(tmp, "tokens.db")
    gb("analyze", "--model", model, "--sae", sae, "--corpus", corpus, "--tokens", "20000",
       "--out", db, "-t", "1")
    p = gb("explain", "--db", db)
    led.check("explain without --endpoint says it uses the offline explainer",
              "offline" in p.stderr, p.stderr[-300:])
    with sqlite3.connect(db) as c:
        rows = dict(c.execute("SELECT feature, explanation FROM explanations "
                              "WHERE explainer='offline'"))
    for j, word in enumerate(WORDS):
        text = rows.get(j, "")
        first = text.split('"')[1] if text.count('"') >= 2 else ""
        led.check(f"offline explanation of latent {j} quotes {word!r} first", first == word, text)
    gb("score", "--db", db, "--methods", "detection,fuzzing", "-t", "1")
    for method in ["detection", "fuzzing"]:
        got = scores(db, "offline", method)
        led.check(f"correct explanations: {method} balanced accuracy >= 0.9",
                  len(got) == len(WORDS) and min(got.values()) >= 0.9, got)
    wrong = {j: f'fires on "{WORDS[(j + 1) % len(WORDS)]}"' for j in range(len(WORDS))}
    put_explanations(db, "wrong", wrong)
    gb("score", "--db", db, "--explainer", "wrong", "--methods", "detection,fuzzing", "-t", "1")
    for method in ["detection", "fuzzing"]:
        got = scores(db, "wrong", method)
        led.check(f"wrong explanations: {method} balanced accuracy 0.5 +- 0.15",
                  len(got) == len(WORDS) and all(abs(v - 0.5) <= 0.15 for v in got.values()),
                  got)
    p = gb("score", "--db", db, "--methods", "detection,fuzzing", "-t", "1")
    led.check("a rerun scores nothing again", "nothing to score" in p.stderr, p.stderr[-200:])
    return db


def check_bad_input(led, glassbox, tmp, db):
    """Bad input: one `glassbox: error:` line naming the file or option, exit 1, DB untouched."""
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"not a database at all" * 100)
    before = open(db, "rb").read()
    cases = [
        (["explain", "--db", os.path.join(tmp, "none.db")], "none.db"),
        (["explain", "--db", junk], "junk.db"),
        (["score", "--db", junk], "junk.db"),
        (["explain", "--db", db, "--features", "0-x"], "--features"),
        (["explain", "--db", db, "--features", "9999"], "--features"),
        (["explain", "--db", db, "--endpoint", "ftp://x", "--model", "m"], "--endpoint"),
        (["explain", "--db", db, "--endpoint", "http://127.0.0.1:9/v1"], "--model"),
        (["explain", "--db", db, "--model", "m"], "--model"),
        (["score", "--db", db, "--methods", "detection,vibes"], "--methods"),
        (["score", "--db", db, "--subject-model", os.path.join(tmp, "nope.bin")],
         "--subject-model"),
    ]
    for args, want in cases:
        p = subprocess.run([glassbox, *args], capture_output=True, text=True, timeout=900)
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("glassbox: error:")]
        led.check(f"{' '.join(args[:1] + args[3:])}: exit 1, one error naming {want}",
                  p.returncode == 1 and len(lines) == 1 and want in lines[0], p.stderr[-300:])
    led.check("bad input left the database untouched", open(db, "rb").read() == before)


def check_intervention(led, gb, tmp, model, corpus, w, word_id):
    d = w["embed"].shape[1]
    u = w["unembed"][word_id].astype(np.float64) / w["final_norm"]
    u /= np.linalg.norm(u)
    rng = np.random.default_rng(2)
    enc = rng.standard_normal((d, 2))
    enc /= np.linalg.norm(enc, axis=0)
    sae = {"W_enc": enc, "b_enc": np.zeros(2), "W_dec": np.stack([10 * u, -10 * u]),
           "b_dec": np.zeros(d)}
    path = os.path.join(tmp, "sae_steer")
    write_saelens(path, sae, "blocks.4.hook_resid_post")
    db = os.path.join(tmp, "steer.db")
    gb("analyze", "--model", model, "--sae", path, "--corpus", corpus, "--tokens", "4000",
       "--out", db, "-t", "1")
    gb("explain", "--db", db)  # creates the tables
    label = f'fires on "{WORDS[0]}"'
    put_explanations(db, "label", {0: label, 1: label})
    p = gb("score", "--db", db, "--explainer", "label", "--methods", "intervention", "-t", "1")
    got = scores(db, "label", "intervention")
    v_match, v_contra = got.get(0, np.nan), got.get(1, np.nan)
    led.check("intervention: steering along the label scores > 0", v_match > 0, got)
    led.check("intervention: steering against the label scores <= 0", v_contra <= 0, got)
    led.check("intervention separates them by >= 0.3", v_match - v_contra >= 0.3, got)
    if v_contra < 0:
        led.check("a negative intervention score is reported", "negative intervention" in p.stdout,
                  p.stdout)


def start_endpoint(tmp, *flags):
    port_file = os.path.join(tmp, f"port{time.time_ns()}")
    log = os.path.join(tmp, "endpoint.log")
    p = subprocess.Popen(["/usr/bin/python3", ENDPOINT, "--port-file", port_file, "--log", log,
                          *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):  # a readiness wait: its bound matters only when the endpoint fails
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    port = int(open(port_file).read().strip())
    return p, f"http://127.0.0.1:{port}/v1", log


def log_lines(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def explained(db, explainer):
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT feature, explanation FROM explanations WHERE explainer=?",
                              (explainer,)))


def check_llm_client(led, gb, glassbox, tmp, model, token_db):
    db = os.path.join(tmp, "llm.db")
    shutil.copy(token_db, db)
    plan = os.path.join(tmp, "plan.json")
    with open(plan, "w") as f:
        json.dump([{"status": 500}, {"status": 429, "retry_after": 1}, {"delay": 6},
                   {"malformed": True}, {"missing_content": True}, {"status": 503}], f)
    ep, url, log = start_endpoint(tmp, "--plan", plan, "--fail-rate", "0.2", "--seed", "3")
    try:
        args = ["explain", "--db", db, "--endpoint", url, "--model", "scripted", "--timeout", "3",
                "--retries", "8", "--concurrency", "3"]
        t0 = time.time()
        p = gb(*args)
        got = explained(db, "scripted")
        led.check("scripted endpoint: every live feature explained despite the errors",
                  sorted(got) == list(range(len(WORDS))), got)
        led.check("the explanation is parsed from the reply ([EXPLANATION]: ...)",
                  all(got[j] == f'the token "{WORDS[j]}"' for j in got), got)
        # The delayed request is logged when its handler wakes, 6 s after it arrived, which can
        # be after the run has ended (its client gave up at 3 s): wait for that line, so that
        # the counts below and the "asks nothing" checks after them see every request.
        for _ in range(6000):  # an event wait; the bound matters only if the line never comes
            if any("delay" in x["behaviour"] for x in log_lines(log)):
                break
            time.sleep(0.05)
        lines = log_lines(log)
        led.check("the delayed request was logged", any("delay" in x["behaviour"] for x in lines))
        # Good replies (200 with content). The slow one arrives after the client's timeout
        # and is asked again: at most one extra.
        ok = [x for x in lines if x["status"] == 200 and "malformed" not in x["behaviour"] and
              "missing_content" not in x["behaviour"]]
        led.check("each feature paid for once (one good reply per feature; the timed-out slow "
                  "one aside)",
                  len({x["body_sha256"] for x in ok}) == len(WORDS) and
                  len(ok) <= len(WORDS) + 1, f"{len(ok)} good replies, {len(lines)} requests")
        led.check("errors were retried (more requests than features)", len(lines) > len(WORDS),
                  len(lines))
        led.check("429 Retry-After honoured (run took >= 1 s)", time.time() - t0 >= 1.0)
        with sqlite3.connect(db) as c:
            usage = c.execute("SELECT SUM(prompt_tokens), COUNT(*) FROM explanations "
                              "WHERE explainer='scripted'").fetchone()
        led.check("token usage stored with the explanations", usage[0] and usage[0] > 0, usage)
        n = len(lines)
        p = gb(*args)
        led.check("a rerun asks nothing and says so",
                  len(log_lines(log)) == n and "nothing to do" in p.stderr, p.stderr[-200:])
        gb(*args, "--redo")
        led.check("--redo answers from the cache (never pays twice)", len(log_lines(log)) == n)
        # The LLM judge (batched prompts, JSON-list replies) through the same flaky endpoint.
        judge = ["score", "--db", db, "--explainer", "scripted", "--endpoint", url, "--model",
                 "judge", "--methods", "detection,fuzzing", "--retries", "8", "-t", "1"]
        gb(*judge)
        with sqlite3.connect(db) as c:
            got = {(f, m): v for f, m, v in c.execute(
                "SELECT feature, method, value FROM scores WHERE judge='judge'")}
        led.check("LLM judge: correct explanations score >= 0.9 (detection and fuzzing)",
                  len(got) == 2 * len(WORDS) and min(got.values()) >= 0.9, got)
        n = len(log_lines(log))
        gb(*judge)
        led.check("LLM judge: a rerun asks nothing", len(log_lines(log)) == n)
        # Intervention through the LLM judge (expression prompts) = the offline judge's value:
        # the scripted judge applies the same whole-word rule to these one-word explanations.
        gb("score", "--db", db, "--explainer", "scripted", "--methods", "intervention", "-t", "1")
        gb(*judge[:-6], "--methods", "intervention", "--retries", "8", "-t", "1")
        with sqlite3.connect(db) as c:
            vals = {}
            for f, j, v in c.execute("SELECT feature, judge, value FROM scores "
                                     "WHERE method='intervention' AND explainer='scripted'"):
                vals.setdefault(f, {})[j] = v
        led.check("LLM judge: intervention scores equal the offline judge's",
                  len(vals) == len(WORDS) and
                  all(abs(d.get("judge", 9) - d.get("offline", -9)) < 1e-12
                      for d in vals.values()), vals)
    finally:
        ep.send_signal(signal.SIGTERM)
        ep.wait(timeout=120)

    # kill -9 right after the second feature is committed (GLASSBOX_KILL_AT, one worker: no
    # request is in flight then); the rerun asks exactly for the features not finished.
    db2 = os.path.join(tmp, "kill.db")
    shutil.copy(token_db, db2)
    os.remove(log)
    ep, url, log = start_endpoint(tmp)
    try:
        args = ["explain", "--db", db2, "--endpoint", url, "--model", "scripted", "--concurrency",
                "1"]
        interrupted = kill_at([glassbox, *args], "explain.feature", 2)
        before = explained(db2, "scripted")
        n_before = len(log_lines(log))
        led.check("kill -9 after 2 features: interrupted, 2 explained, 2 requests",
                  interrupted and len(before) == 2 and n_before == 2, (len(before), n_before))
        gb(*args)
        after = explained(db2, "scripted")
        asked = len(log_lines(log)) - n_before
        led.check("resumed run explains the rest", sorted(after) == list(range(len(WORDS))),
                  after)
        # Each unfinished feature needs one request; a finished one asked again would add more.
        led.check("resumed run asks exactly for the unfinished features",
                  asked == len(WORDS) - len(before), f"{asked} requests, {len(before)} done")
    finally:
        ep.send_signal(signal.SIGTERM)
        ep.wait(timeout=120)

    # API key: 401 is not retried and is reported; with the key it works.
    ep, url, log = start_endpoint(tmp, "--api-key", "sekret")
    try:
        args = ["explain", "--db", os.path.join(tmp, "key.db"), "--endpoint", url, "--model",
                "scripted", "--api-key-env", "GB_TEST_KEY", "--features", "0"]
        shutil.copy(token_db, args[2])
        env = {k: v for k, v in os.environ.items() if k != "GB_TEST_KEY"}
        p = subprocess.run([glassbox, *args], capture_output=True, text=True, env=env, timeout=900)
        led.check("401 without the key: exit 1, the error names 401",
                  p.returncode == 1 and "401" in p.stderr, p.stderr[-300:])
        p = subprocess.run([glassbox, *args], capture_output=True, text=True,
                           env=dict(env, GB_TEST_KEY="sekret"), timeout=900)
        led.check("with the key from --api-key-env it works", p.returncode == 0, p.stderr[-300:])
    finally:
        ep.send_signal(signal.SIGTERM)
        ep.wait(timeout=120)

    # glassbox's own OpenAI-compatible server as the endpoint.
    srv = subprocess.Popen([glassbox, "serve", "--model", model, "--port", "0", "--ctx",
                            "2048"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = srv.stdout.readline().split("serving ", 1)[1].strip().rstrip("/") + "/v1"
        db3 = os.path.join(tmp, "own.db")
        shutil.copy(token_db, db3)
        gb("explain", "--db", db3, "--endpoint", url, "--model", "stories260K", "--features",
           "0-1", "--max-tokens", "24", "--top", "2", "--per-band", "0")
        with sqlite3.connect(db3) as c:
            rows = c.execute("SELECT feature, explanation, completion_tokens FROM explanations "
                             "WHERE explainer='stories260K'").fetchall()
        led.check("glassbox serve as the endpoint: explanations stored with usage",
                  len(rows) == 2 and all(r[1] and r[2] > 0 for r in rows), rows)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=120)


def main():
    glassbox, repo = sys.argv[1], sys.argv[2]
    model = os.path.join(repo, "models", "stories260K", "stories260K.bin")
    corpus = os.path.join(repo, "data", "corpus", "tinystories_train_excerpt.txt")
    vocab = Llama2cVocab.from_file(os.path.join(repo, "models", "stories260K", "tok512.bin"))
    _, w = read_llama2c(model)
    E = w["embed"].astype(np.float64)
    ids = [vocab.index[(" " + word).encode()] for word in WORDS]
    led = Ledger()
    gb = runner(glassbox)
    tmp = tempfile.mkdtemp(prefix="gb_autointerp_")
    try:
        token_db = check_token_features(led, gb, tmp, model, corpus, E, ids)
        check_bad_input(led, glassbox, tmp, token_db)
        check_intervention(led, gb, tmp, model, corpus, w, ids[0])
        check_llm_client(led, gb, glassbox, tmp, model, token_db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return led.finish("autointerp")


if __name__ == "__main__":
    sys.exit(main())
