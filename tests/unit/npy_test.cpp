// .npy reader/writer tests: byte-exact agreement with numpy 1.24's np.save, round trips of every
// supported dtype through disk, and a table of malformed files.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

namespace glassbox {
namespace {

namespace fs = std::filesystem;

// np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) with numpy 1.24.2.
constexpr const char* kNumpyArangeHex =
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c"
    "73"
    "652c20277368617065273a2028322c2033292c207d2020202020202020202020202020202020202020202020202020"
    "20"
    "202020202020202020202020202020202020202020202020202020202020200a000000000000803f00000040000040"
    "40"
    "000080400000a040";

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path temp_dir() {
  const fs::path dir = fs::path(::testing::TempDir()) / "npy_test";
  fs::create_directories(dir);
  return dir;
}

// A .npy image with the given dict text (padded like numpy) and `data_bytes` zero bytes.
std::vector<uint8_t> make_npy(const std::string& dict, size_t data_bytes, uint8_t major = 1) {
  const size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((6 + 2 + len_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  for (size_t i = 0; i < len_bytes; ++i) out.push_back((header.size() >> (8 * i)) & 0xff);
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

Tensor decode(const std::vector<uint8_t>& b) { return decode_npy(b.data(), b.size(), "x.npy"); }

TEST(Npy, WriterMatchesNumpyByteForByte) {
  std::vector<float> values = {0, 1, 2, 3, 4, 5};
  const Tensor t = Tensor::from_floats({2, 3}, values);
  const std::string path = (temp_dir() / "arange.npy").string();
  write_npy(path, t);
  EXPECT_EQ(read_file(path), from_hex(kNumpyArangeHex));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Npy, ReadsNumpyOutput) {
  const Tensor t = decode(from_hex(kNumpyArangeHex));
  EXPECT_EQ(t.dtype(), DType::kF32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.floats()[5], 5.0f);
  EXPECT_TRUE(t.writable());  // an owned copy
}

TEST(Npy, HeaderLayout) {
  for (const Shape& shape : {Shape{}, Shape{7}, Shape{2, 3, 4, 5, 6, 7, 8, 9}}) {
    const std::string h = npy_header(DType::kI32, shape);
    EXPECT_EQ(h.size() % 64, 0u);
    EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    EXPECT_EQ(static_cast<size_t>(static_cast<uint8_t>(h[8]) | static_cast<uint8_t>(h[9]) << 8),
              h.size() - 10);
    EXPECT_EQ(h.back(), '\n');
  }
  EXPECT_NE(npy_header(DType::kI32, {7}).find("'shape': (7,), }"), std::string::npos);
  EXPECT_NE(npy_header(DType::kF64, {})
                .find("{'descr': '<f8', 'fortran_order': False, "
                      "'shape': (), }"),
            std::string::npos);
  EXPECT_NE(npy_header(DType::kU8, {1}).find("'|u1'"), std::string::npos);
}

template <class T>
Tensor filled(DType dtype, Shape shape) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(i * 3 - 7);
  return t;
}

TEST(Npy, RoundTripEveryDtype) {
  const Tensor tensors[] = {
      filled<float>(DType::kF32, {3, 5}),      filled<double>(DType::kF64, {4}),
      filled<int32_t>(DType::kI32, {2, 2, 2}), filled<int64_t>(DType::kI64, {1, 6}),
      filled<uint8_t>(DType::kU8, {9}),        filled<uint16_t>(DType::kF16, {2, 3}),
      filled<uint16_t>(DType::kBF16, {3, 2}),  Tensor::zeros(DType::kF32, {0, 4}),
      filled<float>(DType::kF32, {}),
  };
  const std::string path = (temp_dir() / "rt.npy").string();
  for (const Tensor& t : tensors) {
    SCOPED_TRACE(std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()));
    write_npy(path, t);  // overwrites the previous file
    const Tensor back = read_npy(path);
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.shape(), t.shape());
    ASSERT_EQ(back.nbytes(), t.nbytes());
    if (t.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(back.raw(), t.raw(), t.nbytes()), 0);
    }
    EXPECT_EQ(fs::file_size(path) % 64, t.nbytes() % 64);  // data starts on a 64-byte boundary
  }
}

TEST(Npy, WriteErrors) {
  try {
    write_npy("/nonexistent-dir/out.npy", Tensor::zeros(DType::kF32, {2}));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/out.npy"), std::string::npos);
  }
  // Renaming over a directory fails after the data was written; the .tmp must not linger.
  const fs::path dir = temp_dir() / "is_a_dir.npy";
  fs::create_directories(dir);
  try {
    write_npy(dir.string(), Tensor::zeros(DType::kF32, {2}));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("is_a_dir.npy"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir.string() + ".tmp"));
  for (DType d : {DType::kQ8_0, DType::kQ4_K}) {
    try {
      write_npy((temp_dir() / "q.npy").string(), Tensor::zeros(d, {256}));
      FAIL() << "no throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    }
  }
}

TEST(Npy, ReadsVersion2AndAlternativeSpellings) {
  const Tensor a =
      decode(make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 12, 2));
  EXPECT_EQ(a.shape(), (Shape{3}));
  EXPECT_EQ(a.dtype(), DType::kI32);
  // Key order, double quotes, no trailing comma, Python 2 longs, '=' byte order.
  const Tensor b =
      decode(make_npy("{\"shape\": (2L, 1L), \"fortran_order\": False, "
                      "\"descr\": \"=f8\"}",
                      16));
  EXPECT_EQ(b.shape(), (Shape{2, 1}));
  EXPECT_EQ(b.dtype(), DType::kF64);
}

struct Bad {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* message;
};

TEST(NpyCorrupt, EachMalformedFileIsAFormatError) {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  std::vector<uint8_t> bad_magic = make_npy(ok, 24);
  bad_magic[1] = 'X';
  std::vector<uint8_t> version4 = make_npy(ok, 24);
  version4[6] = 4;
  std::vector<uint8_t> long_header = make_npy(ok, 24);
  long_header[8] = 0xff;
  long_header[9] = 0xff;
  const Bad table[] = {
      {"bad magic", bad_magic, "bad npy magic"},
      {"version 4", version4, "npy version 4.0 is not supported"},
      {"header length past end", long_header, "truncated reading npy header"},
      {"fortran order", make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24),
       "fortran_order True"},
      {"big endian", make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24),
       "big-endian descr '>f4'"},
      {"complex", make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", 24),
       "descr '<c8' is not supported"},
      {"structured",
       make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12),
       "structured dtypes"},
      {"missing shape", make_npy("{'descr': '<f4', 'fortran_order': False, }", 0), "lacks one of"},
      {"extra key",
       make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", 4),
       "unexpected key 'x'"},
      {"negative dim", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4),
       "shape entry is not a non-negative integer"},
      {"huge dim",
       make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4),
       "shape entry is too large"},
      {"shape overflow",
       make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 4),
       "overflows"},
      {"malformed key", make_npy("{'descr: '<f4'}", 0), "expected ':'"},
      {"no dict", make_npy("hello", 0), "expected '{'"},
      {"bad bool", make_npy("{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,), }", 4),
       "fortran_order is not True or False"},
      {"text after dict",
       make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } junk", 4),
       "unexpected text after the dict"},
      {"data short", make_npy(ok, 23), "needs 24 data bytes, file has 23"},
      {"data long", make_npy(ok, 25), "needs 24 data bytes, file has 25"},
      {"data absurd",
       make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }", 8),
       "needs 8000000000000 data bytes, file has 8"},
  };
  for (const Bad& b : table) {
    SCOPED_TRACE(b.name);
    try {
      decode(b.bytes);
      ADD_FAILURE() << "no error for " << b.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << msg;
      EXPECT_EQ(msg.rfind("x.npy: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(b.message), std::string::npos) << msg;
    }
  }
}

TEST(NpyCorrupt, EveryTruncationIsAFormatError) {
  const std::vector<uint8_t> full = from_hex(kNumpyArangeHex);
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    const std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(n));
    try {
      decode(cut);
      ADD_FAILURE() << "no error at length " << n;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("x.npy: ", 0), 0u) << e.what();
    }
  }
}

TEST(NpyCorrupt, MissingFileIsIoError) {
  try {
    read_npy("/nonexistent/a.npy");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/a.npy"), std::string::npos);
  }
}

}  // namespace
}  // namespace glassbox
