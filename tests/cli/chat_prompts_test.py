#!/usr/bin/python3
"""Chat templates in the prompt-building commands (issue #15 item 4) and end-of-turn stop ids, on
stories260K converted to GGUF with a chat template (and an end-of-turn id) added here.

The expected prompt ids always come from `glassbox chat-template --model M --messages F
--add-generation-prompt --ids` (the renderer checked byte for byte against @huggingface/jinja and
Jinja2 in tests/reference/chat), the expected activations from `glassbox cache --tokens`:

  1. persona extract --chat: every generation's prompt is [system: instruction, user: eval
     prompt] rendered with the generation prompt; report.json names the template. With a
     template that refuses a system message (Gemma 2's raise_exception), the instruction goes in
     front of the user's text ("\\n\\n") and the report says so. Without --chat the prompts stay
     plain text and stderr says that --chat would use the template.
  2. steer-vector --chat (mean_diff, last token, unnormalized): equals mean(pos) - mean(neg) of
     blocks.L.hook_resid_post at the last token of each text's chat prompt (NumPy, 1e-5).
  3. probe train/eval --chat: the probe file names the template; eval --text gives one score per
     chat-prompt token (BOS excluded) and the last one equals the probe applied by NumPy to the
     cached activation there; eval without --chat is refused naming the probe file.
  4. generate stops at tokenizer.ggml.eot_token_id (and not with --ignore-eos).
usage: chat_prompts_test.py GLASSBOX REPO_DIR
"""
import json
import os
import shutil
import sys
import tempfile

try:
    import numpy as np
except ImportError:  # pragma: no cover
    print("skip: numpy missing")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cli_util import Ledger, gguf_add_metadata, runner  # noqa: E402

TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n"
            "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
STRICT = ("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}"
          "{% endif %}" + TEMPLATE)
LAYER = 2


def main():
    binary, repo = sys.argv[1], sys.argv[2]
    gb = runner(binary)
    led = Ledger()
    tmp = tempfile.mkdtemp(prefix="chat_prompts_test_")
    try:
        run(gb, led, repo, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return led.finish("chat prompt")


def run(gb, led, repo, tmp):
    plain = os.path.join(tmp, "s.gguf")
    gb("convert", "--model", os.path.join(repo, "models/stories260K/stories260K.bin"),
       "--out", plain, "--type", "f32")
    model = os.path.join(tmp, "chat.gguf")
    strict = os.path.join(tmp, "strict.gguf")
    gguf_add_metadata(plain, model, {"tokenizer.chat_template": TEMPLATE})
    gguf_add_metadata(plain, strict, {"tokenizer.chat_template": STRICT})
    counter = [0]

    def chat_ids(m, messages):
        counter[0] += 1
        path = os.path.join(tmp, f"m{counter[0]}.json")
        with open(path, "w") as f:
            json.dump(messages, f)
        out = gb("chat-template", "-m", m, "--messages", path, "--add-generation-prompt",
                 "--ids").stdout
        return json.loads(out)

    def resid(ids):
        d = os.path.join(tmp, f"cache{counter[0]}")
        counter[0] += 1
        gb("cache", "-m", model, "-t", "1", "--tokens", ",".join(map(str, ids)),
           "--hooks", f"blocks.{LAYER}.hook_resid_post", "-o", d)
        return np.load(os.path.join(d, f"blocks.{LAYER}.hook_resid_post.npy")).astype(np.float64)

    check_persona(gb, led, repo, tmp, model, strict, chat_ids)
    check_steer_vector(gb, led, tmp, model, chat_ids, resid)
    check_probe(gb, led, repo, tmp, model, chat_ids, resid)
    check_end_of_turn(gb, led, tmp, plain)


def check_persona(gb, led, repo, tmp, model, strict, chat_ids):
    trait_path = os.path.join(repo, "data", "persona", "sad.json")
    trait = json.load(open(trait_path))
    for m, merged in ((model, False), (strict, True)):
        out = os.path.join(tmp, "persona_" + os.path.basename(m))
        gb("persona", "extract", "-m", m, "-t", "1", "--trait", trait_path, "--n", "1",
           "--tokens", "6", "--layers", "1,2", "--chat", "--out", out)
        report = json.load(open(os.path.join(out, "report.json")))
        name = os.path.basename(m)
        led.check(f"persona {name}: report names the template",
                  "tokenizer.chat_template" in report["prompt_format"], report["prompt_format"])
        led.check(f"persona {name}: system_merged_into_user = {merged}",
                  report["system_merged_into_user"] is merged)
        texts = [json.loads(line) for line in open(os.path.join(out, "texts.jsonl"))]
        gens = [t for t in texts if t["source"] == "generation"]
        led.check(f"persona {name}: generations recorded", len(gens) > 0, len(gens))
        wrong = []
        for t in gens[:4]:
            side = trait[t["side"]]
            instruction = side["instructions"][t["instruction"]]
            prompt = trait["eval_prompts"][t["prompt"]]
            messages = ([{"role": "user", "content": instruction + "\n\n" + prompt}] if merged else
                        [{"role": "system", "content": instruction},
                         {"role": "user", "content": prompt}])
            if t["ids"][:t["response_start"]] != chat_ids(m, messages):
                wrong.append((t["side"], t["instruction"], t["prompt"]))
        led.check(f"persona {name}: prompts are the rendered chat turns", not wrong, wrong)
    out = os.path.join(tmp, "persona_plain")
    p = gb("persona", "extract", "-m", model, "-t", "1", "--trait", trait_path, "--n", "1",
           "--tokens", "4", "--layers", "1", "--out", out)
    led.check("persona without --chat: stderr says --chat would use the template",
              "--chat would use" in p.stderr, p.stderr[-300:])
    report = json.load(open(os.path.join(out, "report.json")))
    led.check("persona without --chat: plain prompts", report["prompt_format"].startswith("plain"),
              report["prompt_format"])


def check_steer_vector(gb, led, tmp, model, chat_ids, resid):
    pos = ["Lily was very sad.", "Tom cried and cried.", "The dog was lost and alone."]
    neg = ["Lily was very happy.", "Tom laughed and played.", "The dog came home and played."]
    files = {}
    for side, texts in (("pos", pos), ("neg", neg)):
        files[side] = os.path.join(tmp, side + ".txt")
        with open(files[side], "w") as f:
            f.write("\n".join(texts) + "\n")
    out = os.path.join(tmp, "sv.npy")
    gb("steer-vector", "-m", model, "-t", "1", "--positive", files["pos"], "--negative",
       files["neg"], "--method", "mean_diff", "--reduce", "last", "--no-normalize", "--layers",
       str(LAYER), "--chat", "--out", out)
    got = np.load(out).astype(np.float64)[LAYER]

    def last_rows(texts):
        return np.mean([resid(chat_ids(model, [{"role": "user", "content": t}]))[-1]
                        for t in texts], axis=0)

    want = last_rows(pos) - last_rows(neg)
    err = float(np.abs(got - want).max())
    led.check("steer-vector --chat: mean difference at the chat prompts' last tokens (1e-5)",
              err < 1e-5, f"max abs err {err:.3g}")


def check_probe(gb, led, repo, tmp, model, chat_ids, resid):
    data = os.path.join(repo, "data", "probe", "trigger_train.jsonl")
    out = os.path.join(tmp, "probe")
    hook = f"blocks.{LAYER}.hook_resid_post"
    gb("probe", "train", "-m", model, "-t", "1", "--data", data, "--hooks", hook, "--folds", "2",
       "--lambdas", "0.1", "--chat", "-o", out)
    path = os.path.join(out, hook + ".probe.json")
    probe = json.load(open(path))
    led.check("probe --chat: the file names the template",
              "tokenizer.chat_template" in str(probe.get("chat_template")),
              probe.get("chat_template"))
    text = "Once upon a time, there was a dragon."
    p = json.loads(gb("probe", "eval", "-m", model, "-t", "1", "--probe", path, "--text", text,
                      "--chat").stdout)
    ids = chat_ids(model, [{"role": "user", "content": text}])
    led.check("probe eval --chat: one score per chat-prompt token after BOS",
              p["tokens"] == ids[1:], (len(p["tokens"]), len(ids)))
    x = resid(ids)[-1]
    z = probe["b"] + np.dot(probe["w"], (x - np.array(probe["mean"])) / np.array(probe["scale"]))
    want = 1 / (1 + np.exp(-z))
    got = p["p"][hook][-1]
    led.check("probe eval --chat: last score = NumPy's probe on the cached activation (1e-5)",
              abs(got - want) < 1e-5, (got, want))
    r = gb("probe", "eval", "-m", model, "-t", "1", "--probe", path, "--text", text,
           check_rc=False)
    led.check("probe eval without --chat on a chat-trained probe: refused naming the file",
              r.returncode != 0 and path in r.stderr and "--chat" in r.stderr, r.stderr[-300:])


def check_end_of_turn(gb, led, tmp, plain):
    ids_out = os.path.join(tmp, "gen.json")
    gb("generate", "-m", plain, "-t", "1", "--prompt", "Once upon a time", "-n", "12", "--temp",
       "0", "--ignore-eos", "--ids-out", ids_out)
    gen = json.load(open(ids_out))["generated_ids"]
    k = next(i for i in range(2, len(gen)) if gen[i] not in gen[:i])
    eot = os.path.join(tmp, "eot.gguf")
    gguf_add_metadata(plain, eot, {"tokenizer.ggml.eot_token_id": gen[k]})
    gb("generate", "-m", eot, "-t", "1", "--prompt", "Once upon a time", "-n", "12", "--temp",
       "0", "--ids-out", ids_out)
    got = json.load(open(ids_out))["generated_ids"]
    led.check("generate stops at tokenizer.ggml.eot_token_id", got == gen[:k + 1], (got, gen, k))
    gb("generate", "-m", eot, "-t", "1", "--prompt", "Once upon a time", "-n", "12", "--temp",
       "0", "--ignore-eos", "--ids-out", ids_out)
    got = json.load(open(ids_out))["generated_ids"]
    led.check("generate --ignore-eos runs past it", got == gen, got)


if __name__ == "__main__":
    sys.exit(main())
