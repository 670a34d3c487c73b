// tokenizer.json (+ tokenizer_config.json) -> BpeSpec. Only key interpretation lives here;
// encoding is bpe.cpp's. The fields read, as Hugging Face `tokenizers` serializes them:
//   model            {"type": "BPE", "vocab": {piece: id}, "merges": ["a b", ...] or [["a", "b"],
//                    ...], "unk_token", "fuse_unk", "ignore_merges", "dropout" (null/0 only),
//                    "byte_fallback" (false only), "continuing_subword_prefix" and
//                    "end_of_word_suffix" (null/"" only)}
//   added_tokens     [{"id", "content", "special", "normalized", "lstrip", "rstrip",
//                    "single_word" (false only)}]
//   normalizer       null only
//   pre_tokenizer    ByteLevel {add_prefix_space, use_regex}, Split {pattern: {"Regex"|"String"},
//                    behavior, invert}, or a Sequence of those ending in ByteLevel
//   post_processor   null, ByteLevel, TemplateProcessing {single}, RobertaProcessing /
//                    BertProcessing {cls, sep}, or a Sequence of those: BOS/EOS only
//   decoder          ByteLevel only
//   truncation, padding: ignored (batching options, no effect on ids)
// tokenizer_config.json: bos_token, eos_token (string or {"content": string}), add_bos_token.
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "tokenizer/bpe.h"

namespace glassbox {
namespace {

using nlohmann::json;

// Sequences nest; a hostile file must not recurse us off the stack.
constexpr int kMaxNesting = 16;

// A JSON node with the dotted path that reached it, so every error names its field.
struct Node {
  const json& value;
  std::string path;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(ErrorCode code, const std::string& path, const std::string& msg) const {
    throw Error(code, source_ + ": " + path + ": " + msg);
  }

  static const char* type_name(const json& v) { return v.type_name(); }

  const json* find(const Node& obj, const char* key) const {
    const auto it = obj.value.find(key);
    return it == obj.value.end() ? nullptr : &*it;
  }
  Node at(const Node& obj, const char* key) const {
    const json* v = find(obj, key);
    if (v == nullptr)
      fail(ErrorCode::kFormat, obj.path, std::string("missing field '") + key + "'");
    return {*v, join(obj.path, key)};
  }
  static std::string join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }
  void expect(const Node& n, json::value_t type, const char* what) const {
    const bool ok = n.value.type() == type || (type == json::value_t::number_integer &&
                                               n.value.type() == json::value_t::number_unsigned);
    if (!ok)
      fail(ErrorCode::kFormat, n.path,
           std::string("expected ") + what + ", got " + type_name(n.value));
  }
  const json& object(const Node& n) const {
    expect(n, json::value_t::object, "an object");
    return n.value;
  }
  const json& array(const Node& n) const {
    expect(n, json::value_t::array, "an array");
    return n.value;
  }
  std::string string(const Node& n) const {
    expect(n, json::value_t::string, "a string");
    return n.value.get<std::string>();
  }
  bool boolean(const Node& n) const {
    expect(n, json::value_t::boolean, "a boolean");
    return n.value.get<bool>();
  }
  int32_t id(const Node& n) const {
    expect(n, json::value_t::number_integer, "an integer id");
    if (n.value.is_number_unsigned()) {
      const auto v = n.value.get<uint64_t>();
      if (v > static_cast<uint64_t>(kMaxBpeId)) fail(ErrorCode::kFormat, n.path, "id out of range");
      return static_cast<int32_t>(v);
    }
    const auto v = n.value.get<int64_t>();
    if (v < 0 || v > kMaxBpeId) fail(ErrorCode::kFormat, n.path, "id out of range");
    return static_cast<int32_t>(v);
  }
  // Optional fields: absent or null give the default.
  bool opt_bool(const Node& obj, const char* key, bool dflt) const {
    const json* v = find(obj, key);
    if (v == nullptr || v->is_null()) return dflt;
    return boolean({*v, join(obj.path, key)});
  }
  std::optional<std::string> opt_string(const Node& obj, const char* key) const {
    const json* v = find(obj, key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return string({*v, join(obj.path, key)});
  }
  std::string type_of(const Node& obj) const {
    object(obj);
    return string(at(obj, "type"));
  }

 private:
  std::string source_;
};

json parse_json(std::string_view text, const std::string& source) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) throw Error(ErrorCode::kFormat, source + ": not valid JSON");
  if (!root.is_object()) {
    throw Error(ErrorCode::kFormat,
                source + ": expected a JSON object at the top, got " + root.type_name());
  }
  return root;
}

// A literal string as a PCRE2 pattern: every ASCII punctuation character escaped.
std::string escape_regex(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void read_model(const Reader& r, const Node& model, BpeSpec* spec) {
  const std::string type = r.type_of(model);
  if (type != "BPE") {
    r.fail(ErrorCode::kUnsupported, model.path + ".type",
           "model type '" + type + "' is not supported (only byte-level \"BPE\")");
  }
  if (const json* d = r.find(model, "dropout"); d != nullptr && !d->is_null()) {
    if (!d->is_number()) r.fail(ErrorCode::kFormat, model.path + ".dropout", "expected a number");
    if (d->get<double>() != 0.0) {
      r.fail(ErrorCode::kUnsupported, model.path + ".dropout", "BPE dropout is not supported");
    }
  }
  if (r.opt_bool(model, "byte_fallback", false)) {
    r.fail(ErrorCode::kUnsupported, model.path + ".byte_fallback",
           "byte fallback is not supported (byte-level BPE covers every byte already)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const auto v = r.opt_string(model, key); v && !v->empty()) {
      r.fail(ErrorCode::kUnsupported, model.path + "." + key,
             "non-empty affixes are not supported");
    }
  }
  spec->unk_token = r.opt_string(model, "unk_token");
  spec->fuse_unk = r.opt_bool(model, "fuse_unk", false);
  spec->ignore_merges = r.opt_bool(model, "ignore_merges", false);

  const Node vocab = r.at(model, "vocab");
  for (const auto& [piece, id] : r.object(vocab).items()) {
    spec->vocab.emplace_back(piece, r.id({id, vocab.path + "[\"" + piece + "\"]"}));
  }
  const Node merges = r.at(model, "merges");
  const json& list = r.array(merges);
  spec->merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const Node m{list[i], merges.path + "[" + std::to_string(i) + "]"};
    if (m.value.is_string()) {
      // "a b": exactly one space, as HF requires of the string form.
      const std::string s = m.value.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        r.fail(ErrorCode::kFormat, m.path, "merge '" + s + "' is not two entries split by a space");
      }
      spec->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.value.is_array() && m.value.size() == 2) {
      spec->merges.emplace_back(r.string({m.value[0], m.path + "[0]"}),
                                r.string({m.value[1], m.path + "[1]"}));
    } else {
      r.fail(ErrorCode::kFormat, m.path, "expected \"a b\" or [\"a\", \"b\"]");
    }
  }
}

void read_added_tokens(const Reader& r, const Node& added, BpeSpec* spec) {
  const json& list = r.array(added);
  for (size_t i = 0; i < list.size(); ++i) {
    const Node t{list[i], added.path + "[" + std::to_string(i) + "]"};
    r.object(t);
    BpeAddedToken tok;
    tok.id = r.id(r.at(t, "id"));
    tok.content = r.string(r.at(t, "content"));
    tok.special = r.opt_bool(t, "special", false);
    tok.normalized = r.opt_bool(t, "normalized", !tok.special);
    tok.lstrip = r.opt_bool(t, "lstrip", false);
    tok.rstrip = r.opt_bool(t, "rstrip", false);
    if (r.opt_bool(t, "single_word", false)) {
      r.fail(ErrorCode::kUnsupported, t.path + ".single_word",
             "single_word added tokens are not supported");
    }
    spec->added_tokens.push_back(std::move(tok));
  }
}

void read_pre_tokenizer(const Reader& r, const Node& pre, BpeSpec* spec, int depth = 0) {
  const std::string type = r.type_of(pre);
  if (type == "Sequence") {
    if (depth >= kMaxNesting) r.fail(ErrorCode::kFormat, pre.path, "sequences nested too deeply");
    const Node list = r.at(pre, "pretokenizers");
    for (size_t i = 0; i < r.array(list).size(); ++i) {
      read_pre_tokenizer(r, {list.value[i], list.path + "[" + std::to_string(i) + "]"}, spec,
                         depth + 1);
    }
    return;
  }
  BpePreTokenizerStep step;
  step.field = pre.path;
  if (type == "ByteLevel") {
    step.kind = BpePreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = r.opt_bool(pre, "add_prefix_space", true);
    step.use_regex = r.opt_bool(pre, "use_regex", true);
  } else if (type == "Split") {
    step.kind = BpePreTokenizerStep::Kind::kSplit;
    const Node pattern = r.at(pre, "pattern");
    r.object(pattern);
    if (const json* re = r.find(pattern, "Regex")) {
      step.pattern = r.string({*re, pattern.path + ".Regex"});
    } else if (const json* s = r.find(pattern, "String")) {
      step.pattern = escape_regex(r.string({*s, pattern.path + ".String"}));
    } else {
      r.fail(ErrorCode::kFormat, pattern.path, "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    const Node behavior = r.at(pre, "behavior");
    const std::string b = r.string(behavior);
    if (b == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else if (b == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (b == "MergedWithPrevious") {
      step.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "MergedWithNext") {
      step.behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "Contiguous") {
      step.behavior = SplitBehavior::kContiguous;
    } else {
      r.fail(ErrorCode::kFormat, behavior.path, "unknown split behavior '" + b + "'");
    }
    step.invert = r.opt_bool(pre, "invert", false);
  } else {
    r.fail(ErrorCode::kUnsupported, pre.path + ".type",
           "pre-tokenizer '" + type + "' is not supported (ByteLevel, Split, Sequence)");
  }
  spec->pre_tokenizer.push_back(std::move(step));
}

// BOS/EOS from a post-processor: the special tokens a TemplateProcessing "single" template puts
// before and after the sequence, or Roberta/Bert cls and sep.
void read_post_processor(const Reader& r, const Node& post, BpeSpec* spec, int depth = 0) {
  const std::string type = r.type_of(post);
  if (type == "Sequence") {
    if (depth >= kMaxNesting) r.fail(ErrorCode::kFormat, post.path, "sequences nested too deeply");
    const Node list = r.at(post, "processors");
    for (size_t i = 0; i < r.array(list).size(); ++i) {
      read_post_processor(r, {list.value[i], list.path + "[" + std::to_string(i) + "]"}, spec,
                          depth + 1);
    }
  } else if (type == "TemplateProcessing") {
    const Node single = r.at(post, "single");
    bool seen_sequence = false;
    for (size_t i = 0; i < r.array(single).size(); ++i) {
      const Node item{single.value[i], single.path + "[" + std::to_string(i) + "]"};
      r.object(item);
      if (const json* tok = r.find(item, "SpecialToken")) {
        const Node t{*tok, item.path + ".SpecialToken"};
        r.object(t);
        const std::string name = r.string(r.at(t, "id"));
        if (!seen_sequence && !spec->bos_token) spec->bos_token = name;
        if (seen_sequence && !spec->eos_token) spec->eos_token = name;
        if (!seen_sequence && !spec->add_bos) spec->add_bos = true;
      } else if (r.find(item, "Sequence") != nullptr) {
        seen_sequence = true;
      } else {
        r.fail(ErrorCode::kFormat, item.path, "expected SpecialToken or Sequence");
      }
    }
    if (!spec->add_bos) spec->add_bos = false;
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const Node pair = r.at(post, key);
      if (!r.array(pair).empty()) {
        const std::string name = r.string({pair.value[0], pair.path + "[0]"});
        auto& slot = std::string(key) == "cls" ? spec->bos_token : spec->eos_token;
        if (!slot) slot = name;
      }
    }
    if (!spec->add_bos) spec->add_bos = true;
  } else if (type != "ByteLevel") {
    r.fail(ErrorCode::kUnsupported, post.path + ".type",
           "post-processor '" + type + "' is not supported");
  }
}

// tokenizer_config.json names special tokens as a string or as an AddedToken object.
std::optional<std::string> config_token(const Reader& r, const Node& config, const char* key) {
  const json* v = r.find(config, key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  const Node n{*v, Reader::join(config.path, key)};
  if (v->is_object()) return r.string(r.at(n, "content"));
  return r.string(n);
}

}  // namespace

BpeSpec parse_bpe_spec(std::string_view tokenizer_json, std::string_view config_json,
                       const std::string& source) {
  const json root = parse_json(tokenizer_json, source);
  const Reader r(source);
  const Node top{root, ""};
  BpeSpec spec;

  read_model(r, r.at(top, "model"), &spec);
  if (const json* added = r.find(top, "added_tokens"); added != nullptr && !added->is_null()) {
    read_added_tokens(r, {*added, "added_tokens"}, &spec);
  }
  if (const json* norm = r.find(top, "normalizer"); norm != nullptr && !norm->is_null()) {
    const std::string type = r.type_of({*norm, "normalizer"});
    r.fail(ErrorCode::kUnsupported, "normalizer.type",
           "normalizer '" + type + "' is not supported (only null)");
  }
  const json* pre = r.find(top, "pre_tokenizer");
  if (pre == nullptr || pre->is_null()) {
    r.fail(ErrorCode::kUnsupported, "pre_tokenizer",
           "no pre-tokenizer: only byte-level BPE (a ByteLevel pre-tokenizer) is supported");
  }
  read_pre_tokenizer(r, {*pre, "pre_tokenizer"}, &spec);

  const json* dec = r.find(top, "decoder");
  const std::string dec_type =
      dec == nullptr || dec->is_null() ? "null" : r.type_of({*dec, "decoder"});
  if (dec_type != "ByteLevel") {
    r.fail(ErrorCode::kUnsupported, "decoder",
           "decoder '" + dec_type + "' is not supported (only ByteLevel)");
  }

  // The config file wins over what the post-processor implies, field by field.
  if (!config_json.empty()) {
    const std::string config_source = "tokenizer_config.json beside " + source;
    const json config = parse_json(config_json, config_source);
    const Reader c(config_source);
    const Node node{config, ""};
    spec.bos_token = config_token(c, node, "bos_token");
    spec.eos_token = config_token(c, node, "eos_token");
    if (const json* v = c.find(node, "add_bos_token"); v != nullptr && !v->is_null()) {
      spec.add_bos = c.boolean({*v, "add_bos_token"});
    }
  }
  if (const json* post = r.find(top, "post_processor"); post != nullptr && !post->is_null()) {
    BpeSpec from_post;
    read_post_processor(r, {*post, "post_processor"}, &from_post);
    if (!spec.bos_token) spec.bos_token = from_post.bos_token;
    if (!spec.eos_token) spec.eos_token = from_post.eos_token;
    if (!spec.add_bos) spec.add_bos = from_post.add_bos;
  }
  return spec;
}

std::unique_ptr<Tokenizer> parse_bpe_tokenizer(std::string_view tokenizer_json,
                                               std::string_view config_json,
                                               const std::string& source) {
  return make_bpe_tokenizer(parse_bpe_spec(tokenizer_json, config_json, source), source);
}

}  // namespace glassbox
