// llama.cpp's forward pass as a reference for logits: loads a GGUF with llama.cpp (the anchor
// libraries in ../shared/anchors/llama.cpp-0ad4a86, compiled against the headers of the same
// release), decodes the given token ids in one batch on the CPU and writes the logits of every
// position.
//
// usage: llama_cpp_logits --model F.gguf (--tokens 1,2,3 | --tokens-file F) --out X.npy
//                         [--threads N] [--kv-type f32|f16] [--no-repack] [--verbose]
//                         [--dump-dir DIR [--dump-match SUBSTR]]
// Output: X.npy, float32 [n_tokens, n_vocab] (row i = the logits after token i), and one JSON
// object on stdout: n_tokens, n_vocab, architecture (general.architecture), vocabulary, backend
// (the CPU library ggml picked, e.g. libggml-cpu-zen4.so), threads, kv_type, repack, dumped,
// load_s (model and context), decode_s (the decode and reading the logits). Exit 1 with a message
// on any failure, 2 on bad arguments.
//
// Settings, chosen so that llama.cpp computes what glassbox computes:
// - one llama_decode of the whole sequence: n_batch = n_ubatch = n_ctx >= n_tokens (llama.cpp
//   rounds n_ctx up to a multiple of 256), positions 0..n-1, one sequence, output on every token;
// - flash attention off, the KV cache in f32 (llama.cpp's default is f16: --kv-type f16);
// - CPU only: no layer offloaded, and only the CPU backend libraries beside libllama are loaded;
// - the weights are read into memory (no mmap), so a file rewritten later cannot change them;
// - a file without a vocabulary is given llama.cpp's "none" vocabulary (ids only).
#include <dlfcn.h>
#include <link.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace {

bool g_verbose = false;

// llama.cpp logs every loaded key to stderr; unless --verbose only errors are shown.
void log_filter(ggml_log_level level, const char* text, void*) {
  if (g_verbose || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

// Token ids separated by commas and/or whitespace.
std::vector<llama_token> parse_ids(std::string text, const std::string& where) {
  std::replace(text.begin(), text.end(), ',', ' ');
  std::istringstream in(text);
  std::vector<llama_token> ids;
  std::string item;
  while (in >> item) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) {
      throw std::runtime_error(where + ": '" + item + "' is not a token id");
    }
    ids.push_back(static_cast<llama_token>(v));
  }
  if (ids.empty()) throw std::runtime_error(where + ": no token ids");
  return ids;
}

// The directory of the loaded libllama: the CPU backend variants (libggml-cpu-*.so) lie beside it.
std::string llama_lib_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&llama_backend_init), &info) == 0 || !info.dli_fname) {
    return {};
  }
  return std::filesystem::path(info.dli_fname).parent_path().string();
}

// The file name of the CPU backend variant ggml loaded (e.g. libggml-cpu-zen4.so).
std::string loaded_cpu_backend() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const std::string name =
            std::filesystem::path(info->dlpi_name ? info->dlpi_name : "").filename().string();
        if (name.rfind("libggml-cpu", 0) == 0) *static_cast<std::string*>(out) = name;
        return 0;
      },
      &found);
  return found;
}

// NumPy .npy version 1.0: magic, version, u16 header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes (newline last), then the row-major little-endian data.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  size_t count = 1;
  for (const int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    count *= static_cast<size_t>(d);
  }
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(3,)" but "(3, 4)"
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t prefix = 10;  // magic (6) + version (2) + header length (2)
  header.append(63 - (prefix + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  const auto len = static_cast<uint16_t>(header.size());
  const char lenbytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(lenbytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data),
            static_cast<std::streamsize>(count * sizeof(float)));
  if (!out.flush()) throw std::runtime_error(path + ": write failed");
}

// --dump-dir: every f32 tensor of the decode graph whose name contains --dump-match is written
// as DIR/<name>.npy (ggml's ne reversed: [..., ne1, ne0]), to find the first op where two
// implementations part. llama.cpp's names: attn_norm-0, Qcur-0, kq_soft_max-0, kqv_out-0,
// ffn_out-0, l_out-0, ..., result_norm, result_output (layer index after the dash).
struct Dump {
  std::string dir, match, error;
  int written = 0;
};

bool dump_tensor(ggml_tensor* t, bool ask, void* user) {
  auto* d = static_cast<Dump*>(user);
  const bool want = t->type == GGML_TYPE_F32 && t->name[0] != '\0' &&
                    std::strstr(t->name, d->match.c_str()) != nullptr && ggml_is_contiguous(t);
  if (ask || !want) return ask ? want : true;
  std::vector<float> v(static_cast<size_t>(ggml_nelements(t)));
  ggml_backend_tensor_get(t, v.data(), 0, ggml_nbytes(t));
  std::vector<int64_t> shape;
  for (int i = GGML_MAX_DIMS - 1; i >= 0; --i) {
    if (!shape.empty() || t->ne[i] != 1 || i == 0) shape.push_back(t->ne[i]);
  }
  std::string name = t->name;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  try {
    write_npy((std::filesystem::path(d->dir) / (name + ".npy")).string(), v.data(), shape);
    ++d->written;
  } catch (const std::exception& e) {
    d->error = e.what();
  }
  return true;
}

// A GGUF without a vocabulary (glassbox writes none for an HF directory without tokenizer.json)
// does not load in llama.cpp, which requires tokenizer.ggml.model. Such a file is loaded as
// llama.cpp's "none" vocabulary of as many ids as token_embd.weight has rows (metadata overrides:
// tokenizer.ggml.model = "none", <arch>.vocab_size = rows). Returns the overrides, empty when the
// file has a vocabulary; the last entry (key "") ends the list.
std::vector<llama_model_kv_override> vocab_overrides(const std::string& path) {
  ggml_context* meta = nullptr;
  gguf_context* g = gguf_init_from_file(path.c_str(), gguf_init_params{true, &meta});
  if (g == nullptr) throw std::runtime_error(path + ": not a readable GGUF file");
  std::vector<llama_model_kv_override> out;
  const int64_t arch_key = gguf_find_key(g, "general.architecture");
  const ggml_tensor* embd = ggml_get_tensor(meta, "token_embd.weight");
  if (gguf_find_key(g, "tokenizer.ggml.model") < 0 && arch_key >= 0 && embd != nullptr &&
      gguf_get_kv_type(g, arch_key) == GGUF_TYPE_STRING) {
    const std::string size_key = std::string(gguf_get_val_str(g, arch_key)) + ".vocab_size";
    llama_model_kv_override model{}, size{}, end{};
    model.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
    std::snprintf(model.key, sizeof model.key, "%s", "tokenizer.ggml.model");
    std::snprintf(model.val_str, sizeof model.val_str, "%s", "none");
    size.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
    std::snprintf(size.key, sizeof size.key, "%s", size_key.c_str());
    size.val_i64 = embd->ne[1];
    out = {model, size, end};
  }
  gguf_free(g);
  ggml_free(meta);
  return out;
}

struct Options {
  std::string model, tokens, tokens_file, out, kv_type = "f32";
  int threads = 1;
  bool no_repack = false;
  std::string dump_dir, dump_match;
};

// The header's struct layouts must be the library's: the defaults read back through them must be
// the ones this release's llama_*_default_params() sets.
void check_abi(const llama_model_params& mp, const llama_context_params& cp) {
  if (cp.n_ctx != 512 || cp.n_batch != 2048 || cp.n_ubatch != 512 || cp.n_seq_max != 1 ||
      cp.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_AUTO || cp.type_k != GGML_TYPE_F16 ||
      cp.type_v != GGML_TYPE_F16 || cp.embeddings || !cp.offload_kqv || mp.n_gpu_layers != -1 ||
      mp.vocab_only || !mp.use_extra_bufts) {
    throw std::runtime_error(
        "llama.cpp's default parameters read back wrong: the headers do not match the library");
  }
}

nlohmann::json run(const Options& o) {
  using clock = std::chrono::steady_clock;
  const std::string tokens_where = o.tokens_file.empty() ? "--tokens" : o.tokens_file;
  std::string text = o.tokens;
  if (!o.tokens_file.empty()) {
    std::ifstream in(o.tokens_file);
    if (!in) throw std::runtime_error(o.tokens_file + ": cannot read");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::vector<llama_token> ids = parse_ids(text, tokens_where);
  const auto n = static_cast<uint32_t>(ids.size());

  llama_log_set(log_filter, nullptr);
  llama_backend_init();
  const std::string dir = llama_lib_dir();
  ggml_backend_load_all_from_path(dir.empty() ? nullptr : dir.c_str());
  if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr) {
    throw std::runtime_error("no CPU backend library (libggml-cpu-*.so) found in '" + dir + "'");
  }

  llama_model_params mp = llama_model_default_params();
  llama_context_params cp = llama_context_default_params();
  check_abi(mp, cp);
  mp.n_gpu_layers = 0;
  mp.load_mode = LLAMA_LOAD_MODE_NONE;
  mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
  mp.use_extra_bufts = !o.no_repack;
  const std::vector<llama_model_kv_override> overrides = vocab_overrides(o.model);
  if (!overrides.empty()) mp.kv_overrides = overrides.data();

  const auto t0 = clock::now();
  llama_model* model = llama_model_load_from_file(o.model.c_str(), mp);
  if (model == nullptr) {
    throw std::runtime_error(o.model + ": llama.cpp could not load the model");
  }
  // Frees what was made, in reverse order, on every path out.
  struct Guard {
    llama_model* model;
    llama_context* ctx = nullptr;
    llama_batch batch{};
    bool has_batch = false;
    ~Guard() {
      if (has_batch) llama_batch_free(batch);
      if (ctx) llama_free(ctx);
      llama_model_free(model);
    }
  } guard{model};

  const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  char arch[128] = "";
  if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch) < 0) {
    throw std::runtime_error(o.model + ": no general.architecture");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= n_vocab) {
      throw std::runtime_error(tokens_where + ": token " + std::to_string(ids[i]) + " at " +
                               std::to_string(i) + " is outside the vocabulary of " +
                               std::to_string(n_vocab));
    }
  }

  const uint32_t n_ctx = (n + 255) / 256 * 256;
  cp.n_ctx = n_ctx;
  cp.n_batch = n_ctx;
  cp.n_ubatch = n_ctx;
  cp.n_seq_max = 1;
  cp.n_outputs_max = 0;          // = n_batch: every token may be an output
  cp.n_outputs_max_per_seq = 0;  // = n_outputs_max
  cp.n_threads = o.threads;
  cp.n_threads_batch = o.threads;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = cp.type_v = o.kv_type == "f16" ? GGML_TYPE_F16 : GGML_TYPE_F32;
  cp.embeddings = false;
  cp.no_perf = true;
  Dump dump{o.dump_dir, o.dump_match, {}};
  if (!o.dump_dir.empty()) {
    std::filesystem::create_directories(o.dump_dir);
    cp.cb_eval = dump_tensor;
    cp.cb_eval_user_data = &dump;
  }
  guard.ctx = llama_init_from_model(model, cp);
  if (guard.ctx == nullptr) throw std::runtime_error("llama.cpp could not create a context");
  const auto t1 = clock::now();

  guard.batch = llama_batch_init(static_cast<int32_t>(n), 0, 1);
  guard.has_batch = true;
  llama_batch& b = guard.batch;
  b.n_tokens = static_cast<int32_t>(n);
  for (uint32_t i = 0; i < n; ++i) {
    b.token[i] = ids[i];
    b.pos[i] = static_cast<llama_pos>(i);
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  const int32_t rc = llama_decode(guard.ctx, b);
  if (rc != 0) throw std::runtime_error("llama_decode failed (" + std::to_string(rc) + ")");
  std::vector<float> logits(static_cast<size_t>(n) * static_cast<size_t>(n_vocab));
  for (uint32_t i = 0; i < n; ++i) {
    const float* row = llama_get_logits_ith(guard.ctx, static_cast<int32_t>(i));
    if (row == nullptr) throw std::runtime_error("no logits for position " + std::to_string(i));
    std::copy(row, row + n_vocab, logits.begin() + static_cast<ptrdiff_t>(i) * n_vocab);
  }
  const auto t2 = clock::now();
  write_npy(o.out, logits.data(), {static_cast<int64_t>(n), n_vocab});
  if (!dump.error.empty()) throw std::runtime_error("--dump-dir: " + dump.error);

  const auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  return {{"n_tokens", n},
          {"n_vocab", n_vocab},
          {"architecture", arch},
          {"vocabulary", overrides.empty() ? "from the file" : "none (ids only)"},
          {"backend", loaded_cpu_backend()},
          {"threads", o.threads},
          {"kv_type", o.kv_type},
          {"repack", !o.no_repack},
          {"dumped", dump.written},
          {"load_s", secs(t1 - t0)},
          {"decode_s", secs(t2 - t1)}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"llama.cpp's logits for every position of a token sequence, as float32 .npy"};
  Options o;
  app.add_option("--model", o.model, "GGUF file")->required()->check(CLI::ExistingFile);
  auto* tokens = app.add_option("--tokens", o.tokens, "token ids, comma-separated");
  app.add_option("--tokens-file", o.tokens_file, "file of token ids (commas or whitespace)")
      ->check(CLI::ExistingFile)
      ->excludes(tokens);
  app.add_option("--out", o.out, "output .npy, float32 [n_tokens, n_vocab]")->required();
  app.add_option("--threads,-t", o.threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--kv-type", o.kv_type, "KV cache type (llama.cpp's default is f16)")
      ->check(CLI::IsMember({"f32", "f16"}));
  app.add_flag("--no-repack", o.no_repack,
               "no weight repacking (llama.cpp's extra buffer types): the plain ggml kernels");
  app.add_option("--dump-dir", o.dump_dir, "write the decode graph's f32 tensors here as .npy");
  app.add_option("--dump-match", o.dump_match, "with --dump-dir: only names containing this");
  app.add_flag("--verbose", g_verbose, "show llama.cpp's log");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a bad argument: the message, then 2
  }
  if (o.tokens.empty() && o.tokens_file.empty()) {
    std::fprintf(stderr, "llama_cpp_logits: give --tokens or --tokens-file\n");
    return 2;
  }
  try {
    std::printf("%s\n", run(o).dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_cpp_logits: %s\n", e.what());
    return 1;
  }
  llama_backend_free();
  return 0;
}
