// Fuzzes what glassbox reads from an LLM's replies (src/autointerp/prompts.h, scoring.h): any text
// must give an explanation (non-empty, at most 200 bytes, valid to store) or an Error, a list of
// exactly n judgements in [0, 1] or an Error, and terms without a crash — never another
// exception type or a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autointerp/prompts.h"
#include "autointerp/scoring.h"
#include "core/error.h"

using namespace glassbox;
using namespace glassbox::autointerp;

namespace {

void expect(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::string e = parse_explanation(text);
    expect(!e.empty() && e.size() <= 200);
  } catch (const Error&) {
  }
  const size_t n = size % 7;
  try {
    const std::vector<double> j = parse_judgements(text, n);
    expect(j.size() == n);
    for (double x : j) expect(x >= 0.0 && x <= 1.0);
  } catch (const Error&) {
  }
  (void)explanation_terms(text);
  return 0;
}
