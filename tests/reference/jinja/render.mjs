// Independent chat-template renderer for glassbox's Jinja engine (check_chat_templates.py runs it):
// Hugging Face's own JavaScript implementation, the npm package @huggingface/jinja (pinned in
// scripts/setup.sh, unpacked into build/deps/), with the settings transformers' apply_chat_template
// uses (trim_blocks, lstrip_blocks; raise_exception; strftime_now). It shares no code with glassbox.
//
// usage: node render.mjs --jinja PACKAGE_DIR --templates DIR --cases CASES.json --date YYYY-MM-DDTHH:MM:SS
// Renders every template of CASES.json's "templates" over every conversation of its "cases", with
// add_generation_prompt false and true, and prints one JSON list of
//   {template, case, add_generation_prompt, ok, output | error}
// strftime_now() formats --date (local time; run with TZ set), via a fixed Date.
// Exit code 2 on bad usage.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parse_args(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!["jinja", "templates", "cases", "date"].includes(key) || i + 1 >= argv.length) {
      process.stderr.write(`render.mjs: bad argument ${argv[i]}\n`);
      process.exit(2);
    }
    args[key] = argv[i + 1];
  }
  if (!args.jinja || !args.templates || !args.cases || !args.date) {
    process.stderr.write("usage: render.mjs --jinja DIR --templates DIR --cases FILE --date DATE\n");
    process.exit(2);
  }
  return args;
}

// The package's strftime_now reads `new Date()`: pin it to --date.
function fix_date(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (!m) {
    process.stderr.write(`render.mjs: --date ${text} is not YYYY-MM-DDTHH:MM:SS\n`);
    process.exit(2);
  }
  const RealDate = Date;
  const fixed = new RealDate(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]).getTime();
  globalThis.Date = class extends RealDate {
    constructor(...a) {
      if (a.length === 0) super(fixed);
      else super(...a);
    }
    static now() {
      return fixed;
    }
  };
}

const args = parse_args(process.argv);
fix_date(args.date);
const pkg = JSON.parse(fs.readFileSync(path.join(args.jinja, "package.json"), "utf8"));
const { Template } = await import(pathToFileURL(path.join(args.jinja, pkg.module)).href);
const spec = JSON.parse(fs.readFileSync(args.cases, "utf8"));
const results = [];
for (const t of spec.templates) {
  const source = fs.readFileSync(path.join(args.templates, t.file), "utf8");
  let template = null;
  let parse_error = null;
  try {
    template = new Template(source);
  } catch (e) {
    parse_error = String(e.message);
  }
  const cases = t.cases ? spec.cases.filter((c) => t.cases.includes(c.name)) : spec.cases;
  for (const c of cases) {
    for (const add_generation_prompt of [false, true]) {
      const r = { template: t.file, case: c.name, add_generation_prompt };
      if (parse_error !== null) {
        Object.assign(r, { ok: false, error: parse_error });
      } else {
        const vars = {
          messages: c.messages,
          add_generation_prompt,
          bos_token: t.bos_token,
          eos_token: t.eos_token,
          tools: c.tools ?? null,
          ...(c.vars ?? {}),
        };
        try {
          Object.assign(r, { ok: true, output: template.render(vars) });
        } catch (e) {
          Object.assign(r, { ok: false, error: String(e.message) });
        }
      }
      results.push(r);
    }
  }
}
process.stdout.write(JSON.stringify(results));
