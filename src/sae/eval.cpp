#include "sae/eval.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "harvest/windows.h"
#include "model/hooks.h"
#include "model/session.h"

namespace glassbox {
namespace {

enum class Mode { kClean, kSplice, kZero, kMean };

// Sum of -log p(next token) over the predictions made at positions 1 .. n-2 of one window.
double window_ce(const Tensor& logits, const std::vector<int32_t>& tokens, int64_t* count) {
  const int64_t n = static_cast<int64_t>(tokens.size()), v = logits.dim(1);
  const float* l = logits.data<float>();
  double sum = 0.0;
  for (int64_t p = 1; p + 1 < n; ++p) {
    const float* row = l + p * v;
    const float mx = *std::max_element(row, row + v);
    double z = 0.0;
    for (int64_t j = 0; j < v; ++j) z += std::exp(static_cast<double>(row[j] - mx));
    sum += std::log(z) + mx - row[tokens[static_cast<size_t>(p + 1)]];
    ++*count;
  }
  return sum;
}

}  // namespace

SaeEvalResult evaluate_sae(const Model& model, const Tokenizer& tok, const Sae& sae,
                           const SaeEvalOptions& o) {
  SaeEvalResult r;
  r.hook = o.hook.empty() ? sae.hook_name : o.hook;
  if (r.hook.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "the SAE names no hook; give --hook");
  }
  if (o.tokens <= 0) throw Error(ErrorCode::kInvalidArgument, "--tokens must be positive");
  const ModelConfig& c = model.config();
  const HookName hn = resolve_hook_name(r.hook, c);
  const std::optional<Shape> row_shape = hook_token_shape(hn.point, c);
  if (!row_shape) {
    throw Error(ErrorCode::kInvalidArgument,
                "hook " + r.hook + " has one row per (head, query), not per token");
  }
  const int64_t width = shape_numel(*row_shape);
  if (width != sae.d_in) {
    throw Error(ErrorCode::kShape, "hook " + r.hook + " has " + std::to_string(width) +
                                       " values per token but the SAE's d_in is " +
                                       std::to_string(sae.d_in));
  }
  if (!o.mean.empty() && static_cast<int64_t>(o.mean.size()) != sae.d_in) {
    throw Error(ErrorCode::kShape, "the stored activation mean has " +
                                       std::to_string(o.mean.size()) + " values, not d_in " +
                                       std::to_string(sae.d_in));
  }
  const std::optional<int32_t> bos = tok.bos_id();
  if (!bos) throw Error(ErrorCode::kUnsupported, "the tokenizer has no BOS token");

  SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = o.ctx;
  Session session(model, so);
  const int64_t d = sae.d_in, m = sae.d_sae;
  Mode mode = Mode::kClean;
  std::vector<float> mean = o.mean;
  std::vector<float> x, recon, acts;
  std::vector<double> sum_x(static_cast<size_t>(d), 0.0);
  double sum_sq = 0.0, sum_err = 0.0, active = 0.0;
  std::vector<uint8_t> fired(static_cast<size_t>(m), 0);
  const HookHandle handle = session.hooks().add(r.hook, [&](const HookEvent&, Tensor& t) {
    const int64_t n = t.dim(0) - 1;  // rows after the BOS
    float* rows = t.mutable_data<float>() + d;
    if (n <= 0) return;
    switch (mode) {
      case Mode::kClean:
        x.assign(rows, rows + n * d);
        return;
      case Mode::kSplice:
        std::copy(recon.begin(), recon.begin() + n * d, rows);
        return;
      case Mode::kZero:
        std::fill(rows, rows + n * d, 0.0f);
        return;
      case Mode::kMean:
        for (int64_t i = 0; i < n; ++i) std::copy(mean.begin(), mean.end(), rows + i * d);
        return;
    }
  });

  double ce[4] = {0, 0, 0, 0};
  int64_t count[4] = {0, 0, 0, 0};
  const bool mean_given = !mean.empty();
  const auto run = [&](Mode md, const std::vector<int32_t>& w) {
    mode = md;
    session.reset();
    const Tensor logits = session.forward(w, LogitsMode::kAll);
    ce[static_cast<int>(md)] += window_ce(logits, w, &count[static_cast<int>(md)]);
  };
  // Pass 1: clean, spliced, zero (and mean when given); pass 2 only for a mean taken here.
  for (int pass = 0; pass < (mean_given ? 1 : 2); ++pass) {
    WindowStream windows(o.corpus, tok, o.ctx, *bos);
    int64_t seen = 0;
    while (seen < o.tokens) {
      const CorpusWindow* cw = windows.next();
      if (cw == nullptr) break;
      std::vector<int32_t> w = cw->tokens;
      w.resize(
          static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(w.size()), o.tokens - seen)));
      seen += static_cast<int64_t>(w.size());
      if (w.size() < 3) continue;  // no prediction after the BOS position
      if (pass == 1) {
        run(Mode::kMean, w);
        continue;
      }
      run(Mode::kClean, w);
      const int64_t n = static_cast<int64_t>(w.size()) - 1;
      recon.resize(static_cast<size_t>(n * d));
      acts.resize(static_cast<size_t>(n * m));
      sae.encode(x.data(), n, acts.data());
      sae.reconstruct(x.data(), n, recon.data());
      for (int64_t i = 0; i < n * m; ++i) {
        if (acts[i] != 0.0f) {
          active += 1.0;
          fired[static_cast<size_t>(i % m)] = 1;
        }
      }
      for (int64_t i = 0; i < n * d; ++i) {
        const double e = static_cast<double>(x[i]) - recon[i];
        sum_err += e * e;
        sum_sq += static_cast<double>(x[i]) * x[i];
        sum_x[static_cast<size_t>(i % d)] += x[i];
      }
      r.rows += n;
      r.tokens += static_cast<int64_t>(w.size());
      run(Mode::kSplice, w);
      run(Mode::kZero, w);
      if (mean_given) run(Mode::kMean, w);
    }
    if (pass == 0 && !mean_given) {
      mean.assign(static_cast<size_t>(d), 0.0f);
      for (int64_t j = 0; j < d; ++j)
        mean[j] = static_cast<float>(sum_x[j] / static_cast<double>(std::max<int64_t>(1, r.rows)));
    }
  }
  if (r.rows == 0)
    throw Error(ErrorCode::kInvalidArgument, "the corpus gave no tokens to evaluate");
  double mean_sq = 0.0;
  for (double s : sum_x) mean_sq += (s / r.rows) * (s / r.rows);
  const double total_var = sum_sq - static_cast<double>(r.rows) * mean_sq;
  r.mse = sum_err / static_cast<double>(r.rows * d);
  r.fvu = total_var > 0 ? sum_err / total_var : 0.0;
  r.l0 = active / static_cast<double>(r.rows);
  r.dead_frac =
      1.0 - static_cast<double>(std::count(fired.begin(), fired.end(), 1)) / static_cast<double>(m);
  const auto avg = [&](Mode md) {
    const int i = static_cast<int>(md);
    return count[i] > 0 ? ce[i] / static_cast<double>(count[i]) : 0.0;
  };
  r.predictions = count[0];
  r.ce_clean = avg(Mode::kClean);
  r.ce_spliced = avg(Mode::kSplice);
  r.ce_zero_ablated = avg(Mode::kZero);
  r.ce_mean_ablated = avg(Mode::kMean);
  r.ce_recovered_zero = (r.ce_zero_ablated - r.ce_spliced) / (r.ce_zero_ablated - r.ce_clean);
  r.ce_recovered_mean = (r.ce_mean_ablated - r.ce_spliced) / (r.ce_mean_ablated - r.ce_clean);
  r.mean_source = mean_given ? "stored" : "eval";
  return r;
}

}  // namespace glassbox
