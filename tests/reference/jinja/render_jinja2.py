#!/usr/bin/env python3
"""Second independent chat-template renderer for check_chat_templates.py: Python's Jinja2 (Debian's
python3-jinja2), set up the way transformers' apply_chat_template sets it up
(chat_template_utils._compile_jinja_template): ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and the loopcontrols extension, the {% generation %} tag (AssistantTracker, here
rendering its body as is), tojson = json.dumps(x, ensure_ascii=False, indent, separators,
sort_keys), raise_exception(msg) raising TemplateError(msg), strftime_now(fmt) formatting a fixed
datetime (--date) instead of datetime.now().

usage: render_jinja2.py --templates DIR --cases CASES.json --date YYYY-MM-DDTHH:MM:SS
Prints the same JSON list as render.mjs: {template, case, add_generation_prompt, ok, output|error}.
Exit 77 when jinja2 is not installed.
"""
import argparse
import datetime
import json
import os
import sys

try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("SKIP: python3-jinja2 is not installed", file=sys.stderr)
    sys.exit(77)


class Generation(Extension):
    """transformers' {% generation %}...{% endgeneration %} (assistant masks); renders the body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return now.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--date", required=True)
    a = ap.parse_args()
    env = make_env(datetime.datetime.fromisoformat(a.date))
    with open(a.cases, encoding="utf-8") as f:
        spec = json.load(f)
    results = []
    for t in spec["templates"]:
        with open(os.path.join(a.templates, t["file"]), encoding="utf-8") as f:
            source = f.read()
        try:
            template, parse_error = env.from_string(source), None
        except jinja2.TemplateError as e:
            template, parse_error = None, str(e)
        cases = [c for c in spec["cases"] if "cases" not in t or c["name"] in t["cases"]]
        for c in cases:
            for agp in (False, True):
                r = {"template": t["file"], "case": c["name"], "add_generation_prompt": agp}
                if parse_error is not None:
                    r.update(ok=False, error=parse_error)
                else:
                    variables = {"messages": c["messages"], "add_generation_prompt": agp,
                                 "bos_token": t["bos_token"], "eos_token": t["eos_token"],
                                 "tools": c.get("tools"), **c.get("vars", {})}
                    try:
                        r.update(ok=True, output=template.render(**variables))
                    except Exception as e:  # what the template raised, or Jinja2's own error
                        r.update(ok=False, error=str(e))
                results.append(r)
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
