// GGUF writer tests: round trips of every value type and every tensor dtype through GgufFile,
// the alignment and padding laid out byte for byte, a table of rejected inputs, and re-writing
// the llama.cpp-written files in shared/ (byte-identical, and read identically by the
// independent Python reader in tests/reference/llama_ref.py).
#include "io/gguf_writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "expect_error.h"
#include "test_models.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPython = "/usr/bin/python3";

std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "gguf_writer_test" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using testing::expect_error;

// Deep equality, including which variant alternative holds the value.
::testing::AssertionResult same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.v.index() != b.v.index()) {
    return ::testing::AssertionFailure()
           << gguf_type_name(a.type) << " vs " << gguf_type_name(b.type) << " / alternative "
           << a.v.index() << " vs " << b.v.index();
  }
  if (a.type != GgufType::kArray) {
    if (a.v == b.v) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << a.to_display() << " vs " << b.to_display();
  }
  const GgufArray& x = a.as_array("a");
  const GgufArray& y = b.as_array("b");
  if (x.elem_type != y.elem_type || x.items.size() != y.items.size()) {
    return ::testing::AssertionFailure() << "array " << a.to_display() << " vs " << b.to_display();
  }
  for (size_t i = 0; i < x.items.size(); ++i) {
    auto r = same_value(x.items[i], y.items[i]);
    if (!r) return r << " at [" << i << "]";
  }
  return ::testing::AssertionSuccess();
}

using Metadata = std::vector<std::pair<std::string, GgufValue>>;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

Metadata every_value_type(int64_t alignment) {
  Metadata m;
  m.emplace_back("general.architecture", gguf_string("llama"));
  m.emplace_back("general.alignment", gguf_int(GgufType::kU32, alignment));
  m.emplace_back("t.u8", gguf_int(GgufType::kU8, 200));
  m.emplace_back("t.i8", gguf_int(GgufType::kI8, -100));
  m.emplace_back("t.u16", gguf_int(GgufType::kU16, 60000));
  m.emplace_back("t.i16", gguf_int(GgufType::kI16, -30000));
  m.emplace_back("t.u32", gguf_int(GgufType::kU32, 4000000000));
  m.emplace_back("t.i32", gguf_int(GgufType::kI32, -2000000000));
  m.emplace_back("t.f32", gguf_float(GgufType::kF32, 0.1));  // stored rounded to float
  m.emplace_back("t.bool", gguf_bool(true));
  m.emplace_back("t.u64.big", gguf_u64(0x8000000000000005ull));
  m.emplace_back("t.u64.small", gguf_u64(5));
  m.emplace_back("t.i64", gguf_int(GgufType::kI64, INT64_MIN));
  m.emplace_back("t.f64", gguf_float(GgufType::kF64, 0.1));
  m.emplace_back("t.string", gguf_string(std::string("a\0b\xff", 4)));
  m.emplace_back("t.empty_string", gguf_string(""));
  m.emplace_back("t.strs", gguf_array(GgufType::kString, {gguf_string("x"), gguf_string("")}));
  m.emplace_back("t.empty", gguf_array(GgufType::kU8, {}));
  m.emplace_back("t.bools", gguf_array(GgufType::kBool, {gguf_bool(false), gguf_bool(true)}));
  m.emplace_back("t.f32s", gguf_array(GgufType::kF32, {gguf_float(GgufType::kF32, -1.25)}));
  m.emplace_back("t.u64s", gguf_array(GgufType::kU64, {gguf_u64(1), gguf_u64(~0ull)}));
  m.emplace_back("t.nested",
                 gguf_array(GgufType::kArray,
                            {gguf_array(GgufType::kArray,
                                        {gguf_array(GgufType::kI16, {gguf_int(GgufType::kI16, 7)}),
                                         gguf_array(GgufType::kI16, {})})}));
  return m;
}

// One tensor of every dtype GGUF holds (quantized ones as patterned block bytes), 1 to 4 dims.
Tensors every_dtype() {
  Tensors t;
  int k = 0;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64,
                  DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                  DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const int64_t row = dtype_info(d).block_size == 1 ? 3 : dtype_info(d).block_size;
    Shape shape = {row};
    for (int i = 0; i < k % 4; ++i) shape.insert(shape.begin(), 2 - i % 2);
    Tensor x = Tensor::zeros(d, shape);
    auto* p = x.mutable_data<uint8_t>();
    for (size_t i = 0; i < x.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 7 + k);
    t.emplace_back(std::string("t.") + dtype_name(d), x);
    ++k;
  }
  t.emplace_back("empty", Tensor::zeros(DType::kF32, {0, 4}));
  return t;
}

void expect_same_file_content(const GgufFile& f, const Metadata& m, const Tensors& t) {
  ASSERT_EQ(f.metadata().size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    SCOPED_TRACE(m[i].first);
    EXPECT_EQ(f.metadata()[i].first, m[i].first);  // order kept
    EXPECT_TRUE(same_value(f.metadata()[i].second, m[i].second));
  }
  ASSERT_EQ(f.tensor_infos().size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    SCOPED_TRACE(t[i].first);
    const GgufTensorInfo& info = f.tensor_infos()[i];
    EXPECT_EQ(info.name, t[i].first);
    EXPECT_EQ(info.dtype, t[i].second.dtype());
    EXPECT_EQ(info.shape, t[i].second.shape());
    EXPECT_EQ(info.offset % f.alignment(), 0u);
    ASSERT_EQ(info.nbytes, t[i].second.nbytes());
    if (info.nbytes) {
      EXPECT_EQ(std::memcmp(f.tensor(info.name).raw(), t[i].second.raw(), info.nbytes), 0);
    }
  }
}

TEST(GgufWriter, RoundTripsEveryValueTypeAndDtype) {
  const std::string dir = temp_dir("roundtrip");
  for (int64_t alignment : {8, 32, 64, 4096}) {
    SCOPED_TRACE(alignment);
    const std::string path = dir + "/rt" + std::to_string(alignment) + ".gguf";
    const Metadata m = every_value_type(alignment);
    const Tensors t = every_dtype();
    write_gguf(path, m, t);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), static_cast<uint64_t>(alignment));
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    expect_same_file_content(f, m, t);
    EXPECT_EQ(f.get("t.f32").as_float("x"), static_cast<double>(0.1f));
    // Each tensor's bytes are padded with zeros to the alignment, the last one included.
    const std::vector<uint8_t> bytes = read_bytes(path);
    uint64_t end = f.data_offset();
    for (const GgufTensorInfo& info : f.tensor_infos()) {
      EXPECT_EQ(f.data_offset() + info.offset, end) << info.name;  // packed in order
      const uint64_t padded = (info.nbytes + alignment - 1) / alignment * alignment;
      for (uint64_t i = info.nbytes; i < padded; ++i) {
        ASSERT_EQ(bytes[f.data_offset() + info.offset + i], 0) << info.name;
      }
      end += padded;
    }
    EXPECT_EQ(bytes.size(), end);
  }
}

TEST(GgufWriter, HeaderBytesAndDefaultAlignment) {
  const std::string path = temp_dir("header") + "/h.gguf";
  write_gguf(path, {{"k", gguf_int(GgufType::kU8, 9)}},
             {{"w", Tensor::from_floats({2, 1}, std::vector<float>{1, 2})}});
  const std::vector<uint8_t> b = read_bytes(path);
  // magic | version 3 | 1 tensor | 1 kv | "k" u8 9 | "w" 2 dims ne [1, 2] f32 offset 0 | zeros
  // to 32 | data | zeros to 32
  std::vector<uint8_t> want = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0,
                               0,   0,   0,   0,   1, 0, 0, 0, 0, 0, 0, 0};
  for (uint8_t c : {1, 0, 0, 0, 0, 0, 0, 0}) want.push_back(c);  // key length
  want.push_back('k');
  for (uint8_t c : {0, 0, 0, 0, 9}) want.push_back(c);           // type u8, value
  for (uint8_t c : {1, 0, 0, 0, 0, 0, 0, 0}) want.push_back(c);  // name length
  want.push_back('w');
  for (uint8_t c : {2, 0, 0, 0}) want.push_back(c);                                      // n_dims
  for (uint8_t c : {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}) want.push_back(c);  // ne
  for (uint8_t c : {0, 0, 0, 0}) want.push_back(c);              // ggml type f32
  for (uint8_t c : {0, 0, 0, 0, 0, 0, 0, 0}) want.push_back(c);  // offset
  while (want.size() % 32) want.push_back(0);
  for (float v : {1.0f, 2.0f}) {
    uint8_t raw[4];
    std::memcpy(raw, &v, 4);
    want.insert(want.end(), raw, raw + 4);
  }
  while (want.size() % 32) want.push_back(0);
  EXPECT_EQ(b, want);
}

TEST(GgufWriter, NoTensorsAndDtypeMapping) {
  const std::string path = temp_dir("empty") + "/e.gguf";
  write_gguf(path, {}, {});
  const GgufFile f = GgufFile::open(path);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_TRUE(f.tensor_infos().empty());
  EXPECT_EQ(read_bytes(path).size(), 32u);  // 24 header bytes padded to 32
  for (int d = 0; d <= static_cast<int>(DType::kQ6_K); ++d) {
    const auto dtype = static_cast<DType>(d);
    const std::optional<uint32_t> id = ggml_type_from_dtype(dtype);
    if (dtype == DType::kU8) {
      EXPECT_FALSE(id.has_value());
    } else {
      ASSERT_TRUE(id.has_value()) << dtype_name(dtype);
      EXPECT_EQ(dtype_from_ggml_type(*id), dtype);
    }
  }
  EXPECT_EQ(ggml_type_from_dtype(DType::kQ4_K), 12u);
  EXPECT_EQ(ggml_type_from_dtype(DType::kBF16), 30u);
}

TEST(GgufWriter, ValueBuilders) {
  EXPECT_EQ(std::get<int64_t>(gguf_int(GgufType::kU8, 255).v), 255);
  expect_error([] { gguf_int(GgufType::kU8, 256); }, ErrorCode::kInvalidArgument,
               "256 is not a u8 value");
  expect_error([] { gguf_int(GgufType::kU64, -1); }, ErrorCode::kInvalidArgument, "-1");
  expect_error([] { gguf_int(GgufType::kString, 1); }, ErrorCode::kInvalidArgument, "string");
  EXPECT_EQ(std::get<uint64_t>(gguf_u64(~0ull).v), ~0ull);
  EXPECT_EQ(std::get<int64_t>(gguf_u64(3).v), 3);
  EXPECT_EQ(gguf_float(GgufType::kF32, 0.1).as_float("x"), static_cast<double>(0.1f));
  expect_error([] { gguf_float(GgufType::kI32, 1); }, ErrorCode::kInvalidArgument,
               "is not f32 or f64");
}

TEST(GgufWriter, RejectsBadInputBeforeWriting) {
  const std::string dir = temp_dir("errors");
  const std::string path = dir + "/bad.gguf";
  const Tensor f32 = Tensor::zeros(DType::kF32, {2});
  GgufValue wrong_variant = gguf_string("x");
  wrong_variant.type = GgufType::kU32;
  GgufValue u8_out_of_range = gguf_int(GgufType::kU8, 1);
  u8_out_of_range.v = int64_t{300};
  GgufValue bad_type = gguf_int(GgufType::kU8, 1);
  bad_type.type = static_cast<GgufType>(13);
  GgufValue null_array{GgufType::kArray, std::shared_ptr<GgufArray>()};
  GgufValue deep = gguf_array(GgufType::kU8, {});
  for (int i = 0; i < 8; ++i) deep = gguf_array(GgufType::kArray, {deep});
  GgufValue bad_elem_type = gguf_array(GgufType::kU8, {});
  std::get<std::shared_ptr<GgufArray>>(bad_elem_type.v)->elem_type = static_cast<GgufType>(99);
  struct Case {
    const char* name;
    Metadata m;
    Tensors t;
    ErrorCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty key",
       {{"", gguf_bool(true)}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata key #0 is empty"},
      {"duplicate key",
       {{"k", gguf_bool(true)}, {"k", gguf_bool(false)}},
       {},
       ErrorCode::kInvalidArgument,
       "duplicate metadata key 'k'"},
      {"variant does not match type",
       {{"k", wrong_variant}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': the value held does not match its type u32"},
      {"integer out of range",
       {{"k", u8_out_of_range}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': value 300 does not fit u8"},
      {"invalid type id",
       {{"k", bad_type}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': invalid value type id 13"},
      {"array item of another type",
       {{"k", gguf_array(GgufType::kI32, {gguf_int(GgufType::kI32, 1), gguf_bool(true)})}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k'[1] is bool in an array of i32"},
      {"null array",
       {{"k", null_array}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': the value held does not match its type array"},
      {"arrays nested 9 deep",
       {{"k", deep}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': arrays nested deeper than 8 levels"},
      {"invalid element type",
       {{"k", bad_elem_type}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'k': invalid array element type id 99"},
      {"alignment 48",
       {{"general.alignment", gguf_int(GgufType::kU32, 48)}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'general.alignment' = 48, expected a power of two"},
      {"alignment 4",
       {{"general.alignment", gguf_int(GgufType::kU32, 4)}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'general.alignment' = 4, expected"},
      {"alignment a string",
       {{"general.alignment", gguf_string("32")}},
       {},
       ErrorCode::kInvalidArgument,
       "metadata 'general.alignment' is not an integer"},
      {"empty tensor name",
       {},
       {{"", f32}},
       ErrorCode::kInvalidArgument,
       "tensor #0 has an empty name"},
      {"duplicate tensor",
       {},
       {{"w", f32}, {"w", f32}},
       ErrorCode::kInvalidArgument,
       "duplicate tensor name 'w'"},
      {"name of 64 bytes",
       {},
       {{std::string(64, 'n'), f32}},
       ErrorCode::kInvalidArgument,
       "tensor '" + std::string(64, 'n') + "': name of 64 bytes exceeds ggml's 63"},
      {"undefined tensor",
       {},
       {{"w", Tensor()}},
       ErrorCode::kInvalidArgument,
       "tensor 'w' is undefined"},
      {"tensor without data",
       {},
       {{"w", Tensor::view(DType::kF32, {2}, nullptr)}},
       ErrorCode::kInvalidArgument,
       "tensor 'w' is undefined"},
      {"u8 tensor",
       {},
       {{"w", Tensor::zeros(DType::kU8, {2})}},
       ErrorCode::kUnsupported,
       "tensor 'w': GGUF has no type for u8"},
      {"0-d tensor",
       {},
       {{"w", Tensor::zeros(DType::kF32, {})}},
       ErrorCode::kUnsupported,
       "tensor 'w': shape [] has 0 dims, GGUF holds 1 to 4"},
      {"5-d tensor",
       {},
       {{"w", Tensor::zeros(DType::kF32, {1, 1, 1, 1, 2})}},
       ErrorCode::kUnsupported,
       "tensor 'w': shape [1, 1, 1, 1, 2] has 5 dims"},
      {"q8_0 rows not whole blocks",
       {},
       {{"w", Tensor::zeros(DType::kQ8_0, {2, 16})}},
       ErrorCode::kShape,
       "tensor 'w': rows of 16 are not whole q8_0 blocks of 32"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_error([&] { write_gguf(path, c.m, c.t); }, c.code, "bad.gguf: " + c.message);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  expect_error([&] { write_gguf(dir + "/missing/x.gguf", {}, {}); }, ErrorCode::kIo,
               "x.gguf: cannot create");
}

// ---- re-writing files written by llama.cpp ----

// Reads `src` and writes its metadata and tensors back in file order to `dst`.
GgufFile rewrite(const std::string& src, const std::string& dst) {
  const GgufFile f = GgufFile::open(src);
  Tensors tensors;
  for (const GgufTensorInfo& t : f.tensor_infos()) tensors.emplace_back(t.name, f.tensor(t.name));
  write_gguf(dst, f.metadata(), tensors);
  return f;
}

// First differing byte, or -1.
int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

TEST(GgufWriterReal, RewritingLlamaCppFilesIsByteIdentical) {
  const std::string dir = temp_dir("real");
  int checked = 0;
  for (const char* name : {"stories260K-f32.gguf", "synth15M-q8_0.gguf", "synthK-q4_k_m.gguf"}) {
    const std::string src = testing::shared_gguf(name);
    if (!fs::exists(src)) continue;
    SCOPED_TRACE(name);
    const std::string dst = dir + "/" + name;
    const GgufFile original = rewrite(src, dst);
    const GgufFile again = GgufFile::open(dst);
    Tensors tensors;
    for (const GgufTensorInfo& t : original.tensor_infos()) {
      tensors.emplace_back(t.name, original.tensor(t.name));
    }
    expect_same_file_content(again, original.metadata(), tensors);
    EXPECT_EQ(first_difference(read_bytes(src), read_bytes(dst)), -1);
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no GGUF files in shared/models/gguf";
}

TEST(GgufWriterReal, IndependentPythonReaderReadsTheRewriteIdentically) {
  const std::string src = testing::shared_gguf("stories260K-f32.gguf");
  if (!fs::exists(src) || !fs::exists(kPython)) GTEST_SKIP() << "model or python missing";
  const std::string dir = temp_dir("python");
  const std::string dst = dir + "/stories260K-rewritten.gguf";
  rewrite(src, dst);
  // llama_ref.read_gguf_raw shares no code with glassbox; compare everything it returns.
  const std::string script = R"PY(
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import llama_ref
def digest(path):
    version, meta, tensors = llama_ref.read_gguf_raw(path)
    h = hashlib.sha256(repr(list(meta.items())).encode())
    for name, a in tensors.items():
        h.update(name.encode() + repr(a.shape).encode() + str(a.dtype).encode() + a.tobytes())
    return version, len(meta), len(tensors), h.hexdigest()
a, b = digest(sys.argv[2]), digest(sys.argv[3])
print(a)
print(b)
sys.exit(0 if a == b else 1)
)PY";
  std::ofstream(dir + "/digest.py") << script;
  const std::string cmd = std::string(kPython) + " " + dir + "/digest.py " + GLASSBOX_SOURCE_DIR +
                          "/tests/reference " + src + " " + dst + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (out.find("No module named") != std::string::npos) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("(3, "), std::string::npos) << out;  // version 3 read by Python
}

}  // namespace
}  // namespace glassbox
