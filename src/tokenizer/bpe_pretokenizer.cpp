// PCRE2 matching and the Split / ByteLevel pre-tokenizer steps (see bpe_pretokenizer.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/bpe_pretokenizer.h"

#include <pcre2.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace glassbox {
namespace {

struct MatchDataFree {
  void operator()(pcre2_match_data* p) const { pcre2_match_data_free(p); }
};
struct MatchContextFree {
  void operator()(pcre2_match_context* p) const { pcre2_match_context_free(p); }
};
struct JitStackFree {
  void operator()(pcre2_jit_stack* p) const { pcre2_jit_stack_free(p); }
};

// PCRE2's JIT starts with a 32 KiB machine stack; patterns with lookahead after long repeats
// (\s+(?!\S) on a long run of spaces) can need more. We grow to this only when asked.
constexpr size_t kJitStackMax = size_t{64} << 20;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

void BpeRegex::Free::operator()(pcre2_real_code_8* code) const { pcre2_code_free(code); }

BpeRegex::BpeRegex(std::string_view pattern, const std::string& context) : context_(context) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // \C could split a character in UTF mode; no pattern of this kind needs it.
  code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                            PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &err, &offset,
                            nullptr));
  if (!code_) {
    throw Error(ErrorCode::kFormat, context + ": regex does not compile at offset " +
                                        std::to_string(offset) + ": " + pcre2_message(err));
  }
  // Without a JIT (some platforms) pcre2_match interprets the pattern: slower, same results.
  pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE);
}

void BpeRegex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  const std::unique_ptr<pcre2_match_data, MatchDataFree> md(
      pcre2_match_data_create_from_pattern(code_.get(), nullptr));
  std::unique_ptr<pcre2_match_context, MatchContextFree> context;
  std::unique_ptr<pcre2_jit_stack, JitStackFree> stack;
  if (!md) throw Error(ErrorCode::kInvalidArgument, context_ + ": out of memory for PCRE2");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  uint32_t options = 0;
  while (start <= text.size()) {
    // The caller has validated the UTF-8 (bpe.cpp), so PCRE2 need not rescan it per call.
    const int rc = pcre2_match(code_.get(), subject, text.size(), start,
                               options | PCRE2_NO_UTF_CHECK, md.get(), context.get());
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0 || start >= text.size()) break;
      // Nothing but the empty match at `start`: move on by one character, as find_iter does.
      start += utf8::one_char_len(text.substr(start));
      options = 0;
      continue;
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !stack) {
      stack.reset(pcre2_jit_stack_create(32 * 1024, kJitStackMax, nullptr));
      context.reset(pcre2_match_context_create(nullptr));
      if (!stack || !context) {
        throw Error(ErrorCode::kInvalidArgument, context_ + ": out of memory for PCRE2");
      }
      pcre2_jit_stack_assign(context.get(), nullptr, stack.get());
      continue;
    }
    if (rc < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  context_ + ": regex match failed: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t s = ov[0];
    const size_t e = ov[1];
    if (s < start || e < s || e > text.size()) {
      throw Error(ErrorCode::kInvalidArgument, context_ + ": regex reported a bad match range");
    }
    if (s == e) {
      // An empty match yields no piece; retry here refusing the empty string (Perl semantics).
      start = e;
      options = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
      continue;
    }
    out->emplace_back(s, e);
    start = e;
    options = 0;
  }
}

BpePreTokenizer::BpePreTokenizer(const std::vector<BpePreTokenizerStep>& steps,
                                 const std::string& source) {
  for (const BpePreTokenizerStep& s : steps) {
    Step step;
    step.behavior = s.behavior;
    step.invert = s.invert;
    if (s.kind == BpePreTokenizerStep::Kind::kSplit) {
      regexes_.push_back(std::make_unique<BpeRegex>(s.pattern, source + ": " + s.field));
      step.regex = regexes_.back().get();
    } else {
      step.add_prefix_space = s.add_prefix_space;
      if (s.use_regex) {
        regexes_.push_back(std::make_unique<BpeRegex>(kGpt2Pattern, source + ": " + s.field));
        step.regex = regexes_.back().get();
      }
    }
    steps_.push_back(step);
  }
}

namespace {

struct Span {
  size_t start;
  size_t end;
  bool is_match;
};

// HF NormalizedString::split: the matches and the gaps between them, then combined per behavior.
// The folds below mirror HF's, including their treatment of consecutive matches.
void apply_behavior(std::vector<Span>* spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return;
    case SplitBehavior::kRemoved:
      for (const Span& s : *spans) {
        if (!s.is_match) out.push_back(s);
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : *spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans->rbegin(); it != spans->rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().start = it->start;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : *spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
  }
  *spans = std::move(out);
}

}  // namespace

void BpePreTokenizer::split(std::string_view text, std::vector<std::string_view>* pieces,
                            std::deque<std::string>* storage) const {
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<Span> spans;
  for (const Step& step : steps_) {
    next.clear();
    for (std::string_view piece : current) {
      if (step.add_prefix_space && (piece.empty() || piece.front() != ' ')) {
        std::string& prefixed = storage->emplace_back();
        prefixed.reserve(piece.size() + 1);
        prefixed.push_back(' ');
        prefixed.append(piece);
        piece = prefixed;
      }
      if (step.regex == nullptr) {
        if (!piece.empty()) next.push_back(piece);
        continue;
      }
      matches.clear();
      step.regex->find_all(piece, &matches);
      spans.clear();
      size_t prev = 0;
      for (const auto& [s, e] : matches) {
        if (prev < s) spans.push_back({prev, s, step.invert});
        spans.push_back({s, e, !step.invert});
        prev = e;
      }
      if (prev < piece.size()) spans.push_back({prev, piece.size(), step.invert});
      apply_behavior(&spans, step.behavior);
      for (const Span& s : spans) {
        if (s.end > s.start) next.push_back(piece.substr(s.start, s.end - s.start));
      }
    }
    current.swap(next);
  }
  pieces->insert(pieces->end(), current.begin(), current.end());
}

}  // namespace glassbox
