#include "sae/train_grad.h"

#include <cblas.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <functional>

namespace glassbox::sae_train {
namespace {

// An active (or otherwise gradient-carrying) pre-activation of one row.
enum : int32_t { kMain = 1, kAux = 2, kWindow = 4 };
struct Entry {
  int32_t j;     // latent
  int32_t kind;  // kMain | kAux | kWindow (kMain and kWindow may combine)
  float a;       // activation (main: the latent's value; aux: its AuxK value)
  float dpre;    // d loss / d pre through this entry
  float dth;     // jumprelu: d loss / d theta contributed through this entry
};

// Where latent j's entries are: row and index within that row's block.
struct Ref {
  int32_t row;
  uint32_t idx;
};

struct Block {
  std::vector<Entry> entries;
  std::vector<int64_t> row_off;                    // [rows + 1] into entries
  std::vector<double> sum_g, sum_h, sum_e, sum_x;  // [d_in] partial sums over the block's rows
  double sq_e = 0, sq_x = 0, sq_aux = 0, sparsity = 0;
  int64_t count_eq = 0;    // batchtopk: values equal to the cut
  int64_t n_positive = 0;  // batchtopk
};

struct Cand {
  float v;
  int32_t j;
};
inline bool better(const Cand& a, const Cand& b) { return a.v > b.v || (a.v == b.v && a.j < b.j); }

// Keeps the m best candidates (by value, then lower index) of buf; returns the worst kept.
Cand prune(std::vector<Cand>& buf, int64_t m) {
  std::nth_element(buf.begin(), buf.begin() + (m - 1), buf.end(), better);
  buf.resize(static_cast<size_t>(m));
  return buf[static_cast<size_t>(m - 1)];
}

// The m largest of v[j] + b[j], j in [0, d) (ties: lower index), into buf, unordered. m >= 1.
// Adding the encoder bias here saves a pass over the block's pre-activations.
void top_m(const float* v, const float* b, int64_t d, int64_t m, std::vector<Cand>& buf) {
  buf.clear();
  if (m >= d) {
    for (int64_t j = 0; j < d; ++j) buf.push_back({v[j] + b[j], static_cast<int32_t>(j)});
    return;
  }
  for (int64_t j = 0; j < m; ++j) buf.push_back({v[j] + b[j], static_cast<int32_t>(j)});
  float t = prune(buf, m).v;
  const size_t cap = static_cast<size_t>(std::max<int64_t>(4 * m, 64));
  int64_t j = m;
  const auto push = [&](int64_t jj, float x) {
    buf.push_back({x, static_cast<int32_t>(jj)});
    if (buf.size() >= cap) t = prune(buf, m).v;
  };
#if defined(__AVX512F__)
  for (; j < m + ((d - m) & ~int64_t{15}); j += 16) {
    const __m512 x = _mm512_add_ps(_mm512_loadu_ps(v + j), _mm512_loadu_ps(b + j));
    __mmask16 mask = _mm512_cmp_ps_mask(x, _mm512_set1_ps(t), _CMP_GT_OQ);
    while (mask) {
      const int bit = __builtin_ctz(mask);
      mask &= static_cast<__mmask16>(mask - 1);
      const float xv = v[j + bit] + b[j + bit];
      if (xv > t) push(j + bit, xv);
    }
  }
#endif
  for (; j < d; ++j) {
    const float xv = v[j] + b[j];
    if (xv > t) push(j, xv);
  }
  if (static_cast<int64_t>(buf.size()) > m) prune(buf, m);
}

// The m largest of v[j] + b[j] over a list of latents j (the dead ones); same rule.
void top_m_of(const float* v, const float* b, const std::vector<int32_t>& idx, int64_t m,
              std::vector<Cand>& buf) {
  buf.clear();
  const int64_t d = static_cast<int64_t>(idx.size());
  if (m >= d) {
    for (int32_t j : idx) buf.push_back({v[j] + b[j], j});
    return;
  }
  for (int64_t i = 0; i < m; ++i) buf.push_back({v[idx[i]] + b[idx[i]], idx[i]});
  float t = prune(buf, m).v;
  const size_t cap = static_cast<size_t>(std::max<int64_t>(4 * m, 64));
  for (int64_t i = m; i < d; ++i) {
    const float x = v[idx[i]] + b[idx[i]];
    if (x > t) {
      buf.push_back({x, idx[i]});
      if (buf.size() >= cap) t = prune(buf, m).v;
    }
  }
  if (static_cast<int64_t>(buf.size()) > m) prune(buf, m);
}

// Dot product with 16 independent partial sums (vectorisable without reassociation flags); the
// order is fixed, so results do not depend on threads.
float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = 0;
  for (int l = 0; l < 16; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// One block's encoder: pre [rows, d_sae] = src @ W_encT^T (+ b_enc when add_bias; otherwise the
// caller adds it while reading).
void encode_block(const Params& p, int64_t d_in, int64_t d_sae, const float* src, int64_t rows,
                  float* pre, bool add_bias = true) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
              static_cast<int>(d_sae), static_cast<int>(d_in), 1.0f, src, static_cast<int>(d_in),
              p.W_encT.data(), static_cast<int>(d_in), 0.0f, pre, static_cast<int>(d_sae));
  if (!add_bias) return;
  const float* b = p.b_enc.data();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = pre + r * d_sae;
    for (int64_t j = 0; j < d_sae; ++j) row[j] += b[j];
  }
}

}  // namespace

struct Workspace::Impl {
  std::vector<float> sae_in;    // [n, d_in] x - b_dec (when the arch subtracts it)
  std::vector<float> G;         // [n, d_in] first x_hat - x, then d loss / d x_hat
  std::vector<float> H;         // [n, d_in] d aux / d e_hat (AuxK)
  std::vector<float> pre_full;  // [n, d_sae] batchtopk only
  std::vector<Block> blocks;
  std::vector<int64_t> lat_off;  // [d_sae + 1]
  std::vector<Ref> refs;
  std::vector<float> positives;  // batchtopk
};

Workspace::Workspace() : impl_(std::make_unique<Impl>()) {}
Workspace::~Workspace() = default;

Params Params::zeros(SaeArch arch, int64_t d_in, int64_t d_sae) {
  Params p;
  p.W_encT.assign(static_cast<size_t>(d_sae * d_in), 0.0f);
  p.b_enc.assign(static_cast<size_t>(d_sae), 0.0f);
  p.W_dec.assign(static_cast<size_t>(d_sae * d_in), 0.0f);
  p.b_dec.assign(static_cast<size_t>(d_in), 0.0f);
  if (arch == SaeArch::kJumpRelu) p.log_threshold.assign(static_cast<size_t>(d_sae), 0.0f);
  return p;
}

std::vector<std::vector<float>*> Params::all() {
  return {&W_encT, &b_enc, &W_dec, &b_dec, &log_threshold};
}
std::vector<const std::vector<float>*> Params::all() const {
  return {&W_encT, &b_enc, &W_dec, &b_dec, &log_threshold};
}

bool applies_b_dec_to_input(SaeArch arch) { return arch != SaeArch::kRelu; }
bool unit_norm_decoder(SaeArch arch) { return arch != SaeArch::kRelu; }

void encoder_pre(SaeArch arch, const Params& p, int64_t d_in, int64_t d_sae, const float* x,
                 int64_t n, float* out, ThreadPool& pool) {
  const bool sub = applies_b_dec_to_input(arch);
  const int64_t n_blocks = (n + kRowBlock - 1) / kRowBlock;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    std::vector<float> src(static_cast<size_t>(kRowBlock * d_in));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
      const float* s = x + r0 * d_in;
      if (sub) {
        for (int64_t i = 0; i < rows * d_in; ++i) src[i] = s[i] - p.b_dec[i % d_in];
        s = src.data();
      }
      encode_block(p, d_in, d_sae, s, rows, out + r0 * d_sae);
    }
  });
}

LossResult loss_and_grads(const LossOptions& opt, const Params& p, const float* x, int64_t n,
                          Workspace& workspace, Params& grads, ThreadPool& pool) {
  const SaeArch arch = opt.arch;
  const int64_t d_in = opt.d_in, d_sae = opt.d_sae;
  GLASSBOX_ASSERT(n >= 1 && d_in >= 1 && d_sae >= 1);
  GLASSBOX_ASSERT(static_cast<int64_t>(p.W_encT.size()) == d_sae * d_in);
  GLASSBOX_ASSERT(arch != SaeArch::kJumpRelu ||
                  static_cast<int64_t>(p.log_threshold.size()) == d_sae);
  Workspace::Impl& ws = workspace.impl();
  const bool sub = applies_b_dec_to_input(arch);
  const bool topk_like = arch == SaeArch::kTopK || arch == SaeArch::kBatchTopK;
  const int64_t n_blocks = (n + kRowBlock - 1) / kRowBlock;
  const size_t nd = static_cast<size_t>(n * d_in);
  const double inv_n = 1.0 / static_cast<double>(n);

  std::vector<int32_t> dead_idx;
  if (topk_like && opt.dead != nullptr && opt.aux_k > 0) {
    for (int64_t j = 0; j < d_sae; ++j) {
      if (opt.dead[j]) dead_idx.push_back(static_cast<int32_t>(j));
    }
  }
  const bool aux = !dead_idx.empty();
  const int64_t aux_m = std::min<int64_t>(opt.aux_k, static_cast<int64_t>(dead_idx.size()));

  // Per-latent constants: decoder row norms (relu), thresholds (jumprelu).
  std::vector<float> dec_norm, theta;
  if (arch == SaeArch::kRelu) {
    dec_norm.resize(static_cast<size_t>(d_sae));
    for (int64_t j = 0; j < d_sae; ++j) {
      const float* w = p.W_dec.data() + j * d_in;
      dec_norm[j] = std::sqrt(dot(w, w, d_in));
    }
  } else if (arch == SaeArch::kJumpRelu) {
    theta.resize(static_cast<size_t>(d_sae));
    for (int64_t j = 0; j < d_sae; ++j) theta[j] = std::exp(p.log_threshold[j]);
  }
  const float bw = static_cast<float>(opt.bandwidth);
  const float* b_enc = p.b_enc.data();
  // batchtopk keeps pre with the bias added; its AuxK scan adds nothing more.
  std::vector<float> zero_bias(arch == SaeArch::kBatchTopK ? static_cast<size_t>(d_sae) : 0, 0.0f);

  if (sub) ws.sae_in.resize(nd);
  ws.G.resize(nd);
  if (aux) ws.H.resize(nd);
  if (arch == SaeArch::kBatchTopK) ws.pre_full.resize(static_cast<size_t>(n * d_sae));
  ws.blocks.resize(static_cast<size_t>(n_blocks));
  const float* sae_in = sub ? ws.sae_in.data() : x;

  // Adds the AuxK entries of one row (pre = that row's pre-activations).
  // (pre = that row's pre-activations, without b_enc when bias is given).
  const auto add_aux = [&](const float* pre, const float* bias, std::vector<Cand>& buf,
                           Block& blk) {
    if (!aux) return;
    top_m_of(pre, bias, dead_idx, aux_m, buf);
    std::sort(buf.begin(), buf.end(), [](const Cand& a, const Cand& b) { return a.j < b.j; });
    for (const Cand& c : buf) {
      if (c.v > 0) blk.entries.push_back({c.j, kAux, c.v, 0, 0});
    }
  };

  // Phase 1: encoder per block, selection of each row's entries (batchtopk: pre only).
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    std::vector<float> pre_buf;
    if (arch != SaeArch::kBatchTopK) pre_buf.resize(static_cast<size_t>(kRowBlock * d_sae));
    std::vector<Cand> buf;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
      if (sub) {
        for (int64_t r = r0; r < r0 + rows; ++r) {
          for (int64_t i = 0; i < d_in; ++i) {
            ws.sae_in[r * d_in + i] = x[r * d_in + i] - p.b_dec[i];
          }
        }
      }
      float* pre = arch == SaeArch::kBatchTopK ? ws.pre_full.data() + r0 * d_sae : pre_buf.data();
      // The bias is added while scanning, except for batchtopk, whose pre is kept.
      encode_block(p, d_in, d_sae, sae_in + r0 * d_in, rows, pre, arch == SaeArch::kBatchTopK);
      Block& blk = ws.blocks[b];
      blk.entries.clear();
      blk.row_off.assign(static_cast<size_t>(rows + 1), 0);
      if (arch == SaeArch::kBatchTopK) {
        int64_t pos = 0;
        for (int64_t i = 0; i < rows * d_sae; ++i) pos += pre[i] > 0;
        blk.n_positive = pos;
        continue;
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float* pr = pre + r * d_sae;
        if (arch == SaeArch::kTopK) {
          top_m(pr, b_enc, d_sae, opt.k, buf);
          std::sort(buf.begin(), buf.end(), [](const Cand& a, const Cand& c) { return a.j < c.j; });
          for (const Cand& c : buf) {
            if (c.v > 0) blk.entries.push_back({c.j, kMain, c.v, 0, 0});
          }
          add_aux(pr, b_enc, buf, blk);
        } else if (arch == SaeArch::kRelu) {
          for (int64_t j = 0; j < d_sae; ++j) {
            const float v = pr[j] + b_enc[j];
            if (v > 0) blk.entries.push_back({static_cast<int32_t>(j), kMain, v, 0, 0});
          }
        } else {  // jumprelu
          for (int64_t j = 0; j < d_sae; ++j) {
            const float v = pr[j] + b_enc[j];
            const float u = (v - theta[j]) / bw;
            const int32_t kind = (v > theta[j] ? kMain : 0) | (u > -0.5f && u < 0.5f ? kWindow : 0);
            if (kind) {
              blk.entries.push_back(
                  {static_cast<int32_t>(j), kind, (kind & kMain) ? v : 0.0f, 0, 0});
            }
          }
        }
        blk.row_off[r + 1] = static_cast<int64_t>(blk.entries.size());
      }
    }
  });

  LossResult res;
  // Batch top-k: the cut is the (k n)-th largest positive pre-activation of the batch.
  if (arch == SaeArch::kBatchTopK) {
    int64_t n_pos = 0;
    for (const Block& blk : ws.blocks) n_pos += blk.n_positive;
    const int64_t m = std::min<int64_t>(opt.k * n, n_pos);
    float cut = 0;        // keep pre > cut, and pre == cut up to the allowance
    int64_t n_equal = 0;  // how many values equal to the cut are kept (lowest flat index first)
    bool keep_all = m == n_pos;
    if (!keep_all && m > 0) {
      ws.positives.clear();
      ws.positives.reserve(static_cast<size_t>(n_pos));
      for (int64_t i = 0; i < n * d_sae; ++i) {
        if (ws.pre_full[i] > 0) ws.positives.push_back(ws.pre_full[i]);
      }
      std::nth_element(ws.positives.begin(), ws.positives.begin() + (m - 1), ws.positives.end(),
                       std::greater<float>());
      cut = ws.positives[m - 1];
      int64_t n_greater = 0;
      for (float v : ws.positives) n_greater += v > cut;
      n_equal = m - n_greater;
    }
    if (m == 0) cut = INFINITY;
    // Allowance of equal values per block, in block order.
    pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
        int64_t c = 0;
        if (!keep_all) {
          for (int64_t i = r0 * d_sae; i < (r0 + rows) * d_sae; ++i) c += ws.pre_full[i] == cut;
        }
        ws.blocks[b].count_eq = c;
      }
    });
    std::vector<int64_t> allow(static_cast<size_t>(n_blocks));
    int64_t left = n_equal;
    for (int64_t b = 0; b < n_blocks; ++b) {
      allow[b] = std::min(left, ws.blocks[b].count_eq);
      left -= allow[b];
    }
    pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
      std::vector<Cand> buf;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
        Block& blk = ws.blocks[b];
        int64_t eq_left = allow[b];
        for (int64_t r = 0; r < rows; ++r) {
          const float* pr = ws.pre_full.data() + (r0 + r) * d_sae;
          for (int64_t j = 0; j < d_sae; ++j) {
            const float v = pr[j];
            bool keep = v > 0 && (keep_all || v > cut);
            if (!keep && !keep_all && v == cut && v > 0 && eq_left > 0) {
              keep = true;
              --eq_left;
            }
            if (keep) blk.entries.push_back({static_cast<int32_t>(j), kMain, v, 0, 0});
          }
          add_aux(pr, zero_bias.data(), buf, blk);
          blk.row_off[r + 1] = static_cast<int64_t>(blk.entries.size());
        }
      }
    });
    if (m > 0) {
      // The smallest kept activation (the cut unless every positive value is kept).
      float mn = INFINITY;
      if (keep_all) {
        for (const Block& blk : ws.blocks) {
          for (const Entry& e : blk.entries) {
            if (e.kind & kMain) mn = std::min(mn, e.a);
          }
        }
      } else {
        mn = cut;
      }
      res.min_kept = mn;
    }
  }

  // Phase 2: reconstruction; G = x_hat - x; partial sums for the losses and statistics.
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    std::vector<float> xh(static_cast<size_t>(d_in));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
      Block& blk = ws.blocks[b];
      blk.sum_e.assign(static_cast<size_t>(d_in), 0.0);
      blk.sum_x.assign(static_cast<size_t>(d_in), 0.0);
      blk.sq_e = blk.sq_x = blk.sparsity = 0;
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(p.b_dec.data(), d_in, xh.data());
        for (int64_t e = blk.row_off[r]; e < blk.row_off[r + 1]; ++e) {
          const Entry& en = blk.entries[e];
          if (!(en.kind & kMain)) continue;
          axpy(en.a, p.W_dec.data() + int64_t{en.j} * d_in, xh.data(), d_in);
          if (arch == SaeArch::kRelu) blk.sparsity += double(en.a) * dec_norm[en.j];
          if (arch == SaeArch::kJumpRelu) blk.sparsity += 1;
        }
        const float* xr = x + (r0 + r) * d_in;
        float* g = ws.G.data() + (r0 + r) * d_in;
        double se = 0, sx = 0;
        for (int64_t i = 0; i < d_in; ++i) {
          g[i] = xh[i] - xr[i];
          se += double(g[i]) * g[i];
          sx += double(xr[i]) * xr[i];
          blk.sum_e[i] += g[i];
          blk.sum_x[i] += xr[i];
        }
        blk.sq_e += se;
        blk.sq_x += sx;
      }
    }
  });
  double sq_e = 0, sq_x = 0, sparsity = 0;
  std::vector<double> sum_e(static_cast<size_t>(d_in), 0.0), sum_x(static_cast<size_t>(d_in), 0.0);
  for (const Block& blk : ws.blocks) {
    sq_e += blk.sq_e;
    sq_x += blk.sq_x;
    sparsity += blk.sparsity;
    for (int64_t i = 0; i < d_in; ++i) {
      sum_e[i] += blk.sum_e[i];
      sum_x[i] += blk.sum_x[i];
    }
  }
  double mean_sq_e = 0, mean_sq_x = 0;
  for (int64_t i = 0; i < d_in; ++i) {
    mean_sq_e += sum_e[i] * sum_e[i] * inv_n;
    mean_sq_x += sum_x[i] * sum_x[i] * inv_n;
  }
  res.mse = sq_e * inv_n;
  res.fvu = sq_x - mean_sq_x > 0 ? sq_e / (sq_x - mean_sq_x) : 0.0;
  res.sparsity = opt.sparsity_coeff * sparsity * inv_n;
  const double var_e = (sq_e - mean_sq_e) * inv_n;  // mean_r ||e_r - mean(e)||^2
  const bool use_aux = aux && var_e > 0;
  const float g_scale = static_cast<float>(2.0 * inv_n);
  const float h_scale = use_aux ? static_cast<float>(opt.aux_coeff * 2.0 * inv_n / var_e) : 0.0f;
  const float l1_scale = static_cast<float>(opt.sparsity_coeff * inv_n);

  // Phase 3: d loss / d x_hat (G), AuxK residual fit (H), d loss / d pre of every entry.
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    std::vector<float> eh(static_cast<size_t>(d_in));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, rows = std::min(kRowBlock, n - r0);
      Block& blk = ws.blocks[b];
      blk.sum_g.assign(static_cast<size_t>(d_in), 0.0);
      blk.sum_h.assign(static_cast<size_t>(d_in), 0.0);
      blk.sq_aux = 0;
      for (int64_t r = 0; r < rows; ++r) {
        float* g = ws.G.data() + (r0 + r) * d_in;  // holds x_hat - x
        float* h = use_aux ? ws.H.data() + (r0 + r) * d_in : nullptr;
        if (use_aux) {
          // e_hat - target = aux_acts @ W_dec - (x - x_hat) = aux_acts @ W_dec + g
          std::copy_n(g, d_in, eh.data());
          for (int64_t e = blk.row_off[r]; e < blk.row_off[r + 1]; ++e) {
            const Entry& en = blk.entries[e];
            if (en.kind & kAux) axpy(en.a, p.W_dec.data() + int64_t{en.j} * d_in, eh.data(), d_in);
          }
          double s = 0;
          for (int64_t i = 0; i < d_in; ++i) {
            s += double(eh[i]) * eh[i];
            h[i] = h_scale * eh[i];
            blk.sum_h[i] += h[i];
          }
          blk.sq_aux += s;
        }
        for (int64_t i = 0; i < d_in; ++i) {
          g[i] *= g_scale;
          blk.sum_g[i] += g[i];
        }
        for (int64_t e = blk.row_off[r]; e < blk.row_off[r + 1]; ++e) {
          Entry& en = blk.entries[e];
          const float* w = p.W_dec.data() + int64_t{en.j} * d_in;
          if (en.kind & kAux) {
            en.dpre = use_aux ? dot(h, w, d_in) : 0.0f;
            continue;
          }
          const float dz = dot(g, w, d_in);  // d mse / d a
          if (en.kind & kMain) {
            en.dpre = arch == SaeArch::kRelu ? dz + l1_scale * dec_norm[en.j] : dz;
          }
          if (en.kind & kWindow) {
            const float th = theta[en.j];
            en.dth = -(th / bw) * dz - l1_scale / bw;
          }
        }
      }
    }
  });
  if (use_aux) {
    double sq_aux = 0;
    for (const Block& blk : ws.blocks) sq_aux += blk.sq_aux;
    res.aux = opt.aux_coeff * sq_aux * inv_n / var_e;
  }
  res.loss = res.mse + res.sparsity + res.aux;

  // Phase 4: per-latent gradients from the entries, gathered by latent in row order.
  ws.lat_off.assign(static_cast<size_t>(d_sae + 1), 0);
  for (const Block& blk : ws.blocks) {
    for (const Entry& e : blk.entries) ++ws.lat_off[e.j + 1];
  }
  for (int64_t j = 0; j < d_sae; ++j) ws.lat_off[j + 1] += ws.lat_off[j];
  ws.refs.resize(static_cast<size_t>(ws.lat_off[d_sae]));
  {
    std::vector<int64_t> pos(ws.lat_off.begin(), ws.lat_off.end() - 1);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const Block& blk = ws.blocks[b];
      const int64_t r0 = b * kRowBlock, rows = static_cast<int64_t>(blk.row_off.size()) - 1;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t e = blk.row_off[r]; e < blk.row_off[r + 1]; ++e) {
          ws.refs[pos[blk.entries[e].j]++] = {static_cast<int32_t>(r0 + r),
                                              static_cast<uint32_t>(e)};
        }
      }
    }
  }
  // (W_encT and W_dec rows are zeroed by the latent loop, which writes every row.)
  grads.W_encT.resize(static_cast<size_t>(d_sae * d_in));
  grads.b_enc.assign(static_cast<size_t>(d_sae), 0.0f);
  grads.W_dec.resize(static_cast<size_t>(d_sae * d_in));
  grads.b_dec.assign(static_cast<size_t>(d_in), 0.0f);
  grads.log_threshold.assign(arch == SaeArch::kJumpRelu ? static_cast<size_t>(d_sae) : 0, 0.0f);
  res.fired.assign(static_cast<size_t>(d_sae), 0);
  int64_t total_active = 0;
  pool.parallel_for(d_sae, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      float* gw_enc = grads.W_encT.data() + j * d_in;
      float* gw_dec = grads.W_dec.data() + j * d_in;
      std::fill_n(gw_enc, d_in, 0.0f);
      std::fill_n(gw_dec, d_in, 0.0f);
      float gb = 0, sum_a = 0, dth = 0;
      int64_t fired = 0;
      for (int64_t q = ws.lat_off[j]; q < ws.lat_off[j + 1]; ++q) {
        const Ref ref = ws.refs[q];
        const Entry& en = ws.blocks[ref.row / kRowBlock].entries[ref.idx];
        if (en.kind & kWindow) dth += en.dth;
        if (!(en.kind & (kMain | kAux))) continue;
        axpy(en.dpre, sae_in + int64_t{ref.row} * d_in, gw_enc, d_in);
        gb += en.dpre;
        const float* src = (en.kind & kAux) ? ws.H.data() : ws.G.data();
        if ((en.kind & kAux) && !use_aux) continue;
        axpy(en.a, src + int64_t{ref.row} * d_in, gw_dec, d_in);
        if (en.kind & kMain) {
          ++fired;
          sum_a += en.a;
        }
      }
      grads.b_enc[j] = gb;
      res.fired[j] = fired;
      if (arch == SaeArch::kRelu && sum_a > 0 && dec_norm[j] > 0) {
        axpy(l1_scale * sum_a / dec_norm[j], p.W_dec.data() + j * d_in, gw_dec, d_in);
      }
      if (arch == SaeArch::kJumpRelu) grads.log_threshold[j] = theta[j] * dth;
    }
  });
  for (int64_t j = 0; j < d_sae; ++j) total_active += res.fired[j];
  res.l0 = static_cast<double>(total_active) * inv_n;

  // Phase 5: b_dec: sum_r (G_r + H_r), minus W_enc (sum_r dpre_r) when x - b_dec is encoded.
  std::vector<double> gb(static_cast<size_t>(d_in), 0.0);
  for (const Block& blk : ws.blocks) {
    for (int64_t i = 0; i < d_in; ++i) gb[i] += blk.sum_g[i] + (use_aux ? blk.sum_h[i] : 0.0);
  }
  if (sub) {
    for (int64_t j = 0; j < d_sae; ++j) {
      const float c = grads.b_enc[j];
      if (c == 0) continue;
      const float* w = p.W_encT.data() + j * d_in;
      for (int64_t i = 0; i < d_in; ++i) gb[i] -= double(c) * w[i];
    }
  }
  for (int64_t i = 0; i < d_in; ++i) grads.b_dec[i] = static_cast<float>(gb[i]);
  return res;
}

}  // namespace glassbox::sae_train
