#include "model/hooks.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace glassbox {
namespace {

struct PointName {
  HookPoint point;
  const char* suffix;  // after "blocks.L." for block hooks; the full name otherwise
};

// Forward-execution order; available_hooks() lists names in this order.
constexpr PointName kPointNames[] = {
    {HookPoint::kEmbed, "hook_embed"},
    {HookPoint::kPosEmbed, "hook_pos_embed"},
    {HookPoint::kResidPre, "hook_resid_pre"},
    {HookPoint::kLn1Scale, "ln1.hook_scale"},
    {HookPoint::kLn1Normalized, "ln1.hook_normalized"},
    {HookPoint::kAttnQ, "attn.hook_q"},
    {HookPoint::kAttnK, "attn.hook_k"},
    {HookPoint::kAttnV, "attn.hook_v"},
    {HookPoint::kAttnQNormScale, "attn.q_norm.hook_scale"},
    {HookPoint::kAttnQNormNormalized, "attn.q_norm.hook_normalized"},
    {HookPoint::kAttnKNormScale, "attn.k_norm.hook_scale"},
    {HookPoint::kAttnKNormNormalized, "attn.k_norm.hook_normalized"},
    {HookPoint::kAttnRotQ, "attn.hook_rot_q"},
    {HookPoint::kAttnRotK, "attn.hook_rot_k"},
    {HookPoint::kAttnScores, "attn.hook_attn_scores"},
    {HookPoint::kAttnPattern, "attn.hook_pattern"},
    {HookPoint::kAttnZ, "attn.hook_z"},
    {HookPoint::kLn1PostScale, "ln1_post.hook_scale"},
    {HookPoint::kLn1PostNormalized, "ln1_post.hook_normalized"},
    {HookPoint::kAttnOut, "hook_attn_out"},
    {HookPoint::kResidMid, "hook_resid_mid"},
    {HookPoint::kLn2Scale, "ln2.hook_scale"},
    {HookPoint::kLn2Normalized, "ln2.hook_normalized"},
    {HookPoint::kMlpPre, "mlp.hook_pre"},
    {HookPoint::kMlpPreLinear, "mlp.hook_pre_linear"},
    {HookPoint::kMlpPost, "mlp.hook_post"},
    {HookPoint::kLn2PostScale, "ln2_post.hook_scale"},
    {HookPoint::kLn2PostNormalized, "ln2_post.hook_normalized"},
    {HookPoint::kMlpOut, "hook_mlp_out"},
    {HookPoint::kResidPost, "hook_resid_post"},
    {HookPoint::kLnFinalScale, "ln_final.hook_scale"},
    {HookPoint::kLnFinalNormalized, "ln_final.hook_normalized"},
};
static_assert(std::size(kPointNames) == static_cast<size_t>(HookPoint::kCount));

const char* point_suffix(HookPoint point) {
  for (const PointName& p : kPointNames) {
    if (p.point == point) return p.suffix;
  }
  GLASSBOX_ASSERT(false);
}

}  // namespace

bool is_block_hook(HookPoint point) {
  return point != HookPoint::kEmbed && point != HookPoint::kPosEmbed &&
         point != HookPoint::kLnFinalScale && point != HookPoint::kLnFinalNormalized;
}

bool hook_exists(HookPoint point, const ModelConfig& c) {
  switch (point) {
    case HookPoint::kPosEmbed:
      return c.position == PositionType::kLearned;
    case HookPoint::kAttnRotQ:
    case HookPoint::kAttnRotK:
      return c.position == PositionType::kRope;
    case HookPoint::kMlpPreLinear:
      return c.gated_mlp();
    case HookPoint::kAttnQNormScale:
    case HookPoint::kAttnQNormNormalized:
    case HookPoint::kAttnKNormScale:
    case HookPoint::kAttnKNormNormalized:
      return c.qk_norm;
    case HookPoint::kLn1PostScale:
    case HookPoint::kLn1PostNormalized:
    case HookPoint::kLn2PostScale:
    case HookPoint::kLn2PostNormalized:
      return c.post_norms;
    default:
      return true;
  }
}

std::string hook_name_string(HookName name) {
  if (!is_block_hook(name.point)) return point_suffix(name.point);
  return "blocks." + std::to_string(name.layer) + "." + point_suffix(name.point);
}

std::optional<HookName> parse_hook_name(std::string_view text) {
  if (text.starts_with("blocks.")) {
    std::string_view rest = text.substr(7);
    const size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 6) return std::nullopt;
    if (rest.substr(0, dot).find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    int layer = 0;
    const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
    if (ec != std::errc() || ptr != rest.data() + dot) return std::nullopt;
    if (dot > 1 && rest[0] == '0') return std::nullopt;  // "blocks.01" is not a TL name
    const std::string_view suffix = rest.substr(dot + 1);
    for (const PointName& p : kPointNames) {
      if (is_block_hook(p.point) && suffix == p.suffix) return HookName{p.point, layer};
    }
    return std::nullopt;
  }
  for (const PointName& p : kPointNames) {
    if (!is_block_hook(p.point) && text == p.suffix) return HookName{p.point, -1};
  }
  return std::nullopt;
}

HookName resolve_hook_name(std::string_view text, const ModelConfig& config) {
  const std::optional<HookName> name = parse_hook_name(text);
  if (!name) {
    throw Error(ErrorCode::kNotFound,
                "unknown hook '" + std::string(text) +
                    "': expected a TransformerLens name such as 'blocks.0.hook_resid_pre' or "
                    "'hook_embed' (see `glassbox info` for the full list)");
  }
  if (!hook_exists(name->point, config)) {
    throw Error(ErrorCode::kNotFound, "unknown hook '" + std::string(text) + "': the " +
                                          config.architecture +
                                          " architecture has no such point (see `glassbox "
                                          "info` for the full list)");
  }
  if (is_block_hook(name->point) && name->layer >= config.n_layers) {
    throw Error(ErrorCode::kNotFound, "unknown hook '" + std::string(text) + "': layers are 0.." +
                                          std::to_string(config.n_layers - 1));
  }
  return *name;
}

std::vector<std::string> available_hooks(const ModelConfig& config) {
  std::vector<std::string> names;
  for (HookPoint p : {HookPoint::kEmbed, HookPoint::kPosEmbed}) {
    if (hook_exists(p, config)) names.push_back(hook_name_string({p, -1}));
  }
  for (int layer = 0; layer < config.n_layers; ++layer) {
    for (const PointName& p : kPointNames) {
      if (is_block_hook(p.point) && hook_exists(p.point, config)) {
        names.push_back(hook_name_string({p.point, layer}));
      }
    }
  }
  names.push_back(hook_name_string({HookPoint::kLnFinalScale, -1}));
  names.push_back(hook_name_string({HookPoint::kLnFinalNormalized, -1}));
  return names;
}

std::optional<Shape> hook_token_shape(HookPoint point, const ModelConfig& c) {
  if (point == HookPoint::kAttnScores || point == HookPoint::kAttnPattern) return std::nullopt;
  const Shape full = hook_shape(point, c, 1, 1);  // [1, ...]
  return Shape(full.begin() + 1, full.end());
}

Shape hook_shape(HookPoint point, const ModelConfig& c, int64_t n_pos, int64_t n_keys) {
  switch (point) {
    case HookPoint::kLn1Scale:
    case HookPoint::kLn2Scale:
    case HookPoint::kLnFinalScale:
    case HookPoint::kLn1PostScale:
    case HookPoint::kLn2PostScale:
      return {n_pos, 1};
    case HookPoint::kAttnQNormScale:
      return {n_pos, c.n_heads, 1};
    case HookPoint::kAttnKNormScale:
      return {n_pos, c.n_kv_heads, 1};
    case HookPoint::kAttnQ:
    case HookPoint::kAttnQNormNormalized:
    case HookPoint::kAttnRotQ:
    case HookPoint::kAttnZ:
      return {n_pos, c.n_heads, c.d_head};
    case HookPoint::kAttnK:
    case HookPoint::kAttnKNormNormalized:
    case HookPoint::kAttnV:
    case HookPoint::kAttnRotK:
      return {n_pos, c.n_kv_heads, c.d_head};
    case HookPoint::kAttnScores:
    case HookPoint::kAttnPattern:
      return {c.n_heads, n_pos, n_keys};
    case HookPoint::kMlpPre:
    case HookPoint::kMlpPreLinear:
    case HookPoint::kMlpPost:
      return {n_pos, c.d_mlp};
    default:
      return {n_pos, c.d_model};
  }
}

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    remove();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

void HookHandle::remove() {
  if (registry_ != nullptr) registry_->remove(id_);
  registry_ = nullptr;
}

HookRegistry::HookRegistry(const ModelConfig& config)
    : config_(config),
      slots_(static_cast<size_t>(HookPoint::kCount) * static_cast<size_t>(config.n_layers + 1)) {}

HookHandle HookRegistry::add(HookName name, HookFn fn) {
  if ((is_block_hook(name.point) ? (name.layer < 0 || name.layer >= config_.n_layers)
                                 : name.layer != -1) ||
      !hook_exists(name.point, config_)) {
    throw Error(ErrorCode::kNotFound, "hook '" + hook_name_string(name) + "' does not exist");
  }
  const uint64_t id = next_id_++;
  slots_[slot_index(name.point, name.layer)].push_back({id, std::move(fn)});
  ++n_hooks_;
  return HookHandle(this, id);
}

void HookRegistry::remove(uint64_t id) {
  for (auto& slot : slots_) {
    auto it = std::find_if(slot.begin(), slot.end(), [id](const Entry& e) { return e.id == id; });
    if (it != slot.end()) {
      slot.erase(it);
      --n_hooks_;
      return;
    }
  }
}

void HookRegistry::fire(HookPoint point, int layer, int64_t pos_start, Tensor& activation) const {
  const HookEvent event{{point, layer}, pos_start};
  for (const Entry& e : slots_[slot_index(point, layer)]) e.fn(event, activation);
}

namespace {

// Broadcast `src` over `dst`: equal numel copies as is, a [last dim] vector repeats per row.
// Calls op(dst_value, src_value) elementwise.
template <class Op>
void broadcast_rows(Tensor& dst, const Tensor& src, const char* what, Op op) {
  const Tensor s = src.dtype() == DType::kF32 ? src : src.to_f32();
  std::span<float> d = dst.mutable_floats();
  std::span<const float> v = s.floats();
  const int64_t last = dst.ndim() ? dst.dim(-1) : 1;
  if (v.size() == d.size()) {
    for (size_t i = 0; i < d.size(); ++i) op(d[i], v[i]);
  } else if (static_cast<int64_t>(v.size()) == last) {
    for (size_t i = 0; i < d.size(); ++i) op(d[i], v[i % v.size()]);
  } else {
    throw Error(ErrorCode::kShape, std::string(what) + ": vector of shape " + shape_str(s.shape()) +
                                       " does not fit activation " + shape_str(dst.shape()));
  }
}

}  // namespace

HookFn add_vector_hook(Tensor vector, float coeff) {
  return [vector = std::move(vector), coeff](const HookEvent&, Tensor& act) {
    broadcast_rows(act, vector, "add_vector", [coeff](float& d, float v) { d += coeff * v; });
  };
}

HookFn zero_ablate_hook() {
  return [](const HookEvent&, Tensor& act) {
    for (float& v : act.mutable_floats()) v = 0.0f;
  };
}

HookFn mean_ablate_hook(Tensor mean) {
  return [mean = std::move(mean)](const HookEvent&, Tensor& act) {
    if (mean.defined() && mean.numel() > 0) {
      broadcast_rows(act, mean, "mean_ablate", [](float& d, float v) { d = v; });
      return;
    }
    // Mean over the first (position) axis of this call's activation.
    const int64_t rows = act.dim(0), cols = act.numel() / std::max<int64_t>(rows, 1);
    std::span<float> a = act.mutable_floats();
    std::vector<double> acc(static_cast<size_t>(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) acc[static_cast<size_t>(c)] += a[r * cols + c];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        a[r * cols + c] = static_cast<float>(acc[static_cast<size_t>(c)] / rows);
  };
}

HookFn patch_hook(Tensor source) {
  return [source = std::move(source)](const HookEvent& ev, Tensor& act) {
    const Tensor s = source.dtype() == DType::kF32 ? source : source.to_f32();
    Tensor rows = s;
    if (s.shape() != act.shape()) {
      // A recording of a longer run: take this call's positions along the position axis.
      const bool pos_first =
          s.ndim() == act.ndim() && s.ndim() >= 1 &&
          std::equal(s.shape().begin() + 1, s.shape().end(), act.shape().begin() + 1) &&
          ev.pos_start + act.dim(0) <= s.dim(0);
      if (!pos_first) {
        throw Error(ErrorCode::kShape, "patch for '" + hook_name_string(ev.name) +
                                           "': source shape " + shape_str(s.shape()) +
                                           " does not match activation " + shape_str(act.shape()) +
                                           " at position " + std::to_string(ev.pos_start));
      }
      rows = s.slice_rows(ev.pos_start, ev.pos_start + act.dim(0));
    }
    std::memcpy(act.mutable_raw(), rows.raw(), act.nbytes());
  };
}

}  // namespace glassbox
