#include "io/llama2c.h"

#include <cstdlib>

namespace glassbox {
namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
// llama2.c's export.py writes "ak42" as a u32 at the start of its versioned formats (v1, v2).
constexpr int32_t kVersionedMagic = 0x616b3432;
// Upper bounds far above any real checkpoint (Llama 3 70B: dim 8192, hidden 28672, 80 layers,
// vocab 128256). They keep every size product below 2^50, so 64-bit arithmetic cannot overflow.
constexpr int32_t kMaxDim = 1 << 16;
constexpr int32_t kMaxHidden = 1 << 18;
constexpr int32_t kMaxLayers = 1 << 10;
constexpr int32_t kMaxVocab = 1 << 22;
constexpr int32_t kMaxSeqLen = 1 << 20;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kFormat, source + ": " + what);
}

void check_range(const std::string& source, const char* field, int32_t v, int32_t max) {
  if (v <= 0 || v > max) {
    fail(source, "header field " + std::string(field) + " = " + std::to_string(v) +
                     ", expected 1.." + std::to_string(max));
  }
}

std::string header_str(const Llama2cHeader& h) {
  return "dim " + std::to_string(h.dim) + ", hidden_dim " + std::to_string(h.hidden_dim) +
         ", n_layers " + std::to_string(h.n_layers) + ", n_heads " + std::to_string(h.n_heads) +
         ", n_kv_heads " + std::to_string(h.n_kv_heads) + ", vocab_size " +
         (h.shared_classifier ? "" : "-") + std::to_string(h.vocab_size) + ", seq_len " +
         std::to_string(h.seq_len);
}

// Walks the file's tensors in storage order, handing out borrowed views.
class Cursor {
 public:
  Cursor(const uint8_t* base, std::shared_ptr<const void> owner)
      : base_(base), owner_(std::move(owner)) {}
  // The next `count` floats as a tensor of `shape` (numel == count).
  Tensor next(const Shape& shape) {
    Tensor t = Tensor::borrow(DType::kF32, shape, base_ + offset_, owner_);
    offset_ += static_cast<uint64_t>(t.numel()) * sizeof(float);
    return t;
  }
  void skip_floats(uint64_t n) { offset_ += n * sizeof(float); }
  uint64_t offset() const { return offset_; }

 private:
  const uint8_t* base_;
  std::shared_ptr<const void> owner_;
  uint64_t offset_ = kHeaderBytes;
};

// Per-layer tensors are stored stacked over layers: [L, ...]. Splits one such block into
// blk.{l}.`suffix` entries.
void take_stacked(Cursor& c, std::map<std::string, Tensor>& out, int32_t n_layers,
                  const char* suffix, const Shape& shape) {
  for (int32_t l = 0; l < n_layers; ++l) {
    out.emplace("blk." + std::to_string(l) + "." + suffix, c.next(shape));
  }
}

}  // namespace

uint64_t Llama2cCheckpoint::expected_size(const Llama2cHeader& h) {
  const uint64_t dim = static_cast<uint64_t>(h.dim);
  const uint64_t hidden = static_cast<uint64_t>(h.hidden_dim);
  const uint64_t layers = static_cast<uint64_t>(h.n_layers);
  const uint64_t vocab = static_cast<uint64_t>(h.vocab_size);
  const uint64_t head_dim = dim / static_cast<uint64_t>(h.n_heads);
  const uint64_t kv_dim = head_dim * static_cast<uint64_t>(h.n_kv_heads);
  uint64_t floats = vocab * dim;                          // token_embedding
  floats += layers * (2 * dim                             // rms_att, rms_ffn
                      + 2 * dim * dim                     // wq, wo
                      + 2 * kv_dim * dim                  // wk, wv
                      + 3 * hidden * dim);                // w1, w2, w3
  floats += dim;                                          // rms_final
  floats += static_cast<uint64_t>(h.seq_len) * head_dim;  // freq_cis_real + imag, head_dim/2 each
  if (!h.shared_classifier) floats += vocab * dim;        // wcls
  return kHeaderBytes + floats * sizeof(float);
}

Llama2cCheckpoint Llama2cCheckpoint::open(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return parse(file->data(), file->size(), path, file);
}

Llama2cCheckpoint Llama2cCheckpoint::from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes,
                                                std::string name) {
  GLASSBOX_ASSERT(bytes != nullptr);
  return parse(bytes->data(), bytes->size(), std::move(name), bytes);
}

Llama2cCheckpoint Llama2cCheckpoint::parse(const uint8_t* data, size_t size, std::string name,
                                           std::shared_ptr<const void> owner) {
  Llama2cCheckpoint ck;
  ck.path_ = std::move(name);
  const std::string& src = ck.path_;
  ByteReader r(data, size, src);
  Llama2cHeader& h = ck.header_;
  h.dim = r.read<int32_t>("header field dim");
  if (h.dim == kVersionedMagic) {
    throw Error(ErrorCode::kUnsupported,
                src +
                    ": llama2.c versioned export (magic \"ak42\") is not supported; "
                    "only the legacy version-0 checkpoint format is");
  }
  h.hidden_dim = r.read<int32_t>("header field hidden_dim");
  h.n_layers = r.read<int32_t>("header field n_layers");
  h.n_heads = r.read<int32_t>("header field n_heads");
  h.n_kv_heads = r.read<int32_t>("header field n_kv_heads");
  const int32_t vocab = r.read<int32_t>("header field vocab_size");
  h.seq_len = r.read<int32_t>("header field seq_len");

  check_range(src, "dim", h.dim, kMaxDim);
  check_range(src, "hidden_dim", h.hidden_dim, kMaxHidden);
  check_range(src, "n_layers", h.n_layers, kMaxLayers);
  check_range(src, "n_heads", h.n_heads, h.dim);
  check_range(src, "n_kv_heads", h.n_kv_heads, h.n_heads);
  // The sign of vocab_size says whether the classifier is shared; INT32_MIN has no magnitude.
  if (vocab == 0 || vocab < -kMaxVocab || vocab > kMaxVocab) {
    fail(src, "header field vocab_size = " + std::to_string(vocab) + ", expected 1.." +
                  std::to_string(kMaxVocab) + " in magnitude");
  }
  h.shared_classifier = vocab > 0;
  h.vocab_size = std::abs(vocab);
  check_range(src, "seq_len", h.seq_len, kMaxSeqLen);
  if (h.dim % h.n_heads != 0) {
    fail(src, "header field n_heads = " + std::to_string(h.n_heads) +
                  " does not divide dim = " + std::to_string(h.dim));
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    fail(src, "header field n_kv_heads = " + std::to_string(h.n_kv_heads) +
                  " does not divide n_heads = " + std::to_string(h.n_heads));
  }
  const int32_t head_dim = h.dim / h.n_heads;
  if (head_dim % 2 != 0) {
    fail(src, "head_dim = dim / n_heads = " + std::to_string(head_dim) +
                  " is odd; RoPE rotates pairs and needs it even");
  }
  const uint64_t expected = expected_size(h);
  if (size != expected) {
    fail(src, "file has " + std::to_string(size) + " bytes but the header (" + header_str(h) +
                  ") implies " + std::to_string(expected) + " bytes");
  }

  // Layout (float32, row-major; shapes as stored, GGUF names as exposed):
  const int64_t dim = h.dim, hidden = h.hidden_dim, vocab_n = h.vocab_size;
  const int64_t kv_dim = int64_t{head_dim} * h.n_kv_heads;
  const int32_t layers = h.n_layers;
  Cursor c(data, std::move(owner));
  auto& t = ck.tensors_;
  t.emplace("token_embd.weight", c.next({vocab_n, dim}));        // [vocab, dim]
  take_stacked(c, t, layers, "attn_norm.weight", {dim});         // rms_att_weight [L, dim]
  take_stacked(c, t, layers, "attn_q.weight", {dim, dim});       // wq [L, dim, dim]
  take_stacked(c, t, layers, "attn_k.weight", {kv_dim, dim});    // wk [L, kv_dim, dim]
  take_stacked(c, t, layers, "attn_v.weight", {kv_dim, dim});    // wv [L, kv_dim, dim]
  take_stacked(c, t, layers, "attn_output.weight", {dim, dim});  // wo [L, dim, dim]
  take_stacked(c, t, layers, "ffn_norm.weight", {dim});          // rms_ffn_weight [L, dim]
  take_stacked(c, t, layers, "ffn_gate.weight", {hidden, dim});  // w1 [L, hidden, dim]
  take_stacked(c, t, layers, "ffn_down.weight", {dim, hidden});  // w2 [L, dim, hidden]
  take_stacked(c, t, layers, "ffn_up.weight", {hidden, dim});    // w3 [L, hidden, dim]
  t.emplace("output_norm.weight", c.next({dim}));                // rms_final_weight [dim]
  c.skip_floats(static_cast<uint64_t>(h.seq_len) * static_cast<uint64_t>(head_dim));  // RoPE
  if (!h.shared_classifier) t.emplace("output.weight", c.next({vocab_n, dim}));       // wcls
  GLASSBOX_ASSERT(c.offset() == expected);
  return ck;
}

}  // namespace glassbox
