// Monitors: per-token scores of the forward pass (a projection on a vector, an SAE latent, a
// probe's probability) read by hooks on the leased session while the server generates, checked
// against a threshold, with an action when one fires: flag (report it), stop (end the
// generation) or steer (hook interventions in from the next forward on). Parsing the request's
// "monitors" field lives in monitor_request.h; no HTTP here. Spec: docs/server_api.md
// ("Monitors").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/hooks.h"
#include "probe/probe.h"
#include "sae/sae.h"
#include "steer/interventions.h"

namespace glassbox::server {

enum class MonitorType : uint8_t { kProjection, kLatent, kProbe };
enum class MonitorAction : uint8_t { kFlag, kStop, kSteer };

const char* monitor_action_name(MonitorAction action);

struct MonitorSpec {
  std::string name;
  MonitorType type = MonitorType::kProjection;
  HookName hook;
  std::vector<float> unit;       // projection: v / |v|, [w]
  const Sae* sae = nullptr;      // latent (the server's; outlives the request)
  int64_t latent = 0;            // latent
  const Probe* probe = nullptr;  // probe (the server's)
  double threshold = 0.0;
  bool below = false;  // fires when score < threshold (else score > threshold)
  MonitorAction action = MonitorAction::kFlag;
  std::vector<Intervention> steering;  // steer
};

struct MonitorEvent {
  std::string name;
  int64_t token_index = 0;  // 0-based among the generated tokens
  double score = 0.0;
  MonitorAction action = MonitorAction::kFlag;
};

// Hooks the monitors into `hooks` for its lifetime. Each hook keeps the last row of every
// forward call: the row whose logits give the next sampled token.
class MonitorSet {
 public:
  MonitorSet(HookRegistry& hooks, const std::vector<MonitorSpec>& specs);
  MonitorSet(const MonitorSet&) = delete;
  MonitorSet& operator=(const MonitorSet&) = delete;

  // Scores of the token just sampled (one per spec, in order) and the events firing for it.
  // A steer monitor's interventions are added (once, at its first firing) from absolute
  // position `next_pos` on; stop() then says whether a stop monitor fired.
  void on_token(int64_t token_index, int64_t next_pos, std::vector<double>& scores,
                std::vector<MonitorEvent>& events);
  bool stopped() const { return stop_index_ >= 0; }
  // The event that stopped the generation (valid when stopped()).
  const MonitorEvent& stop_event() const { return stop_event_; }

 private:
  HookRegistry& hooks_;
  const std::vector<MonitorSpec>& specs_;
  std::vector<std::vector<float>> rows_;  // last row seen by each spec's hook
  std::vector<HookHandle> handles_;
  std::vector<HookHandle> steering_;
  std::vector<bool> steered_;
  std::vector<float> acts_;  // latent scratch [d_sae]
  int64_t stop_index_ = -1;
  MonitorEvent stop_event_;
};

}  // namespace glassbox::server
