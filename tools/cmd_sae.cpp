// `glassbox convert-sae` (SAELens / sparsify / Gemma Scope -> SAELens or sparsify directory) and
// `glassbox sae-encode` (activations .npy -> dense SAE latents .npy).
#include <cstdio>

#include "cli_common.h"
#include "io/npy.h"
#include "sae/sae_io.h"

namespace glassbox::cli {
namespace {

struct ConvertSaeArgs {
  std::string in;
  std::string to;
  std::string out;
  std::string hook;
};

int run_convert_sae(const ConvertSaeArgs& a) {
  const auto format = parse_sae_format(a.to);
  if (!format || *format == SaeFormat::kGemmaScope) {
    throw Error(ErrorCode::kInvalidArgument,
                "--to must be saelens or sparsify, got '" + a.to + "'");
  }
  const SaeFormat from = detect_sae_format(a.in);
  Sae sae = load_sae(a.in);
  if (!a.hook.empty()) sae.hook_name = a.hook;
  save_sae(sae, a.out, *format);
  std::fprintf(stderr, "glassbox: wrote %s (%s, from %s; %s, d_in %lld, d_sae %lld)\n",
               a.out.c_str(), a.to.c_str(), sae_format_name(from), sae_arch_name(sae.arch),
               static_cast<long long>(sae.d_in), static_cast<long long>(sae.d_sae));
  return 0;
}

struct SaeEncodeArgs {
  std::string sae;
  std::string input;
  std::string out;
};

int run_sae_encode(const SaeEncodeArgs& a) {
  const Sae sae = load_sae(a.sae);
  const Tensor raw = read_npy(a.input);
  if (raw.dtype() != DType::kF32 && raw.dtype() != DType::kF16 && raw.dtype() != DType::kF64) {
    throw Error(ErrorCode::kInvalidArgument, a.input +
                                                 ": activations must be float (f32, f16 or "
                                                 "f64), got " +
                                                 dtype_name(raw.dtype()));
  }
  if (raw.ndim() < 1 || raw.dim(-1) != sae.d_in) {
    throw Error(ErrorCode::kShape, a.input + ": activations of shape " + shape_str(raw.shape()) +
                                       " do not end in the SAE's d_in (" +
                                       std::to_string(sae.d_in) + ")");
  }
  const Tensor x = raw.dtype() == DType::kF32 ? raw : raw.to_f32();
  const int64_t n = x.numel() / sae.d_in;
  Shape out_shape(raw.shape().begin(), raw.shape().end() - 1);
  out_shape.push_back(sae.d_sae);
  Tensor acts = Tensor::zeros(DType::kF32, out_shape);
  sae.encode(x.data<float>(), n, acts.mutable_data<float>());
  write_npy(a.out, acts);
  std::fprintf(stderr, "glassbox: wrote %s %s (%s SAE)\n", a.out.c_str(),
               shape_str(out_shape).c_str(), sae_arch_name(sae.arch));
  return 0;
}

}  // namespace

Action register_convert_sae(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("convert-sae",
                         "Convert an SAE (SAELens dir, sparsify dir, Gemma Scope params.npz) to a "
                         "SAELens or sparsify directory");
  auto a = std::make_shared<ConvertSaeArgs>();
  cmd->add_option("--in,-i", a->in, "Input SAE: a directory, its cfg.json, or params.npz")
      ->required();
  cmd->add_option("--to", a->to, "Output format: saelens or sparsify")->required();
  cmd->add_option("--out,-o", a->out, "Output directory (created if needed)")->required();
  cmd->add_option("--hook", a->hook,
                  "Hook name to record (Gemma Scope files name none; default: the input's)");
  return [a] { return run_convert_sae(*a); };
}

Action register_sae_encode(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sae-encode", "Encode activations [..., d_in] (.npy) into dense SAE latents [..., d_sae]");
  auto a = std::make_shared<SaeEncodeArgs>();
  cmd->add_option("--sae,-s", a->sae, "SAE: SAELens or sparsify directory, or params.npz")
      ->required();
  cmd->add_option("--input,-x", a->input, "Activations .npy (f32/f16/f64, last axis d_in)")
      ->required();
  cmd->add_option("--out,-o", a->out, "Output .npy (float32, last axis d_sae)")->required();
  return [a] { return run_sae_encode(*a); };
}

}  // namespace glassbox::cli
