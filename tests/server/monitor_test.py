"""Monitors on `glassbox serve` ("monitors" field, docs/server_api.md): per-token scores of a
projection, a probe (hand-written file) and an SAE latent monitor (a SAELens SAE written here)
equal those computed with numpy from `glassbox cache` activations of
the generated sequence (the row whose logits produced each token); flag fires exactly where the
score crosses the threshold; stop ends right after the first firing token (finish_reason
"monitor"); steer continues as `glassbox generate --steer ... --steer-from P` with P the position
after the firing token; streamed scores equal non-streamed; malformed specs are 400s naming the
field.
usage: monitor_test.py <glassbox binary> <repo root>
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cli_util import Ledger, write_saelens  # noqa: E402
from server_util import check_rejects, post_json, start_server, stop_server  # noqa: E402

PROMPT, N, D = "Once upon a time", 24, 64


def check_server_config(led, glassbox, model, tmp, monitors, want):
    """`serve --monitors FILE`: the file's monitors score every request; a request's own
    monitors come after them and may not reuse their names; bad files stop the server at
    startup with one line naming the file and the entry's field."""
    cfg = os.path.join(tmp, "monitors.json")
    with open(cfg, "w") as f:
        json.dump({"monitors": monitors}, f)
    base = ["--model", model, "--probe", os.path.join(tmp, "quote.probe.json")]
    srv, url = start_server(glassbox, *base, "--monitors", cfg)
    try:
        body = {"prompt": PROMPT, "max_tokens": N, "temperature": 0, "ignore_eos": True}
        status, out = post_json(url, "/v1/completions", body)
        scores = out.get("monitors", {}).get("scores", {}) if status == 200 else {}
        led.check("server-config monitors score a request without monitors",
                  sorted(scores) == sorted(want) and
                  all(scores[k] == want[k] for k in want), f"{status} {sorted(scores)}")
        own = dict(monitors[0], name="mine")
        status, out = post_json(url, "/v1/completions", dict(body, monitors=[own]))
        scores = out.get("monitors", {}).get("scores", {}) if status == 200 else {}
        led.check("a request's monitors come on top of the server's",
                  sorted(scores) == sorted(list(want) + ["mine"]) and
                  scores["mine"] == want[monitors[0]["name"]], f"{status} {sorted(scores)}")
        status, out = post_json(url, "/v1/completions", dict(body, monitors=[monitors[0]]))
        led.check("a request monitor may not reuse a server monitor's name -> 400",
                  status == 400 and out["error"]["param"] == "monitors[0].name", out)
    finally:
        stop_server(srv)
    bad = [("{", "not valid JSON"), ('{"monitors": 3}', "expected"),
           (json.dumps([dict(monitors[0], threshold="x")]), "monitors[0].threshold")]
    for text, want_msg in bad:
        with open(cfg, "w") as f:
            f.write(text)
        p = subprocess.run([glassbox, "serve", "--port", "0", *base, "--monitors", cfg],
                           capture_output=True, text=True, timeout=900)
        lines = p.stderr.strip().splitlines()
        led.check(f"bad --monitors file ({want_msg}) -> exit 1, one line naming the file",
                  p.returncode == 1 and len(lines) == 1 and cfg in lines[0] and
                  want_msg in lines[0], p.stderr)


def main():
    glassbox, repo = sys.argv[1], sys.argv[2]
    model = os.path.join(repo, "models", "stories260K", "stories260K.bin")
    led = Ledger()
    tmp = tempfile.mkdtemp(prefix="gb_monitor_")
    rng = np.random.default_rng(7)
    v = rng.standard_normal(D).astype(np.float32)
    u = v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))
    w = (rng.standard_normal(D) * 0.3)
    mean, scale = rng.standard_normal(D) * 0.1, rng.uniform(0.5, 2.0, D)
    probe = {"format": "glassbox.probe", "version": 1, "hook": "blocks.1.hook_resid_post",
             "d": D, "pool": "last", "lambda": 1.0, "mean": mean.tolist(),
             "scale": scale.tolist(), "w": w.tolist(), "b": 0.1}
    with open(os.path.join(tmp, "quote.probe.json"), "w") as f:
        json.dump(probe, f)
    s = rng.standard_normal(D).astype(np.float32)
    np.save(os.path.join(tmp, "s.npy"), s)
    d_sae = 32
    sae = {"W_enc": (rng.standard_normal((D, d_sae)) / D ** 0.5).astype(np.float32),
           "b_enc": (rng.standard_normal(d_sae) * 0.1).astype(np.float32),
           "W_dec": (rng.standard_normal((d_sae, D)) / d_sae ** 0.5).astype(np.float32),
           "b_dec": (rng.standard_normal(D) * 0.1).astype(np.float32)}
    write_saelens(os.path.join(tmp, "sae"), sae, "blocks.2.hook_resid_post")

    def cli(n, *flags):
        ids = os.path.join(tmp, "ids.json")
        p = subprocess.run([glassbox, "generate", "--model", model, "--prompt", PROMPT, "-n",
                            str(n), "--temp", "0", "--ignore-eos", "--ids-out", ids, *flags],
                           capture_output=True, text=True, timeout=900, check=True)
        with open(ids) as f:
            j = json.load(f)
        return p.stdout.rstrip("\n")[len(PROMPT):], j["prompt_ids"], j["generated_ids"]

    plain, prompt_ids, gen_ids = cli(N)
    seq = prompt_ids + gen_ids
    subprocess.run([glassbox, "cache", "--model", model, "--tokens",
                    ",".join(map(str, seq[:-1])), "--hooks",
                    "blocks.2.hook_resid_post,blocks.1.hook_resid_post", "--out", tmp],
                   check=True, capture_output=True)
    rows = slice(len(prompt_ids) - 1, len(seq) - 1)  # row producing generated token t
    a2 = np.load(os.path.join(tmp, "blocks.2.hook_resid_post.npy")).reshape(-1, D)[rows]
    a1 = np.load(os.path.join(tmp, "blocks.1.hook_resid_post.npy")).reshape(-1, D)[rows]
    want_proj = a2.astype(np.float64) @ u
    want_probe = 1 / (1 + np.exp(-(0.1 + ((a1 - mean) / scale) @ w)))
    # Thresholds midway between sorted scores, so no score sits near one.
    srt = np.sort(want_proj)
    thr = float((srt[N // 2] + srt[N // 2 + 1]) / 2)
    first = int(np.argmax(want_proj > thr))
    pthr = float(np.median(want_probe))
    lat = np.maximum(0, (a2.astype(np.float64) - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"])
    j = int(lat.mean(0).argmax())
    want_lat = lat[:, j]
    ls = np.sort(want_lat)
    lthr = float((ls[N // 2] + ls[N // 2 + 1]) / 2)  # midway, as thr

    srv, url = start_server(glassbox, "--model", model, "--probe",
                            os.path.join(tmp, "quote.probe.json"), "--sae",
                            os.path.join(tmp, "sae"))
    try:
        def post(path, body):
            return post_json(url, path, body)

        def complete(monitors, stream=False, path="/v1/completions"):
            body = {"prompt": PROMPT, "max_tokens": N, "temperature": 0, "ignore_eos": True,
                    "monitors": monitors}
            if stream:
                body["stream"] = True
            status, out = post(path, body)
            assert status == 200, out
            if not stream:
                return out
            return [json.loads(l[6:]) for l in out.split("\n") if l.startswith("data: {")]

        proj = {"name": "proj", "type": "projection", "layer": 2, "vector": v.tolist(),
                "threshold": thr}
        prb = {"name": "quote", "type": "probe", "probe": "quote", "threshold": pthr,
               "direction": "below"}
        out = complete([proj, prb])
        c = out["choices"][0]
        led.check("flag: text unchanged", c["text"] == plain, f"{c['text']!r} vs {plain!r}")
        led.check("flag: finish_reason length", c["finish_reason"] == "length", c)
        got = np.array(out["monitors"]["scores"]["proj"])
        err = np.abs(got - want_proj).max() if got.shape == want_proj.shape else np.inf
        led.check("projection scores = cache activations . unit vector", err < 1e-4, err)
        gotp = np.array(out["monitors"]["scores"]["quote"])
        err = np.abs(gotp - want_probe).max() if gotp.shape == want_probe.shape else np.inf
        led.check("probe scores = sigmoid(probe logit) of cache activations", err < 1e-4, err)
        ev = out["monitors"]["events"]
        want_ev = sorted([("proj", t) for t in range(N) if want_proj[t] > thr] +
                         [("quote", t) for t in range(N) if want_probe[t] < pthr],
                         key=lambda e: (e[1], e[0] != "proj"))
        led.check("flag fires exactly where the score crosses",
                  [(e["name"], e["token_index"]) for e in ev] == want_ev, ev)
        led.check("flag events say flag", all(e["action"] == "flag" for e in ev))

        out = complete([{"name": "lat", "type": "latent", "latent": j, "threshold": lthr}])
        gotl = np.array(out["monitors"]["scores"]["lat"])
        err = np.abs(gotl - want_lat).max() if gotl.shape == want_lat.shape else np.inf
        led.check(f"latent scores = SAE encode of cache activations (latent {j})", err < 1e-4,
                  err)
        led.check("latent flag fires where the score crosses",
                  [e["token_index"] for e in out["monitors"]["events"]] ==
                  [t for t in range(N) if want_lat[t] > lthr], out["monitors"]["events"])

        chunks = complete([proj, prb], stream=True)
        sp = {}
        sev = []
        for ch in chunks:
            for m in ch.get("monitors", []):
                sp[m["token_index"]] = m["scores"]
            sev += ch.get("monitor_events", [])
        text = "".join(ch["choices"][0].get("text", "") for ch in chunks if ch["choices"])
        led.check("streamed text = non-streamed", text == plain)
        led.check("streamed scores = non-streamed",
                  sorted(sp) == list(range(N)) and
                  all(sp[t]["proj"] == got[t] and sp[t]["quote"] == gotp[t] for t in range(N)))
        led.check("streamed events = non-streamed", sev == ev)

        stop = dict(proj, action="stop")
        out = complete([stop])
        c = out["choices"][0]
        want_text = cli(first + 1)[0]
        led.check("stop: ends after the first firing token",
                  c["text"] == want_text and out["usage"]["completion_tokens"] == first + 1,
                  f"{c['text']!r} vs {want_text!r}, first {first}")
        led.check("stop: finish_reason monitor", c["finish_reason"] == "monitor", c)
        led.check("stop: names the monitor",
                  out.get("monitor", {}).get("name") == "proj" and
                  out["monitor"]["token_index"] == first, out.get("monitor"))
        chunks = complete([stop], stream=True)
        fin = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
        led.check("stop streamed: finish_reason monitor and the monitor",
                  len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "monitor" and
                  fin[0].get("monitor", {}).get("token_index") == first, fin)

        steer = dict(proj, action="steer",
                     steering=[{"type": "add", "layer": 2, "vector": s.tolist(), "alpha": 4}])
        out = complete([steer])
        c = out["choices"][0]
        pos = len(prompt_ids) + first  # where the firing token is fed back
        want_text = cli(N, "--steer", os.path.join(tmp, "s.npy") + ":2:4", "--steer-from",
                        str(pos))[0]
        led.check("steer: = generate --steer-from the token after the firing one",
                  c["text"] == want_text, f"{c['text']!r} vs {want_text!r}")
        led.check("steer: changed the text", c["text"] != plain)
        led.check("steer: same text up to the firing token",
                  out["monitors"]["scores"]["proj"][:first + 1] == got[:first + 1].tolist())
        led.check("steer: fired at the first crossing",
                  out["monitors"]["events"][0]["token_index"] == first and
                  out["monitors"]["events"][0]["action"] == "steer")
        led.check("monitors do not outlive their request",
                  complete(None)["choices"][0]["text"] == plain)
        chat = post("/v1/chat/completions",
                    {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4,
                     "temperature": 0, "monitors": [proj]})
        led.check("chat completions take monitors",
                  chat[0] == 200 and len(chat[1]["monitors"]["scores"]["proj"]) ==
                  chat[1]["usage"]["completion_tokens"], chat)
        gen = post("/api/generate", {"prompt": PROMPT, "max_tokens": N, "temperature": 0,
                                     "ignore_eos": True, "monitors": [stop]})
        led.check("/api/generate takes monitors",
                  gen[0] == 200 and gen[1]["finish_reason"] == "monitor", gen)

        bad = [
            (3, "monitors"),
            (["x"], "monitors[0]"),
            ([dict(proj, type="nope")], "monitors[0].type"),
            ([{k: x for k, x in proj.items() if k != "name"}], "monitors[0].name"),
            ([{k: x for k, x in proj.items() if k != "threshold"}], "monitors[0].threshold"),
            ([dict(proj, threshold="high")], "monitors[0].threshold"),
            ([dict(proj, vector=[0.0] * D)], "monitors[0].vector"),
            ([dict(proj, vector=[1.0] * 3)], "monitors[0].vector"),
            ([dict(proj, layer=9)], "monitors[0].layer"),
            ([dict(proj, hook="blocks.1.hook_resid_post")], "monitors[0].hook"),
            ([dict(prb, probe="nope")], "monitors[0].probe"),
            ([dict(proj, direction="sideways")], "monitors[0].direction"),
            ([dict(proj, action="explode")], "monitors[0].action"),
            ([dict(proj, action="steer")], "monitors[0].steering"),
            ([dict(steer, steering=[{"type": "add", "layer": 2, "vector": [1.0]}])],
             "monitors[0].steering[0].vector"),
            ([dict(proj, steering=steer["steering"])], "monitors[0].steering"),
            ([proj, proj], "monitors[1].name"),
            ([{"name": "l", "type": "latent", "latent": d_sae, "threshold": 1}],
             "monitors[0].latent"),
            ([{"name": "l", "type": "latent", "threshold": 1}], "monitors[0].latent"),
            ([dict(proj, name=f"m{i}") for i in range(9)], "monitors"),
        ]
        check_rejects(led, url, "monitors", bad)
    finally:
        led.check("server exits 0 on SIGTERM", stop_server(srv) == 0)
    try:
        check_server_config(led, glassbox, model, tmp, [proj, prb],
                            {"proj": got.tolist(), "quote": gotp.tolist()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return led.finish("monitors")


if __name__ == "__main__":
    sys.exit(main())
