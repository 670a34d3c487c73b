#include "server/model_pool.h"

#include <algorithm>
#include <thread>

#include "server/json_request.h"

namespace glassbox::server {

ModelPool::ModelPool(const Model& model, int workers, int threads, int max_queue,
                     const std::vector<Intervention>& interventions, int64_t n_ctx, DType kv_type)
    : max_queue_(max_queue) {
  const int n_workers = std::max(1, workers);
  if (threads <= 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / n_workers);
  }
  for (int i = 0; i < n_workers; ++i) {
    SessionOptions so{threads};
    so.n_ctx = n_ctx;
    so.kv_type = kv_type;
    sessions_.push_back(std::make_unique<Session>(model, so));
    for (auto& h : add_interventions(sessions_.back()->hooks(), interventions))
      hooks_.push_back(std::move(h));
    free_.push_back(sessions_.back().get());
  }
}

ModelPool::~ModelPool() = default;

ModelPool::Lease::~Lease() {
  if (pool_) pool_->release(session_);
}

ModelPool::Lease ModelPool::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (stopping_) throw HttpError(503, "the server is shutting down", {}, "shutting_down");
  if (free_.empty()) {
    if (waiting_ >= max_queue_) {
      throw HttpError(429,
                      "the model is busy and " + std::to_string(waiting_) +
                          " requests are already queued (--max-queue); retry shortly",
                      {}, "queue_full");
    }
    ++waiting_;
    const bool ok = cv_.wait_until(lock, deadline, [&] { return stopping_ || !free_.empty(); });
    --waiting_;
    if (stopping_) throw HttpError(503, "the server is shutting down", {}, "shutting_down");
    if (!ok) {
      throw HttpError(503, "timed out waiting for the model (--timeout)", {}, "queue_timeout");
    }
  }
  Session* s = free_.back();
  free_.pop_back();
  return Lease(this, s);
}

void ModelPool::release(Session* session) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(session);
  }
  cv_.notify_one();
}

void ModelPool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

int ModelPool::queued() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

int ModelPool::busy() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(sessions_.size() - free_.size());
}

}  // namespace glassbox::server
