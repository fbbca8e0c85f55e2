// The CUDA kernels against their CPU references and dense LibTorch, on a
// GPU (tools/gpu_check.sh builds and runs this; it needs no test
// framework, as the GPU machine has only CUDA and PyTorch's LibTorch).
// Prints one line per check and exits 1 if any failed; exits 0 with
// "SKIP" when no CUDA device is present.
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sae/kernels/cuda/topk_cuda.h"
#include "sae/kernels/cuda/topk_kernels.h"

namespace saelab {
namespace cuda {
namespace {

int failures = 0;

void Expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// TopKEncodeReference's order on the CPU: per row, a stable descending
// sort (ties keep the lower index first), the first k; optionally only the
// included latents, then re-sorted by index.
void ReferenceTopK(const torch::Tensor& z_cpu, const torch::Tensor& include, int64_t k,
                   bool order_by_index, torch::Tensor* values, torch::Tensor* indices) {
  const int64_t rows = z_cpu.size(0);
  *values = torch::empty({rows, k}, torch::kFloat32);
  *indices = torch::empty({rows, k}, torch::kInt64);
  for (int64_t r = 0; r < rows; ++r) {
    torch::Tensor row = z_cpu[r].to(torch::kFloat32);
    torch::Tensor candidates = torch::arange(row.size(0), torch::kInt64);
    if (include.defined()) candidates = candidates.masked_select(include.to(torch::kBool));
    const torch::Tensor picked_values = row.index_select(0, candidates);
    const auto sorted = torch::sort(picked_values, /*stable=*/true, /*dim=*/0, /*descending=*/true);
    torch::Tensor top = candidates.index_select(0, std::get<1>(sorted).narrow(0, 0, k));
    if (order_by_index) top = std::get<0>(torch::sort(top));
    (*indices)[r] = top;
    (*values)[r] = row.index_select(0, top);
  }
}

void TestRowTopK(const torch::Device& device) {
  torch::manual_seed(1);
  struct Case {
    int64_t rows, n, k;
    bool masked, bf16;
  };
  for (const Case& c : {Case{64, 3000, 1, false, false}, Case{64, 3000, 32, false, false},
                        Case{16, 5000, 256, false, false}, Case{8, 200, 200, false, false},
                        Case{32, 4096, 512, true, false}, Case{32, 3000, 32, false, true}}) {
    // Integer values in [-8, 8]: many ties, exact in float32 and bfloat16.
    const torch::Tensor z_cpu = torch::randint(-8, 9, {c.rows, c.n}, torch::kFloat32);
    const torch::Tensor bias_cpu = torch::randint(-2, 3, {c.n}, torch::kFloat32);
    torch::Tensor include_cpu;
    if (c.masked) include_cpu = (torch::rand({c.n}) < 0.5).to(torch::kUInt8);
    torch::Tensor want_values, want_indices;
    ReferenceTopK(z_cpu + bias_cpu, include_cpu, c.k, c.masked, &want_values, &want_indices);
    const torch::Tensor z = z_cpu.to(device, c.bf16 ? torch::kBFloat16 : torch::kFloat32);
    const torch::Tensor bias = bias_cpu.to(device);
    const torch::Tensor include = c.masked ? include_cpu.to(device) : torch::Tensor();
    torch::Tensor values = torch::empty({c.rows, c.k}, bias.options());
    torch::Tensor indices = torch::empty({c.rows, c.k}, bias.options().dtype(torch::kInt64));
    cudaError_t error;
    if (c.bf16) {
      error = RowTopK<__nv_bfloat16>(reinterpret_cast<const __nv_bfloat16*>(z.data_ptr<at::BFloat16>()),
                                     bias.data_ptr<float>(), nullptr, c.rows, c.n, c.n, c.k, false,
                                     values.data_ptr<float>(), indices.data_ptr<int64_t>(), nullptr);
    } else {
      error = RowTopK<float>(z.data_ptr<float>(), bias.data_ptr<float>(),
                             c.masked ? include.data_ptr<uint8_t>() : nullptr, c.rows, c.n, c.n,
                             c.k, c.masked, values.data_ptr<float>(), indices.data_ptr<int64_t>(),
                             nullptr);
    }
    torch::cuda::synchronize();
    const std::string name = "RowTopK rows " + std::to_string(c.rows) + " n " + std::to_string(c.n) +
                             " k " + std::to_string(c.k) + (c.masked ? " masked, by index" : "") +
                             (c.bf16 ? " bf16" : "");
    Expect(error == cudaSuccess && torch::equal(indices.cpu(), want_indices) &&
               torch::equal(values.cpu(), want_values),
           name + ": values and indices equal the stable-sort reference (ties to the lower index)");
  }
}

void TestEncodeAndDecode(const torch::Device& device) {
  torch::manual_seed(2);
  const int64_t batch = 300, d = 64, n = 2048, k = 16;
  // Small integers: every product and sum is exact, so the blocked cuBLAS
  // GEMM equals the CPU's addmm bit for bit.
  const torch::Tensor x_c = torch::randint(-3, 4, {batch, d}, torch::kFloat32);
  const torch::Tensor W_enc = torch::randint(-3, 4, {d, n}, torch::kFloat32);
  const torch::Tensor b_enc = torch::randint(-3, 4, {n}, torch::kFloat32);
  torch::Tensor want_values, want_indices;
  ReferenceTopK(torch::addmm(b_enc, x_c, W_enc), torch::Tensor(), k, false, &want_values,
                &want_indices);
  CudaTopKStepWorkspace workspace;
  CudaTopKOptions options;
  options.k = k;
  options.block_rows = 128;  // three blocks, the last partial
  const CudaTopKCode code =
      CudaTopKEncode(x_c.to(device), W_enc.to(device), b_enc.to(device), options, &workspace);
  Expect(torch::equal(code.indices.cpu(), want_indices) && torch::equal(code.values.cpu(), want_values),
         "CudaTopKEncode (3 row blocks) equals addmm + stable top-k on the CPU");

  const torch::Tensor W_dec = torch::randint(-3, 4, {n, d}, torch::kFloat32);
  const torch::Tensor b_dec = torch::randint(-3, 4, {d}, torch::kFloat32);
  const torch::Tensor values = torch::relu(want_values);
  const torch::Tensor dense = torch::zeros({batch, n}).scatter(1, want_indices, values);
  const torch::Tensor want = torch::addmm(b_dec, dense, W_dec);
  const torch::Tensor got =
      CudaSparseDecode(values.to(device), want_indices.to(device), W_dec.to(device), b_dec.to(device));
  Expect(torch::equal(got.cpu(), want), "CudaSparseDecode equals the dense decode on the CPU");
}

CudaTopKParameters RandomParameters(int64_t d, int64_t n, const torch::TensorOptions& options) {
  CudaTopKParameters p;
  p.W_enc = (torch::randn({d, n}) / std::sqrt(static_cast<double>(d))).to(options);
  p.W_dec = p.W_enc.t().contiguous();
  p.b_enc = (0.01 * torch::randn({n})).to(options);
  p.b_dec = (0.1 * torch::randn({d})).to(options);
  return p;
}

CudaTopKParameters Like(const CudaTopKParameters& p) {
  return {torch::empty_like(p.W_enc), torch::empty_like(p.b_enc), torch::empty_like(p.W_dec),
          torch::empty_like(p.b_dec)};
}

double MaxRelative(const torch::Tensor& got, const torch::Tensor& want) {
  const double scale = want.abs().max().item<double>();
  return (got.to(torch::kFloat64).cpu() - want.to(torch::kFloat64).cpu()).abs().max().item<double>() /
         (scale > 0 ? scale : 1.0);
}

void TestTrainStep(const torch::Device& device) {
  torch::manual_seed(3);
  const int64_t batch = 512, d = 96, n = 4096, k = 24;
  const CudaTopKParameters params = RandomParameters(d, n, torch::TensorOptions().device(device));
  const torch::Tensor x = torch::randn({batch, d}).to(device);

  // The reference: the dense step by autograd in float64 on the CPU.
  const CudaTopKParameters ref =
      CloneForAutograd(params, torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCPU));
  const double ref_nmse = DenseTopKTrainStep(x.cpu().to(torch::kFloat64), ref, k);

  CudaTopKStepWorkspace workspace;
  CudaTopKOptions options;
  options.k = k;
  options.block_rows = 200;
  std::vector<CudaTopKParameters> runs;
  std::vector<double> nmse;
  for (int run = 0; run < 3; ++run) {
    runs.push_back(Like(params));
    nmse.push_back(CudaTopKTrainStep(x, params, runs.back(), options, &workspace).nmse);
  }
  torch::cuda::synchronize();
  const CudaTopKParameters& g = runs[0];
  const double worst = std::max({MaxRelative(g.W_enc, ref.W_enc.grad()), MaxRelative(g.b_enc, ref.b_enc.grad()),
                                 MaxRelative(g.W_dec, ref.W_dec.grad()), MaxRelative(g.b_dec, ref.b_dec.grad())});
  std::printf("     train step: NMSE %.9g (float64 reference %.9g), worst gradient error %.3g of its max\n",
              nmse[0], ref_nmse, worst);
  Expect(std::abs(nmse[0] - ref_nmse) < 1e-5 * ref_nmse && worst < 1e-4,
         "CudaTopKTrainStep: NMSE and all four gradients equal the float64 dense autograd step");
  bool same = true;
  for (int run = 1; run < 3; ++run) {
    same = same && nmse[run] == nmse[0] && torch::equal(runs[run].W_enc, g.W_enc) &&
           torch::equal(runs[run].b_enc, g.b_enc) && torch::equal(runs[run].W_dec, g.W_dec) &&
           torch::equal(runs[run].b_dec, g.b_dec);
  }
  Expect(same, "deterministic mode: three runs give the same bits");

  options.deterministic = false;
  CudaTopKParameters fast = Like(params);
  CudaTopKTrainStep(x, params, fast, options, &workspace);
  torch::cuda::synchronize();
  const double fast_worst = std::max({MaxRelative(fast.W_enc, g.W_enc), MaxRelative(fast.b_enc, g.b_enc),
                                      MaxRelative(fast.W_dec, g.W_dec), MaxRelative(fast.b_dec, g.b_dec)});
  Expect(fast_worst < 1e-5, "fast mode (atomics) equals deterministic mode within 1e-5 (" +
                                std::to_string(fast_worst) + ")");

  // Dense LibTorch on the GPU agrees too.
  const CudaTopKParameters dense = CloneForAutograd(params, params.W_enc.options());
  DenseTopKTrainStep(x, dense, k);
  const double dense_worst =
      std::max({MaxRelative(g.W_enc, dense.W_enc.grad()), MaxRelative(g.W_dec, dense.W_dec.grad()),
                MaxRelative(g.b_enc, dense.b_enc.grad()), MaxRelative(g.b_dec, dense.b_dec.grad())});
  Expect(dense_worst < 1e-4, "dense LibTorch on the GPU agrees within 1e-4 (" +
                                 std::to_string(dense_worst) + ")");

  options.deterministic = true;
  options.bf16_encoder = true;
  CudaTopKParameters bf16 = Like(params);
  const double bf16_nmse = CudaTopKTrainStep(x, params, bf16, options, &workspace).nmse;
  torch::cuda::synchronize();
  Expect(std::abs(bf16_nmse - nmse[0]) < 0.05 * nmse[0],
         "bf16 encoder: NMSE within 5% of float32's (" + std::to_string(bf16_nmse) + " vs " +
             std::to_string(nmse[0]) + ")");
}

}  // namespace
}  // namespace cuda
}  // namespace saelab

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("SKIP: no CUDA device\n");
    return 0;
  }
  const torch::Device device(torch::kCUDA, 0);
  saelab::cuda::TestRowTopK(device);
  saelab::cuda::TestEncodeAndDecode(device);
  saelab::cuda::TestTrainStep(device);
  std::printf("%d failed\n", saelab::cuda::failures);
  return saelab::cuda::failures == 0 ? 0 : 1;
}
