// safetensors reader and writer tests: a fixture written by an independent numpy script
// (tests/data/safetensors/make_fixtures.py), writer round trips (also read back by an independent
// Python reader), a table of corrupted headers, every truncation and byte flips. Sharded
// checkpoints: safetensors_index_test.cpp.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "expect_error.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;

const std::string kStDataDir = std::string(GLASSBOX_SOURCE_DIR) + "/tests/data/safetensors";
constexpr const char* kStPython = "/usr/bin/python3";

std::vector<uint8_t> st_read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void st_write_text(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

// A fresh directory under the test temp dir.
std::string st_temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "safetensors_test" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Runs a shell command, returning its exit status and stdout.
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  return {pclose(p), out};
}

bool python_with_numpy() {
  return fs::exists(kStPython) && run(std::string(kStPython) + " -c 'import numpy' 2>&1").first == 0;
}

SafetensorsFile parse_safetensors(std::vector<uint8_t> bytes, const std::string& name = "t.safetensors") {
  return SafetensorsFile::from_bytes(std::make_shared<const std::vector<uint8_t>>(std::move(bytes)),
                                     name);
}

// An image with `header` (padded with spaces to 8) followed by `data_bytes` bytes 0, 1, 2, ...
std::vector<uint8_t> image(const std::string& header, size_t data_bytes, bool pad = true) {
  std::string h = header;
  if (pad) h.append((8 - h.size() % 8) % 8, ' ');
  std::vector<uint8_t> b(8);
  const uint64_t n = h.size();
  std::memcpy(b.data(), &n, 8);
  b.insert(b.end(), h.begin(), h.end());
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i));
  return b;
}

using testing::expect_error;

// ---- the independently written fixture ----

TEST(Safetensors, ReadsFileWrittenByIndependentScript) {
  const std::string path = kStDataDir + "/tiny.safetensors";
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.data_offset() % 8, 0u);
  ASSERT_EQ(f.tensor_infos().size(), 10u);
  EXPECT_EQ(f.tensor_infos()[0].name, "u8.bytes");  // header order kept
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "h\xc3\xa9llo \"quoted\"");  // JSON escapes decoded

  const Tensor u8 = f.tensor("u8.bytes");
  EXPECT_EQ(u8.dtype(), DType::kU8);
  EXPECT_EQ(u8.data<uint8_t>()[4], 5);
  const Tensor m = f.tensor("f32.matrix");  // starts 5 bytes into the buffer: copied
  EXPECT_EQ(m.shape(), (Shape{2, 3}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.raw()) % 4, 0u);
  EXPECT_TRUE(m.writable());  // an owned copy
  for (int i = 0; i < 6; ++i) EXPECT_EQ(m.floats()[i], i * 0.5f - 1.0f);
  EXPECT_EQ(f.find("f32.matrix")->begin, 5u);
  const Tensor h = f.tensor("f16.vec").to_f32();
  EXPECT_EQ(h.floats()[1], -2.0f);
  EXPECT_EQ(h.floats()[3], 65504.0f);
  const Tensor bf = f.tensor("bf16.mat");
  EXPECT_EQ(bf.shape(), (Shape{2, 2}));
  EXPECT_EQ(bf.to_f32().floats()[3], -0.15625f);
  const Tensor pi = f.tensor("f64.scalar");
  EXPECT_EQ(pi.shape(), Shape{});
  EXPECT_EQ(pi.numel(), 1);
  EXPECT_EQ(pi.data<double>()[0], M_PI);
  EXPECT_EQ(f.tensor("i32.vec").data<int32_t>()[2], 2147483647);
  EXPECT_EQ(f.tensor("i64.vec").data<int64_t>()[0], -(int64_t{1} << 40));
  EXPECT_EQ(f.tensor("empty").shape(), (Shape{0, 4}));
  EXPECT_EQ(f.tensor("empty").numel(), 0);
  const Tensor q = f.tensor("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.floats()[7], 7.0f / 8);

  const SafetensorsTensorInfo* i8 = f.find("i8.unsupported");
  ASSERT_NE(i8, nullptr);
  EXPECT_EQ(i8->dtype_name, "I8");
  EXPECT_FALSE(i8->dtype.has_value());
  EXPECT_EQ(i8->nbytes(), 3u);
  expect_error([&] { f.tensor("i8.unsupported"); }, ErrorCode::kUnsupported,
               "tiny.safetensors: tensor 'i8.unsupported' has dtype I8");
  EXPECT_EQ(f.find("nope"), nullptr);
  expect_error([&] { f.tensor("nope"); }, ErrorCode::kNotFound, "no tensor named nope");
  expect_error([&] { SafetensorsFile::open(path + ".missing"); }, ErrorCode::kIo,
               "tiny.safetensors.missing");
}

TEST(Safetensors, CommittedFixturesMatchTheirScript) {
  if (!python_with_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  const std::string dir = st_temp_dir("fixtures");
  const auto [rc, out] = run(std::string(kStPython) + " " + kStDataDir + "/make_fixtures.py " + dir);
  ASSERT_EQ(rc, 0) << out;
  for (const char* rel :
       {"tiny.safetensors", "sharded/model.safetensors.index.json",
        "sharded/model-00001-of-00002.safetensors", "sharded/model-00002-of-00002.safetensors"}) {
    EXPECT_EQ(st_read_bytes(dir + "/" + rel), st_read_bytes(kStDataDir + "/" + rel)) << rel;
  }
}

// ---- writer ----

std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  std::vector<std::pair<std::string, Tensor>> v;
  v.emplace_back("u8", Tensor::zeros(DType::kU8, {3}));
  v.emplace_back("a.f32", Tensor::from_floats({2, 2}, std::vector<float>{1, -2, 3.5f, 4}));
  Tensor f16 = Tensor::zeros(DType::kF16, {3});
  f16.mutable_data<uint16_t>()[1] = 0x3c00;  // 1.0
  v.emplace_back("f16", f16);
  Tensor f64 = Tensor::zeros(DType::kF64, {});
  f64.mutable_data<double>()[0] = -0.25;
  v.emplace_back("scalar.f64", f64);
  Tensor i64 = Tensor::zeros(DType::kI64, {1, 2});
  i64.mutable_data<int64_t>()[1] = -7;
  v.emplace_back("i64", i64);
  v.emplace_back("bf16", Tensor::zeros(DType::kBF16, {1}));
  v.emplace_back("i32", Tensor::zeros(DType::kI32, {2}));
  v.emplace_back("empty", Tensor::zeros(DType::kF32, {0, 3}));
  v.emplace_back("ünïcödé", Tensor::zeros(DType::kF32, {1}));
  v[0].second.mutable_data<uint8_t>()[2] = 9;
  return v;
}

TEST(SafetensorsWriter, RoundTripsEveryDtypeAlignedAndBorrowed) {
  const std::string path = st_temp_dir("writer") + "/w.safetensors";
  const auto tensors = sample_tensors();
  write_safetensors(path, tensors, {{"format", "pt"}, {"k\"ey", "v\nal"}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.data_offset() % 8, 0u);
  EXPECT_EQ(f.metadata().at("k\"ey"), "v\nal");
  ASSERT_EQ(f.tensor_infos().size(), tensors.size());
  // Stored by decreasing element size, stable: f64, i64, f32, i32, ..., u8 last.
  EXPECT_EQ(f.tensor_infos().front().name, "scalar.f64");
  EXPECT_EQ(f.tensor_infos()[1].name, "i64");
  EXPECT_EQ(f.tensor_infos().back().name, "u8");
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const Tensor r = f.tensor(name);
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_FALSE(r.writable());  // borrowed: every tensor is aligned
    ASSERT_EQ(r.nbytes(), t.nbytes());
    if (t.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(r.raw(), t.raw(), t.nbytes()), 0);
    }
  }
  // Re-writing what was read reproduces the file.
  std::vector<std::pair<std::string, Tensor>> again;
  for (const SafetensorsTensorInfo& i : f.tensor_infos())
    again.emplace_back(i.name, f.tensor(i.name));
  write_safetensors(path + "2", again, f.metadata());
  EXPECT_EQ(st_read_bytes(path + "2"), st_read_bytes(path));
}

TEST(SafetensorsWriter, EmptyFileIsTheMinimalHeader) {
  const std::string path = st_temp_dir("empty") + "/e.safetensors";
  write_safetensors(path, {}, {});
  const std::vector<uint8_t> b = st_read_bytes(path);
  const std::vector<uint8_t> want = {8,   0,   0,   0,   0,   0,   0,   0,
                                     '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  EXPECT_EQ(b, want);  // as huggingface/safetensors serialises an empty dict
  EXPECT_TRUE(SafetensorsFile::open(path).tensor_infos().empty());
}

TEST(SafetensorsWriter, IndependentPythonReaderAgrees) {
  if (!python_with_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  const std::string dir = st_temp_dir("pyread");
  const std::string path = dir + "/w.safetensors";
  write_safetensors(path, sample_tensors(), {{"format", "pt"}});
  // Parses by the published layout and prints one canonical line per tensor.
  const std::string script = R"PY(
import json, struct, sys
import numpy as np
data = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<Q", data, 0)[0]
header = json.loads(data[8:8 + n].decode("utf-8"))
assert (8 + n) % 8 == 0
meta = header.pop("__metadata__", {})
np_dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1",
            "BF16": "<u2"}
ends = []
for name in sorted(header):
    e = header[name]
    b, end = e["data_offsets"]
    ends.append((b, end))
    a = np.frombuffer(data[8 + n + b:8 + n + end], dtype=np_dtype[e["dtype"]])
    a = a.reshape(e["shape"])
    print(name, e["dtype"], list(a.shape), a.ravel().tolist())
ends.sort()
assert ends[0][0] == 0 and ends[-1][1] == len(data) - 8 - n
assert all(x[1] == y[0] for x, y in zip(ends, ends[1:]))
print("meta", json.dumps(meta, sort_keys=True))
)PY";
  st_write_text(dir + "/read.py", script);
  const auto [rc, out] = run(std::string(kStPython) + " " + dir + "/read.py " + path + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  const std::string want =
      "a.f32 F32 [2, 2] [1.0, -2.0, 3.5, 4.0]\n"
      "bf16 BF16 [1] [0]\n"
      "empty F32 [0, 3] []\n"
      "f16 F16 [3] [0.0, 1.0, 0.0]\n"
      "i32 I32 [2] [0, 0]\n"
      "i64 I64 [1, 2] [0, -7]\n"
      "scalar.f64 F64 [] [-0.25]\n"
      "u8 U8 [3] [0, 0, 9]\n"
      "ünïcödé F32 [1] [0.0]\n"
      "meta {\"format\": \"pt\"}\n";
  EXPECT_EQ(out, want);
}

TEST(SafetensorsWriter, RejectsBadInputAndLeavesNoFile) {
  const std::string dir = st_temp_dir("writer_errors");
  const std::string path = dir + "/bad.safetensors";
  const Tensor t = Tensor::zeros(DType::kF32, {2});
  struct Case {
    std::vector<std::pair<std::string, Tensor>> tensors;
    std::map<std::string, std::string> metadata;
    ErrorCode code;
    const char* message;
  };
  const Case cases[] = {
      {{{"", t}}, {}, ErrorCode::kInvalidArgument, "bad.safetensors: tensor #0 has an empty name"},
      {{{"a", t}, {"a", t}}, {}, ErrorCode::kInvalidArgument, "duplicate tensor name 'a'"},
      {{{"__metadata__", t}}, {}, ErrorCode::kInvalidArgument, "'__metadata__' is reserved"},
      {{{"u", Tensor()}}, {}, ErrorCode::kInvalidArgument, "tensor 'u' is undefined"},
      {{{"v", Tensor::view(DType::kF32, {2}, nullptr)}},
       {},
       ErrorCode::kInvalidArgument,
       "tensor 'v' is undefined"},
      {{{"q", Tensor::zeros(DType::kQ8_0, {32})}},
       {},
       ErrorCode::kUnsupported,
       "tensor 'q' has dtype q8_0"},
      {{{"bad\xff", t}}, {}, ErrorCode::kInvalidArgument, "not valid UTF-8"},
      {{{"a", t}}, {{"k", "\xc3"}}, ErrorCode::kInvalidArgument, "not valid UTF-8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    expect_error([&] { write_safetensors(path, c.tensors, c.metadata); }, c.code, c.message);
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  expect_error(
      [&] {
        write_safetensors(dir + "/no/such/dir/x.safetensors", {{"a", t}});
      },
      ErrorCode::kIo, "x.safetensors: cannot create");
}

// ---- corrupted files ----

struct SafetensorsCorruption {
  const char* name;
  std::vector<uint8_t> bytes;
  ErrorCode code;
  const char* message;  // a substring the error must contain, after "t.safetensors: "
};

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}
std::string one(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  std::string s = "{";  // appended: g++ 12 warns falsely (-Wrestrict) on "{" + std::string
  s += entry("w", dtype, shape, offsets);
  return s + "}";
}

std::vector<SafetensorsCorruption> st_corruptions() {
  const std::string ok_a = entry("a", "\"F32\"", "[2]", "[0,8]");
  std::string deep = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":";
  for (int i = 0; i < 20; ++i) deep += "[";
  for (int i = 0; i < 20; ++i) deep += "]";
  deep += "}}";
  std::vector<uint8_t> nul_padded = image("{}", 0, false);
  nul_padded[0] = 8;
  nul_padded.resize(16, 0);
  std::vector<uint8_t> huge_len = image("{}", 0);
  const uint64_t huge = 100'000'001;
  std::memcpy(huge_len.data(), &huge, 8);
  std::vector<uint8_t> past_end = image("{}", 0);
  past_end[0] = 9;
  std::string many_dims = "[";
  for (int i = 0; i < 65; ++i) many_dims += i ? ",1" : "1";
  many_dims += "]";
  return {
      {"shorter than the length field",
       {1, 0, 0},
       ErrorCode::kFormat,
       "truncated reading header length"},
      {"header length above 100 MB", huge_len, ErrorCode::kFormat,
       "header length 100000001 exceeds the limit of 100000000 bytes"},
      {"header length past the end", past_end, ErrorCode::kFormat,
       "header length 9 runs past the end of the file (16 bytes)"},
      {"empty header", image("", 0, false), ErrorCode::kFormat, "header is not valid JSON"},
      {"unterminated JSON", image("{\"a\":", 0), ErrorCode::kFormat, "header is not valid JSON"},
      {"NUL padding", nul_padded, ErrorCode::kFormat,
       "header byte 2 is NUL (headers are padded with spaces)"},
      {"text after the object", image("{} x", 0, false), ErrorCode::kFormat,
       "header is not valid JSON"},
      {"invalid UTF-8", image("{\"\xff\":{}}", 0), ErrorCode::kFormat, "header is not valid JSON"},
      {"root is an array", image("[]", 0), ErrorCode::kFormat, "header is an array, not a JSON"},
      {"root is a string", image("\"x\"", 0), ErrorCode::kFormat, "header is a string, not a"},
      {"entry is a number", image("{\"w\":5}", 0), ErrorCode::kFormat,
       "header: entry 'w' is a number, not an object"},
      {"metadata is an array", image("{\"__metadata__\":[]}", 0), ErrorCode::kFormat,
       "header: __metadata__ is an array"},
      {"metadata value not a string", image("{\"__metadata__\":{\"k\":1}}", 0), ErrorCode::kFormat,
       "header: __metadata__ 'k' is a number, not a string"},
      {"duplicate metadata key", image("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0),
       ErrorCode::kFormat, "__metadata__: duplicate key 'k'"},
      {"duplicate tensor", image("{" + ok_a + "," + ok_a + "}", 8), ErrorCode::kFormat,
       "header: duplicate entry 'a'"},
      {"duplicate field",
       image("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
             4),
       ErrorCode::kFormat, "tensor 'w': duplicate key 'dtype'"},
      {"missing dtype", image("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       ErrorCode::kFormat, "tensor 'w': missing 'dtype'"},
      {"missing shape", image("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4),
       ErrorCode::kFormat, "tensor 'w': missing 'shape'"},
      {"missing offsets", image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), ErrorCode::kFormat,
       "tensor 'w': missing 'data_offsets'"},
      {"dtype is a number", image(one("7", "[1]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': dtype is a number"},
      {"unknown dtype", image(one("\"F17\"", "[1]", "[0,4]"), 4), ErrorCode::kUnsupported,
       "tensor 'w': unknown dtype 'F17'"},
      {"shape is an object", image(one("\"F32\"", "{}", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape is an object"},
      {"shape is a string", image(one("\"F32\"", "\"1\"", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape is a string"},
      {"negative dim", image(one("\"F32\"", "[1,-1]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape[1] is negative"},
      {"fractional dim", image(one("\"F32\"", "[1.5]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape[0] = 1.5 is not an integer"},
      {"dim as string", image(one("\"F32\"", "[\"1\"]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape[0] is a string, not an integer"},
      {"nested shape", image(one("\"F32\"", "[[1]]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape[0] is an array, not an integer"},
      {"dim above 2^62", image(one("\"F32\"", "[9223372036854775808]", "[0,4]"), 4),
       ErrorCode::kFormat, "shape[0] = 9223372036854775808 is too large"},
      {"65 dims", image(one("\"F32\"", many_dims, "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape has more than 64 dims"},
      {"one offset", image(one("\"F32\"", "[1]", "[4]"), 4), ErrorCode::kFormat,
       "tensor 'w': data_offsets has 1 entries, expected 2"},
      {"three offsets", image(one("\"F32\"", "[1]", "[0,4,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': data_offsets has more than 2 entries"},
      {"negative offset", image(one("\"F32\"", "[1]", "[-4,0]"), 4), ErrorCode::kFormat,
       "tensor 'w': data_offsets[0] is negative"},
      {"offset beyond u64", image(one("\"F32\"", "[1]", "[0,1e30]"), 4), ErrorCode::kFormat,
       "tensor 'w': data_offsets[1] = 1e30 is not an integer"},
      {"offsets reversed", image(one("\"F32\"", "[0]", "[4,0]"), 4), ErrorCode::kFormat,
       "tensor 'w': data_offsets [4, 0] end before they begin"},
      {"offsets past the buffer", image(one("\"F32\"", "[1]", "[0,4]"), 3), ErrorCode::kFormat,
       "tensor 'w': data_offsets [0, 4] run past the end of the data buffer (3 bytes)"},
      {"size mismatch", image(one("\"F32\"", "[2]", "[0,4]"), 4), ErrorCode::kFormat,
       "tensor 'w': shape [2] of F32 needs 8 bytes, but data_offsets [0, 4] hold 4"},
      {"shape overflows", image(one("\"F32\"", "[1099511627776,1099511627776]", "[0,4]"), 4),
       ErrorCode::kFormat, "tensor 'w': shape [1099511627776, 1099511627776] overflows"},
      {"sub-byte dtype, odd bits", image(one("\"F4\"", "[3]", "[0,2]"), 2), ErrorCode::kFormat,
       "tensor 'w': shape [3] of F4 is not a whole number of bytes"},
      {"overlap", image("{" + ok_a + "," + entry("b", "\"F32\"", "[2]", "[4,12]") + "}", 12),
       ErrorCode::kFormat, "tensor 'b' [4, 12] overlaps tensor 'a' [0, 8]"},
      {"zero-size tensor inside another",
       image("{" + ok_a + "," + entry("z", "\"F32\"", "[0]", "[4,4]") + "}", 8), ErrorCode::kFormat,
       "tensor 'z' [4, 4] overlaps tensor 'a'"},
      {"gap", image("{" + ok_a + "," + entry("b", "\"F32\"", "[1]", "[12,16]") + "}", 16),
       ErrorCode::kFormat, "bytes [8, 12] of the data buffer before tensor 'b' belong to no"},
      {"gap at the start", image(one("\"F32\"", "[1]", "[4,8]"), 8), ErrorCode::kFormat,
       "bytes [0, 4] of the data buffer before tensor 'w'"},
      {"trailing bytes", image(one("\"F32\"", "[1]", "[0,4]"), 5), ErrorCode::kFormat,
       "the data buffer has 5 bytes but the tensors cover 4"},
      {"nesting bomb in an unknown field", image(deep, 4), ErrorCode::kFormat,
       "header: JSON nested deeper than 16 levels"},
  };
}

TEST(SafetensorsCorrupt, EachCorruptionIsReportedWithFileAndField) {
  for (const SafetensorsCorruption& c : st_corruptions()) {
    SCOPED_TRACE(c.name);
    try {
      parse_safetensors(c.bytes);
      ADD_FAILURE() << "no error for " << c.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), c.code) << msg;
      EXPECT_EQ(msg.rfind("t.safetensors: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
    }
  }
}

TEST(SafetensorsCorrupt, AcceptedEdgeCases) {
  // Unknown fields are ignored (as serde does), __metadata__ may come anywhere, sub-byte dtypes
  // pack, zero-size tensors may sit at a boundary, and a header without tensors is valid.
  const SafetensorsFile f = parse_safetensors(
      image("{\"w\":{\"extra\":{\"x\":[1,{\"y\":null}]},\"dtype\":\"F4\",\"shape\":[2,2],"
            "\"data_offsets\":[0,2]},\"__metadata__\":{},\"z\":{\"dtype\":\"BOOL\",\"shape\":[0],"
            "\"data_offsets\":[2,2]}}",
            2));
  EXPECT_EQ(f.find("w")->nbytes(), 2u);
  EXPECT_FALSE(f.find("w")->dtype.has_value());
  EXPECT_EQ(f.find("z")->begin, 2u);
  EXPECT_TRUE(parse_safetensors(image("{}", 0)).tensor_infos().empty());
  EXPECT_TRUE(parse_safetensors(image(" { } ", 0, false)).metadata().empty());
}

TEST(SafetensorsCorrupt, EveryTruncationIsAFormatError) {
  const std::vector<uint8_t> full = st_read_bytes(kStDataDir + "/tiny.safetensors");
  ASSERT_GT(full.size(), 100u);
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    try {
      parse_safetensors(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)));
      ADD_FAILURE() << "no error at length " << n;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << msg;
      EXPECT_EQ(msg.rfind("t.safetensors: ", 0), 0u) << msg;
      EXPECT_TRUE(msg.find("truncated reading header length") != std::string::npos ||
                  msg.find("runs past the end of the file") != std::string::npos ||
                  msg.find("run past the end of the data buffer") != std::string::npos)
          << msg;
    }
  }
}

TEST(SafetensorsCorrupt, EveryByteFlipIsAnErrorOrAValidFile) {
  // A coarse net under ASan/UBSan: any single-byte change parses or throws Error.
  const std::vector<uint8_t> full = st_read_bytes(kStDataDir + "/tiny.safetensors");
  const SafetensorsFile f = parse_safetensors(full);
  for (size_t i = 0; i < f.data_offset(); ++i) {
    for (uint8_t x : {0x01, 0x20, 0x80, 0xff}) {
      std::vector<uint8_t> b = full;
      b[i] ^= x;
      try {
        const SafetensorsFile g = parse_safetensors(b);
        for (const SafetensorsTensorInfo& t : g.tensor_infos()) {
          if (t.dtype) g.tensor(t.name);
        }
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace glassbox
