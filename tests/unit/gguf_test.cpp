// GGUF reader tests: a tiny file built here (every value type, F32/F16/BF16/Q8_0 tensors), a
// table of corruptions of it, and the real files converted by llama.cpp (when shared/ has them).
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "expect_error.h"
#include "io/llama2c.h"
#include "test_models.h"

namespace glassbox {
namespace {

constexpr const char* kGgufName = "tiny.gguf";

// Writes GGUF bytes field by field and remembers where named fields start, so corruption tests
// can patch exactly the field they mean.
class GgufWriter {
 public:
  std::vector<uint8_t> bytes;
  std::map<std::string, size_t> marks;

  void mark(const std::string& name) { marks[name] = bytes.size(); }
  template <class T>
  void put(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  // Key + type id; the caller then writes the value.
  void key(const std::string& k, GgufType t) {
    mark("key:" + k);
    str(k);
    mark("type:" + k);
    put<uint32_t>(static_cast<uint32_t>(t));
    mark("value:" + k);
  }
  void tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                   uint64_t offset) {
    mark("tensor:" + name);
    str(name);
    mark("n_dims:" + name);
    put<uint32_t>(static_cast<uint32_t>(ne.size()));
    mark("ne:" + name);
    for (uint64_t d : ne) put<uint64_t>(d);
    mark("ggml_type:" + name);
    put<uint32_t>(type);
    mark("offset:" + name);
    put<uint64_t>(offset);
  }
  void pad_to(size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
  }
};

// Nested i32 arrays `depth` levels deep: [[[1]]] for depth 3.
void put_nested(GgufWriter& w, int depth) {
  w.put<uint32_t>(static_cast<uint32_t>(depth == 1 ? GgufType::kI32 : GgufType::kArray));
  w.put<uint64_t>(1);
  if (depth == 1) {
    w.put<int32_t>(1);
  } else {
    put_nested(w, depth - 1);
  }
}

struct TinyOptions {
  uint32_t version = 3;
  int nested_depth = 2;  // depth of the "test.nested" array value
};

// A valid file: metadata of every type and four tensors,
//   a.weight F32 ne [4, 2] -> [2, 4], values 0..7, offset 0
//   b.weight F16 ne [8], 1.0 .. 8.0, offset 32
//   c.weight Q8_0 ne [32, 2] -> [2, 32], 68 bytes, offset 64
//   d.weight BF16 ne [2, 1, 1, 1] -> [1, 1, 1, 2], offset 160
GgufWriter make_tiny(const TinyOptions& opt = {}) {
  GgufWriter w;
  w.mark("magic");
  w.put<uint32_t>(0x46554747);
  w.mark("version");
  w.put<uint32_t>(opt.version);
  w.mark("n_tensors");
  w.put<uint64_t>(4);
  w.mark("n_kv");
  w.put<uint64_t>(19);
  w.key("general.architecture", GgufType::kString);
  w.str("llama");
  w.key("general.alignment", GgufType::kU32);
  w.put<uint32_t>(32);
  w.key("t.u8", GgufType::kU8);
  w.put<uint8_t>(200);
  w.key("t.i8", GgufType::kI8);
  w.put<int8_t>(-100);
  w.key("t.u16", GgufType::kU16);
  w.put<uint16_t>(60000);
  w.key("t.i16", GgufType::kI16);
  w.put<int16_t>(-30000);
  w.key("t.u32", GgufType::kU32);
  w.put<uint32_t>(4000000000u);
  w.key("t.i32", GgufType::kI32);
  w.put<int32_t>(-2000000000);
  w.key("t.f32", GgufType::kF32);
  w.put<float>(1.5f);
  w.key("t.bool", GgufType::kBool);
  w.put<uint8_t>(1);
  w.key("t.u64", GgufType::kU64);
  w.put<uint64_t>(0x8000000000000005ull);
  w.key("t.i64", GgufType::kI64);
  w.put<int64_t>(-5);
  w.key("t.f64", GgufType::kF64);
  w.put<double>(2.25);
  w.key("t.strs", GgufType::kArray);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::kString));
  w.mark("count:t.strs");
  w.put<uint64_t>(3);
  w.mark("elem0:t.strs");
  w.str("a");
  w.str("bc");
  w.str("");
  w.key("t.nested", GgufType::kArray);
  put_nested(w, opt.nested_depth);
  w.key("t.empty", GgufType::kArray);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::kU8));
  w.put<uint64_t>(0);
  w.key("t.bools", GgufType::kArray);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::kBool));
  w.put<uint64_t>(2);
  w.put<uint8_t>(0);
  w.put<uint8_t>(1);
  w.key("dup.aaa", GgufType::kU8);  // same length as dup.bbb, for the duplicate-key case
  w.put<uint8_t>(1);
  w.key("dup.bbb", GgufType::kU8);
  w.put<uint8_t>(2);

  w.tensor_info("a.weight", {4, 2}, 0, 0);
  w.tensor_info("b.weight", {8}, 1, 32);
  w.tensor_info("c.weight", {32, 2}, 8, 64);
  w.tensor_info("d.weight", {2, 1, 1, 1}, 30, 160);
  w.pad_to(32);
  w.mark("data");
  for (int i = 0; i < 8; ++i) w.put<float>(static_cast<float>(i));  // a: 32 bytes
  for (uint16_t h : {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600, 0x4700, 0x4800}) {
    w.put<uint16_t>(h);  // b: 16 bytes
  }
  w.pad_to(32);
  for (int i = 0; i < 68; ++i) w.put<uint8_t>(static_cast<uint8_t>(i));  // c: 68 bytes
  w.pad_to(32);
  w.put<uint16_t>(0x3f80);  // d: 1.0, -2.0
  w.put<uint16_t>(0xc000);
  return w;
}

GgufFile parse_gguf(std::vector<uint8_t> bytes) {
  return GgufFile::from_bytes(std::make_shared<const std::vector<uint8_t>>(std::move(bytes)),
                              kGgufName);
}

template <class T>
void patch(std::vector<uint8_t>& b, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), b.size());
  std::memcpy(b.data() + at, &v, sizeof(T));
}

using testing::expect_error;

TEST(Gguf, TinyFileMetadataOfEveryType) {
  const GgufFile f = parse_gguf(make_tiny().bytes);
  EXPECT_EQ(f.path(), kGgufName);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), 19u);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");  // file order kept
  EXPECT_EQ(f.get("general.architecture").as_string("arch"), "llama");
  EXPECT_EQ(f.get("t.u8").as_int("x"), 200);
  EXPECT_EQ(f.get("t.i8").as_int("x"), -100);
  EXPECT_EQ(f.get("t.u16").as_int("x"), 60000);
  EXPECT_EQ(f.get("t.i16").as_int("x"), -30000);
  EXPECT_EQ(f.get("t.u32").as_int("x"), 4000000000);
  EXPECT_EQ(f.get("t.i32").as_int("x"), -2000000000);
  EXPECT_EQ(f.get("t.f32").as_float("x"), 1.5);
  EXPECT_TRUE(f.get("t.bool").as_bool("x"));
  EXPECT_EQ(f.get("t.i64").as_int("x"), -5);
  EXPECT_EQ(f.get("t.f64").as_float("x"), 2.25);
  EXPECT_EQ(f.get("t.i32").as_float("x"), -2e9);  // integers convert to float
  const GgufValue& big = f.get("t.u64");
  EXPECT_TRUE(big.is_integer());
  EXPECT_EQ(std::get<uint64_t>(big.v), 0x8000000000000005ull);
  EXPECT_EQ(big.to_display(), "9223372036854775813");
  EXPECT_THROW(big.as_int("t.u64"), Error);
  const GgufArray& strs = f.get("t.strs").as_array("x");
  EXPECT_EQ(strs.elem_type, GgufType::kString);
  ASSERT_EQ(strs.items.size(), 3u);
  EXPECT_EQ(strs.items[1].as_string("x"), "bc");
  EXPECT_EQ(strs.items[2].as_string("x"), "");
  const GgufArray& outer = f.get("t.nested").as_array("x");
  EXPECT_EQ(outer.elem_type, GgufType::kArray);
  EXPECT_EQ(outer.items.at(0).as_array("x").items.at(0).as_int("x"), 1);
  EXPECT_EQ(f.get("t.empty").as_array("x").elem_type, GgufType::kU8);
  EXPECT_TRUE(f.get("t.empty").as_array("x").items.empty());
  EXPECT_EQ(f.get("t.bools").to_display(), "[false, true]");
  EXPECT_EQ(f.get("t.strs").to_display(2), "[\"a\", \"bc\", ... (3 string items)]");
  EXPECT_EQ(f.find("missing"), nullptr);
  expect_error([&] { f.get("missing.key"); }, ErrorCode::kNotFound,
               "tiny.gguf: missing metadata key missing.key");
  expect_error([&] { f.get("t.f32").as_string("tiny.gguf: t.f32"); }, ErrorCode::kFormat,
               "tiny.gguf: t.f32: expected string, found f32");
}

TEST(Gguf, TinyFileTensors) {
  const GgufWriter w = make_tiny();
  const GgufFile f = parse_gguf(w.bytes);
  EXPECT_EQ(f.data_offset(), w.marks.at("data"));
  ASSERT_EQ(f.tensor_infos().size(), 4u);
  const Tensor a = f.tensor("a.weight");
  EXPECT_EQ(a.dtype(), DType::kF32);
  EXPECT_EQ(a.shape(), (Shape{2, 4}));  // ne [4, 2] reversed
  EXPECT_FALSE(a.writable());
  EXPECT_EQ(a.floats()[5], 5.0f);
  const Tensor b = f.tensor("b.weight");
  EXPECT_EQ(b.dtype(), DType::kF16);
  EXPECT_EQ(b.to_f32().floats()[7], 8.0f);
  const GgufTensorInfo* c = f.find_tensor("c.weight");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->dtype, DType::kQ8_0);
  EXPECT_EQ(c->ggml_type, 8u);
  EXPECT_EQ(c->nbytes, 68u);
  EXPECT_EQ(c->offset, 64u);
  EXPECT_EQ(f.tensor("c.weight").shape(), (Shape{2, 32}));
  EXPECT_EQ(f.tensor("c.weight").data<uint8_t>()[67], 67);
  const Tensor d = f.tensor("d.weight");
  EXPECT_EQ(d.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(d.to_f32().floats()[1], -2.0f);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  expect_error([&] { f.tensor("nope"); }, ErrorCode::kNotFound, "tiny.gguf: no tensor named nope");
}

TEST(Gguf, TensorOutlivesFileObjectAndOpensFromDisk) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "gguf_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tiny.gguf").string();
  const GgufWriter w = make_tiny();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(w.bytes.data()),
             static_cast<std::streamsize>(w.bytes.size()));
  Tensor a;
  {
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.path(), path);
    a = f.tensor("a.weight");
  }
  EXPECT_EQ(a.floats()[7], 7.0f);  // the mapping is kept alive by the tensor
  expect_error([&] { GgufFile::open(path + ".missing"); }, ErrorCode::kIo, "tiny.gguf.missing");
}

TEST(Gguf, VersionTwoAndNestingLimit) {
  EXPECT_EQ(parse_gguf(make_tiny({.version = 2}).bytes).version(), 2u);
  const GgufFile deep = parse_gguf(make_tiny({.nested_depth = 8}).bytes);
  const GgufValue* v = &deep.get("t.nested");
  for (int i = 0; i < 7; ++i) v = &v->as_array("x").items.at(0);
  EXPECT_EQ(v->as_array("x").elem_type, GgufType::kI32);
  expect_error([&] { parse_gguf(make_tiny({.nested_depth = 9}).bytes); }, ErrorCode::kFormat,
               "tiny.gguf: metadata 't.nested' element: arrays nested deeper than 8 levels");
}

TEST(Gguf, DtypeMapping) {
  const std::pair<uint32_t, DType> known[] = {
      {0, DType::kF32},   {1, DType::kF16},   {2, DType::kQ4_0},  {3, DType::kQ4_1},
      {6, DType::kQ5_0},  {7, DType::kQ5_1},  {8, DType::kQ8_0},  {10, DType::kQ2_K},
      {11, DType::kQ3_K}, {12, DType::kQ4_K}, {13, DType::kQ5_K}, {14, DType::kQ6_K},
      {30, DType::kBF16},
  };
  for (const auto& [id, dtype] : known) EXPECT_EQ(dtype_from_ggml_type(id), dtype) << id;
  for (uint32_t id : {4u, 5u, 9u, 15u, 16u, 29u, 31u, 39u, 1000u}) {
    EXPECT_FALSE(dtype_from_ggml_type(id).has_value()) << id;
  }
}

TEST(GgufCorrupt, MetadataValueCapBoundsMemory) {
  // 2^24 + 1 one-byte elements: each would cost ~48 bytes parsed, so the reader refuses up front.
  GgufWriter w;
  w.put<uint32_t>(0x46554747);
  w.put<uint32_t>(3);
  w.put<uint64_t>(0);
  w.put<uint64_t>(1);
  w.key("big", GgufType::kArray);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::kU8));
  w.put<uint64_t>((1u << 24) + 1);
  w.bytes.resize(w.bytes.size() + (1u << 24) + 1);
  expect_error([&] { parse_gguf(w.bytes); }, ErrorCode::kUnsupported,
               "tiny.gguf: metadata 'big': metadata holds more than 16777216 array elements");
}

// ---- corrupted files ----

struct GgufCorruption {
  const char* name;
  std::function<void(GgufWriter&)> mutate;
  ErrorCode code;
  const char* message;  // a substring the error must contain (besides the file name)
};

const std::vector<GgufCorruption>& corruptions() {
  static const std::vector<GgufCorruption> kTable = {
      {"bad magic", [](GgufWriter& w) { w.bytes[0] = 'X'; }, ErrorCode::kFormat, "bad magic"},
      {"version 1", [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["version"], 1); },
       ErrorCode::kUnsupported, "GGUF version 1 is not supported"},
      {"version 4", [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["version"], 4); },
       ErrorCode::kUnsupported, "GGUF version 4"},
      {"big endian",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["version"], 0x03000000); },
       ErrorCode::kUnsupported, "big-endian"},
      {"huge n_kv", [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["n_kv"], 1ull << 60); },
       ErrorCode::kFormat, "n_kv = 1152921504606846976"},
      {"huge n_tensors",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["n_tensors"], ~0ull); },
       ErrorCode::kFormat, "n_tensors = 18446744073709551615"},
      {"huge key length",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["key:t.u8"], 1ull << 62); },
       ErrorCode::kFormat, "metadata key #2: string length 4611686018427387904 exceeds"},
      {"empty key", [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["key:t.u8"], 0); },
       ErrorCode::kFormat, "metadata key #2 is empty"},
      {"invalid value type",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["type:t.u8"], 13); },
       ErrorCode::kFormat, "metadata 't.u8': invalid value type id 13"},
      {"huge value type",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["type:t.i8"], 0xffffffffu); },
       ErrorCode::kFormat, "metadata 't.i8': invalid value type id 4294967295"},
      {"invalid array element type",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["value:t.strs"], 77); },
       ErrorCode::kFormat, "metadata 't.strs' element: invalid value type id 77"},
      {"huge array length",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["count:t.strs"], 1ull << 61); },
       ErrorCode::kFormat, "metadata 't.strs': array of 2305843009213693952 string elements"},
      {"huge string in array",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["elem0:t.strs"], 1ull << 40); },
       ErrorCode::kFormat, "metadata 't.strs' element: string length 1099511627776 exceeds"},
      {"bool byte 2", [](GgufWriter& w) { w.bytes[w.marks["value:t.bool"]] = 2; },
       ErrorCode::kFormat, "metadata 't.bool': bool byte is 2"},
      {"duplicate key",
       [](GgufWriter& w) {
         for (size_t i = 4; i < 7; ++i) w.bytes[w.marks["key:dup.bbb"] + 8 + i] = 'a';
       },
       ErrorCode::kFormat, "duplicate metadata key 'dup.aaa'"},
      {"alignment 0",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["value:general.alignment"], 0); },
       ErrorCode::kFormat, "'general.alignment' = 0, expected a power of two"},
      {"alignment 48",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["value:general.alignment"], 48); },
       ErrorCode::kFormat, "'general.alignment' = 48"},
      {"alignment 2^31 overflows data",
       [](GgufWriter& w) {
         patch<uint32_t>(w.bytes, w.marks["value:general.alignment"], 1u << 31);
       },
       ErrorCode::kFormat, "runs past the end of the file"},
      {"alignment 2 misaligns f32",
       [](GgufWriter& w) {
         patch<uint32_t>(w.bytes, w.marks["value:general.alignment"], 2);
         // The data section now starts at the end of the infos rounded up to 2; put a.weight
         // 2 bytes off a multiple of 4.
         const size_t data = (w.marks["offset:d.weight"] + 8 + 1) / 2 * 2;
         patch<uint64_t>(w.bytes, w.marks["offset:a.weight"], data % 4 == 0 ? 2 : 0);
       },
       ErrorCode::kFormat, "not aligned to 4 bytes for f32"},
      {"alignment of type f32",
       [](GgufWriter& w) {
         patch<uint32_t>(w.bytes, w.marks["type:general.alignment"], 6);  // f32, same size
       },
       ErrorCode::kFormat, "'general.alignment': expected an integer, found f32"},
      {"empty tensor name",
       [](GgufWriter& w) {
         // Shrinks the name length to 0 while leaving the bytes: the rest misparses, but the
         // empty name is seen first.
         patch<uint64_t>(w.bytes, w.marks["tensor:a.weight"], 0);
       },
       ErrorCode::kFormat, "tensor #0 has an empty name"},
      {"n_dims 0", [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["n_dims:b.weight"], 0); },
       ErrorCode::kFormat, "tensor 'b.weight': n_dims = 0, expected 1..4"},
      {"n_dims 5", [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["n_dims:b.weight"], 5); },
       ErrorCode::kFormat, "tensor 'b.weight': n_dims = 5"},
      {"dim above 2^62",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["ne:a.weight"] + 8, ~0ull); },
       ErrorCode::kFormat, "tensor 'a.weight': ne[1] = 18446744073709551615 is too large"},
      {"dims product overflows",
       [](GgufWriter& w) {
         patch<uint64_t>(w.bytes, w.marks["ne:a.weight"], 1ull << 40);
         patch<uint64_t>(w.bytes, w.marks["ne:a.weight"] + 8, 1ull << 40);
       },
       ErrorCode::kFormat, "tensor 'a.weight': shape [1099511627776, 1099511627776] overflows"},
      {"tensor larger than the file",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["ne:a.weight"], 1ull << 40); },
       ErrorCode::kFormat, "tensor 'a.weight': shape [2, 1099511627776] of f32 needs more"},
      {"unknown ggml type",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["ggml_type:b.weight"], 99); },
       ErrorCode::kUnsupported, "tensor 'b.weight': unsupported ggml type id 99"},
      {"removed ggml type Q4_2",
       [](GgufWriter& w) { patch<uint32_t>(w.bytes, w.marks["ggml_type:b.weight"], 4); },
       ErrorCode::kUnsupported, "tensor 'b.weight': unsupported ggml type id 4"},
      {"q8_0 row not whole blocks",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["ne:c.weight"], 16); },
       ErrorCode::kFormat, "tensor 'c.weight': ne[0] = 16 is not a multiple of the q8_0 block"},
      {"misaligned offset",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["offset:b.weight"], 36); },
       ErrorCode::kFormat, "tensor 'b.weight': offset 36 is not a multiple of the alignment 32"},
      {"offset past end",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["offset:d.weight"], 1ull << 63); },
       ErrorCode::kFormat, "tensor 'd.weight': data [offset 9223372036854775808, 4 bytes] runs"},
      {"data runs past end",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["offset:c.weight"], 160); },
       ErrorCode::kFormat, "tensor 'c.weight': data [offset 160, 68 bytes] runs past the end"},
      {"overlapping tensors",
       [](GgufWriter& w) { patch<uint64_t>(w.bytes, w.marks["offset:b.weight"], 0); },
       ErrorCode::kFormat, "overlaps tensor"},
      {"duplicate tensor name",
       [](GgufWriter& w) { w.bytes[w.marks["tensor:b.weight"] + 8] = 'a'; }, ErrorCode::kFormat,
       "duplicate tensor name 'a.weight'"},
      {"last tensor cut short", [](GgufWriter& w) { w.bytes.pop_back(); }, ErrorCode::kFormat,
       "tensor 'd.weight': data [offset 160, 4 bytes] runs past the end of the file"},
  };
  return kTable;
}

TEST(GgufCorrupt, EachCorruptionIsReportedWithFileAndField) {
  for (const GgufCorruption& c : corruptions()) {
    SCOPED_TRACE(c.name);
    GgufWriter w = make_tiny();
    c.mutate(w);
    try {
      parse_gguf(w.bytes);
      ADD_FAILURE() << "no error for " << c.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), c.code) << msg;
      EXPECT_EQ(msg.rfind("tiny.gguf: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
    }
  }
}

TEST(GgufCorrupt, EveryTruncationIsAFormatError) {
  const GgufWriter w = make_tiny();
  for (size_t n = 0; n < w.bytes.size(); ++n) {
    SCOPED_TRACE(n);
    const std::vector<uint8_t> cut(w.bytes.begin(), w.bytes.begin() + static_cast<long>(n));
    try {
      parse_gguf(cut);
      ADD_FAILURE() << "no error at length " << n;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << msg;
      EXPECT_EQ(msg.rfind("tiny.gguf: ", 0), 0u) << msg;
      // Header cuts name the field being read; data cuts name the tensor.
      EXPECT_TRUE(msg.find("truncated reading") != std::string::npos ||
                  msg.find("runs past the end") != std::string::npos ||
                  msg.find("cannot fit") != std::string::npos ||
                  msg.find("exceeds the") != std::string::npos ||
                  msg.find("needs at least") != std::string::npos)
          << msg;
    }
  }
}

TEST(GgufCorrupt, EveryByteFlipIsAnErrorOrAValidFile) {
  // Coarse robustness net under ASan/UBSan: any single-byte change must parse or throw Error.
  const GgufWriter w = make_tiny();
  for (size_t i = 0; i < w.marks.at("data"); ++i) {
    for (uint8_t x : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> b = w.bytes;
      b[i] ^= x;
      try {
        parse_gguf(b);
      } catch (const Error&) {
      }
    }
  }
}

// ---- real files converted by llama.cpp ----

TEST(GgufReal, Stories260KF32MatchesLlama2c) {
  const std::string path = testing::shared_gguf("stories260K-f32.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get("general.architecture").as_string("arch"), "llama");
  EXPECT_EQ(f.get("llama.context_length").as_int("ctx"), 128);
  EXPECT_EQ(f.get("llama.embedding_length").as_int("d"), 64);
  EXPECT_EQ(f.get("llama.feed_forward_length").as_int("d"), 172);
  EXPECT_EQ(f.get("llama.block_count").as_int("d"), 5);
  EXPECT_EQ(f.get("llama.attention.head_count").as_int("d"), 8);
  EXPECT_EQ(f.get("llama.attention.head_count_kv").as_int("d"), 4);
  EXPECT_NEAR(f.get("llama.attention.layer_norm_rms_epsilon").as_float("eps"), 1e-5, 1e-9);
  const GgufArray& tokens = f.get("tokenizer.ggml.tokens").as_array("tokens");
  ASSERT_EQ(tokens.items.size(), 512u);
  EXPECT_EQ(tokens.items[1].as_string("tok"), "<s>");
  EXPECT_EQ(f.get("tokenizer.ggml.scores").as_array("s").items.size(), 512u);
  EXPECT_EQ(f.tensor_infos().size(), 3u + 5u * 9u);
  EXPECT_EQ(f.tensor("token_embd.weight").shape(), (Shape{512, 64}));
  EXPECT_EQ(f.tensor("blk.4.attn_k.weight").shape(), (Shape{32, 64}));
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").shape(), (Shape{64, 172}));
  EXPECT_EQ(f.tensor("blk.0.ffn_gate.weight").shape(), (Shape{172, 64}));
  uint64_t end = 0;
  for (const GgufTensorInfo& t : f.tensor_infos()) {
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
    end = std::max<uint64_t>(end, f.data_offset() + t.offset + t.nbytes);
  }
  EXPECT_EQ(end, 1185376u);  // the tensors reach exactly the end of the file

  const Llama2cCheckpoint ck = Llama2cCheckpoint::open(std::string(GLASSBOX_SOURCE_DIR) +
                                                       "/models/stories260K/stories260K.bin");
  for (const char* name : {"token_embd.weight", "blk.2.attn_norm.weight", "blk.3.ffn_down.weight",
                           "blk.1.attn_v.weight", "blk.0.attn_q.weight", "blk.4.attn_k.weight",
                           "output_norm.weight"}) {
    SCOPED_TRACE(name);
    const Tensor g = f.tensor(name);
    const Tensor l = ck.tensors().at(name);
    ASSERT_EQ(g.shape(), l.shape());
    EXPECT_EQ(std::memcmp(g.raw(), l.raw(), g.nbytes()), 0);
  }
  // The converter wrote the shared classifier out as its own tensor.
  EXPECT_EQ(std::memcmp(f.tensor("output.weight").raw(), ck.tensors().at("token_embd.weight").raw(),
                        512 * 64 * 4),
            0);
}

TEST(GgufReal, QuantizedTypesAndSizes) {
  const std::string q8 = testing::shared_gguf("synth15M-q8_0.gguf");
  const std::string q4k = testing::shared_gguf("synthK-q4_k_m.gguf");
  if (!std::filesystem::exists(q8) || !std::filesystem::exists(q4k)) {
    GTEST_SKIP() << "quantized GGUF files not present";
  }
  {
    const GgufFile f = GgufFile::open(q8);
    EXPECT_EQ(f.get("llama.embedding_length").as_int("d"), 288);
    EXPECT_EQ(f.get("tokenizer.ggml.tokens").as_array("t").items.size(), 32000u);
    const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->dtype, DType::kQ8_0);
    EXPECT_EQ(emb->shape, (Shape{32000, 288}));
    EXPECT_EQ(emb->nbytes, 32000u * 288 / 32 * 34);
    EXPECT_EQ(f.find_tensor("blk.5.ffn_down.weight")->dtype, DType::kQ8_0);
    EXPECT_EQ(f.find_tensor("blk.5.ffn_down.weight")->shape, (Shape{288, 768}));
    EXPECT_EQ(f.find_tensor("output_norm.weight")->dtype, DType::kF32);
    EXPECT_EQ(f.tensor("token_embd.weight").nbytes(), emb->nbytes);
  }
  {
    const GgufFile f = GgufFile::open(q4k);
    std::map<DType, int> counts;
    for (const GgufTensorInfo& t : f.tensor_infos()) ++counts[t.dtype];
    EXPECT_EQ(counts[DType::kQ6_K], 5);  // output + attn_v/ffn_down of blocks 2 and 3
    EXPECT_EQ(counts[DType::kF32], 1 + 4 * 2);
    EXPECT_EQ(counts[DType::kQ4_K], 1 + 4 * 7 - 4);
    const GgufTensorInfo* out = f.find_tensor("output.weight");
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(out->dtype, DType::kQ6_K);
    EXPECT_EQ(out->nbytes, 32000u * 256 / 256 * 210);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->nbytes, 32000u * 144);
    EXPECT_EQ(f.find_tensor("blk.3.ffn_down.weight")->dtype, DType::kQ6_K);
    EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->nbytes, 256u * 768 / 256 * 144);
  }
}

}  // namespace
}  // namespace glassbox
