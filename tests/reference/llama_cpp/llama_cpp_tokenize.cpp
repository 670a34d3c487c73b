// llama.cpp's own tokenizer as a reference: loads a GGUF's vocabulary with llama.cpp (the anchor
// libraries in ../shared/anchors/llama.cpp-0ad4a86, compiled against the headers of the same
// release) and encodes each input line.
//
// usage: llama_cpp_tokenize MODEL.gguf < texts.jsonl > ids.jsonl
// Input: one JSON string per line. Output: one JSON array of token ids per line, from
// llama_tokenize(add_special = false, parse_special = true): no BOS/EOS, and control and
// user-defined tokens written in the text are matched as tokens (as Hugging Face matches added
// tokens). Exit 1 with a message when the vocabulary does not load.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llama.h"

namespace {

// llama.cpp logs every loaded key to stderr; only errors matter here.
void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

std::vector<llama_token> encode(const llama_vocab* vocab, const std::string& text) {
  std::vector<llama_token> ids(text.size() + 8);
  int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                             static_cast<int32_t>(ids.size()), false, true);
  if (n < 0) {  // -n = the count needed
    ids.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                       static_cast<int32_t>(ids.size()), false, true);
  }
  ids.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: llama_cpp_tokenize MODEL.gguf < texts.jsonl\n");
    return 2;
  }
  llama_log_set(quiet_log, nullptr);
  llama_backend_init();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  llama_model* model = llama_model_load_from_file(argv[1], params);
  if (model == nullptr) {
    std::fprintf(stderr, "llama_cpp_tokenize: %s: llama.cpp could not load the vocabulary\n",
                 argv[1]);
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  std::string line;
  while (std::getline(std::cin, line)) {
    const auto text = nlohmann::json::parse(line).get<std::string>();
    std::cout << nlohmann::json(encode(vocab, text)).dump() << '\n';
  }
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
