// TopK SAE training steps on the GPU (tools/gpu_check.sh builds and runs
// this): the sparse CUDA step (deterministic and fast, float32 and a
// bfloat16 encoder GEMM) against the same step in dense LibTorch ops with
// autograd, and against a floor measured in the same process: the encoder
// GEMM at the rate cuBLAS reaches on it alone, plus Adam's memory traffic
// over the weights at the measured copy bandwidth. Each step includes
// LibTorch's Adam update. Prints a markdown table and one JSON line per
// configuration.
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sae/kernels/cuda/topk_cuda.h"

namespace saelab {
namespace cuda {
namespace {

constexpr int64_t kBatch = 4096, kD = 768, kK = 32;

// Milliseconds per call of fn: the best of `repeats` timings of `iterations` calls each.
double TimeMs(const std::function<void()>& fn, int iterations = 10, int repeats = 3) {
  fn();
  torch::cuda::synchronize();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) fn();
    torch::cuda::synchronize();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
        iterations;
    best = std::min(best, ms);
  }
  return best;
}

struct Ceilings {
  double fp32_tflops = 0, bf16_tflops = 0, bandwidth_gbs = 0;
};

Ceilings MeasureCeilings(const torch::Device& device, int64_t n) {
  Ceilings c;
  const double flops = 2.0 * kBatch * kD * n;
  for (bool bf16 : {false, true}) {
    const auto type = bf16 ? torch::kBFloat16 : torch::kFloat32;
    const torch::Tensor a = torch::randn({kBatch, kD}, torch::TensorOptions().device(device)).to(type);
    const torch::Tensor b = torch::randn({kD, n}, torch::TensorOptions().device(device)).to(type);
    torch::Tensor out = torch::empty({kBatch, n}, a.options());
    const double ms = TimeMs([&] { torch::mm_out(out, a, b); });
    (bf16 ? c.bf16_tflops : c.fp32_tflops) = flops / (ms * 1e-3) / 1e12;
  }
  const torch::Tensor src = torch::empty({int64_t{1} << 28}, torch::TensorOptions().device(device));
  torch::Tensor dst = torch::empty_like(src);
  const double ms = TimeMs([&] { dst.copy_(src); });
  c.bandwidth_gbs = 2.0 * 4.0 * src.numel() / (ms * 1e-3) / 1e9;  // read + write
  return c;
}

void Run() {
  const torch::Device device(torch::kCUDA, 0);
  std::printf("| n | variant | ms/step | tokens/s | vs dense | floor ms | step/floor |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (int64_t n : {int64_t{32768}, int64_t{131072}, int64_t{1048576}}) {
    const Ceilings ceilings = MeasureCeilings(device, n);
    torch::manual_seed(0);
    CudaTopKParameters params;
    const auto options = torch::TensorOptions().device(device);
    params.W_enc = torch::randn({kD, n}, options) / std::sqrt(static_cast<double>(kD));
    params.W_dec = params.W_enc.t().contiguous();
    params.b_enc = torch::zeros({n}, options);
    params.b_dec = torch::zeros({kD}, options);
    const torch::Tensor x = torch::randn({kBatch, kD}, options);
    // Adam reads parameter, gradient, m and v and writes parameter, m and v:
    // 7 float passes over the 2 d n weights.
    const double adam_bytes = 7.0 * 4.0 * 2.0 * kD * n;
    const double adam_ms = adam_bytes / (ceilings.bandwidth_gbs * 1e9) * 1e3;
    const double gemm_fp32_ms = 2.0 * kBatch * kD * n / (ceilings.fp32_tflops * 1e12) * 1e3;
    const double gemm_bf16_ms = 2.0 * kBatch * kD * n / (ceilings.bf16_tflops * 1e12) * 1e3;

    double dense_ms = 0;
    if (n <= 131072) {
      const CudaTopKParameters dense = CloneForAutograd(params, params.W_enc.options());
      torch::optim::Adam adam({dense.W_enc, dense.b_enc, dense.W_dec, dense.b_dec},
                              torch::optim::AdamOptions(1e-4));
      dense_ms = TimeMs([&] {
        DenseTopKTrainStep(x, dense, kK);
        adam.step();
      });
      std::printf("| %lld | dense LibTorch (autograd), fp32 | %.2f | %.0f | 1.00 | %.2f | %.2f |\n",
                  static_cast<long long>(n), dense_ms, kBatch / (dense_ms * 1e-3),
                  gemm_fp32_ms + adam_ms, dense_ms / (gemm_fp32_ms + adam_ms));
      std::printf("{\"n\": %lld, \"variant\": \"dense_fp32\", \"ms\": %.4f}\n",
                  static_cast<long long>(n), dense_ms);
    }
    for (bool bf16 : {false, true}) {
      for (bool deterministic : {true, false}) {
        const CudaTopKParameters p = CloneForAutograd(params, params.W_enc.options());
        for (const torch::Tensor& t : {p.W_enc, p.b_enc, p.W_dec, p.b_dec}) {
          t.mutable_grad() = torch::zeros_like(t);
        }
        CudaTopKParameters grads{p.W_enc.grad(), p.b_enc.grad(), p.W_dec.grad(), p.b_dec.grad()};
        torch::optim::Adam adam({p.W_enc, p.b_enc, p.W_dec, p.b_dec}, torch::optim::AdamOptions(1e-4));
        CudaTopKOptions step_options;
        step_options.k = kK;
        step_options.deterministic = deterministic;
        step_options.bf16_encoder = bf16;
        CudaTopKStepWorkspace workspace;
        const double ms = TimeMs([&] {
          CudaTopKTrainStep(x, {p.W_enc.detach(), p.b_enc.detach(), p.W_dec.detach(), p.b_dec.detach()},
                            grads, step_options, &workspace);
          adam.step();
        });
        // Where the time goes: the encoder alone (GEMM + top-k).
        const double encode_ms = TimeMs([&] {
          CudaTopKEncode(x - params.b_dec, params.W_enc, params.b_enc, step_options, &workspace);
        });
        const double floor_ms = (bf16 ? gemm_bf16_ms : gemm_fp32_ms) + adam_ms;
        const std::string variant = std::string("sparse CUDA, ") + (bf16 ? "bf16 encoder" : "fp32") +
                                    (deterministic ? ", deterministic" : ", fast");
        std::printf("| %lld | %s | %.2f | %.0f | %s | %.2f | %.2f |\n", static_cast<long long>(n),
                    variant.c_str(), ms, kBatch / (ms * 1e-3),
                    dense_ms > 0 ? std::to_string(dense_ms / ms).substr(0, 5).c_str() : "-",
                    floor_ms, ms / floor_ms);
        std::printf("{\"n\": %lld, \"variant\": \"%s\", \"ms\": %.4f, \"encode_ms\": %.4f, "
                    "\"gemm_ms_at_ceiling\": %.4f, \"adam_ms_at_bandwidth\": %.4f}\n",
                    static_cast<long long>(n), variant.c_str(), ms, encode_ms,
                    bf16 ? gemm_bf16_ms : gemm_fp32_ms, adam_ms);
      }
    }
    std::printf("{\"n\": %lld, \"fp32_tflops\": %.2f, \"bf16_tflops\": %.2f, \"copy_gbs\": %.1f}\n",
                static_cast<long long>(n), ceilings.fp32_tflops, ceilings.bf16_tflops,
                ceilings.bandwidth_gbs);
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace cuda
}  // namespace saelab

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("SKIP: no CUDA device\n");
    return 0;
  }
  saelab::cuda::Run();
  return 0;
}
