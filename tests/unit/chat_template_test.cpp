// The chat-template engine (src/chat): Jinja as transformers renders chat templates.
//  - MatchesJinja2 tests: each expected string is what Python's Jinja2 3.1 renders for the same
//    template under transformers' settings (ImmutableSandboxedEnvironment, trim_blocks,
//    lstrip_blocks, loopcontrols, its tojson / raise_exception / strftime_now; computed once with
//    tests/reference/jinja/render_jinja2.py's environment). They pin what a plausible wrong engine
//    gets wrong: whitespace control and trim/lstrip_blocks, loop variables and per-iteration scope
//    ("231", not "241"), namespace(), filters and tests, operator precedence (-3|abs is 3,
//    2 ** 3 ** 2 is 64), Python printing (True, None, 1.0, 1e+16, tuples), string methods.
//  - errors name the template and the line and column; every hard limit stops a hostile template;
//  - where a model's template is found (GGUF key, tokenizer_config.json string or list form,
//    chat_template.jinja), and how a rendered prompt is tokenized (special tokens matched, one
//    BOS).
// The whole real templates are checked against @huggingface/jinja and Jinja2 in
// tests/reference/jinja.
#include "chat/chat_template.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "autointerp/subject_model.h"
#include "chat/chat_prompt.h"
#include "expect_error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/model.h"
#include "model/run.h"
#include "test_models.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

// Renders `source` (named "t.jinja") with `vars` (a JSON object) and `messages`, on 2024-07-26
// 10:30:00.
std::string chat_render(const std::string& source, const std::string& vars = "{}",
                        const std::string& messages = "[]", const ChatTemplateLimits& limits = {}) {
  ChatRenderInput in;
  in.messages_json = messages;
  in.extra_json = vars;
  in.now = ChatDateTime{2024, 7, 26, 10, 30, 0};
  return render_chat_template(ChatTemplate::parse(source, "t.jinja", limits), in, limits);
}

void expect_chat_render_error(const std::string& source, const std::string& part,
                              const ChatTemplateLimits& limits = {}) {
  expect_error([&] { chat_render(source, "{}", "[]", limits); }, ErrorCode::kInvalidArgument, part);
}

void expect_chat_parse_error(const std::string& source, const std::string& part) {
  expect_error([&] { ChatTemplate::parse(source, "t.jinja"); }, ErrorCode::kFormat, part);
}

TEST(ChatTemplateWhitespace, MatchesJinja2) {
  EXPECT_EQ(chat_render("{% if true %}\nyes\n{% endif %}\n"), "yes\n");
  EXPECT_EQ(chat_render("  {% if true %}x{% endif %}"), "x");
  EXPECT_EQ(chat_render("a  {% if true %}x{% endif %}"), "a  x");
  EXPECT_EQ(chat_render("{{ 'a' }}\nb"), "a\nb");
  EXPECT_EQ(chat_render("a  \n  {%- if true -%}  \n  b  {%- endif %}"), "ab");
  EXPECT_EQ(chat_render("x   {{- 'y' -}}   z"), "xyz");
  EXPECT_EQ(chat_render("a{# c #}\nb"), "ab");
  EXPECT_EQ(chat_render("a {#- c -#} b"), "ab");
  EXPECT_EQ(chat_render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(chat_render("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(chat_render("a\n"), "a");
  EXPECT_EQ(chat_render("a\n\n"), "a\n");
  EXPECT_EQ(chat_render("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(chat_render("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(chat_render("<ul>\n{% for x in [1, 2] %}\n    <li>{{ x }}</li>\n{% endfor %}\n</ul>"),
            "<ul>\n    <li>1</li>\n    <li>2</li>\n</ul>");
  EXPECT_EQ(chat_render("{% for x in [1, 2] %}\n  {{ x }}\n{% endfor %}"), "  1\n  2\n");
  EXPECT_EQ(
      chat_render("{{ '\\t' }}|{{ 'a\\nb' }}|{{ \"it's\" }}|{{ '\\u00e9\\x41' }}|{{ 'a' 'b' }}"),
      "\t|a\nb|it's|éA|ab");
}

TEST(ChatTemplateLoops, MatchesJinja2) {
  EXPECT_EQ(
      chat_render(
          "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ "
          "loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}"),
      "10TrueFalse332;21FalseFalse321;32FalseTrue310;");
  EXPECT_EQ(chat_render("{% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ "
                        "loop.nextitem | default('-') }},{% endfor %}"),
            "-2,13,2-,");
  EXPECT_EQ(chat_render("{% for x in range(10) if x % 3 == 0 %}{{ x }}:{{ loop.index }}/{{ "
                        "loop.length }} {% endfor %}"),
            "0:1/4 3:2/4 6:3/4 9:4/4 ");
  EXPECT_EQ(chat_render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(chat_render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x "
                        "== 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "0134");
  EXPECT_EQ(chat_render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(chat_render("{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for c in 'héllo' "
                        "%}{{ c }}.{% endfor %}"),
            "ba|h.é.l.l.o.");
  EXPECT_EQ(chat_render("{% for x in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "aba");
  EXPECT_EQ(
      chat_render(
          "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"),
      "231");
  EXPECT_EQ(chat_render("{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% "
                        "endfor %}{{ loop.index }}|{% endfor %}"),
            "1x1 1y2 1|2x1 2y2 2|");
  EXPECT_EQ(chat_render("{% for m in messages %}{{ m.role }}:{{ m['content'] }};{% endfor %}", "{}",
                        "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                        "\"content\": \"yo\"}]"),
            "user:hi;assistant:yo;");
  EXPECT_EQ(chat_render("{% for x in messages[::-1] %}{{ x }}{% endfor %}|{% for x in "
                        "undefined_name %}no{% else %}none{% endfor %}",
                        "{}", "[1, 2, 3]"),
            "321|none");
}

TEST(ChatTemplateSetNamespaceMacro, MatchesJinja2) {
  EXPECT_EQ(chat_render("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = "
                        "ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }}{{ ns.s }}"),
            "60123");
  EXPECT_EQ(chat_render("{% set x = 5 %}{% for i in [1] %}{% set x = 7 %}{% endfor %}{{ x }}{% if "
                        "true %}{% set x = 9 %}{% endif %}{{ x }}"),
            "59");
  EXPECT_EQ(chat_render("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}"),
            "12(1, 2)");
  EXPECT_EQ(chat_render("{% set block %}  x {{ 1 + 1 }}  {% endset %}[{{ block }}]{% set up | "
                        "upper | trim %} hi {% endset %}[{{ up }}]"),
            "[  x 2  ][HI]");
  EXPECT_EQ(chat_render(
                "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns.c is defined }}"),
            "12False");
  EXPECT_EQ(
      chat_render("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro "
                  "%}{{ greet('Ann') }} {{ greet('Bob', greeting='Hi') }} {{ greet('Cy', 'Yo') }}"),
      "Hello, Ann! Hi, Bob! Yo, Cy!");
  EXPECT_EQ(chat_render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% "
                        "endif %}{% endmacro %}{{ fact(5) }}"),
            "120");
  EXPECT_EQ(
      chat_render(
          "{% set suffix = '!' %}{% macro m(x) %}{{ x }}{{ suffix }}{% endmacro %}{{ m('a') }}"),
      "a!");
  EXPECT_EQ(
      chat_render(
          "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}"),
      "1(2, 3){'k': 'v'}");
  EXPECT_EQ(chat_render("{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}"), "[1][]");
  EXPECT_EQ(chat_render("{% filter upper %}abc {{ 'd' }}{% endfilter %}"), "ABC D");
}

TEST(ChatTemplateFilters, MatchesJinja2) {
  EXPECT_EQ(
      chat_render("{{ '  a b  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hELLO wORLD' | capitalize "
                  "}}|{{ 'hello wORLD 1st' | title }}|{{ 'ÀbC' | lower }}|{{ 'straße' | upper }}"),
      "a b|hi|Hello world|Hello World 1st|àbc|STRASSE");
  EXPECT_EQ(chat_render("{{ '日本語' | length }}|{{ [1, 2] | length }}|{{ {'a': 1} | count }}|{{ "
                        "undefined_name | length }}"),
            "3|2|1|0");
  EXPECT_EQ(chat_render("{{ [1, 2, 3] | first }}{{ [1, 2, 3] | last }}{{ 'abc' | first }}{{ 'abc' "
                        "| last }}|{{ [] | first }}|"),
            "13ac||");
  EXPECT_EQ(chat_render("{{ [1, 2, 3] | join('-') }}|{{ 'abc' | join(',') }}|{{ [{'a': 'x'}, {'a': "
                        "'y'}] | join(', ', attribute='a') }}"),
            "1-2-3|a,b,c|x, y");
  EXPECT_EQ(
      chat_render("{{ undefined_name | default('d') }}|{{ '' | default('d') }}|{{ '' | "
                  "default('d', true) }}|{{ none | default('d') }}|{{ 0 | d('z', boolean=true) }}"),
      "d||d|None|z");
  EXPECT_EQ(chat_render("{{ 'aXbXc' | replace('X', '-') }}|{{ 'aXbXc' | replace('X', '-', 1) }}|{{ "
                        "'ab' | replace('', '.') }}"),
            "a-b-c|a-bXc|.a.b.");
  EXPECT_EQ(
      chat_render(
          "{{ 1.5 | string }}|{{ true | string }}|{{ none | string }}|{{ [1, 'a'] | string }}"),
      "1.5|True|None|[1, 'a']");
  EXPECT_EQ(
      chat_render("{{ '42' | int }}|{{ '4.7' | int }}|{{ 'x' | int }}|{{ 'x' | int(7) }}|{{ ' 12 ' "
                  "| int }}|{{ '0x1A' | int(0, 16) }}|{{ 3.99 | int }}|{{ true | int }}"),
      "42|4|0|7|12|26|3|1");
  EXPECT_EQ(
      chat_render("{{ '1.5' | float }}|{{ 'x' | float }}|{{ 2 | float }}|{{ '1e3' | float }}"),
      "1.5|0.0|2.0|1000.0");
  EXPECT_EQ(chat_render("{{ 'ab' | list }}|{{ {'x': 1, 'y': 2} | list }}|{{ {'x': 1, 'y': [2]} | "
                        "items | list }}"),
            "['a', 'b']|['x', 'y']|[('x', 1), ('y', [2])]");
  EXPECT_EQ(chat_render("{{ {'b': 1, 'A': 2, 'c': 0} | dictsort }}|{{ {'b': 1, 'A': 2, 'c': 0} | "
                        "dictsort(by='value', reverse=true) }}"),
            "[('A', 2), ('b', 1), ('c', 0)]|[('A', 2), ('b', 1), ('c', 0)]");
  EXPECT_EQ(
      chat_render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') "
                  "| join(',') }}|{{ messages | rejectattr('role', 'eq', 'user') | list | length "
                  "}}|{{ messages | map(attribute='missing', default='?') | join }}",
                  "{}",
                  "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", "
                  "\"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"}]"),
      "a,c|1|???");
  EXPECT_EQ(chat_render(
                "{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('even') | list "
                "}}|{{ ['a', '', 'b'] | select | list }}|{{ ['a', 'B'] | map('upper') | list }}"),
            "[1, 3]|[1, 3]|['a', 'b']|['A', 'B']");
  EXPECT_EQ(chat_render("{{ {'b': [1, 2.5], 'a': 'é\"\\n', 'n': none, 't': true} | tojson }}"),
            "{\"b\": [1, 2.5], \"a\": \"é\\\"\\n\", \"n\": null, \"t\": true}");
  EXPECT_EQ(chat_render("{{ {'b': [1, {}], 'a': []} | tojson(indent=2) }}"),
            "{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": []\n}");
  EXPECT_EQ(
      chat_render(
          "{{ [1.0, 1e20, 0.1, -0.0] | tojson }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ {'b': 1, "
          "'a': 2} | tojson(sort_keys=true) }}|{{ [1, 2] | tojson(separators=(',', ':')) }}"),
      "[1.0, 1e+20, 0.1, -0.0]|\"\\u00e9\"|{\"a\": 2, \"b\": 1}|[1,2]");
  EXPECT_EQ(chat_render("{{ '<a href=\"x\">&\\'' | escape }}|{{ '<b>' | safe }}|{{ -3 | abs }}|{{ "
                        "2.5 | round }}|{{ 3.14159 | round(2) }}|{{ 3.1 | round(0, 'ceil') }}"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&#39;|<b>|3|2.0|3.14|4.0");
  EXPECT_EQ(
      chat_render("{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'c'] | sort }}|{{ ['b', 'A', 'c'] | "
                  "sort(case_sensitive=true) }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [{'n': 2}, "
                  "{'n': 1}] | sort(attribute='n') | map(attribute='n') | list }}"),
      "[1, 2, 3]|['A', 'b', 'c']|['A', 'b', 'c']|[3, 2, 1]|[1, 2]");
  EXPECT_EQ(chat_render("{{ [1, 2, 1, 3, 2] | unique | list }}|{{ ['a', 'A', 'b'] | unique | list "
                        "}}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}|{{ [1, 2, 3] | "
                        "sum }}|{{ [1, 5, 3] | max }}|{{ [4, 2, 8] | min }}"),
            "[1, 2, 3]|['a', 'b']|[3, 2, 1]|cba|6|5|2");
  EXPECT_EQ(
      chat_render(
          "{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | "
          "indent(2, true) }}|{{ 'ab' | center(6) }}|{{ 'one two  three' | wordcount }}"),
      "[[1, 2], [3, 4], [5]]|a\n  b\n\n  c|  a\n  b|  ab  |3");
  EXPECT_EQ(chat_render("{{ 'hello world and more' | truncate(11) }}|{{ 'hello world' | "
                        "truncate(5, true) }}|{{ 'short' | truncate(10) }}"),
            "hello...|he...|short");
}

TEST(ChatTemplateTests, MatchesJinja2) {
  EXPECT_EQ(
      chat_render("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ "
                  "'a' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}",
                  "{\"x\": 1}"),
      "TrueFalseTrueTrueTrueFalseTrueFalse");
  EXPECT_EQ(chat_render("{{ 'a' is iterable }}{{ [] is iterable }}{{ 1 is iterable }}{{ 'a' is "
                        "sequence }}{{ 1 is number }}{{ 1.5 is number }}{{ 'a' is number }}{{ 1 is "
                        "integer }}{{ 1.0 is float }}{{ true is boolean }}"),
            "TrueTrueFalseTrueTrueTrueFalseTrueTrueTrue");
  EXPECT_EQ(chat_render("{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ "
                        "'a' is equalto 'a' }}{{ 1 is eq(2) }}{{ 3 is odd }}{{ 3 is even }}{{ 9 is "
                        "divisibleby 3 }}{{ 2 is in [1, 2] }}"),
            "TrueFalseTrueFalseTrueFalseTrueFalseTrueTrue");
  EXPECT_EQ(chat_render(
                "{{ 'abc' is lower }}{{ 'Abc' is upper }}{{ 'ABC' is upper }}{{ x is not none }}{{ "
                "not x is none }}{{ none is sameas none }}{{ 2 is gt 1 }}{{ range is callable }}",
                "{\"x\": null}"),
            "TrueFalseTrueFalseFalseTrueTrueTrue");
}

TEST(ChatTemplateOperators, MatchesJinja2) {
  EXPECT_EQ(chat_render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 / 2 }}|{{ 10 / 2 }}|{{ 7 // 2 "
                        "}}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** 3 ** 2 "
                        "}}|{{ -2 ** 2 }}|{{ 2 ** -1 }}"),
            "7|9|3.5|5.0|3|-4|2|-2|1024|64|4|0.5");
  EXPECT_EQ(chat_render(
                "{{ 1 ~ 2 }}|{{ 'a' ~ none ~ true }}|{{ 'a' + 'b' | upper }}|{{ -3 | abs }}|{{ 'x' "
                "* 3 }}|{{ 3 * 'ab' }}|{{ [1] * 2 }}|{{ [1] + [2] }}|{{ 1.5 + 1 }}|{{ true + 1 }}"),
            "12|aNoneTrue|aB|3|xxx|ababab|[1, 1]|[1, 2]|2.5|2");
  EXPECT_EQ(
      chat_render(
          "{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ 'ab' < 'b' }}{{ [1, 2] < "
          "[1, 3] }}{{ not 1 == 2 }}{{ 'a' in 'cat' }}{{ 'x' not in ['x'] }}{{ 'k' in {'k': 1} }}"),
      "TrueFalseTrueTrueTrueTrueTrueTrueFalseTrue");
  EXPECT_EQ(
      chat_render(
          "{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ '' and 'b' }}|{{ none or [] }}|{{ not [] }}|{{ 'y' "
          "if 1 > 2 else 'n' }}|{{ 'y' if 1 > 2 }}|{{ 'a' if 0 else 'b' if 1 else 'c' }}"),
      "x|b||[]|True|n||b");
  EXPECT_EQ(
      chat_render("{{ 'hello'[1:3] }}|{{ 'hello'[::-1] }}|{{ 'hello'[-2:] }}|{{ [1, 2, 3, 4][1::2] "
                  "}}|{{ 'héllo'[1] }}|{{ [1, 2][-1] }}|{{ [1, 2][5] }}|{{ 'abc'[:10] }}"),
      "el|olleh|lo|[2, 4]|é|2||abc");
  EXPECT_EQ(chat_render("{{ true }}|{{ none }}|{{ 1.0 }}|{{ 1/3 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 "
                        "}}|{{ 0.00001 }}|{{ [1, 'a', none, true, 'it\\'s'] }}|{{ {'a': {'b': "
                        "[1.5]}} }}|{{ undefined_name }}|{{ -0.0 }}"),
            "True|None|1.0|0.3333333333333333|1e+16|1000000000000000.0|0.0001|1e-05|[1, 'a', None, "
            "True, \"it's\"]|{'a': {'b': [1.5]}}||-0.0");
  EXPECT_EQ(chat_render("{{ d.a }}{{ d['a'] }}{{ d.get('a') }}{{ d.get('z', 'dflt') }}{{ "
                        "d.get('z') }}|{{ d.keys() | list }}{{ d.values() | list }}|{{ l.0 }}{{ "
                        "l[1] }}|{{ d.missing is defined }}",
                        "{\"d\": {\"a\": 1, \"b\": 2}, \"l\": [\"x\", \"y\"]}"),
            "111dfltNone|['a', 'b'][1, 2]|xy|False");
}

TEST(ChatTemplateStringMethods, MatchesJinja2) {
  EXPECT_EQ(chat_render("{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ "
                        "'xxaxx'.strip('x') }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}"),
            "x|x  |  x|a|x\n");
  EXPECT_EQ(chat_render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) "
                        "}}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'x</think>y'.split('</think>')[-1] "
                        "}}|{{ 'l1\\nl2\\r\\nl3'.splitlines() }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a,b', 'c']|y|['l1', 'l2', 'l3']");
  EXPECT_EQ(chat_render("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ "
                        "'hello'.startswith(('x', 'h')) }}{{ 'hello'.upper() }}{{ 'HeLLo'.lower() "
                        "}}{{ 'hello world'.title() }}{{ 'hello'.capitalize() }}"),
            "TrueTrueTrueHELLOhelloHello WorldHello");
  EXPECT_EQ(
      chat_render("{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'hello'.find('l') }}|{{ 'hello'.rfind('l') "
                  "}}|{{ 'hello'.find('z') }}|{{ 'hello'.count('l') }}|{{ '-'.join(['a', 'b']) "
                  "}}|{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}"),
      "bba|2|3|-1|2|a-b|TrueTrueTrue");
  EXPECT_EQ(chat_render("{{ '{} and {}'.format('a', 'b') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ "
                        "'{x}!'.format(x=1) }}|{{ '{{}}'.format() }}|{{ '{!r}'.format('q') }}"),
            "a and b|ba|1!|{}|'q'");
}

TEST(ChatTemplateGlobals, MatchesJinja2) {
  EXPECT_EQ(chat_render("{{ range(3) | list }}|{{ range(1, 10, 3) | list }}|{{ range(5, 0, -2) | "
                        "list }}|{{ dict(a=1, b='x') }}|{{ namespace(a=1).a }}"),
            "[0, 1, 2]|[1, 4, 7]|[5, 3, 1]|{'a': 1, 'b': 'x'}|1");
  EXPECT_EQ(chat_render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ "
                        "strftime_now('%B %d, %Y (%A, %a, %j, %I%p)') }}"),
            "26 Jul 2024|2024-07-26 10:30:00|July 26, 2024 (Friday, Fri, 208, 10AM)");
}

TEST(ChatTemplateRender, VariablesOfTheConversation) {
  ChatRenderInput in;
  in.messages_json = R"([{"role": "user", "content": "hi", "extra": {"n": [1, 2.5, null]}}])";
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.tools_json = R"([{"name": "f"}])";
  in.extra_json = R"({"enable_thinking": false})";
  const ChatTemplate t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}={{ m.content }}{{ m.extra.n }}"
      "{% endfor %}|{{ add_generation_prompt }}|{{ tools[0].name }}|{{ enable_thinking }}|"
      "{{ eos_token }}",
      "vars.jinja");
  EXPECT_EQ(render_chat_template(t, in), "<s>user=hi[1, 2.5, None]|True|f|False|</s>");
  // Defaults: no tools (None), no generation prompt.
  EXPECT_EQ(chat_render("{{ tools }}|{{ tools is none }}|{{ add_generation_prompt }}"),
            "None|True|False");
  // A variable given twice is refused; so is malformed JSON.
  in.extra_json = R"({"messages": []})";
  expect_error([&] { render_chat_template(t, in); }, ErrorCode::kInvalidArgument,
               "'messages' is already set");
  in.extra_json = "{";
  expect_error([&] { render_chat_template(t, in); }, ErrorCode::kInvalidArgument,
               "extra variables: not valid JSON");
}

TEST(ChatTemplateRender, StrftimeNowUsesTheCallersDate) {
  ChatRenderInput in;
  in.now = ChatDateTime{2025, 1, 5, 23, 7, 9};
  const ChatTemplate t =
      ChatTemplate::parse("{{ strftime_now('%d %b %Y, %A %H:%M:%S %p %y %j %%') }}", "d.jinja");
  EXPECT_EQ(render_chat_template(t, in), "05 Jan 2025, Sunday 23:07:09 PM 25 005 %");
  in.now.month = 13;
  expect_error([&] { render_chat_template(t, in); }, ErrorCode::kInvalidArgument,
               "not a valid date");
}

TEST(ChatTemplateErrors, ParseErrorsNameTheTemplateLineAndColumn) {
  expect_chat_parse_error("line one\n{% if %}",
                          "t.jinja: line 2, column 7: expected an expression");
  expect_chat_parse_error("{{ x | nosuchfilter }}", "t.jinja: line 1, column 8: no filter named");
  expect_chat_parse_error("{% if x is nosuchtest %}{% endif %}", "no test named 'nosuchtest'");
  expect_chat_parse_error("{% for x in y %}\n",
                          "unexpected end of template: expected 'endfor' or 'else'");
  expect_chat_parse_error("{{ 'abc }}", "line 1, column 4: unterminated string literal");
  expect_chat_parse_error("a\n\n  {{ x ]", "line 3, column 8: unexpected ']'");
  expect_chat_parse_error("{% include 'x' %}", "the 'include' tag is not supported");
  expect_chat_parse_error("{% frobnicate %}", "unknown tag 'frobnicate'");
  expect_chat_parse_error("{% break %}", "'break' outside of a for loop");
  expect_chat_parse_error("{# never closed", "unterminated comment");
  expect_chat_parse_error("{{ 99999999999999999999 }}", "integer literal too large");
  expect_chat_parse_error("{% macro m(a=1, b) %}{% endmacro %}", "non-default parameter 'b'");
  expect_chat_parse_error("{{ f(a=1, 2) }}", "positional argument follows keyword argument");
}

TEST(ChatTemplateErrors, RenderErrorsNameTheTemplateAndLine) {
  expect_chat_render_error("a\nb\n  {{ 1 / 0 }}", "t.jinja: line 3, column 8: division by zero");
  expect_chat_render_error(
      "{{ raise_exception('Roles must alternate') }}",
      "t.jinja: line 1, column 4: the template raised an exception: Roles must "
      "alternate");
  expect_chat_render_error("{{ foo.bar }}", "'foo' is undefined");
  expect_chat_render_error("{{ {'a': 1}.b.c }}", "'dict object' has no attribute 'b'");
  expect_chat_render_error("{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str");
  expect_chat_render_error("{{ 1 + 2 ~ 3 }}", "unsupported operand type(s) for +: 'int' and 'str'");
  expect_chat_render_error("{{ 1 < 'a' }}",
                           "'<' not supported between instances of 'int' and 'str'");
  expect_chat_render_error("{{ x + 1 }}", "'x' is undefined");
  expect_chat_render_error("{{ 5() }}", "'int' object is not callable");
  expect_chat_render_error("{% for x in 5 %}{% endfor %}", "'int' object is not iterable");
  expect_chat_render_error("{% set x = 1 %}{% set x.a = 2 %}",
                           "cannot assign attribute on non-namespace");
  expect_chat_render_error("{% set a, b = [1] %}",
                           "not enough values to unpack (expected 2, got 1)");
  expect_chat_render_error("{{ 9223372036854775807 + 1 }}", "integer overflow");
  expect_chat_render_error("{{ {1: 2} }}", "dict keys must be strings");
  expect_chat_render_error("{{ undefined_thing | tojson }}", "'undefined_thing' is undefined");
  // The sandbox transformers uses refuses mutating methods; here they do not exist.
  expect_chat_render_error("{{ 'x'.pop() }}", "'str object' has no attribute 'pop'");
  expect_chat_render_error("{{ [1].append(2) }}", "'list object' has no attribute 'append'");
}

TEST(ChatTemplateLimits, HostileTemplatesStop) {
  ChatTemplateLimits small;
  small.max_output_bytes = 1000;
  expect_chat_render_error("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}",
                           "the output would exceed the limit of 1000 bytes", small);
  small = {};
  small.max_steps = 100000;
  expect_chat_render_error(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      "ran for more than 100000 steps", small);
  expect_chat_render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                           "macro calls nest more than 32 levels deep");
  expect_chat_render_error("{{ 'x' * 1000000000 }}", "a string would exceed the limit");
  expect_chat_render_error(
      "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}"
      "{% endfor %}",
      "a string would exceed the limit");
  small = {};
  small.max_alloc_bytes = 1 << 20;
  expect_chat_render_error(
      "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}"
      "{% endfor %}",
      "the template allocated more than 1048576 bytes", small);
  expect_chat_render_error("{{ range(1000000) | length }}", "Range too big");
  expect_chat_render_error("{% set ns = namespace() %}{% set ns.me = ns %}",
                           "a namespace cannot hold a namespace");
  expect_chat_render_error("{% set ns = namespace() %}{% set ns.f = [range] %}",
                           "a namespace cannot hold a namespace or a function");
  expect_chat_render_error(
      "{% set ns = namespace(l=[]) %}{% for i in range(100) %}{% set ns.l = [ns.l] %}"
      "{% endfor %}",
      "a value nests lists/dicts more than 64 levels deep");
  // Nesting is bounded at parse time, so neither the parser nor the evaluator recurses deeply.
  expect_chat_parse_error("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}",
                          "nests more than 64 levels deep");
  std::string chain = "{{ 1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  expect_chat_parse_error(chain + " }}", "expression nested more than 256 levels deep");
  std::string blocks;
  for (int i = 0; i < 100; ++i) blocks += "{% if true %}";
  expect_chat_parse_error(blocks, "nests more than 64 levels deep");
  ChatTemplateLimits tiny;
  tiny.max_source_bytes = 10;
  expect_error([&] { ChatTemplate::parse("{{ 'twelve' }}", "big.jinja", tiny); },
               ErrorCode::kFormat, "big.jinja: the template has 14 bytes");
  // Inputs nested beyond kMaxValueDepth are refused before they reach the template.
  std::string deep = "[";
  for (int i = 0; i < 100; ++i) deep += "[";
  deep += std::string(101, ']');
  expect_error([&] { chat_render("x", "{}", "[" + deep + "]"); }, ErrorCode::kInvalidArgument,
               "messages: nested more than 64 levels deep");
}

// ---- where templates come from --------------------------------------------------------------

struct ChatTempDir {
  ChatTempDir()
      : path(fs::temp_directory_path() / ("glassbox_chat_test_" + std::to_string(::getpid()))) {
    fs::create_directories(path);
  }
  ~ChatTempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  fs::path path;
};

TEST(ChatTemplateSource, GgufKey) {
  ChatTempDir dir;
  const std::string with = (dir.path / "with.gguf").string();
  const std::string without = (dir.path / "without.gguf").string();
  write_gguf(with,
             {{"general.architecture", gguf_string("llama")},
              {"tokenizer.chat_template", gguf_string("{{ messages[0].content }}!")}},
             {});
  write_gguf(without, {{"general.architecture", gguf_string("llama")}}, {});
  const auto found = find_chat_template(GgufFile::open(with));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->source, "{{ messages[0].content }}!");
  EXPECT_EQ(found->name, with + ": tokenizer.chat_template");
  EXPECT_FALSE(find_chat_template(GgufFile::open(without)).has_value());
  const std::string bad = (dir.path / "bad.gguf").string();
  write_gguf(bad, {{"tokenizer.chat_template", gguf_int(GgufType::kU32, 1)}}, {});
  EXPECT_THROW(find_chat_template(GgufFile::open(bad)), Error);
}

TEST(ChatTemplateSource, HuggingFaceDirectory) {
  ChatTempDir dir;
  const std::string d = dir.path.string();
  EXPECT_FALSE(find_chat_template_in_dir(d).has_value());  // no tokenizer_config.json
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_FALSE(find_chat_template_in_dir(d).has_value());  // no chat_template key
  dir.write("tokenizer_config.json", R"({"chat_template": "{{ bos_token }}plain"})");
  auto t = find_chat_template_in_dir(d);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->source, "{{ bos_token }}plain");
  EXPECT_EQ(t->name, (dir.path / "tokenizer_config.json").string() + ": chat_template");
  // The list form: the entry named "default" (transformers' rule).
  dir.write("tokenizer_config.json",
            R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                  {"name": "default", "template": "D"}]})");
  EXPECT_EQ(find_chat_template_in_dir(d)->source, "D");
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "R"}]})");
  expect_error([&] { find_chat_template_in_dir(d); }, ErrorCode::kFormat, "none named 'default'");
  dir.write("tokenizer_config.json", R"({"chat_template": 5})");
  expect_error([&] { find_chat_template_in_dir(d); }, ErrorCode::kFormat,
               "chat_template must be a string or a list");
  // chat_template.jinja (newer transformers save it beside the config) takes precedence.
  dir.write("chat_template.jinja", "from the jinja file");
  t = find_chat_template_in_dir(d);
  EXPECT_EQ(t->source, "from the jinja file");
  EXPECT_EQ(t->name, (dir.path / "chat_template.jinja").string());
}

TEST(ChatTemplateSource, ModelsWithoutATemplate) {
  const Model model = load_model(testing::stories260k());
  EXPECT_FALSE(find_chat_template(model).has_value());  // llama2.c checkpoints have none
}

// ---- prompts and tokens ---------------------------------------------------------------------

TEST(ChatPrompt, FormatterUsesTheTemplateOrJoinsPlainly) {
  const std::string messages =
      chat_messages_json({{"system", "Be brief."}, {"user", "Hi \"you\"\n"}});
  const ChatFormatter plain(std::nullopt, "<s>", "</s>");
  EXPECT_FALSE(plain.uses_template());
  EXPECT_EQ(plain.format(messages, true), "Be brief.\nHi \"you\"\n");
  const ChatFormatter templated(
      ChatTemplate::parse("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}"
                          "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
                          "mine.jinja"),
      "<s>", "</s>");
  EXPECT_TRUE(templated.uses_template());
  EXPECT_EQ(templated.template_name(), "mine.jinja");
  EXPECT_EQ(templated.format(messages, true), "<s>[system]Be brief.[user]Hi \"you\"\n[assistant]");
  EXPECT_EQ(templated.format(messages, false), "<s>[system]Be brief.[user]Hi \"you\"\n");
  const ChatFormatter raising(
      ChatTemplate::parse("{{ raise_exception('no system role') }}", "strict.jinja"), "", "");
  expect_error([&] { raising.format(messages, true); }, ErrorCode::kInvalidArgument,
               "chat template strict.jinja: line 1, column 4: the template raised an exception: "
               "no system role");
}

// persona/steer-vector/probe/score turns: the system text as a system message where the template
// takes one, merged in front of the user's text where it refuses (Gemma 2's raise_exception).
TEST(ChatPrompt, TurnsMergeTheSystemTextOnlyWhenTheTemplateRefusesIt) {
  const std::string body =
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<model>{% endif %}";
  const ChatFormatter open(ChatTemplate::parse(body, "open.jinja"), "", "");
  const ChatFormatter strict(
      ChatTemplate::parse("{% if messages[0].role == 'system' %}{{ raise_exception('System role "
                          "not supported') }}{% endif %}" +
                              body,
                          "strict.jinja"),
      "", "");
  bool merged = true;
  EXPECT_EQ(format_turn(open, "Be sad.", "Hi", &merged), "<system>Be sad.<user>Hi<model>");
  EXPECT_FALSE(merged);
  EXPECT_EQ(format_turn(strict, "Be sad.", "Hi", &merged), "<user>Be sad.\n\nHi<model>");
  EXPECT_TRUE(merged);
  EXPECT_EQ(format_turn(strict, "", "Hi", &merged), "<user>Hi<model>");
  EXPECT_FALSE(merged);
  EXPECT_EQ(format_turn(ChatFormatter(std::nullopt, "", ""), "Be sad.", "Hi"), "Be sad.\nHi");
  // A template that refuses the merged turn too: its own error, not a silent prompt.
  const ChatFormatter never(ChatTemplate::parse("{{ raise_exception('never') }}", "n.jinja"), "",
                            "");
  expect_error([&] { format_turn(never, "S", "U"); }, ErrorCode::kInvalidArgument, "never");
}

// score --chat: the intervention scorer's neutral prompts become chat turns.
TEST(ChatPrompt, InterventionPromptsAreChatTurns) {
  const Model model = load_model(testing::stories260k());
  const auto tok = load_model_tokenizer(model, std::nullopt);
  auto chat = std::make_shared<const ChatFormatter>(
      ChatTemplate::parse("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n"
                          "{% endfor %}assistant:",
                          "t.jinja"),
      "<s>", "</s>");
  autointerp::SteerOptions o;
  o.prompts = {"Once upon a time"};
  o.per_prompt = 1;
  o.max_tokens = 8;
  o.temperature = 0;
  o.chat = chat;
  Session session(model);
  const std::vector<std::string> texts =
      autointerp::generate_texts(session, *tok, nullptr, -1, 0, o);
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.sampling.temperature = 0;
  g.stop_ids = generation_stop_ids(model, *tok);
  session.reset();
  const std::vector<int32_t> prompt =
      encode_chat_prompt(*tok, "<s>user: Once upon a time\nassistant:");
  EXPECT_EQ(encode_turn(*chat, *tok, "", "Once upon a time"), prompt);
  std::vector<int32_t> out = generate(session, prompt, g);
  if (!out.empty() && out.back() == *tok->eos_id()) out.pop_back();
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0], tok->decode(out));
  o.chat = nullptr;
  EXPECT_NE(autointerp::generate_texts(session, *tok, nullptr, -1, 0, o), texts);
}

TEST(ChatPrompt, GenerationConfigEosIds) {
  ChatTempDir dir;
  const std::string d = dir.path.string();
  EXPECT_EQ(generation_config_eos_ids(d), std::vector<int64_t>{});  // no file
  dir.write("generation_config.json", R"({"eos_token_id": [128001, 128008, 128009]})");
  EXPECT_EQ(generation_config_eos_ids(d), (std::vector<int64_t>{128001, 128008, 128009}));
  dir.write("generation_config.json", R"({"bos_token_id": 1, "eos_token_id": 107})");
  EXPECT_EQ(generation_config_eos_ids(d), std::vector<int64_t>{107});
  dir.write("generation_config.json", R"({"eos_token_id": "x"})");
  expect_error([&] { generation_config_eos_ids(d); }, ErrorCode::kFormat, "eos_token_id");
  dir.write("generation_config.json", "{");
  expect_error([&] { generation_config_eos_ids(d); }, ErrorCode::kFormat, "generation_config.json");
}

TEST(ChatPrompt, SpecialTokensMatchedAndOneBos) {
  const auto tok = load_llama2c_tokenizer(testing::repo_path("models/stories260K/tok512.bin"), 512);
  ASSERT_EQ(tok->bos_id(), 1);
  ASSERT_EQ(tok->eos_id(), 2);
  // SentencePiece control pieces are not matched by encode(), but are by encode_special().
  const std::vector<int32_t> hello = tok->encode("Hello");
  std::vector<int32_t> want = {1};
  want.insert(want.end(), hello.begin(), hello.end());
  want.push_back(2);
  EXPECT_NE(tok->encode("<s>Hello</s>"), want);
  EXPECT_EQ(encode_special(*tok, "<s>Hello</s>"), want);
  // The prompt: BOS once, whether the template wrote it or not.
  EXPECT_EQ(encode_chat_prompt(*tok, "<s>Hello</s>"), want);
  std::vector<int32_t> no_bos_text = {1};
  no_bos_text.insert(no_bos_text.end(), hello.begin(), hello.end());
  EXPECT_EQ(encode_chat_prompt(*tok, "Hello"), no_bos_text);
  EXPECT_EQ(special_token_text(*tok, tok->bos_id()), "<s>");
  EXPECT_EQ(special_token_text(*tok, std::nullopt), "");
}

}  // namespace
}  // namespace glassbox
