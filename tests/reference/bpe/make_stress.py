#!/usr/bin/env python3
"""Writes stress.jsonl: adversarial text for the byte-level BPE comparison, one JSON string a line.

Categories: scripts (incl. RTL and CJK), emoji with ZWJ / skin tones / flags / keycaps, combining
marks, numbers of many lengths and digit systems, whitespace runs (spaces, tabs, newlines, CRLF,
Unicode spaces, trailing and leading), contractions in any case, code, special tokens inside text,
control characters, long inputs. Only characters assigned in Unicode 14 or earlier (PCRE2 10.42's
tables; the references use newer ones). Deterministic: rerun to regenerate the committed file.
usage: make_stress.py [OUT]   (default: stress.jsonl beside this script)
"""
import json
import os
import sys

cases = []


def add(*texts):
    cases.extend(texts)


# Scripts, left-to-right and right-to-left, and mixed direction.
add("Ελληνικά κείμενα με τόνους", "Съешь же ещё этих мягких французских булок",
    "مرحبا بالعالم، كيف حالك؟", "שלום עולם! מה שלומך?", "English then עברית then English",
    "नमस्ते दुनिया", "สวัสดีชาวโลก", "안녕하세요 세계", "こんにちは、世界！カタカナとひらがな",
    "我爱自然语言处理。", "漢字かな交じり文", "ქართული ენა", "Հայերեն լեզու", "ሰላም ለዓለም",
    "தமிழ் மொழி", "\u202eRTL override\u202c and \u200fmarks\u200e", "ΑΒΓ abc АБВ")
# Emoji: ZWJ families, skin tones, flags, keycaps, variation selectors.
add("👨‍👩‍👧‍👦 family", "👍🏽👍🏿 thumbs", "🇯🇵🇺🇸🇩🇪 flags", "1️⃣ #️⃣ keycaps", "❤️ vs ❤",
    "🏳️‍🌈 🧑🏾‍💻", "emoji😀in😀words", "😀😃😄😁😆😅🤣😂🙂🙃", " 🚀 rocket ")
# Combining marks and normalization-sensitive text (no normalizer: kept as is).
add("e\u0301 vs \u00e9", "a\u0308\u0301\u0327 stacked", "Z\u0351\u0352\u0353a\u0354\u0355l\u0356go",
    "ñ n\u0303", "\u0301 leading combining mark", "क्षत्रिय", "Å Å Å")
# Numbers: lengths 1..40, separators, signs, other digit systems, numeric categories.
for n in range(1, 41):
    add("".join(str((i * 7 + n) % 10) for i in range(n)))
add("1,000,000 and 1.000.000", "3.14159265358979", "-42 +17 ±3", "1e10 2E-5 0x1F 0b1010",
    "12:30:45 2024-01-31", "$1,234.56 €99 ¥1000", "٠١٢٣٤٥٦٧٨٩ ۱۲۳", "१२३४५", "１２３ fullwidth",
    "x² y³ ½ ¾ Ⅻ ⅷ", "𝟙𝟚𝟛 math digits", "v1.2.3-rc.4", "A1B2C3", "Route 66 and I-95")
# Whitespace runs.
for n in range(1, 12):
    add("a" + " " * n + "b", " " * n + "lead", "trail" + " " * n, "x" + " " * n)
add("\t", "a\tb", "a\t\tb", "\t\tindented", "a\nb", "a\n\nb", "a\n\n\n\nb", "line\r\nnext",
    "mac\rline", "\r\n\r\n", " \n ", "  \n  \n", "end\n", "\n", "\n\n", " ", "  ", "\t \n \r\n",
    "a \t b", "tab\t\n", "nbsp\u00a0here", "em\u2003space", "ideo\u3000space", "nel\u0085x",
    "x \u0085y", "ls\u2028ps\u2029", "bom\ufeffx", "zwsp\u200bx", "vt\u000bff\u000cx",
    "a\u00a0\u00a0 b", " \u00a0x", "\u3000\u3000漢字")
# Contractions in every case, and look-alikes.
add("I'm I'M i'M", "don't DON'T Don'T", "they're THEY'RE", "we've WE'VE We'Ve", "I'll I'LL",
    "she'd SHE'D", "it's IT'S It'S", "'s 't 're 've 'm 'll 'd", "'S'T'RE'VE'M'LL'D",
    "rock'n'roll", "o'clock", "y'all'd've", "it’s curly", "'ſ long s", "''quoted''", "'123")
# Code.
add("def f(x):\n    return x ** 2  # square\n",
    "int main(int argc, char** argv) {\n\treturn 0;\n}\n",
    "for (size_t i = 0; i < n; ++i) { a[i] += b[i] * c; }",
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
    "<div class=\"x\">&amp; &lt;tag&gt;</div>", "SELECT * FROM t WHERE id = 42;",
    "ls -la | grep '\\.txt$' > out.log 2>&1", "https://example.com/path?q=1&r=two#frag",
    "user.name+tag@example.co.uk", "C:\\Users\\name\\file.txt", "re = r'^\\s+(?!\\S)\\w*$'",
    "    four spaces\n        eight\n\tand a tab", "x=>x*2;;; !== === >>>= <<=",
    "#include <vector>\nstd::vector<int> v{1, 2, 3};", "__init__ __main__ snake_case camelCase")
# Special tokens inside text (GPT-2 and Llama 3 spellings), near misses.
add("<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "text<|endoftext|>\n<|endoftext|>", "<|endoftext|", "|endoftext|>", "< |endoftext|>",
    "<|ENDOFTEXT|>", "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nHi",
    "<|eot_id|><|eot_id|>", "<|reserved_special_token_5|>x", "<<|endoftext|>>",
    "<|begin_of_text|<|end_of_text|>")
# Control characters.
add("nul\u0000byte", "\u0001\u0002\u0003", "del\u007f", "esc\u001b[31mred\u001b[0m", "\u0000")
# Astral plane letters, private use, rare blocks.
add("𝐀𝐁𝐂 bold", "𐌰𐌱𐌲 gothic", "𠀀𠀁 ext-B", "\ue000\uf8ff private", "𓀀𓀁 hieroglyphs",
    "ꙮ multiocular", "\U0001d11e music")
# Words that are Llama 3 vocabulary entries but that its merges alone would split (ignore_merges).
add(" việc", " nhiều", " Việt Nam có nhiều việc", "ektedir", "mektedir", " ایران", " характ",
    " використ", "lardan", " değiş", " jeho", " každ", " biệt", " hợp", "ıldı")
# Mixed sentences.
add("The quick brown fox jumps over the lazy dog.", "HELLO World!!! ??? ...",
    "Mr. O'Neil's 3rd-place finish (2:03.45) — wow…", "«quotes» „quotes“ 「quotes」",
    "tab\tsep\tvalues\n1\t2\t3", "   ", "a", "")
# Long inputs: a long word, long runs of spaces, digits, newlines, punctuation and emoji.
add("a" * 5000, " " * 3000 + "x", "9" * 3000, "\n" * 1000, "!" * 2000, "😀" * 500,
    ("word " * 800).strip(), "\u00e9" * 1500, "ab" * 2000 + " " * 7)

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "stress.jsonl")
with open(out, "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(f"{len(cases)} cases -> {out}")
