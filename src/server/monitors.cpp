#include "server/monitors.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace glassbox::server {

const char* monitor_action_name(MonitorAction action) {
  switch (action) {
    case MonitorAction::kFlag:
      return "flag";
    case MonitorAction::kStop:
      return "stop";
    case MonitorAction::kSteer:
      return "steer";
  }
  return "flag";
}

MonitorSet::MonitorSet(HookRegistry& hooks, const std::vector<MonitorSpec>& specs)
    : hooks_(hooks), specs_(specs), rows_(specs.size()), steered_(specs.size(), false) {
  for (size_t i = 0; i < specs.size(); ++i) {
    handles_.push_back(hooks.add(specs[i].hook, [this, i](const HookEvent&, Tensor& act) {
      // Rows are positions; copy only the last one (the logits' row).
      const int64_t n = act.numel();
      const int64_t n_pos = act.shape().empty() ? 1 : act.shape()[0];
      const int64_t w = n_pos > 0 ? n / n_pos : 0;
      const float* p = act.data<float>() + (n - w);
      rows_[i].assign(p, p + w);
    }));
  }
}

void MonitorSet::on_token(int64_t token_index, int64_t next_pos, std::vector<double>& scores,
                          std::vector<MonitorEvent>& events) {
  scores.assign(specs_.size(), 0.0);
  for (size_t i = 0; i < specs_.size(); ++i) {
    const MonitorSpec& m = specs_[i];
    const std::vector<float>& x = rows_[i];
    double s = 0.0;
    if (m.type == MonitorType::kProjection) {
      GLASSBOX_ASSERT(x.size() == m.unit.size());
      for (size_t a = 0; a < x.size(); ++a) s += static_cast<double>(x[a]) * m.unit[a];
    } else if (m.type == MonitorType::kLatent) {
      GLASSBOX_ASSERT(static_cast<int64_t>(x.size()) == m.sae->d_in);
      acts_.resize(static_cast<size_t>(m.sae->d_sae));
      m.sae->encode(x.data(), 1, acts_.data());
      s = acts_[static_cast<size_t>(m.latent)];
    } else {
      const Probe& p = *m.probe;
      GLASSBOX_ASSERT(static_cast<int64_t>(x.size()) == p.d());
      double logit = p.b;
      for (size_t a = 0; a < x.size(); ++a) logit += p.w[a] * (x[a] - p.mean[a]) / p.scale[a];
      s = 1.0 / (1.0 + std::exp(-logit));
    }
    scores[i] = s;
    const bool fired = m.below ? s < m.threshold : s > m.threshold;
    if (!fired) continue;
    events.push_back({m.name, token_index, s, m.action});
    if (m.action == MonitorAction::kStop && stop_index_ < 0) {
      stop_index_ = token_index;
      stop_event_ = events.back();
    } else if (m.action == MonitorAction::kSteer && !steered_[i]) {
      steered_[i] = true;
      std::vector<Intervention> ivs = m.steering;
      for (Intervention& iv : ivs) iv.pos_from = std::max(iv.pos_from, next_pos);
      for (HookHandle& h : add_interventions(hooks_, ivs)) steering_.push_back(std::move(h));
    }
  }
}

}  // namespace glassbox::server
