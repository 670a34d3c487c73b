// Independent byte-level BPE reference for glassbox's tokenizer.json support (tests/unit/
// bpe_reference_test.cpp runs it). Two implementations, both reading tokenizer.json as is:
//   js   @huggingface/tokenizers (tokenizers.js): a pure JavaScript reimplementation
//   rust @anush008/tokenizers: Hugging Face's own Rust `tokenizers` crate (0.22) built for Node
// Neither shares code with glassbox (C++, PCRE2).
//
// usage: node bpe_ref.mjs --tokenizer DIR/tokenizer.json --impl js|rust --mode encode|decode
//                         < input.jsonl > output.jsonl
// encode: each input line is a JSON string; each output line the JSON array of ids, without
//         special framing (add_special_tokens = false), added tokens matched in the text.
// decode: each input line is a JSON array of ids; each output line the JSON string, special
//         tokens kept, no clean-up of tokenization spaces.
// tokenizer_config.json is read from the tokenizer's directory when present (tokenizers.js
// wants it). Exit code 2 on bad usage.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

function parse_args(argv) {
  const args = { impl: "js", mode: "encode" };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!["tokenizer", "impl", "mode"].includes(key) || i + 1 >= argv.length) {
      process.stderr.write(`bpe_ref: bad argument ${argv[i]}\n`);
      process.exit(2);
    }
    args[key] = argv[i + 1];
  }
  if (!args.tokenizer || !["js", "rust"].includes(args.impl) ||
      !["encode", "decode"].includes(args.mode)) {
    process.stderr.write("usage: bpe_ref.mjs --tokenizer FILE --impl js|rust --mode encode|decode\n");
    process.exit(2);
  }
  return args;
}

async function make_impl(args) {
  if (args.impl === "rust") {
    const require = createRequire(import.meta.url);
    const { Tokenizer } = require("@anush008/tokenizers");
    const tok = Tokenizer.fromFile(args.tokenizer);
    return {
      encode: async (text) =>
        Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds()),
      decode: async (ids) => tok.decode(ids, false),
    };
  }
  const { Tokenizer } = await import("@huggingface/tokenizers");
  const json = JSON.parse(fs.readFileSync(args.tokenizer, "utf8"));
  const config_path = path.join(path.dirname(args.tokenizer), "tokenizer_config.json");
  const config = fs.existsSync(config_path) ? JSON.parse(fs.readFileSync(config_path, "utf8")) : {};
  const tok = new Tokenizer(json, config);
  return {
    encode: async (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: async (ids) =>
      tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
  };
}

const args = parse_args(process.argv);
const impl = await make_impl(args);
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of lines) {
  if (line.length === 0) continue;
  const value = JSON.parse(line);
  const result = args.mode === "encode" ? await impl.encode(value) : await impl.decode(value);
  out.push(JSON.stringify(result));
  if (out.length >= 4096) {
    process.stdout.write(out.join("\n") + "\n");
    out.length = 0;
  }
}
if (out.length > 0) process.stdout.write(out.join("\n") + "\n");
