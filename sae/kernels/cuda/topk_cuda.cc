#include "sae/kernels/cuda/topk_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "sae/kernels/cuda/topk_kernels.h"

namespace saelab {
namespace cuda {
namespace {

// The legacy default stream: LibTorch's current stream unless changed.
constexpr cudaStream_t kStream = nullptr;

void Check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
  }
}

torch::Tensor Reuse(torch::Tensor* slot, at::IntArrayRef shape, const torch::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (!slot->defined() || slot->numel() < numel || slot->device() != options.device() ||
      slot->scalar_type() != options.dtype().toScalarType()) {
    *slot = torch::empty({numel}, options);
  }
  return slot->narrow(0, 0, numel).view(shape);
}

}  // namespace

CudaTopKCode CudaTopKEncode(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                            const torch::Tensor& b_enc, const CudaTopKOptions& options,
                            CudaTopKStepWorkspace* workspace) {
  TORCH_CHECK(x_c.is_cuda() && W_enc.is_cuda() && b_enc.is_cuda(), "CudaTopKEncode: CUDA tensors");
  const int64_t batch = x_c.size(0), n = W_enc.size(1);
  TORCH_CHECK(options.k >= 1 && options.k <= std::min<int64_t>(n, 1024),
              "CudaTopKEncode: k must be in [1, min(n, 1024)]");
  const auto gemm_type = options.bf16_encoder ? torch::kBFloat16 : torch::kFloat32;
  const torch::Tensor a = x_c.to(gemm_type).contiguous();
  const torch::Tensor w = W_enc.to(gemm_type).contiguous();
  const torch::Tensor bias = b_enc.to(torch::kFloat32).contiguous();
  CudaTopKCode code;
  code.values = torch::empty({batch, options.k}, x_c.options().dtype(torch::kFloat32));
  code.indices = torch::empty({batch, options.k}, x_c.options().dtype(torch::kInt64));
  const int64_t rows_per_block = std::max<int64_t>(1, std::min(options.block_rows, batch));
  torch::Tensor block = Reuse(&workspace->block, {rows_per_block, n}, a.options());
  for (int64_t r0 = 0; r0 < batch; r0 += rows_per_block) {
    const int64_t rows = std::min(rows_per_block, batch - r0);
    torch::Tensor z = block.narrow(0, 0, rows);
    torch::mm_out(z, a.narrow(0, r0, rows), w);  // cuBLAS; the bias is added in the selection
    float* values = code.values.data_ptr<float>() + r0 * options.k;
    int64_t* indices = code.indices.data_ptr<int64_t>() + r0 * options.k;
    if (options.bf16_encoder) {
      Check(RowTopK<__nv_bfloat16>(reinterpret_cast<const __nv_bfloat16*>(z.data_ptr<at::BFloat16>()),
                                   bias.data_ptr<float>(), nullptr, rows, n, n, options.k, false,
                                   values, indices, kStream),
            "RowTopK");
    } else {
      Check(RowTopK<float>(z.data_ptr<float>(), bias.data_ptr<float>(), nullptr, rows, n, n,
                           options.k, false, values, indices, kStream),
            "RowTopK");
    }
  }
  return code;
}

torch::Tensor CudaSparseDecode(const torch::Tensor& values, const torch::Tensor& indices,
                               const torch::Tensor& W_dec, const torch::Tensor& b_dec) {
  TORCH_CHECK(values.is_cuda(), "CudaSparseDecode: CUDA tensors");
  const torch::Tensor v = values.contiguous(), i = indices.contiguous();
  const torch::Tensor w = W_dec.contiguous(), b = b_dec.contiguous();
  torch::Tensor out = torch::empty({v.size(0), w.size(1)}, w.options());
  Check(SparseDecode(v.data_ptr<float>(), i.data_ptr<int64_t>(), v.size(0), v.size(1),
                     w.data_ptr<float>(), b.data_ptr<float>(), w.size(1), out.data_ptr<float>(),
                     kStream),
        "SparseDecode");
  return out;
}

CudaTopKStepResult CudaTopKTrainStep(const torch::Tensor& x, const CudaTopKParameters& params,
                                     const CudaTopKParameters& grads,
                                     const CudaTopKOptions& options,
                                     CudaTopKStepWorkspace* workspace) {
  torch::NoGradGuard no_grad;
  const int64_t batch = x.size(0), d = x.size(1), n = params.W_enc.size(1), k = options.k;
  const torch::Tensor x_c = (x - params.b_dec).contiguous();
  CudaTopKStepResult result;
  result.code = CudaTopKEncode(x_c, params.W_enc, params.b_enc, options, workspace);
  const torch::Tensor pre = result.code.values;
  const torch::Tensor x_hat =
      CudaSparseDecode(torch::relu(pre), result.code.indices, params.W_dec, params.b_dec);
  const torch::Tensor diff = x_hat - x;
  const double denominator = std::max((x * x).sum().item<double>(), 1e-30);
  result.nmse = (diff * diff).sum().item<double>() / denominator;
  const torch::Tensor G = (diff * static_cast<float>(2.0 / denominator)).contiguous();

  torch::Tensor dz = Reuse(&workspace->dz, {batch, k}, x.options());
  Check(SparseEntryGradients(G.data_ptr<float>(), pre.data_ptr<float>(),
                             result.code.indices.data_ptr<int64_t>(), batch, k,
                             params.W_dec.data_ptr<float>(), d, dz.data_ptr<float>(), kStream),
        "SparseEntryGradients");
  torch::Tensor encoder_grad_t = Reuse(&workspace->encoder_grad_t, {n, d}, x.options());
  void* sort = nullptr;
  if (options.deterministic) {
    const int64_t bytes = static_cast<int64_t>(SparseWeightGradientsWorkspaceBytes(batch * k, n));
    sort = Reuse(&workspace->sort, {bytes}, x.options().dtype(torch::kUInt8)).data_ptr();
  }
  Check(SparseWeightGradients(G.data_ptr<float>(), x_c.data_ptr<float>(), pre.data_ptr<float>(),
                              dz.data_ptr<float>(), result.code.indices.data_ptr<int64_t>(), batch,
                              k, n, d, options.deterministic, sort, grads.W_dec.data_ptr<float>(),
                              encoder_grad_t.data_ptr<float>(), grads.b_enc.data_ptr<float>(),
                              kStream),
        "SparseWeightGradients");
  grads.W_enc.copy_(encoder_grad_t.t());
  // db_dec: G summed over rows, minus W_enc db_enc (z reads x - b_dec).
  Check(ColumnSums(G.data_ptr<float>(), batch, d, grads.b_dec.data_ptr<float>(), kStream),
        "ColumnSums");
  grads.b_dec.sub_(torch::mv(params.W_enc, grads.b_enc));
  return result;
}

CudaTopKParameters CloneForAutograd(const CudaTopKParameters& p,
                                    const torch::TensorOptions& options) {
  auto leaf = [&](const torch::Tensor& t) {
    return t.detach().to(options, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);
  };
  return {leaf(p.W_enc), leaf(p.b_enc), leaf(p.W_dec), leaf(p.b_dec)};
}

double DenseTopKTrainStep(const torch::Tensor& x, const CudaTopKParameters& params, int64_t k) {
  for (const torch::Tensor& p : {params.W_enc, params.b_enc, params.W_dec, params.b_dec}) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  const torch::Tensor z = torch::addmm(params.b_enc, x - params.b_dec, params.W_enc);
  const auto [values, indices] = z.topk(k, 1);
  const torch::Tensor f = torch::zeros_like(z).scatter(1, indices, torch::relu(values));
  const torch::Tensor x_hat = torch::addmm(params.b_dec, f, params.W_dec);
  const torch::Tensor loss = (x_hat - x).pow(2).sum() / (x * x).sum().clamp_min(1e-30);
  loss.backward();
  return loss.item<double>();
}

}  // namespace cuda
}  // namespace saelab
