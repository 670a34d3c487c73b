#include "model/config.h"

#include "core/error.h"

namespace glassbox {

void validate_config(const ModelConfig& c, const std::string& source) {
  auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::kFormat, source + ": " + what);
  };
  auto positive = [&](int64_t v, const char* name, int64_t max) {
    if (v <= 0 || v > max) {
      fail(std::string(name) + " is " + std::to_string(v) + ", expected 1.." + std::to_string(max));
    }
  };
  positive(c.d_model, "d_model", 1 << 17);
  positive(c.d_mlp, "d_mlp", 1 << 20);
  positive(c.n_layers, "n_layers", 1024);
  positive(c.n_heads, "n_heads", 1024);
  positive(c.n_kv_heads, "n_kv_heads", 1024);
  positive(c.d_head, "d_head", 4096);
  positive(c.d_vocab, "d_vocab", 1 << 24);
  positive(c.n_ctx, "n_ctx", 1 << 24);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail("n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_kv_heads " +
         std::to_string(c.n_kv_heads));
  }
  if (c.rope_dims < 0 || c.rope_dims > c.d_head || c.rope_dims % 2 != 0) {
    fail("rope dims " + std::to_string(c.rope_dims) + " must be even and at most d_head " +
         std::to_string(c.d_head));
  }
  if (!(c.norm_eps > 0.0 && c.norm_eps < 1.0)) fail("norm epsilon out of range (0, 1)");
  if (!(c.rope_theta > 0.0)) fail("rope theta must be positive");
}

}  // namespace glassbox
