// Test-only: evaluates glassbox's SAE training objective (sae/train_grad.h) on weights and a batch
// read from .npy files and writes the loss terms and every gradient as .npy, for
// sae_train_ref.py to compare with PyTorch autograd.
//
//   sae_grad_tool DIR ARCH K AUX_K AUX_COEFF SPARSITY_COEFF BANDWIDTH THREADS
// reads  DIR/x.npy [n, d_in] f32, W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
//        b_dec [d_in], log_threshold [d_sae] (jumprelu), dead.npy [d_sae] u8 (optional)
// writes DIR/grad_W_enc.npy [d_in, d_sae], grad_b_enc, grad_W_dec, grad_b_dec,
//        grad_log_threshold (jumprelu), loss.npy f64 [loss, mse, sparsity, aux, l0]
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/npy.h"
#include "sae/train_grad.h"

using namespace glassbox;

namespace {

std::vector<float> floats(const Tensor& t) {
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr,
                 "usage: sae_grad_tool DIR ARCH K AUX_K AUX_COEFF SPARSITY_COEFF BANDWIDTH "
                 "THREADS\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const auto arch = parse_sae_arch(argv[2]);
    if (!arch) throw Error(ErrorCode::kInvalidArgument, std::string("bad arch ") + argv[2]);
    const Tensor x = read_npy(dir + "/x.npy").to_f32();
    const Tensor w_enc = read_npy(dir + "/W_enc.npy").to_f32();
    const int64_t n = x.dim(0), d_in = x.dim(1), d_sae = w_enc.dim(1);
    sae_train::Params p;
    p.W_encT.resize(static_cast<size_t>(d_sae * d_in));
    for (int64_t i = 0; i < d_in; ++i) {
      for (int64_t j = 0; j < d_sae; ++j)
        p.W_encT[j * d_in + i] = w_enc.data<float>()[i * d_sae + j];
    }
    p.b_enc = floats(read_npy(dir + "/b_enc.npy"));
    p.W_dec = floats(read_npy(dir + "/W_dec.npy"));
    p.b_dec = floats(read_npy(dir + "/b_dec.npy"));
    if (*arch == SaeArch::kJumpRelu) p.log_threshold = floats(read_npy(dir + "/log_threshold.npy"));
    std::vector<uint8_t> dead;
    if (std::filesystem::exists(dir + "/dead.npy")) {
      const Tensor d = read_npy(dir + "/dead.npy");
      dead.assign(d.data<uint8_t>(), d.data<uint8_t>() + d.numel());
    }
    sae_train::LossOptions opt;
    opt.arch = *arch;
    opt.d_in = d_in;
    opt.d_sae = d_sae;
    opt.k = std::stoll(argv[3]);
    opt.aux_k = std::stoll(argv[4]);
    opt.aux_coeff = std::stod(argv[5]);
    opt.sparsity_coeff = std::stod(argv[6]);
    opt.bandwidth = std::stod(argv[7]);
    opt.dead = dead.empty() ? nullptr : dead.data();
    ThreadPool pool(std::stoi(argv[8]));
    sae_train::Workspace ws;
    sae_train::Params g;
    const sae_train::LossResult r =
        sae_train::loss_and_grads(opt, p, x.data<float>(), n, ws, g, pool);
    std::vector<float> gw(static_cast<size_t>(d_in * d_sae));
    for (int64_t j = 0; j < d_sae; ++j) {
      for (int64_t i = 0; i < d_in; ++i) gw[i * d_sae + j] = g.W_encT[j * d_in + i];
    }
    write_npy(dir + "/grad_W_enc.npy", Tensor::from_floats({d_in, d_sae}, gw));
    write_npy(dir + "/grad_b_enc.npy", Tensor::from_floats({d_sae}, g.b_enc));
    write_npy(dir + "/grad_W_dec.npy", Tensor::from_floats({d_sae, d_in}, g.W_dec));
    write_npy(dir + "/grad_b_dec.npy", Tensor::from_floats({d_in}, g.b_dec));
    if (*arch == SaeArch::kJumpRelu) {
      write_npy(dir + "/grad_log_threshold.npy", Tensor::from_floats({d_sae}, g.log_threshold));
    }
    Tensor loss = Tensor::zeros(DType::kF64, {5});
    double* l = loss.mutable_data<double>();
    l[0] = r.loss;
    l[1] = r.mse;
    l[2] = r.sparsity;
    l[3] = r.aux;
    l[4] = r.l0;
    write_npy(dir + "/loss.npy", loss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sae_grad_tool: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
