#!/usr/bin/python3
"""The web explorer end to end in headless Chromium, against the real `glassbox serve`.

  1. builds a tiny feature database with the binary: harvest stories260K activations, train a
     TopK SAE (k 8, d_sae 64), `glassbox analyze` it on held-out text
  2. starts `glassbox serve --model --sae --db --api-key --port 0` and reads the URL it prints
  3. runs explorer.test.mjs (puppeteer-core driving Debian's chromium): load the explorer and
     enter the API key the 401 asks for, search
     by text and by token, open a feature (histogram, highlighted examples, logit tables), run
     text (highlighted tokens, top features per token), generate, show an API error; a
     screenshot of each step lands in ARTIFACT_DIR
  4. SIGTERM stops the server with exit status 0
usage: ui_test.py GLASSBOX REPO_DIR ARTIFACT_DIR
exit 77 (skip): no chromium, node or tests/web/node_modules (scripts/setup.sh installs them).
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

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
    p = subprocess.run([GB, *args], capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        sys.exit(f"FAIL glassbox {' '.join(args)}: rc {p.returncode}\n{p.stderr[-2000:]}")
    print(f"ok   glassbox {args[0]} ({time.time() - t0:.1f} s)")


def start_server(cmd, log_path, timeout=60):
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

    server, url = start_server([GB, "serve", "--model", MODEL, "--sae", sae, "--db", db,
                                "--api-key", API_KEY, "--port", "0", "--threads", "2"],
                               os.path.join(ARTIFACTS, "server.log"))
    print(f"ok   glassbox serve at {url}")
    t0 = time.time()
    p = subprocess.run([node, os.path.join(HERE, "explorer.test.mjs"), url, ARTIFACTS, API_KEY],
                       cwd=HERE, timeout=180)
    print(f"     browser checks took {time.time() - t0:.1f} s; screenshots in {ARTIFACTS}")
    rc = 1 if p.returncode else 0

    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=30)
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
