// llama2.c checkpoint reader tests: a small checkpoint built here whose floats count 0, 1, 2, ...
// (so every tensor's first element is its float offset), a table of header corruptions, every
// truncation, and the real stories260K.bin.
#include "io/llama2c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

namespace glassbox {
namespace {

constexpr const char* kLlama2cName = "tiny.bin";

struct Dims {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 5, seq_len = 4;
};

// The storage order of llama2.c, written out independently of the reader: (GGUF-style name of a
// per-layer block or global tensor, floats per layer or in total).
struct Block {
  std::string name;
  int64_t per_layer;  // 0 for global tensors
  int64_t total;
};

std::vector<Block> layout(const Dims& d) {
  const int64_t kv = d.dim / d.heads * d.kv_heads;
  const int64_t vocab = std::abs(d.vocab);
  std::vector<Block> b = {
      {"token_embd.weight", 0, vocab * d.dim},
      {"attn_norm.weight", d.dim, 0},
      {"attn_q.weight", int64_t{d.dim} * d.dim, 0},
      {"attn_k.weight", kv * d.dim, 0},
      {"attn_v.weight", kv * d.dim, 0},
      {"attn_output.weight", int64_t{d.dim} * d.dim, 0},
      {"ffn_norm.weight", d.dim, 0},
      {"ffn_gate.weight", int64_t{d.hidden} * d.dim, 0},
      {"ffn_down.weight", int64_t{d.dim} * d.hidden, 0},
      {"ffn_up.weight", int64_t{d.hidden} * d.dim, 0},
      {"output_norm.weight", 0, d.dim},
      {"(rope)", 0, int64_t{d.seq_len} * (d.dim / d.heads)},
  };
  if (d.vocab < 0) b.push_back({"output.weight", 0, vocab * d.dim});
  return b;
}

std::vector<uint8_t> make_checkpoint(const Dims& d) {
  std::vector<uint8_t> out(28);
  const int32_t header[7] = {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, d.vocab, d.seq_len};
  std::memcpy(out.data(), header, 28);
  int64_t n = 0;
  for (const Block& b : layout(d)) n += b.per_layer ? b.per_layer * d.layers : b.total;
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    const auto* p = reinterpret_cast<const uint8_t*>(&f);
    out.insert(out.end(), p, p + 4);
  }
  return out;
}

Llama2cCheckpoint parse_llama2c(std::vector<uint8_t> bytes) {
  return Llama2cCheckpoint::from_bytes(
      std::make_shared<const std::vector<uint8_t>>(std::move(bytes)), kLlama2cName);
}

TEST(Llama2c, SmallCheckpointMapsEveryTensor) {
  for (const int32_t vocab : {5, -5}) {
    SCOPED_TRACE(vocab);
    Dims d;
    d.vocab = vocab;
    const Llama2cCheckpoint ck = parse_llama2c(make_checkpoint(d));
    EXPECT_EQ(ck.path(), kLlama2cName);
    const Llama2cHeader& h = ck.header();
    EXPECT_EQ(h.vocab_size, 5);
    EXPECT_EQ(h.shared_classifier, vocab > 0);
    EXPECT_EQ(h.n_kv_heads, 1);
    // Walk the independent layout and check each tensor starts at the right float.
    int64_t offset = 0;
    size_t expected_count = 0;
    for (const Block& b : layout(d)) {
      if (b.per_layer == 0) {
        if (b.name != "(rope)") {
          const Tensor& t = ck.tensors().at(b.name);
          EXPECT_EQ(t.numel(), b.total) << b.name;
          EXPECT_EQ(t.floats()[0], static_cast<float>(offset)) << b.name;
          ++expected_count;
        }
        offset += b.total;
        continue;
      }
      for (int l = 0; l < d.layers; ++l) {
        const std::string name = "blk." + std::to_string(l) + "." + b.name;
        const Tensor& t = ck.tensors().at(name);
        EXPECT_EQ(t.numel(), b.per_layer) << name;
        EXPECT_EQ(t.floats()[0], static_cast<float>(offset)) << name;
        EXPECT_EQ(t.dtype(), DType::kF32);
        EXPECT_FALSE(t.writable());
        offset += b.per_layer;
        ++expected_count;
      }
    }
    EXPECT_EQ(ck.tensors().size(), expected_count);
    EXPECT_EQ(ck.tensors().count("output.weight"), vocab < 0 ? 1u : 0u);
    EXPECT_EQ(ck.tensors().at("token_embd.weight").shape(), (Shape{5, 8}));
    EXPECT_EQ(ck.tensors().at("blk.1.attn_k.weight").shape(), (Shape{4, 8}));
    EXPECT_EQ(ck.tensors().at("blk.1.attn_v.weight").shape(), (Shape{4, 8}));
    EXPECT_EQ(ck.tensors().at("blk.0.attn_q.weight").shape(), (Shape{8, 8}));
    EXPECT_EQ(ck.tensors().at("blk.0.attn_output.weight").shape(), (Shape{8, 8}));
    EXPECT_EQ(ck.tensors().at("blk.0.ffn_gate.weight").shape(), (Shape{12, 8}));
    EXPECT_EQ(ck.tensors().at("blk.0.ffn_down.weight").shape(), (Shape{8, 12}));
    EXPECT_EQ(ck.tensors().at("blk.0.ffn_up.weight").shape(), (Shape{12, 8}));
    EXPECT_EQ(ck.tensors().at("blk.1.ffn_norm.weight").shape(), (Shape{8}));
    EXPECT_EQ(ck.tensors().at("output_norm.weight").shape(), (Shape{8}));
    if (vocab < 0) {
      EXPECT_EQ(ck.tensors().at("output.weight").shape(), (Shape{5, 8}));
    }
  }
}

struct Llama2cCorruption {
  const char* name;
  std::function<void(std::vector<uint8_t>&)> mutate;
  ErrorCode code;
  const char* message;
};

void set_field(std::vector<uint8_t>& b, int index, int32_t v) {
  std::memcpy(b.data() + 4 * index, &v, 4);
}

std::function<void(std::vector<uint8_t>&)> field(int index, int32_t v) {
  return [=](std::vector<uint8_t>& b) { set_field(b, index, v); };
}

TEST(Llama2cCorrupt, EachCorruptionIsReportedWithFileAndField) {
  const Llama2cCorruption table[] = {
      {"dim 0", field(0, 0), ErrorCode::kFormat, "header field dim = 0, expected 1..65536"},
      {"dim negative", field(0, -8), ErrorCode::kFormat, "header field dim = -8"},
      {"dim huge", field(0, 1 << 20), ErrorCode::kFormat, "header field dim = 1048576"},
      {"hidden 0", field(1, 0), ErrorCode::kFormat, "header field hidden_dim = 0"},
      {"hidden huge", field(1, 0x7fffffff), ErrorCode::kFormat,
       "header field hidden_dim = 2147483647"},
      {"layers 0", field(2, 0), ErrorCode::kFormat, "header field n_layers = 0"},
      {"layers huge", field(2, 100000), ErrorCode::kFormat, "header field n_layers = 100000"},
      {"heads 0", field(3, 0), ErrorCode::kFormat, "header field n_heads = 0"},
      {"heads above dim", field(3, 16), ErrorCode::kFormat,
       "header field n_heads = 16, expected 1..8"},
      {"heads do not divide dim", field(3, 3), ErrorCode::kFormat,
       "n_heads = 3 does not divide dim = 8"},
      {"kv heads 0", field(4, 0), ErrorCode::kFormat, "header field n_kv_heads = 0"},
      {"kv heads above heads", field(4, 4), ErrorCode::kFormat,
       "header field n_kv_heads = 4, expected 1..2"},
      {"kv heads do not divide heads",
       [](std::vector<uint8_t>& b) {
         set_field(b, 0, 12);  // dim 12, 3 heads of 4, 2 kv heads
         set_field(b, 3, 3);
         set_field(b, 4, 2);
       },
       ErrorCode::kFormat, "n_kv_heads = 2 does not divide n_heads = 3"},
      {"odd head_dim", field(3, 8), ErrorCode::kFormat, "head_dim = dim / n_heads = 1 is odd"},
      {"vocab 0", field(5, 0), ErrorCode::kFormat, "header field vocab_size = 0"},
      {"vocab INT32_MIN", field(5, INT32_MIN), ErrorCode::kFormat,
       "header field vocab_size = -2147483648"},
      {"seq_len 0", field(6, 0), ErrorCode::kFormat, "header field seq_len = 0"},
      {"seq_len negative", field(6, -1), ErrorCode::kFormat, "header field seq_len = -1"},
      {"versioned export", field(0, 0x616b3432), ErrorCode::kUnsupported, "\"ak42\""},
      {"one byte short", [](std::vector<uint8_t>& b) { b.pop_back(); }, ErrorCode::kFormat,
       "file has 4251 bytes but the header (dim 8, hidden_dim 12, n_layers 2, n_heads 2, "
       "n_kv_heads 1, vocab_size 5, seq_len 4) implies 4252 bytes"},
      {"one byte long", [](std::vector<uint8_t>& b) { b.push_back(0); }, ErrorCode::kFormat,
       "file has 4253 bytes but the header"},
      {"classifier flag flipped", field(5, -5), ErrorCode::kFormat,
       "vocab_size -5, seq_len 4) implies 4412 bytes"},
      {"seq_len changes size", field(6, 5), ErrorCode::kFormat, "implies 4268 bytes"},
  };
  for (const Llama2cCorruption& c : table) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> b = make_checkpoint(Dims{});
    ASSERT_EQ(b.size(), 4252u);
    c.mutate(b);
    try {
      parse_llama2c(b);
      ADD_FAILURE() << "no error for " << c.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), c.code) << msg;
      EXPECT_EQ(msg.rfind("tiny.bin: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
    }
  }
}

TEST(Llama2cCorrupt, EveryTruncationIsAFormatError) {
  const std::vector<uint8_t> full = make_checkpoint(Dims{});
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    try {
      parse_llama2c(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)));
      ADD_FAILURE() << "no error at length " << n;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << msg;
      EXPECT_EQ(msg.rfind("tiny.bin: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(n < 28 ? "truncated reading header field" : "implies 4252 bytes"),
                std::string::npos)
          << msg;
    }
  }
}

TEST(Llama2c, ExpectedSizeOfStories260K) {
  Llama2cHeader h;
  h.dim = 64;
  h.hidden_dim = 172;
  h.n_layers = 5;
  h.n_heads = 8;
  h.n_kv_heads = 4;
  h.vocab_size = 512;
  h.seq_len = 512;
  EXPECT_EQ(Llama2cCheckpoint::expected_size(h), 1056540u);  // from models/README.md
  h.shared_classifier = false;
  EXPECT_EQ(Llama2cCheckpoint::expected_size(h), 1056540u + 512u * 64 * 4);
}

TEST(Llama2cReal, Stories260K) {
  const std::string path = std::string(GLASSBOX_SOURCE_DIR) + "/models/stories260K/stories260K.bin";
  const Llama2cCheckpoint ck = Llama2cCheckpoint::open(path);
  EXPECT_EQ(ck.path(), path);
  const Llama2cHeader& h = ck.header();
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  EXPECT_EQ(ck.tensors().size(), 1u + 5u * 9u + 1u);
  EXPECT_EQ(ck.tensors().count("output.weight"), 0u);
  EXPECT_EQ(ck.tensors().at("blk.4.attn_k.weight").shape(), (Shape{32, 64}));
  EXPECT_EQ(ck.tensors().at("blk.4.ffn_down.weight").shape(), (Shape{64, 172}));

  // Compare against the raw bytes read independently: token_embd starts right after the header,
  // output_norm right after the 5 blocks (45,440 floats each).
  std::ifstream in(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(raw.size(), 1056540u);
  const Tensor emb = ck.tensors().at("token_embd.weight");
  EXPECT_EQ(std::memcmp(emb.raw(), raw.data() + 28, emb.nbytes()), 0);
  const Tensor norm = ck.tensors().at("output_norm.weight");
  EXPECT_EQ(std::memcmp(norm.raw(), raw.data() + 28 + 4 * (32768 + 5 * 45440), 256), 0);
  // RMSNorm gains of a trained model are positive and O(1); a misplaced offset would hit weights.
  for (float g : norm.floats()) EXPECT_GT(g, 0.0f);
}

TEST(Llama2cReal, MissingFileIsIoError) {
  try {
    Llama2cCheckpoint::open("/nonexistent/x.bin");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.bin"), std::string::npos);
  }
}

}  // namespace
}  // namespace glassbox
