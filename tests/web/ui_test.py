#!/usr/bin/python3
"""The web explorer end to end in headless Chromium, against the real `glassbox serve`.

  1. builds a tiny feature database with the binary: harvest stories260K activations, train a
     TopK SAE (k 8, d_sae 64), `glassbox analyze` it on held-out text
     and adds autointerp rows (explanations, scores; docs/autointerp.md) to it with sqlite3, as
     `glassbox explain` / `glassbox score` would
  2. starts `glassbox serve --model --sae --db --api-key --port 0` and reads the URL it prints
  3. runs explorer.test.mjs (puppeteer-core driving Debian's chromium): load the explorer and
     enter the API key the 401 asks for, search
     by text and by token, open a feature (histogram, highlighted examples, logit tables), run
     text (highlighted tokens, top features per token), generate, explanations and scores in the
     list (sorting by score, search in explanations) and on the feature page, show an API error;
     a screenshot of each step lands in ARTIFACT_DIR
  4. SIGTERM stops the server with exit status 0
usage: ui_test.py GLASSBOX REPO_DIR ARTIFACT_DIR
exit 77 (skip): no chromium, node or tests/web/node_modules (scripts/setup.sh installs them).
"""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

GB, REPO, ARTIFACTS = (os.path.abspath(a) for a in sys.argv[1:4])
HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MODEL = os.path.join(REPO, "models/stories260K/stories260K.bin")
CORPUS = os.path.join(REPO, "data/corpus")
HOOK = "blocks.2.hook_resid_post"
API_KEY = "ui-test-key"

node = shutil.which("node")
if not os.path.exists(CHROMIUM) or not node:
    print(f"skip: needs {CHROMIUM} and node")
    sys.exit(77)
if not os.path.isdir(os.path.join(HERE, "node_modules/puppeteer-core")):
    print("skip: tests/web/node_modules/puppeteer-core missing (run scripts/setup.sh)")
    sys.exit(77)


def gb(*args):
    t0 = time.time()
    p = subprocess.run([GB, *args], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        sys.exit(f"FAIL glassbox {' '.join(args)}: rc {p.returncode}\n{p.stderr[-2000:]}")
    print(f"ok   glassbox {args[0]} ({time.time() - t0:.1f} s)")


def start_server(cmd, log_path, timeout=300):
    """Starts the server; returns (process, base URL) once it printed its serving line."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    found = []

    def read():  # keeps draining stdout so the server never blocks on a full pipe
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if not found and line.startswith("glassbox: serving "):
                found.append(line.split()[-1].strip())
    threading.Thread(target=read, daemon=True).start()
    t0 = time.time()
    while not found and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    if not found:
        proc.kill()
        proc.wait()
        sys.exit(f"FAIL glassbox serve printed no 'glassbox: serving URL' line "
                 f"(rc {proc.returncode}); log: {open(log_path).read()[-2000:]}")
    return proc, found[0]


# docs/autointerp.md, "Tables" (what explain / score create when missing).
AUTOINTERP_SCHEMA = """
CREATE TABLE IF NOT EXISTS explanations(feature INTEGER NOT NULL, explainer TEXT NOT NULL,
  explanation TEXT NOT NULL, prompt TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL,
  created TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
  PRIMARY KEY(feature, explainer));
CREATE TABLE IF NOT EXISTS scores(feature INTEGER NOT NULL, explainer TEXT NOT NULL,
  method TEXT NOT NULL, judge TEXT NOT NULL, accuracy REAL, balanced_accuracy REAL, auroc REAL,
  value REAL NOT NULL, n INTEGER NOT NULL, details TEXT NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY(feature, explainer, method, judge));
CREATE TABLE IF NOT EXISTS llm_cache(key TEXT PRIMARY KEY, response TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created TEXT NOT NULL);
"""
SEARCH_WORD = "zorblax"  # in one explanation, in no example text


def add_autointerp(db, fixture_path):
    """Explanations and scores for the six most frequent live features (as explain/score write
    them); the expectations go to fixture_path as JSON for explorer.test.mjs."""
    con = sqlite3.connect(db)
    f = [r[0] for r in con.execute(
        "SELECT id FROM features WHERE n_fires > 0 ORDER BY freq DESC, id LIMIT 6")]
    if len(f) < 6:
        sys.exit(f"FAIL the fixture database has only {len(f)} live features")
    con.executescript(AUTOINTERP_SCHEMA)
    llm, url = "test-llm", "http://127.0.0.1:9/v1"
    long_text = ("sentences about a girl and her dog playing in the park on a sunny day, "
                 "often just before a happy ending of the little story")
    html = '<img src=x onerror="window.__xss=1"> <b>bold</b> & "quoted"'
    explanations = [  # feature, explainer, explanation, created
        (f[0], "offline", 'fires on "the" (40%, 2x base rate)', "2025-01-01T00:00:00Z"),
        (f[0], llm, f"the {SEARCH_WORD} feature: names of characters", "2025-01-02T00:00:00Z"),
        (f[1], "offline", 'fires on "a" (30%, 3x base rate)', "2025-01-01T00:00:00Z"),
        (f[2], "offline", 'fires on "was" (20%, 4x)', "2025-01-01T00:00:00Z"),
        (f[2], llm, html, "2025-01-02T00:00:00Z"),
        (f[3], llm, long_text, "2025-01-02T00:00:00Z"),
        (f[4], "offline", 'fires on "." (10%, 2x)', "2025-01-01T00:00:00Z"),
    ]
    for feat, who, text, created in explanations:
        con.execute("INSERT INTO explanations VALUES (?,?,?,?,?,?,?,?,?)",
                    (feat, who, text, "" if who == "offline" else "prompt", who,
                     "" if who == "offline" else url, created,
                     0 if who == "offline" else 321, 0 if who == "offline" else 12))
    scores = [  # feature, explainer, method, judge, accuracy, balanced, auroc, value
        (f[0], llm, "detection", llm, 0.875, 0.9, 0.93, 0.9),
        (f[0], llm, "fuzzing", "offline", 0.55, 0.5, None, 0.5),
        (f[0], llm, "intervention", "offline", None, None, None, -0.3),
        (f[0], "offline", "detection", "offline", 0.6, 0.6, 0.61, 0.6),
        (f[1], "offline", "detection", "offline", 0.7, 0.7, 0.72, 0.7),
        (f[1], "offline", "fuzzing", "offline", 0.6, 0.6, 0.66, 0.6),
        (f[1], "offline", "intervention", "offline", None, None, None, 0.2),
        (f[2], llm, "detection", llm, 0.95, 0.95, 0.99, 0.95),
        (f[3], llm, "detection", llm, 0.4, 0.4, 0.45, 0.4),
    ]
    for i, (feat, who, method, judge, acc, bal, auroc, value) in enumerate(scores):
        con.execute("INSERT INTO scores VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (feat, who, method, judge, acc, bal, auroc, value, 40,
                     json.dumps({"predictions": []}), f"2025-01-03T00:00:{i:02d}Z"))
    con.commit()
    con.close()
    fixture = {"search_word": SEARCH_WORD, "search_hit": f[0], "negative": f[0],
               "positive": f[1], "html": f[2], "long": f[3],
               "detection_order": [f[2], f[0], f[1], f[3]], "explained": f[:5]}
    with open(fixture_path, "w") as out:
        json.dump(fixture, out)
    print(f"ok   autointerp rows for features {f[:5]}")


def check_without_autointerp(db):
    """A database from before `glassbox explain` existed: the API works as before, with null
    explanations and scores, and sorting by a score is a 400 naming `sort`."""
    proc, url = start_server([GB, "serve", "--model", MODEL, "--db", db, "--port", "0",
                              "--threads", "1"], os.path.join(ARTIFACTS, "server-old-db.log"))
    failed = []

    def get(path):
        try:
            with urllib.request.urlopen(url.rstrip("/") + path, timeout=300) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def check(label, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} without autointerp tables: {label}"
              f"{'' if ok else f': {detail}'}")
        if not ok:
            failed.append(label)
    try:
        status, fl = get("/api/features?limit=500")
        check("/api/features lists every feature, no explanations or scores",
              status == 200 and fl["total"] == 64 and fl["has_explanations"] is False
              and fl["has_scores"] is False and all(
                  f["explanation"] is None and f["explainer"] is None
                  and f["scores"] == {"detection": None, "fuzzing": None, "intervention": None}
                  for f in fl["features"]), fl.get("features", [None])[0])
        status, d = get(f"/api/features/{fl['features'][0]['id']}")
        check("/api/features/{id} has an empty explanations list",
              status == 200 and d["explanations"] == [] and "top_examples" in d)
        for key in ("detection", "fuzzing", "intervention"):
            status, e = get(f"/api/features?sort={key}")
            err = e.get("error", {})
            check(f"sort={key} is a 400 naming sort", status == 400 and err.get("param") == "sort"
                  and err.get("message") == "sort: no scores in this database (run glassbox score)",
                  (status, e))
        status, e = get("/api/features?sort=accuracy")
        check("an unknown sort key lists the score keys", status == 400 and
              "detection, fuzzing, intervention" in e["error"]["message"], e)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return not failed


os.makedirs(ARTIFACTS, exist_ok=True)
for old in glob.glob(os.path.join(ARTIFACTS, "*.png")):
    os.remove(old)
tmp = tempfile.mkdtemp(prefix="ui_test_")
server = None
rc = 1
try:
    store, sae, db = (os.path.join(tmp, n) for n in ("store", "sae", "features.db"))
    gb("harvest", "-m", MODEL, "--corpus", os.path.join(CORPUS, "tinystories_train_excerpt.txt"),
       "--hooks", HOOK, "--ctx", "64", "--tokens", "6000", "--out", store, "-t", "2")
    gb("train-sae", "--store", store, "--hook", HOOK, "--arch", "topk", "--k", "8", "--d-sae", "64",
       "--epochs", "4", "--batch-size", "256", "--lr", "4e-3", "--seed", "1", "-t", "2",
       "--out", sae)
    gb("analyze", "--model", MODEL, "--sae", sae,
       "--corpus", os.path.join(CORPUS, "tinystories_eval_excerpt.txt"), "--tokens", "4000",
       "--out", db)
    old_db = os.path.join(tmp, "old.db")
    shutil.copy(db, old_db)
    old_ok = check_without_autointerp(old_db)
    fixture = os.path.join(tmp, "autointerp.json")
    add_autointerp(db, fixture)

    server, url = start_server([GB, "serve", "--model", MODEL, "--sae", sae, "--db", db,
                                "--api-key", API_KEY, "--port", "0", "--threads", "2"],
                               os.path.join(ARTIFACTS, "server.log"))
    print(f"ok   glassbox serve at {url}")
    t0 = time.time()
    p = subprocess.run([node, os.path.join(HERE, "explorer.test.mjs"), url, ARTIFACTS, API_KEY,
                        fixture], cwd=HERE, timeout=900)
    print(f"     browser checks took {time.time() - t0:.1f} s; screenshots in {ARTIFACTS}")
    rc = 1 if p.returncode or not old_ok else 0

    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()
        code = server.wait()
        print("FAIL glassbox serve still running 30 s after SIGTERM")
        rc = 1
    else:
        ok = code == 0
        print(f"{'ok  ' if ok else 'FAIL'} glassbox serve exits 0 on SIGTERM (rc {code})")
        rc = rc if ok else 1
    server = None
finally:
    if server is not None and server.poll() is None:
        server.kill()
        server.wait()
    shutil.rmtree(tmp, ignore_errors=True)
print("all web explorer checks passed" if rc == 0 else "web explorer checks failed")
sys.exit(rc)
