// SAE tests: each architecture's encode rule on hand-computed examples, decode, normalisation and
// folding; format round trips (SAELens -> glassbox -> sparsify -> glassbox, bit for bit); the
// conversions that are refused; the .npz zip reader (stored and deflated members); and tables of
// corrupted SAELens / sparsify / npz inputs, each giving one Error naming the file and field.
#include "sae/sae.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "expect_error.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/npz.h"
#include "sae/sae_io.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using glassbox::testing::expect_error;
using json = nlohmann::json;

fs::path sae_temp_dir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("glassbox_sae_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void set(Tensor& t, std::initializer_list<float> v) {
  GLASSBOX_ASSERT(static_cast<int64_t>(v.size()) == t.numel());
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
}

// d_in 2, d_sae 3: W_enc = [[1, 0, -1], [0, 2, 1]], b_enc = [0.5, -1, 0], b_dec = [1, 1].
Sae tiny(SaeArch arch) {
  Sae s = Sae::zeros(arch, 2, 3);
  set(s.W_enc, {1, 0, -1, 0, 2, 1});
  set(s.b_enc, {0.5f, -1, 0});
  set(s.W_dec, {1, 2, 3, 4, 5, 6});
  set(s.b_dec, {1, 1});
  if (arch == SaeArch::kTopK) s.k = 1;
  return s;
}

std::vector<float> encode(const Sae& s, std::vector<float> x) {
  std::vector<float> acts(x.size() / s.d_in * s.d_sae, -99.0f);
  s.encode(x.data(), static_cast<int64_t>(x.size()) / s.d_in, acts.data());
  return acts;
}

Sae random_sae(SaeArch arch, int64_t d_in, int64_t d_sae, uint32_t seed) {
  Sae s = Sae::zeros(arch, d_in, d_sae);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (Tensor* t : {&s.W_enc, &s.b_enc, &s.W_dec, &s.b_dec, &s.threshold}) {
    if (t->defined())
      for (float& v : t->mutable_floats()) v = nd(rng);
  }
  if (arch == SaeArch::kTopK) s.k = 5;
  if (arch == SaeArch::kBatchTopK) s.k = 4.5;
  s.hook_name = "blocks.3.hook_resid_post";
  s.model_name = "stories260K";
  return s;
}

void expect_bitwise_equal(const Tensor& a, const Tensor& b, const char* what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what;
}

void expect_same_sae(const Sae& a, const Sae& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.d_in, b.d_in);
  EXPECT_EQ(a.d_sae, b.d_sae);
  EXPECT_EQ(a.k, b.k);
  EXPECT_EQ(a.apply_b_dec_to_input, b.apply_b_dec_to_input);
  expect_bitwise_equal(a.W_enc, b.W_enc, "W_enc");
  expect_bitwise_equal(a.b_enc, b.b_enc, "b_enc");
  expect_bitwise_equal(a.W_dec, b.W_dec, "W_dec");
  expect_bitwise_equal(a.b_dec, b.b_dec, "b_dec");
  expect_bitwise_equal(a.threshold, b.threshold, "threshold");
}

TEST(SaeEncode, ReluHandComputed) {
  Sae s = tiny(SaeArch::kRelu);
  // x - b_dec = [2, 1]; pre = [2.5, 1, -1]
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{2.5f, 1, 0}));
  s.apply_b_dec_to_input = false;  // pre = [3.5, 3, -1]
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{3.5f, 3, 0}));
  // Two rows at once.
  EXPECT_EQ(encode(s, {3, 2, 0, 0}), (std::vector<float>{3.5f, 3, 0, 0.5f, 0, 0}));
}

TEST(SaeEncode, TopKKeepsLargestThenRelu) {
  Sae s = tiny(SaeArch::kTopK);
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{2.5f, 0, 0}));  // pre [2.5, 1, -1]
  s.k = 2;
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{2.5f, 1, 0}));
  s.k = 3;  // the kept -1 goes through relu
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{2.5f, 1, 0}));
  // x = b_dec: pre = b_enc = [0.5, -1, 0]; k = 2 keeps 0.5 and 0 (relu'd -> 0).
  s.k = 2;
  EXPECT_EQ(encode(s, {1, 1}), (std::vector<float>{0.5f, 0, 0}));
  // Ties go to the lower index: all-zero weights, b_enc = [1, 1, 1], k = 2.
  Sae t = Sae::zeros(SaeArch::kTopK, 2, 3);
  set(t.b_enc, {1, 1, 1});
  t.k = 2;
  EXPECT_EQ(encode(t, {5, 5}), (std::vector<float>{1, 1, 0}));
}

TEST(SaeEncode, JumpReluIsReluTimesMask) {
  Sae s = tiny(SaeArch::kJumpRelu);
  set(s.threshold, {3, 0.5f, -2});
  // pre [2.5, 1, -1]: 2.5 <= 3 -> 0; 1 > 0.5 -> 1; -1 > -2 but relu(-1) = 0 (SAELens and the
  // Gemma Scope tutorial both multiply the mask by relu(pre)).
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{0, 1, 0}));
  set(s.threshold, {2.5f, 1, -2});  // strict: pre == threshold is off
  EXPECT_EQ(encode(s, {3, 2}), (std::vector<float>{0, 0, 0}));
  Sae b = tiny(SaeArch::kBatchTopK);  // inference form = jumprelu
  set(b.threshold, {0.7f, 0.7f, 0.7f});
  EXPECT_EQ(encode(b, {3, 2}), (std::vector<float>{2.5f, 1, 0}));
}

TEST(SaeEncode, DecodeAndNormalisation) {
  Sae s = tiny(SaeArch::kRelu);
  std::vector<float> acts = {1, 0, 2}, out(2);
  s.decode(acts.data(), 1, out.data());
  // [1, 0, 2] @ [[1, 2], [3, 4], [5, 6]] + [1, 1] = [12, 15]
  EXPECT_EQ(out, (std::vector<float>{12, 15}));

  // constant_norm_rescale: x * sqrt(d_in) / |x|; [3, 4] -> [3, 4] * sqrt(2) / 5.
  s.normalize_activations = SaeNorm::kConstantNormRescale;
  s.apply_b_dec_to_input = false;
  const std::vector<float> a = encode(s, {3, 4});
  const float c = std::sqrt(2.0f) / 5.0f;
  EXPECT_NEAR(a[0], 3 * c + 0.5f, 1e-6);
  EXPECT_NEAR(a[1], 8 * c - 1, 1e-6);

  // A norm scaling factor multiplies x; folding it into the weights keeps encode and
  // reconstruct (up to rounding).
  Sae r = random_sae(SaeArch::kJumpRelu, 8, 16, 7);
  r.normalize_activations = SaeNorm::kExpectedAverageOnlyIn;
  r.norm_scaling_factor = 0.37;
  std::vector<float> x(3 * 8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  const std::vector<float> before = encode(r, x);
  std::vector<float> rec_before(x.size()), rec_after(x.size());
  r.reconstruct(x.data(), 3, rec_before.data());
  r.fold_norm_scaling_factor();
  EXPECT_FALSE(r.norm_scaling_factor);
  EXPECT_EQ(r.normalize_activations, SaeNorm::kNone);
  const std::vector<float> after = encode(r, x);
  r.reconstruct(x.data(), 3, rec_after.data());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(before[i], after[i], 1e-5);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(rec_before[i], rec_after[i], 1e-4);
}

TEST(SaeFormats, RoundTripSaeLensSparsifyBitExact) {
  const fs::path dir = sae_temp_dir("rt");
  const Sae src = random_sae(SaeArch::kTopK, 12, 40, 1);
  save_sae(src, (dir / "a").string(), SaeFormat::kSaeLens);
  EXPECT_EQ(detect_sae_format((dir / "a").string()), SaeFormat::kSaeLens);
  const Sae a = load_sae((dir / "a" / "cfg.json").string());
  expect_same_sae(src, a);
  EXPECT_EQ(a.hook_name, src.hook_name);
  EXPECT_EQ(a.model_name, src.model_name);
  save_sae(a, (dir / "b").string(), SaeFormat::kSparsify);
  EXPECT_EQ(detect_sae_format((dir / "b").string()), SaeFormat::kSparsify);
  const Sae b = load_sae((dir / "b").string());
  expect_same_sae(src, b);  // sparsify keeps no hook or model name
  save_sae(b, (dir / "c").string(), SaeFormat::kSaeLens);
  expect_same_sae(src, load_sae((dir / "c").string()));
  // The sparsify file holds the encoder as nn.Linear's [d_sae, d_in].
  const SafetensorsFile f = SafetensorsFile::open((dir / "b" / "sae.safetensors").string());
  EXPECT_EQ(f.find("encoder.weight")->shape, (Shape{40, 12}));
  // Same encodings through every copy.
  std::vector<float> x(5 * 12);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(1.7f * float(i));
  EXPECT_EQ(encode(src, x), encode(b, x));

  for (SaeArch arch : {SaeArch::kRelu, SaeArch::kJumpRelu}) {
    Sae s = random_sae(arch, 6, 10, 3);
    s.apply_b_dec_to_input = arch == SaeArch::kRelu;
    save_sae(s, (dir / "j").string(), SaeFormat::kSaeLens);
    expect_same_sae(s, read_saelens((dir / "j").string()));
  }
  // batchtopk is written as SAELens writes it: jumprelu with its threshold.
  const Sae bt = random_sae(SaeArch::kBatchTopK, 6, 10, 4);
  save_sae(bt, (dir / "bt").string(), SaeFormat::kSaeLens);
  const Sae bt2 = read_saelens((dir / "bt").string());
  EXPECT_EQ(bt2.arch, SaeArch::kJumpRelu);
  expect_bitwise_equal(bt.threshold, bt2.threshold, "threshold");
  fs::remove_all(dir);
}

TEST(SaeFormats, RefusedConversionsLeaveFilesUntouched) {
  const fs::path dir = sae_temp_dir("refuse");
  const std::string out = (dir / "s").string();
  save_sae(random_sae(SaeArch::kTopK, 6, 10, 5), out, SaeFormat::kSparsify);
  const auto before = fs::last_write_time(fs::path(out) / "sae.safetensors");
  const auto cfg_before = fs::file_size(fs::path(out) / "cfg.json");
  expect_error(
      [&] { save_sae(random_sae(SaeArch::kJumpRelu, 6, 10, 6), out, SaeFormat::kSparsify); },
      ErrorCode::kUnsupported, "sparsify holds only TopK SAEs; this one is jumprelu");
  expect_error([&] { save_sae(random_sae(SaeArch::kRelu, 6, 10, 6), out, SaeFormat::kSparsify); },
               ErrorCode::kUnsupported, "this one is relu");
  Sae no_bdec = random_sae(SaeArch::kTopK, 6, 10, 6);
  no_bdec.apply_b_dec_to_input = false;
  expect_error([&] { save_sae(no_bdec, out, SaeFormat::kSparsify); }, ErrorCode::kUnsupported,
               "apply_b_dec_to_input = false");
  Sae layer_norm = random_sae(SaeArch::kTopK, 6, 10, 6);
  layer_norm.normalize_activations = SaeNorm::kLayerNorm;
  expect_error([&] { save_sae(layer_norm, out, SaeFormat::kSparsify); }, ErrorCode::kUnsupported,
               "layer_norm");
  expect_error([&] { save_sae(no_bdec, out, SaeFormat::kGemmaScope); }, ErrorCode::kUnsupported,
               "read, not written");
  Sae nan = random_sae(SaeArch::kTopK, 6, 10, 6);
  nan.W_dec.mutable_data<float>()[7] = NAN;
  expect_error([&] { save_sae(nan, out, SaeFormat::kSparsify); }, ErrorCode::kFormat,
               "W_dec has a non-finite value");
  EXPECT_EQ(fs::last_write_time(fs::path(out) / "sae.safetensors"), before);
  EXPECT_EQ(fs::file_size(fs::path(out) / "cfg.json"), cfg_before);
  EXPECT_FALSE(fs::exists(fs::path(out) / "sae.safetensors.tmp"));
  fs::remove_all(dir);
}

// ---- SAELens / sparsify corrupted-input table ----

void edit_json(const fs::path& p, const std::function<void(json&)>& fn) {
  std::ifstream in(p);
  json j = json::parse(in);
  in.close();
  fn(j);
  std::ofstream(p) << j.dump();
}

TEST(SaeFormats, CorruptSaeLensAndSparsifyTable) {
  const fs::path root = sae_temp_dir("corrupt");
  struct Case {
    const char* name;
    SaeFormat format;
    SaeArch arch;
    std::function<void(const fs::path&)> damage;
    ErrorCode code;
    const char* message;
  };
  const auto put = [](const fs::path& dir, const std::string& file,
                      std::vector<std::pair<std::string, Tensor>> tensors) {
    write_safetensors((dir / file).string(), tensors);
  };
  const std::vector<Case> cases = {
      {"missing cfg", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) { fs::remove(d / "cfg.json"); }, ErrorCode::kIo,
       "cfg.json: no such file"},
      {"bad json", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) { std::ofstream(d / "cfg.json") << "{\"d_in\": "; },
       ErrorCode::kFormat, "cfg.json: invalid JSON"},
      {"unknown architecture", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) {
         edit_json(d / "cfg.json", [](json& j) { j["architecture"] = "gated"; });
       },
       ErrorCode::kUnsupported, "architecture 'gated' is not supported"},
      {"d_in string", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["d_in"] = "6"; }); },
       ErrorCode::kFormat, "field 'd_in' must be an integer"},
      {"d_in mismatch", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["d_in"] = 7; }); },
       ErrorCode::kShape,
       "tensor 'W_enc' has shape [6, 10], expected [7, 10] (d_in 7, d_sae 10 from cfg.json)"},
      {"missing threshold", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) {
         edit_json(d / "cfg.json", [](json& j) { j["architecture"] = "jumprelu"; });
       },
       ErrorCode::kFormat, "sae_weights.safetensors: missing tensor 'threshold'"},
      {"unexpected tensor", SaeFormat::kSaeLens, SaeArch::kRelu,
       [&](const fs::path& d) {
         const Sae s = read_saelens(d.string());
         put(d, "sae_weights.safetensors",
             {{"W_enc", s.W_enc},
              {"b_enc", s.b_enc},
              {"W_dec", s.W_dec},
              {"b_dec", s.b_dec},
              {"b_gate", s.b_enc}});
       },
       ErrorCode::kUnsupported, "unexpected tensor 'b_gate'"},
      {"nan weight", SaeFormat::kSaeLens, SaeArch::kRelu,
       [&](const fs::path& d) {
         const Sae s = read_saelens(d.string());
         Tensor w = s.W_dec.clone();
         w.mutable_data<float>()[3] = NAN;
         put(d, "sae_weights.safetensors",
             {{"W_enc", s.W_enc}, {"b_enc", s.b_enc}, {"W_dec", w}, {"b_dec", s.b_dec}});
       },
       ErrorCode::kFormat,
       "sae_weights.safetensors: W_dec has a non-finite value (nan) at flat index 3"},
      {"integer weights", SaeFormat::kSaeLens, SaeArch::kRelu,
       [&](const fs::path& d) {
         const Sae s = read_saelens(d.string());
         put(d, "sae_weights.safetensors",
             {{"W_enc", s.W_enc},
              {"b_enc", Tensor::zeros(DType::kI32, {10})},
              {"W_dec", s.W_dec},
              {"b_dec", s.b_dec}});
       },
       ErrorCode::kUnsupported, "tensor 'b_enc' has dtype i32"},
      {"k too large", SaeFormat::kSaeLens, SaeArch::kTopK,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["k"] = 11; }); },
       ErrorCode::kInvalidArgument, "k must be an integer in 1..d_sae (10)"},
      {"rescale by decoder norm", SaeFormat::kSaeLens, SaeArch::kTopK,
       [](const fs::path& d) {
         edit_json(d / "cfg.json", [](json& j) { j["rescale_acts_by_decoder_norm"] = true; });
       },
       ErrorCode::kUnsupported, "rescale_acts_by_decoder_norm"},
      {"unknown normalisation", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) {
         edit_json(d / "cfg.json", [](json& j) { j["normalize_activations"] = "whiten"; });
       },
       ErrorCode::kUnsupported, "normalize_activations 'whiten'"},
      {"truncated weights", SaeFormat::kSaeLens, SaeArch::kRelu,
       [](const fs::path& d) { fs::resize_file(d / "sae_weights.safetensors", 100); },
       ErrorCode::kFormat, "sae_weights.safetensors"},
      {"sparsify num_latents mismatch", SaeFormat::kSparsify, SaeArch::kTopK,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["num_latents"] = 12; }); },
       ErrorCode::kShape, "tensor 'encoder.weight' has shape [10, 6], expected [12, 6]"},
      {"sparsify groupmax", SaeFormat::kSparsify, SaeArch::kTopK,
       [](const fs::path& d) {
         edit_json(d / "cfg.json", [](json& j) { j["activation"] = "groupmax"; });
       },
       ErrorCode::kUnsupported, "activation 'groupmax' is not supported"},
      {"sparsify transcoder", SaeFormat::kSparsify, SaeArch::kTopK,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["transcode"] = true; }); },
       ErrorCode::kUnsupported, "transcode = true"},
      {"sparsify k = 0", SaeFormat::kSparsify, SaeArch::kTopK,
       [](const fs::path& d) { edit_json(d / "cfg.json", [](json& j) { j["k"] = 0; }); },
       ErrorCode::kInvalidArgument, "k must be an integer"},
      {"sparsify missing weights", SaeFormat::kSparsify, SaeArch::kTopK,
       [](const fs::path& d) { fs::remove(d / "sae.safetensors"); }, ErrorCode::kNotFound,
       "no SAE here"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path d = root / std::to_string(i++);
    save_sae(random_sae(c.arch, 6, 10, 9), d.string(), c.format);
    c.damage(d);
    expect_error([&] { load_sae(d.string()); }, c.code, c.message);
  }
  expect_error([&] { load_sae((root / "nope").string()); }, ErrorCode::kIo, "no such file");
  expect_error([&] { load_sae(root.string()); }, ErrorCode::kNotFound, "no SAE here");
  fs::remove_all(root);
}

// ---- .npz (zip) ----

// A zip of .npy members as Python's zipfile writes it: local headers (zip64 extra as numpy's
// force_zip64 adds), central directory, end record. `compress` uses raw deflate.
std::vector<uint8_t> make_npz(const std::vector<std::pair<std::string, Tensor>>& arrays,
                              bool compress) {
  std::vector<uint8_t> out, central;
  const auto u16 = [](std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(x & 0xFF);
    v.push_back(x >> 8);
  };
  const auto u32 = [&](std::vector<uint8_t>& v, uint32_t x) {
    u16(v, x & 0xFFFF);
    u16(v, x >> 16);
  };
  const auto u64 = [&](std::vector<uint8_t>& v, uint64_t x) {
    u32(v, static_cast<uint32_t>(x));
    u32(v, static_cast<uint32_t>(x >> 32));
  };
  for (const auto& [name, t] : arrays) {
    std::string npy = npy_header(t.dtype(), t.shape());
    npy.append(static_cast<const char*>(t.raw()), t.nbytes());
    std::vector<uint8_t> data(npy.begin(), npy.end());
    const uint32_t crc =
        static_cast<uint32_t>(crc32(0, data.data(), static_cast<uInt>(data.size())));
    if (compress) {
      z_stream zs{};
      deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      std::vector<uint8_t> buf(deflateBound(&zs, static_cast<uLong>(data.size())));
      zs.next_in = data.data();
      zs.avail_in = static_cast<uInt>(data.size());
      zs.next_out = buf.data();
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, Z_FINISH);
      buf.resize(zs.total_out);
      deflateEnd(&zs);
      data.swap(buf);
    }
    const std::string fname = name + ".npy";
    const uint32_t offset = static_cast<uint32_t>(out.size());
    u32(out, 0x04034b50);
    u16(out, 45), u16(out, 0), u16(out, compress ? 8 : 0), u16(out, 0), u16(out, 0x21);
    u32(out, crc), u32(out, 0xFFFFFFFF), u32(out, 0xFFFFFFFF);
    u16(out, static_cast<uint16_t>(fname.size())), u16(out, 20);
    out.insert(out.end(), fname.begin(), fname.end());
    u16(out, 1), u16(out, 16), u64(out, npy.size()), u64(out, data.size());
    out.insert(out.end(), data.begin(), data.end());
    u32(central, 0x02014b50);
    u16(central, 45), u16(central, 45), u16(central, 0), u16(central, compress ? 8 : 0);
    u16(central, 0), u16(central, 0x21), u32(central, crc);
    u32(central, static_cast<uint32_t>(data.size())),
        u32(central, static_cast<uint32_t>(npy.size()));
    u16(central, static_cast<uint16_t>(fname.size())), u16(central, 0), u16(central, 0);
    u16(central, 0), u16(central, 0), u32(central, 0), u32(central, offset);
    central.insert(central.end(), fname.begin(), fname.end());
  }
  const uint32_t cd_off = static_cast<uint32_t>(out.size());
  out.insert(out.end(), central.begin(), central.end());
  u32(out, 0x06054b50), u16(out, 0), u16(out, 0);
  u16(out, static_cast<uint16_t>(arrays.size())), u16(out, static_cast<uint16_t>(arrays.size()));
  u32(out, static_cast<uint32_t>(central.size())), u32(out, cd_off), u16(out, 0);
  return out;
}

std::vector<std::pair<std::string, Tensor>> gemma_arrays(const Sae& s) {
  return {{"W_enc", s.W_enc},
          {"W_dec", s.W_dec},
          {"b_enc", s.b_enc},
          {"b_dec", s.b_dec},
          {"threshold", s.threshold}};
}

TEST(SaeNpz, GemmaScopeStoredAndDeflated) {
  const fs::path dir = sae_temp_dir("npz");
  Sae src = random_sae(SaeArch::kJumpRelu, 6, 10, 11);
  src.apply_b_dec_to_input = false;
  for (bool deflate : {false, true}) {
    const std::vector<uint8_t> bytes = make_npz(gemma_arrays(src), deflate);
    const fs::path sub = dir / (deflate ? "d" : "s");
    fs::create_directories(sub);
    std::ofstream(sub / "params.npz", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    EXPECT_EQ(detect_sae_format(sub.string()), SaeFormat::kGemmaScope);
    const Sae a = load_sae(sub.string());
    const Sae b = load_sae((sub / "params.npz").string());
    expect_same_sae(src, a);
    expect_same_sae(src, b);
    // Gemma Scope -> SAELens keeps apply_b_dec_to_input = false and every bit.
    save_sae(a, (sub / "saelens").string(), SaeFormat::kSaeLens);
    expect_same_sae(src, load_sae((sub / "saelens").string()));
  }
  fs::remove_all(dir);
}

TEST(SaeNpz, CorruptArchiveTable) {
  Sae src = random_sae(SaeArch::kJumpRelu, 4, 6, 12);
  const std::vector<uint8_t> good = make_npz(gemma_arrays(src), false);
  const std::vector<uint8_t> good_d = make_npz(gemma_arrays(src), true);
  const auto at = [](std::vector<uint8_t> v, size_t pos, uint8_t b) {
    v[pos] = b;
    return v;
  };
  // Offsets into the first member: local header 0..29, name "W_enc.npy" 30..38, extra 39..58.
  const size_t eocd = good.size() - 22;
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    ErrorCode code;
    const char* message;
  };
  std::vector<uint8_t> truncated(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  uint32_t cd_off;
  std::memcpy(&cd_off, good.data() + eocd + 16, 4);
  const std::vector<Case> cases = {
      {"empty", {}, ErrorCode::kFormat, "too small for a zip archive"},
      {"no end record", truncated, ErrorCode::kFormat, "no zip end-of-central-directory record"},
      {"crc mismatch", at(good, 59 + 100, good[59 + 100] ^ 0xFF), ErrorCode::kFormat,
       "member 'W_enc.npy': crc32 mismatch"},
      {"bad local signature", at(good, 0, 'X'), ErrorCode::kFormat, "bad local header signature"},
      {"bad central signature", at(good, cd_off, 'X'), ErrorCode::kFormat,
       "bad signature of central directory entry 0"},
      {"method 99", at(good, cd_off + 10, 99), ErrorCode::kUnsupported, "compression method 99"},
      {"encrypted", at(good, cd_off + 8, 1), ErrorCode::kUnsupported, "is encrypted"},
      {"count past directory", at(good, eocd + 10, 200), ErrorCode::kFormat,
       "cannot hold 200 entries"},
      {"directory past end", at(good, eocd + 19, 0x7F), ErrorCode::kFormat,
       "central directory at byte"},
      {"huge declared size", at(good, cd_off + 27, 0x7F), ErrorCode::kFormat,
       "is stored but its sizes differ"},
      {"corrupt deflate", at(good_d, 59 + 3, good_d[59 + 3] ^ 0x55), ErrorCode::kFormat,
       "W_enc.npy"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_error([&] { decode_npz(c.bytes.data(), c.bytes.size(), "p.npz"); }, c.code, c.message);
  }
  const auto arrays = decode_npz(good.data(), good.size(), "p.npz");
  EXPECT_EQ(arrays.size(), 5u);
  EXPECT_EQ(arrays.at("W_enc").shape(), (Shape{4, 6}));
  // Shape mismatch and missing arrays through the Gemma Scope reader.
  const fs::path dir = sae_temp_dir("npz_bad");
  const auto write = [&](const std::vector<std::pair<std::string, Tensor>>& a) {
    const auto bytes = make_npz(a, false);
    std::ofstream(dir / "params.npz", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  };
  auto arr = gemma_arrays(src);
  arr[1].second = Tensor::zeros(DType::kF32, {6, 5});
  write(arr);
  expect_error(
      [&] { load_sae(dir.string()); }, ErrorCode::kShape,
      "params.npz: tensor 'W_dec' has shape [6, 5], expected [6, 4] (d_in 4, d_sae 6 from W_enc)");
  arr = gemma_arrays(src);
  arr.pop_back();
  write(arr);
  expect_error([&] { load_sae(dir.string()); }, ErrorCode::kFormat, "missing tensor 'threshold'");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace glassbox
