#include "sae/train.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "sae/train_grad.h"

namespace glassbox {
namespace {

using sae_train::Params;

constexpr char kTrainStateMagic[8] = {'G', 'B', 'S', 'A', 'E', 'T', 'R', 'N'};
constexpr uint32_t kStateVersion = 1;
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kAdamEps = 1e-8;
constexpr double kThresholdEma = 0.99;  // batchtopk: threshold <- 0.99 t + 0.01 min kept
constexpr int64_t kChunk = 1 << 14;     // elements per Adam work item


// Standard normal from the generator's raw bits (Box-Muller), so that the initial weights do not
// depend on the standard library's distribution implementations.
double normal(std::mt19937_64& rng) {
  const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;          // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void normalize_rows(float* w, int64_t rows, int64_t cols, float target, ThreadPool& pool) {
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = w + r * cols;
      double ss = 0;
      for (int64_t i = 0; i < cols; ++i) ss += double(row[i]) * row[i];
      if (ss <= 0) continue;
      const float s = static_cast<float>(target / std::sqrt(ss));
      for (int64_t i = 0; i < cols; ++i) row[i] *= s;
    }
  });
}

}  // namespace

struct SaeTrainer::Impl {
  SaeTrainConfig cfg;
  ThreadPool* pool = nullptr;
  int64_t aux_k = 0;  // effective
  Params p, m, v, g;  // weights, Adam moments, gradients (scratch)
  sae_train::Workspace ws;
  int64_t step = 0;
  bool initialized = false;
  double scale = 1.0;  // inputs are multiplied by this before everything else
  std::mt19937_64 rng;
  std::vector<int64_t> since_fired;  // [d_sae] tokens since each latent last fired
  double threshold_ema = 0;          // batchtopk
  int64_t threshold_updates = 0;
  std::vector<float> xs;      // scaled batch
  std::vector<uint8_t> dead;  // [d_sae]

  double lr_at(int64_t t) const {
    double f = 1.0;
    if (cfg.lr_warmup_steps > 0) {
      f *= std::min(1.0, double(t + 1) / double(cfg.lr_warmup_steps));
    }
    if (cfg.total_steps > 0 && cfg.lr_decay_frac > 0) {
      const double start = double(cfg.total_steps) * (1.0 - cfg.lr_decay_frac);
      if (double(t) >= start) {
        f *= std::max(0.0,
                      (double(cfg.total_steps) - double(t)) / (double(cfg.total_steps) - start));
      }
    }
    return cfg.lr * f;
  }
  double sparsity_coeff_at(int64_t t) const {
    const double c = cfg.arch == SaeArch::kRelu       ? cfg.l1_coeff
                     : cfg.arch == SaeArch::kJumpRelu ? cfg.l0_coeff
                                                      : 0.0;
    if (cfg.total_steps > 0 && cfg.l1_warmup_frac > 0) {
      const double w = cfg.l1_warmup_frac * double(cfg.total_steps);
      return c * std::min(1.0, double(t + 1) / w);
    }
    return c;
  }
  double batch_threshold() const {
    if (threshold_updates == 0) return 0.0;
    return threshold_ema / (1.0 - std::pow(kThresholdEma, double(threshold_updates)));
  }
};

SaeTrainer::SaeTrainer(const SaeTrainConfig& config, ThreadPool& pool)
    : impl_(std::make_shared<Impl>()) {
  const SaeTrainConfig& c = config;
  const auto bad = [](const std::string& what) {
    fail(ErrorCode::kInvalidArgument, "sae training config: " + what);
  };
  if (c.d_in <= 0 || c.d_sae <= 0) bad("d_in and d_sae must be positive");
  if (c.d_sae > (int64_t{1} << 31) - 1) bad("d_sae must be below 2^31");
  if ((c.arch == SaeArch::kTopK || c.arch == SaeArch::kBatchTopK) && (c.k < 1 || c.k > c.d_sae)) {
    bad("k must be in 1..d_sae (" + std::to_string(c.k) + ")");
  }
  if (c.batch_size <= 0) bad("batch_size must be positive");
  if (c.total_steps < 0 || c.lr_warmup_steps < 0) bad("step counts must be >= 0");
  if (!(c.lr > 0) || !(c.lr_decay_frac >= 0 && c.lr_decay_frac <= 1)) {
    bad("lr must be > 0 and lr_decay_frac in [0, 1]");
  }
  if (!(c.l1_coeff >= 0) || !(c.l0_coeff >= 0) || !(c.l1_warmup_frac >= 0)) {
    bad("sparsity coefficients and their warm-up must be >= 0");
  }
  if (std::isnan(c.grad_clip)) bad("grad_clip must be a number");
  if (!(c.bandwidth > 0) || !(c.init_threshold > 0)) {
    bad("bandwidth and init_threshold must be > 0");
  }
  if (c.aux_k < 0 || !(c.aux_coeff >= 0) || c.dead_tokens <= 0) {
    bad("aux_k, aux_coeff must be >= 0 and dead_tokens > 0");
  }
  // All parallelism is the pool's: OpenBLAS runs single-threaded inside each work item.
  openblas_set_num_threads(1);
  Impl& s = *impl_;
  s.cfg = c;
  s.pool = &pool;
  s.aux_k = std::min(c.d_sae, c.aux_k > 0 ? c.aux_k : std::max<int64_t>(1, c.d_in / 2));
  s.rng.seed(c.seed);
  const int64_t d_in = c.d_in, d_sae = c.d_sae;
  s.p = Params::zeros(c.arch, d_in, d_sae);
  s.m = Params::zeros(c.arch, d_in, d_sae);
  s.v = Params::zeros(c.arch, d_in, d_sae);
  // Decoder rows: random directions, unit norm (OpenAI, Bussmann, Gemma Scope) or norm 0.1
  // (Anthropic: "a fixed L2 norm of 0.05 to 1"); the encoder is the decoder's transpose.
  for (float& w : s.p.W_dec) w = static_cast<float>(normal(s.rng));
  normalize_rows(s.p.W_dec.data(), d_sae, d_in, c.arch == SaeArch::kRelu ? 0.1f : 1.0f, pool);
  s.p.W_encT = s.p.W_dec;
  if (c.arch == SaeArch::kJumpRelu) {
    std::fill(s.p.log_threshold.begin(), s.p.log_threshold.end(),
              static_cast<float>(std::log(c.init_threshold)));
  }
  s.since_fired.assign(static_cast<size_t>(d_sae), 0);
  s.dead.assign(static_cast<size_t>(d_sae), 0);
}

void SaeTrainer::init_from_data(const float* x, int64_t n) {
  Impl& s = *impl_;
  if (s.step > 0) fail(ErrorCode::kInvalidArgument, "init_from_data: training has already started");
  if (n <= 0) fail(ErrorCode::kInvalidArgument, "init_from_data: empty sample");
  const int64_t d = s.cfg.d_in;
  double sq = 0;
  for (int64_t i = 0; i < n * d; ++i) sq += double(x[i]) * x[i];
  s.scale = 1.0;
  if (s.cfg.normalize_inputs && sq > 0) s.scale = std::sqrt(double(d) * double(n) / sq);
  // b_dec: the mean, or the geometric median (Weiszfeld's iteration from the mean), of the
  // scaled sample.
  std::vector<double> c(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < d; ++i) c[i] += x[r * d + i] * s.scale;
  }
  for (double& v : c) v /= double(n);
  if (s.cfg.b_dec_init_median) {
    std::vector<double> next(static_cast<size_t>(d));
    for (int it = 0; it < 200; ++it) {
      std::fill(next.begin(), next.end(), 0.0);
      double wsum = 0;
      for (int64_t r = 0; r < n; ++r) {
        double dist = 0;
        for (int64_t i = 0; i < d; ++i) {
          const double t = x[r * d + i] * s.scale - c[i];
          dist += t * t;
        }
        const double w = 1.0 / std::max(std::sqrt(dist), 1e-12);
        wsum += w;
        for (int64_t i = 0; i < d; ++i) next[i] += w * x[r * d + i] * s.scale;
      }
      double moved = 0, norm = 0;
      for (int64_t i = 0; i < d; ++i) {
        next[i] /= wsum;
        moved += (next[i] - c[i]) * (next[i] - c[i]);
        norm += next[i] * next[i];
      }
      c = next;
      if (moved <= 1e-14 * std::max(norm, 1.0)) break;
    }
  }
  for (int64_t i = 0; i < d; ++i) s.p.b_dec[i] = static_cast<float>(c[i]);
  s.initialized = true;
}

SaeStepStats SaeTrainer::step(const float* x, int64_t n) {
  Impl& s = *impl_;
  const SaeTrainConfig& c = s.cfg;
  if (!s.initialized) fail(ErrorCode::kInvalidArgument, "sae training: init_from_data first");
  if (n <= 0) fail(ErrorCode::kInvalidArgument, "sae training: empty batch");
  ThreadPool& pool = *s.pool;
  const int64_t d_in = c.d_in, d_sae = c.d_sae;
  s.xs.resize(static_cast<size_t>(n * d_in));
  const float sc = static_cast<float>(s.scale);
  for (int64_t i = 0; i < n * d_in; ++i) s.xs[i] = x[i] * sc;

  const bool topk_like = c.arch == SaeArch::kTopK || c.arch == SaeArch::kBatchTopK;
  for (int64_t j = 0; j < d_sae; ++j) s.dead[j] = s.since_fired[j] >= c.dead_tokens;
  sae_train::LossOptions opt;
  opt.arch = c.arch;
  opt.d_in = d_in;
  opt.d_sae = d_sae;
  opt.k = c.k;
  opt.aux_k = s.aux_k;
  opt.aux_coeff = c.aux_coeff;
  opt.sparsity_coeff = s.sparsity_coeff_at(s.step);
  opt.bandwidth = c.bandwidth;
  opt.dead = topk_like && c.aux_coeff > 0 ? s.dead.data() : nullptr;
  const sae_train::LossResult r =
      sae_train::loss_and_grads(opt, s.p, s.xs.data(), n, s.ws, s.g, pool);

  const bool unit = sae_train::unit_norm_decoder(c.arch);
  if (unit) {
    // Remove the gradient's component along each (unit) decoder row.
    pool.parallel_for(d_sae, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const float* w = s.p.W_dec.data() + j * d_in;
        float* gr = s.g.W_dec.data() + j * d_in;
        float dp = 0;
        for (int64_t i = 0; i < d_in; ++i) dp += gr[i] * w[i];
        for (int64_t i = 0; i < d_in; ++i) gr[i] -= dp * w[i];
      }
    });
  }
  // Global gradient-norm clipping (relu by default). Partial sums per fixed chunk, added in
  // chunk order: the same result whatever the pool size.
  const double clip = c.grad_clip >= 0 ? c.grad_clip : (c.arch == SaeArch::kRelu ? 1.0 : 0.0);
  if (clip > 0) {
    double sq = 0.0;
    for (std::vector<float>* g : s.g.all()) {
      const int64_t len = static_cast<int64_t>(g->size());
      const int64_t chunks = (len + kChunk - 1) / kChunk;
      std::vector<double> part(static_cast<size_t>(chunks), 0.0);
      const float* gw = g->data();
      pool.parallel_for(chunks, [&](int64_t c0, int64_t c1) {
        for (int64_t ch = c0; ch < c1; ++ch) {
          double acc = 0.0;
          for (int64_t i = ch * kChunk; i < std::min(len, (ch + 1) * kChunk); ++i)
            acc += double(gw[i]) * gw[i];
          part[static_cast<size_t>(ch)] = acc;
        }
      });
      for (double x : part) sq += x;
    }
    const double norm = std::sqrt(sq);
    if (norm > clip) {
      const float f = static_cast<float>(clip / norm);
      for (std::vector<float>* g : s.g.all())
        for (float& x : *g) x *= f;
    }
  }
  // Adam.
  const double lr = s.lr_at(s.step);
  const double t = double(s.step + 1);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(kBeta1, t)));
  const float inv_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(kBeta2, t)));
  const float b1 = float(kBeta1), b2 = float(kBeta2), eps = float(kAdamEps);
  auto ps = s.p.all();
  auto ms = s.m.all();
  auto vs = s.v.all();
  auto gs = s.g.all();
  for (size_t q = 0; q < ps.size(); ++q) {
    float* pw = ps[q]->data();
    float* mw = ms[q]->data();
    float* vw = vs[q]->data();
    const float* gw = gs[q]->data();
    const int64_t len = static_cast<int64_t>(ps[q]->size());
    if (len == 0) continue;
    pool.parallel_for((len + kChunk - 1) / kChunk, [&](int64_t c0, int64_t c1) {
      const int64_t e1 = std::min(len, c1 * kChunk);
      for (int64_t i = c0 * kChunk; i < e1; ++i) {
        mw[i] = b1 * mw[i] + (1 - b1) * gw[i];
        vw[i] = b2 * vw[i] + (1 - b2) * gw[i] * gw[i];
        pw[i] -= step_size * mw[i] / (std::sqrt(vw[i]) * inv_bc2 + eps);
      }
    });
  }
  if (unit) normalize_rows(s.p.W_dec.data(), d_sae, d_in, 1.0f, pool);

  // Dead-latent accounting and the batchtopk inference threshold.
  int64_t n_dead = 0, n_dense = 0;
  for (int64_t j = 0; j < d_sae; ++j) {
    s.since_fired[j] = r.fired[j] > 0 ? 0 : s.since_fired[j] + n;
    n_dead += s.since_fired[j] >= c.dead_tokens;
    n_dense += double(r.fired[j]) > 0.1 * double(n);
  }
  if (c.arch == SaeArch::kBatchTopK && r.min_kept >= 0) {
    s.threshold_ema = kThresholdEma * s.threshold_ema + (1 - kThresholdEma) * r.min_kept;
    ++s.threshold_updates;
  }
  SaeStepStats st;
  st.loss = r.loss;
  st.mse = r.mse;
  st.fvu = r.fvu;
  st.l0 = r.l0;
  st.aux_loss = r.aux;
  st.sparsity_loss = r.sparsity;
  st.lr = lr;
  st.dead_frac = double(n_dead) / double(d_sae);
  st.dense_frac = double(n_dense) / double(d_sae);
  ++s.step;
  return st;
}

int64_t SaeTrainer::steps_done() const { return impl_->step; }

double SaeTrainer::input_scale() const { return impl_->scale; }

double SaeTrainer::batch_threshold() const { return impl_->batch_threshold(); }

std::vector<int64_t> SaeTrainer::tokens_since_fired() const { return impl_->since_fired; }

Sae SaeTrainer::export_sae() const {
  const Impl& s = *impl_;
  const SaeTrainConfig& c = s.cfg;
  const int64_t d_in = c.d_in, d_sae = c.d_sae;
  Sae out = Sae::zeros(c.arch, d_in, d_sae);
  out.k = (c.arch == SaeArch::kTopK || c.arch == SaeArch::kBatchTopK) ? double(c.k) : 0.0;
  float* we = out.W_enc.mutable_data<float>();
  for (int64_t j = 0; j < d_sae; ++j) {
    for (int64_t i = 0; i < d_in; ++i) we[i * d_sae + j] = s.p.W_encT[j * d_in + i];
  }
  std::copy(s.p.b_enc.begin(), s.p.b_enc.end(), out.b_enc.mutable_data<float>());
  std::copy(s.p.W_dec.begin(), s.p.W_dec.end(), out.W_dec.mutable_data<float>());
  std::copy(s.p.b_dec.begin(), s.p.b_dec.end(), out.b_dec.mutable_data<float>());
  if (c.arch == SaeArch::kJumpRelu) {
    float* th = out.threshold.mutable_data<float>();
    for (int64_t j = 0; j < d_sae; ++j) th[j] = std::exp(s.p.log_threshold[j]);
  } else if (c.arch == SaeArch::kBatchTopK) {
    const float th = static_cast<float>(s.batch_threshold());
    std::fill_n(out.threshold.mutable_data<float>(), d_sae, th);
  }
  out.apply_b_dec_to_input = sae_train::applies_b_dec_to_input(c.arch);
  out.normalize_activations = SaeNorm::kNone;
  if (s.scale != 1.0) {
    out.norm_scaling_factor = s.scale;
    out.fold_norm_scaling_factor();
  }
  return out;
}

// State file (little-endian, this machine's layout; written through PATH.tmp + rename):
//   "GBSAETRN" | u32 version | u8 arch | i64 d_in, d_sae, k, aux_k
//   | i64 step | u8 initialized | f64 scale | f64 threshold_ema | i64 threshold_updates
//   | u64 rng text length | rng text (std::mt19937_64 operator<<)
//   | i64 since_fired [d_sae]
//   | for weights, Adam m, Adam v: for W_encT, b_enc, W_dec, b_dec, log_threshold:
//       u64 count | f32 [count]
void SaeTrainer::save_state(const std::string& path) const {
  const Impl& s = *impl_;
  AtomicFile f(path);
  const auto put = [&](const auto& v) { f.write(&v, sizeof(v)); };
  f.write(kTrainStateMagic, sizeof(kTrainStateMagic));
  put(kStateVersion);
  put(static_cast<uint8_t>(s.cfg.arch));
  put(s.cfg.d_in);
  put(s.cfg.d_sae);
  put(s.cfg.k);
  put(s.aux_k);
  put(s.step);
  put(static_cast<uint8_t>(s.initialized));
  put(s.scale);
  put(s.threshold_ema);
  put(s.threshold_updates);
  std::ostringstream rng;
  rng << s.rng;
  const std::string rs = rng.str();
  put(static_cast<uint64_t>(rs.size()));
  f.write(rs.data(), rs.size());
  f.write(s.since_fired.data(), s.since_fired.size() * sizeof(int64_t));
  for (const Params* ps : {&s.p, &s.m, &s.v}) {
    for (const std::vector<float>* t : ps->all()) {
      put(static_cast<uint64_t>(t->size()));
      f.write(t->data(), t->size() * sizeof(float));
    }
  }
  f.commit();
}

void SaeTrainer::load_state(const std::string& path) {
  Impl& s = *impl_;
  const auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  if (r.read_string(sizeof(kTrainStateMagic), "magic") != std::string(kTrainStateMagic, sizeof(kTrainStateMagic))) {
    r.fail("not a glassbox SAE training state (bad magic)");
  }
  if (r.read<uint32_t>("version") != kStateVersion) r.fail("unsupported state version");
  const auto arch = r.read<uint8_t>("arch");
  const auto d_in = r.read<int64_t>("d_in");
  const auto d_sae = r.read<int64_t>("d_sae");
  const auto k = r.read<int64_t>("k");
  const auto aux_k = r.read<int64_t>("aux_k");
  if (arch != static_cast<uint8_t>(s.cfg.arch) || d_in != s.cfg.d_in || d_sae != s.cfg.d_sae ||
      k != s.cfg.k || aux_k != s.aux_k) {
    fail(ErrorCode::kInvalidArgument,
         path + ": training state does not match the config (arch, d_in, d_sae, k or aux_k)");
  }
  Impl t;  // read everything before touching this trainer
  t.step = r.read<int64_t>("step");
  t.initialized = r.read<uint8_t>("initialized") != 0;
  t.scale = r.read<double>("scale");
  t.threshold_ema = r.read<double>("threshold_ema");
  t.threshold_updates = r.read<int64_t>("threshold_updates");
  const auto rng_len = r.read<uint64_t>("rng length");
  if (rng_len > 1 << 16) r.fail("rng state too long");
  std::istringstream rng(r.read_string(static_cast<size_t>(rng_len), "rng"));
  rng >> t.rng;
  if (!rng) r.fail("bad rng state");
  t.since_fired.resize(static_cast<size_t>(d_sae));
  std::memcpy(t.since_fired.data(), r.take(size_t(d_sae) * sizeof(int64_t), "since_fired"),
              size_t(d_sae) * sizeof(int64_t));
  t.p = Params::zeros(s.cfg.arch, d_in, d_sae);
  t.m = t.p;
  t.v = t.p;
  for (Params* ps : {&t.p, &t.m, &t.v}) {
    for (std::vector<float>* v : ps->all()) {
      if (r.read<uint64_t>("tensor size") != v->size()) r.fail("tensor size mismatch");
      if (v->empty()) continue;  // e.g. no threshold: memcpy may not see a null pointer
      std::memcpy(v->data(), r.take(v->size() * sizeof(float), "tensor"),
                  v->size() * sizeof(float));
    }
  }
  if (r.remaining() != 0) r.fail("trailing bytes");
  s.step = t.step;
  s.initialized = t.initialized;
  s.scale = t.scale;
  s.threshold_ema = t.threshold_ema;
  s.threshold_updates = t.threshold_updates;
  s.rng = t.rng;
  s.since_fired = std::move(t.since_fired);
  s.p = std::move(t.p);
  s.m = std::move(t.m);
  s.v = std::move(t.v);
}

}  // namespace glassbox
