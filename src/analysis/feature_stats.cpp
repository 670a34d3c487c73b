#include "analysis/feature_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace glassbox {
namespace {

// Log-scale histogram: 16 bins per octave (~4.4% wide) from 2^-16 to 2^16, read straight off
// the float's bits (exponent + top 4 mantissa bits); values outside go into the end bins.
constexpr int kLogShift = 19;
constexpr int64_t kLogBins = 32 * 16;
constexpr uint32_t kLogKeyMin = 111u << 4;  // biased exponent 111 = 2^-16

int64_t log_bin(float a) {
  const int64_t key = static_cast<int64_t>(std::bit_cast<uint32_t>(a) >> kLogShift) - kLogKeyMin;
  return std::clamp<int64_t>(key, 0, kLogBins - 1);
}
// Every value in bin b is below this (the last bin is unbounded).
double log_bin_upper(int64_t b) {
  if (b == kLogBins - 1) return std::numeric_limits<double>::infinity();
  return std::bit_cast<float>(static_cast<uint32_t>(b + kLogKeyMin + 1) << kLogShift);
}

constexpr uint32_t kStateMagic = 0x53414247;  // "GBAS"

class StateWriter {
 public:
  template <typename T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_vec(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<uint8_t> out;
};

class StateReader {
 public:
  explicit StateReader(const std::vector<uint8_t>& b) : b_(b) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  template <typename T>
  std::vector<T> get_vec(uint64_t max_n) {
    const auto n = get<uint64_t>();
    if (n > max_n) bad();
    need(n * sizeof(T));
    std::vector<T> v(n);
    if (n != 0) std::memcpy(v.data(), b_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return v;
  }
  bool done() const { return at_ == b_.size(); }
  [[noreturn]] static void bad() {
    throw Error(ErrorCode::kFormat, "resume state: corrupt or from another build");
  }

 private:
  void need(uint64_t n) const {
    if (n > b_.size() - at_) bad();
  }
  const std::vector<uint8_t>& b_;
  size_t at_ = 0;
};

}  // namespace

uint64_t stats_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t sample_key(uint64_t seed, int64_t feature, int64_t doc, int64_t pos) {
  const uint64_t h = stats_mix(static_cast<uint64_t>(doc) ^ stats_mix(static_cast<uint64_t>(pos)));
  return stats_mix(seed ^ stats_mix(static_cast<uint64_t>(feature) ^ h));
}

namespace {

// Ranking of top examples: act desc, then doc asc, pos asc. As a heap comparator the worst
// example sits at the front.
template <typename E>
bool better(const E& a, const E& b) {
  if (a.act != b.act) return a.act > b.act;
  if (a.doc != b.doc) return a.doc < b.doc;
  return a.pos < b.pos;
}
template <typename E>
bool key_less(const E& a, const E& b) {
  if (a.key != b.key) return a.key < b.key;
  if (a.doc != b.doc) return a.doc < b.doc;
  return a.pos < b.pos;
}

}  // namespace

FeatureStats::FeatureStats(int64_t d_sae, const StatsOptions& o) : d_sae_(d_sae), o_(o) {
  const auto m = static_cast<size_t>(d_sae);
  count_.assign(m, 0);
  sum_.assign(m, 0.0);
  max_.assign(m, 0.0f);
  loghist_.assign(m * kLogBins, 0);
  edges_.assign(m * static_cast<size_t>(o.quantiles + 1), 0.0);
  hist_.assign(m * static_cast<size_t>(o.bins), 0);
  top_.assign(m, {});
  samples_.assign(m * static_cast<size_t>(o.quantiles), {});
}

FeatureStats::Example FeatureStats::make_example(std::span<const int32_t> ids, const float* acts,
                                                 int64_t f, int64_t row, float act, int64_t doc,
                                                 int64_t doc_offset) const {
  const int64_t n = static_cast<int64_t>(ids.size()) - 1;
  const int64_t c = row + 1;  // window position (0 = BOS)
  const int64_t lo = std::max<int64_t>(1, c - o_.context);
  const int64_t hi = std::min<int64_t>(n, c + o_.context);
  Example e;
  e.act = act;
  e.doc = doc;
  e.pos = doc_offset + row;
  e.center = static_cast<int32_t>(c - lo);
  for (int64_t p = lo; p <= hi; ++p) {
    e.ids.push_back(ids[static_cast<size_t>(p)]);
    e.acts.push_back(acts[(p - 1) * d_sae_ + f]);
  }
  return e;
}

void FeatureStats::pass1(int64_t f0, int64_t f1, std::span<const int32_t> ids, const float* acts,
                         int64_t doc, int64_t doc_offset) {
  const int64_t n = static_cast<int64_t>(ids.size()) - 1;
  std::vector<float> wmax(static_cast<size_t>(f1 - f0), 0.0f);
  std::vector<int64_t> wrow(static_cast<size_t>(f1 - f0), 0);
  std::vector<int64_t> touched;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = acts + i * d_sae_;
    for (int64_t f = f0; f < f1; ++f) {
      const float a = row[f];
      if (!(a > 0.0f)) continue;
      ++count_[f];
      sum_[f] += a;
      max_[f] = std::max(max_[f], a);
      ++loghist_[f * kLogBins + log_bin(a)];
      const size_t j = static_cast<size_t>(f - f0);
      if (a > wmax[j]) {  // strictly: the first position wins ties
        if (wmax[j] == 0.0f) touched.push_back(f);
        wmax[j] = a;
        wrow[j] = i;
      }
    }
  }
  const auto k = static_cast<size_t>(o_.top_k);
  for (int64_t f : touched) {
    const size_t j = static_cast<size_t>(f - f0);
    Example probe;
    probe.act = wmax[j];
    probe.doc = doc;
    probe.pos = doc_offset + wrow[j];
    auto& heap = top_[f];
    const auto cmp = better<Example>;
    if (heap.size() < k) {
      heap.push_back(make_example(ids, acts, f, wrow[j], wmax[j], doc, doc_offset));
      std::push_heap(heap.begin(), heap.end(), cmp);
    } else if (k > 0 && better(probe, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), cmp);
      heap.back() = make_example(ids, acts, f, wrow[j], wmax[j], doc, doc_offset);
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  }
}

int FeatureStats::band_of(int64_t f, float a) const {
  const double* e = edges_.data() + f * (o_.quantiles + 1);
  const auto it = std::lower_bound(e + 1, e + o_.quantiles + 1, static_cast<double>(a));
  return static_cast<int>(std::min<int64_t>(it - (e + 1), o_.quantiles - 1));
}

void FeatureStats::pass2(int64_t f0, int64_t f1, std::span<const int32_t> ids, const float* acts,
                         int64_t doc, int64_t doc_offset) {
  const int64_t n = static_cast<int64_t>(ids.size()) - 1;
  const auto per = static_cast<size_t>(o_.per_quantile);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = acts + i * d_sae_;
    for (int64_t f = f0; f < f1; ++f) {
      const float a = row[f];
      if (!(a > 0.0f)) continue;
      const double t = static_cast<double>(a) / max_[f] * static_cast<double>(o_.bins);
      const int64_t b = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(t)) - 1, 0, o_.bins - 1);
      ++hist_[f * o_.bins + b];
      if (per == 0) continue;
      Example probe;
      probe.doc = doc;
      probe.pos = doc_offset + i;
      probe.key = sample_key(o_.seed, f, doc, probe.pos);
      auto& heap = samples_[f * o_.quantiles + band_of(f, a)];
      const auto cmp = key_less<Example>;
      if (heap.size() < per || key_less(probe, heap.front())) {
        Example e = make_example(ids, acts, f, i, a, doc, doc_offset);
        e.key = probe.key;
        if (heap.size() == per) {
          std::pop_heap(heap.begin(), heap.end(), cmp);
          heap.pop_back();
        }
        heap.push_back(std::move(e));
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
  }
}

void FeatureStats::add_window(int pass, std::span<const int32_t> ids, const float* acts,
                              int64_t doc, int64_t doc_offset, ThreadPool& pool) {
  GLASSBOX_ASSERT(pass == 1 || pass == 2);
  if (ids.size() < 2) return;
  // Small windows run inline: waking the pool costs more than the work.
  const int64_t work = d_sae_ * static_cast<int64_t>(ids.size() - 1);
  pool.parallel_for(work < (int64_t{1} << 16) ? 1 : d_sae_, [&](int64_t f0, int64_t f1) {
    if (work < (int64_t{1} << 16)) f1 = d_sae_;
    if (pass == 1) {
      pass1(f0, f1, ids, acts, doc, doc_offset);
    } else {
      pass2(f0, f1, ids, acts, doc, doc_offset);
    }
  });
}

void FeatureStats::finish_pass1() {
  const int64_t q = o_.quantiles;
  for (int64_t f = 0; f < d_sae_; ++f) {
    double* e = edges_.data() + f * (q + 1);
    const int64_t n = count_[f];
    if (n == 0) {
      std::fill(e, e + q + 1, 0.0);
      continue;
    }
    const int32_t* h = loghist_.data() + f * kLogBins;
    e[0] = 0.0;
    e[q] = max_[f];
    int64_t b = 0, cum = h[0];
    for (int64_t j = 1; j < q; ++j) {
      const int64_t rank = (j * n + q - 1) / q;  // the ceil(j n / q)-th smallest firing value
      while (cum < rank) cum += h[++b];
      e[j] = std::min<double>(log_bin_upper(b), max_[f]);
    }
  }
}

std::vector<uint8_t> FeatureStats::serialize() const {
  StateWriter w;
  w.put(kStateMagic);
  w.put(d_sae_);
  w.put(o_);
  w.put_vec(count_);
  w.put_vec(sum_);
  w.put_vec(max_);
  w.put_vec(loghist_);
  w.put_vec(edges_);
  w.put_vec(hist_);
  const auto put_examples = [&](const std::vector<Example>& list) {
    w.put<uint64_t>(list.size());
    for (const Example& e : list) {
      w.put(e.act);
      w.put(e.doc);
      w.put(e.pos);
      w.put(e.key);
      w.put(e.center);
      w.put_vec(e.ids);
      w.put_vec(e.acts);
    }
  };
  for (const auto& l : top_) put_examples(l);
  for (const auto& l : samples_) put_examples(l);
  return std::move(w.out);
}

void FeatureStats::deserialize(const std::vector<uint8_t>& blob) {
  StateReader r(blob);
  if (r.get<uint32_t>() != kStateMagic || r.get<int64_t>() != d_sae_) StateReader::bad();
  const auto o = r.get<StatsOptions>();
  if (std::memcmp(&o, &o_, sizeof(o)) != 0) StateReader::bad();
  const auto m = static_cast<uint64_t>(d_sae_);
  const auto same = [](const auto& v, uint64_t n) {
    if (v.size() != n) StateReader::bad();
    return v;
  };
  count_ = same(r.get_vec<int64_t>(m), m);
  sum_ = same(r.get_vec<double>(m), m);
  max_ = same(r.get_vec<float>(m), m);
  loghist_ = same(r.get_vec<int32_t>(m * kLogBins), m * kLogBins);
  edges_ = same(r.get_vec<double>(edges_.size()), edges_.size());
  hist_ = same(r.get_vec<int64_t>(hist_.size()), hist_.size());
  const auto width = static_cast<uint64_t>(2 * o_.context + 1);
  const auto get_examples = [&](std::vector<Example>& list, uint64_t max_n) {
    const auto n = r.get<uint64_t>();
    if (n > max_n) StateReader::bad();
    list.assign(n, {});
    for (Example& e : list) {
      e.act = r.get<float>();
      e.doc = r.get<int64_t>();
      e.pos = r.get<int64_t>();
      e.key = r.get<uint64_t>();
      e.center = r.get<int32_t>();
      e.ids = r.get_vec<int32_t>(width);
      e.acts = r.get_vec<float>(width);
      if (e.ids.size() != e.acts.size() || e.center < 0 ||
          static_cast<size_t>(e.center) >= e.ids.size()) {
        StateReader::bad();
      }
    }
  };
  for (auto& l : top_) get_examples(l, static_cast<uint64_t>(o_.top_k));
  for (auto& l : samples_) get_examples(l, static_cast<uint64_t>(o_.per_quantile));
  if (!r.done()) StateReader::bad();
}

FeatureExample FeatureStats::to_public(const Example& e) {
  FeatureExample x;
  x.act = e.act;
  x.doc = e.doc;
  x.pos = e.pos;
  x.center = e.center;
  x.ids = e.ids;
  x.acts = e.acts;
  return x;
}

FeatureDetail FeatureStats::detail(int64_t f, int64_t tokens) const {
  FeatureDetail d;
  FeatureSummary& s = d.summary;
  s.id = f;
  s.n_fires = count_[f];
  s.freq = tokens > 0 ? static_cast<double>(count_[f]) / static_cast<double>(tokens) : 0.0;
  s.mean_act = count_[f] > 0 ? sum_[f] / static_cast<double>(count_[f]) : 0.0;
  s.max_act = max_[f];
  for (int64_t b = 0; b <= o_.bins; ++b) {
    d.hist_edges.push_back(static_cast<double>(max_[f]) * static_cast<double>(b) /
                           static_cast<double>(o_.bins));
  }
  d.hist_counts.assign(hist_.begin() + f * o_.bins, hist_.begin() + (f + 1) * o_.bins);
  std::vector<Example> top = top_[f];
  std::sort(top.begin(), top.end(), better<Example>);
  for (const Example& e : top) d.top.push_back(to_public(e));
  if (count_[f] > 0) {
    const double* e = edges_.data() + f * (o_.quantiles + 1);
    for (int64_t b = 0; b < o_.quantiles; ++b) {
      QuantileBand band;
      band.lo = e[b];
      band.hi = e[b + 1];
      std::vector<Example> list = samples_[f * o_.quantiles + b];
      std::sort(list.begin(), list.end(), better<Example>);
      for (const Example& x : list) band.examples.push_back(to_public(x));
      d.quantiles.push_back(std::move(band));
    }
  }
  return d;
}

}  // namespace glassbox
