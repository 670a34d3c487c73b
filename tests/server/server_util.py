"""Helpers the `glassbox serve` test scripts share: start a server on a free port, POST JSON to
it, stop it with SIGTERM."""
import json
import signal
import subprocess
import urllib.error
import urllib.request


def start_server(glassbox, *args):
    """Starts `glassbox serve --port 0 ARGS`; returns (process, base URL ending in '/')."""
    proc = subprocess.Popen([glassbox, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "serving " not in line:
        proc.kill()
        raise RuntimeError(f"glassbox serve did not start: {line!r}")
    return proc, line.split("serving ", 1)[1].strip()


def stop_server(proc, timeout=120):
    """SIGTERM, then the exit status."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def post_json(url, path, body):
    """(status, parsed JSON body; the raw text for a streamed request)."""
    req = urllib.request.Request(url + path.lstrip("/"), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            raw = r.read().decode()
            return r.status, (raw if body.get("stream") else json.loads(raw))
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def check_rejects(led, url, field, cases):
    """Each (value, param) of `cases` sent as body[field] of a small completion must be a 400
    whose error names `param` (the param field and the message's prefix); the server must still
    answer /health afterwards."""
    for value, param in cases:
        status, out = post_json(url, "/v1/completions",
                                {"prompt": "Hi", "max_tokens": 2, field: value})
        err = out.get("error", {})
        ok = status == 400 and err.get("param") == param and \
            err.get("message", "").startswith(param + ":")
        led.check(f"malformed {field} -> 400 naming {param}", ok, f"{status} {err}")
    with urllib.request.urlopen(url + "health", timeout=300) as r:
        led.check("healthy after the malformed requests", r.status == 200)
