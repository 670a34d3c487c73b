"""Per-request steering on `glassbox serve` ("steering" field, docs/server_api.md): a steered greedy
completion equals `glassbox generate --temp 0` with the same intervention as CLI flags (which
tests/cli/interventions_test.py ties to the float64 reference), for add, ablate and cap, streamed
and not; steering does not outlive its request; malformed specs are 400s naming the field.
usage: steering_test.py <glassbox binary> <repo root>
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cli_util import Ledger  # noqa: E402
from server_util import check_rejects, post_json, start_server, stop_server  # noqa: E402

PROMPT, N = "Once upon a time", 24


def main():
    glassbox, repo = sys.argv[1], sys.argv[2]
    model = os.path.join(repo, "models", "stories260K", "stories260K.bin")
    led = Ledger()
    tmp = tempfile.mkdtemp(prefix="gb_steering_")
    rng = np.random.default_rng(11)
    v = (rng.standard_normal(64) * 0.6).astype(np.float32)
    np.save(os.path.join(tmp, "v.npy"), v)
    vpath = os.path.join(tmp, "v.npy")
    # Ablating or capping a random direction barely matters; the residual stream's mean
    # direction at block 1 does (it carries most of the norm).
    subprocess.run([glassbox, "cache", "--model", model, "--prompt", PROMPT, "--hooks",
                    "blocks.1.hook_resid_post", "--out", tmp], check=True, capture_output=True)
    m = np.load(os.path.join(tmp, "blocks.1.hook_resid_post.npy")).reshape(-1, 64).mean(0)
    np.save(os.path.join(tmp, "m.npy"), m.astype(np.float32))
    mpath = os.path.join(tmp, "m.npy")

    def cli(*flags):
        p = subprocess.run([glassbox, "generate", "--model", model, "--prompt", PROMPT, "-n",
                            str(N), "--temp", "0", "--ignore-eos", *flags],
                           capture_output=True, text=True, timeout=900, check=True)
        return p.stdout.rstrip("\n")[len(PROMPT):]

    srv, url = start_server(glassbox, "--model", model)
    try:
        def post(path, body):
            return post_json(url, path, body)

        def complete(steering=None, stream=False):
            body = {"prompt": PROMPT, "max_tokens": N, "temperature": 0, "ignore_eos": True,
                    "stream": stream}
            if steering is not None:
                body["steering"] = steering
            status, out = post("/v1/completions", body)
            if not stream:
                return out["choices"][0]["text"]
            events = [json.loads(l[6:]) for l in out.split("\n")
                      if l.startswith("data: {")]
            return "".join(e["choices"][0].get("text", "") for e in events if e["choices"])

        plain = cli()
        vl, ml = v.tolist(), np.load(mpath).tolist()
        cases = [
            ("add", [{"type": "add", "layer": 2, "vector": vl, "alpha": 3}],
             ["--steer", f"{vpath}:2:3"]),
            ("add at a hook name, from position 3",
             [{"type": "add", "hook": "blocks.1.hook_resid_mid", "vector": vl, "alpha": 4,
               "from": 3}],
             ["--steer", f"{vpath}:blocks.1.hook_resid_mid:4", "--steer-from", "3"]),
            ("ablate", [{"type": "ablate", "layer": 1, "vector": ml}], ["--ablate", f"{mpath}:1"]),
            ("cap", [{"type": "cap", "layer": 1, "vector": ml, "max": 0.5}],
             ["--cap", f"{mpath}:1:0.5"]),
        ]
        for label, steering, flags in cases:
            want = cli(*flags)
            got = complete(steering)
            led.check(f"{label}: steered completion = generate with the flags", got == want,
                      f"{got!r} vs {want!r}")
            led.check(f"{label}: steering changed the text", got != plain, got)
            led.check(f"{label}: streamed = non-streamed", complete(steering, True) == got)
        led.check("steering does not outlive its request", complete() == plain)
        chat = post("/v1/chat/completions",
                    {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": N,
                     "temperature": 0, "ignore_eos": True, "steering": cases[0][1]})
        led.check("chat completions take steering", chat[0] == 200, chat)

        bad = [
            (3, "steering"),
            (["x"], "steering[0]"),
            ([{"layer": 2, "vector": vl}], "steering[0].type"),
            ([{"type": "nope", "layer": 2, "vector": vl}], "steering[0].type"),
            ([{"type": "add", "vector": vl}], "steering[0].hook"),
            ([{"type": "add", "layer": 2, "hook": "blocks.2.hook_resid_post", "vector": vl}],
             "steering[0].hook"),
            ([{"type": "add", "layer": 9, "vector": vl}], "steering[0].layer"),
            ([{"type": "add", "hook": "blocks.9.nope", "vector": vl}], "steering[0].hook"),
            ([{"type": "add", "hook": "blocks.1.attn.hook_pattern", "vector": vl}],
             "steering[0].hook"),
            ([{"type": "add", "layer": 2, "vector": vl[:3]}], "steering[0].vector"),
            ([{"type": "add", "layer": 2, "vector": ["a"] * 64}], "steering[0].vector"),
            ([{"type": "add", "layer": 2, "vector": vl, "alpha": "big"}], "steering[0].alpha"),
            ([{"type": "ablate", "layer": 2, "vector": [0.0] * 64}], "steering[0].vector"),
            ([{"type": "cap", "layer": 2, "vector": vl}], "steering[0].max"),
            ([{"type": "add", "layer": 2, "vector": vl, "from": -1}], "steering[0].from"),
            ([{"type": "clamp", "latent": 1, "value": 2}], "steering[0].type"),
            ([cases[0][1][0]] * 17, "steering"),
        ]
        check_rejects(led, url, "steering", bad)
    finally:
        led.check("server exits 0 on SIGTERM", stop_server(srv) == 0)
        shutil.rmtree(tmp, ignore_errors=True)
    return led.finish("steering")


if __name__ == "__main__":
    sys.exit(main())
