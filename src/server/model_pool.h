// ModelPool: the server's bounded queue in front of its model sessions. One Session per worker
// (a Session is not thread-safe; the Model it reads is shared read-only). An HTTP thread that
// needs the model acquires a session, runs the work itself, and gives it back when its Lease
// ends. At most `max_queue` requests wait: one more is refused with 429 at once; a wait past its
// deadline, or any wait once stop() was called, ends in 503. Knows nothing about HTTP beyond
// the HttpError it throws.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "model/model.h"
#include "model/session.h"
#include "steer/interventions.h"

namespace glassbox::server {

class ModelPool {
 public:
  using Clock = std::chrono::steady_clock;

  // `threads` per session (0 = the machine's cores divided among the workers); `interventions`
  // are hooked into every session for the pool's life (server-wide steering).
  // `n_ctx`: each session's KV length (0 = the model's context length); `kv_type` its cache's
  // element type.
  ModelPool(const Model& model, int workers, int threads, int max_queue,
            const std::vector<Intervention>& interventions = {}, int64_t n_ctx = 0,
            DType kv_type = DType::kF32);
  ~ModelPool();

  class Lease {
   public:
    Lease(ModelPool* pool, Session* session) : pool_(pool), session_(session) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), session_(other.session_) {
      other.pool_ = nullptr;
      other.session_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    Session& session() { return *session_; }

   private:
    ModelPool* pool_;
    Session* session_;
  };

  // Waits for a free session until `deadline`. Throws HttpError 429 (queue full), 503 (timed out
  // or stopping).
  Lease acquire(Clock::time_point deadline);
  // Refuses new and waiting requests with 503 from now on; running leases finish normally.
  void stop();

  int queued() const;
  int busy() const;
  int workers() const { return static_cast<int>(sessions_.size()); }

 private:
  void release(Session* session);

  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<HookHandle> hooks_;  // after sessions_: removed before the sessions go
  const int max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Session*> free_;
  int waiting_ = 0;
  bool stopping_ = false;
};

}  // namespace glassbox::server
