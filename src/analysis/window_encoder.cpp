#include "analysis/window_encoder.h"

#include <algorithm>

#include "core/error.h"

namespace glassbox {
namespace {

constexpr int64_t kEncodeRows = 16;  // rows per encode call: fixed, so results ignore threads

}  // namespace

WindowEncoder::WindowEncoder(Session& session, const Sae& sae, ThreadPool& pool)
    : session_(session), sae_(sae), pool_(pool) {
  hook_ = resolve_hook_name(sae.hook_name, session.config());
  const std::optional<Shape> row = hook_token_shape(hook_.point, session.config());
  d_in_ = row ? shape_numel(*row) : -1;
  if (d_in_ != sae.d_in) {
    throw Error(ErrorCode::kShape, "the SAE reads " + sae.hook_name + " with d_in " +
                                       std::to_string(sae.d_in) +
                                       ", which is not that hook's width per token");
  }
  handle_ = session.hooks().add(hook_, [this](const HookEvent&, Tensor& t) {
    const float* p = t.data<float>();
    x_.assign(p + d_in_, p + t.dim(0) * d_in_);  // rows after the BOS
  });
}

const std::vector<float>& WindowEncoder::encode(std::span<const int32_t> window) {
  const int64_t n = static_cast<int64_t>(window.size()) - 1, m = sae_.d_sae;
  acts_.clear();
  if (n <= 0) return acts_;
  session_.reset();
  if (is_block_hook(hook_.point)) {
    session_.forward_partial(window, hook_.layer + 1);
  } else if (hook_.point == HookPoint::kEmbed || hook_.point == HookPoint::kPosEmbed) {
    session_.forward_partial(window, 0);
  } else {
    session_.forward(window, LogitsMode::kNone);
  }
  GLASSBOX_ASSERT(static_cast<int64_t>(x_.size()) == n * d_in_);
  acts_.resize(static_cast<size_t>(n * m));
  const int64_t blocks = (n + kEncodeRows - 1) / kEncodeRows;
  const bool small = n * d_in_ * m < (int64_t{1} << 20);  // not worth waking the pool
  pool_.parallel_for(small ? 1 : blocks, [&](int64_t b0, int64_t b1) {
    if (small) b1 = blocks;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kEncodeRows, rows = std::min(kEncodeRows, n - r0);
      sae_.encode(x_.data() + r0 * d_in_, rows, acts_.data() + r0 * m);
    }
  });
  return acts_;
}

}  // namespace glassbox
