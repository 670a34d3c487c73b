// WindowEncoder: SAE latent activations of one context window — the model run only as far as the
// SAE's hook (forward_partial; a full forward for ln_final.*), the hook's rows after the BOS
// encoded in fixed blocks of rows so the result does not depend on the thread count. The one
// definition `glassbox analyze` and the autointerp scorer share, so both see the same
// activations for the same window. Owns its hook on the session for its lifetime.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/hooks.h"
#include "model/session.h"
#include "sae/sae.h"

namespace glassbox {

class WindowEncoder {
 public:
  // Throws Error(kShape) when the SAE's d_in is not the width of its hook in this model.
  WindowEncoder(Session& session, const Sae& sae, ThreadPool& pool);
  WindowEncoder(const WindowEncoder&) = delete;
  WindowEncoder& operator=(const WindowEncoder&) = delete;

  // Resets the session and runs `window` (BOS first). Returns the activations of the rows after
  // the BOS: [window.size() - 1][d_sae], row-major; valid until the next call.
  const std::vector<float>& encode(std::span<const int32_t> window);
  int64_t d_sae() const { return sae_.d_sae; }

 private:
  Session& session_;
  const Sae& sae_;
  ThreadPool& pool_;
  HookName hook_;
  int64_t d_in_ = 0;
  std::vector<float> x_, acts_;
  HookHandle handle_;
};

}  // namespace glassbox
