// The CUDA kernels (topk_kernels.h) behind LibTorch tensors: the fused
// TopK encoder, the sparse decoder, and a whole TopK training step's loss
// and gradients, for tensors on a CUDA device. Needs a CUDA build of
// LibTorch; the kernels run on the legacy default stream, LibTorch's
// current stream unless the caller changed it.
//
//   CudaTopKStepWorkspace workspace;
//   CudaTopKStepResult step = CudaTopKTrainStep(x, params, grads, {/*k=*/32}, &workspace);
//   adam.step();   // grads were written into the parameters' .grad()
//
// The step is TopKTrainStep's (sae/kernels/topk_train_step.h) without
// AuxK and Multi-TopK: x_c = x - b_dec, z = x_c W_enc + b_enc by row blocks
// of block_rows (the [batch, n] matrix z exists one block at a time),
// top-k per row, x_hat = b_dec + sum ReLU(z_s) W_dec[i_s], loss NMSE =
// sum ||x_hat - x||^2 / sum ||x||^2, and the gradients of the active
// entries only. Deterministic mode (the default) gives the same bits on
// every run; fast mode accumulates the weight gradients with atomics.
#ifndef SAELAB_SAE_KERNELS_CUDA_TOPK_CUDA_H_
#define SAELAB_SAE_KERNELS_CUDA_TOPK_CUDA_H_

#include <torch/torch.h>

#include <cstdint>

namespace saelab {
namespace cuda {

struct CudaTopKOptions {
  int64_t k = 32;
  // Rows per encoder GEMM block.
  int64_t block_rows = 1024;
  bool deterministic = true;
  // The encoder GEMM in bfloat16 (x_c and W_enc rounded; z, the top-k
  // values and everything after in float32).
  bool bf16_encoder = false;
};

struct CudaTopKCode {
  torch::Tensor values;   // [batch, k] float32 pre-activations, sorted as RowTopK sorts
  torch::Tensor indices;  // [batch, k] int64
};

// Reused across calls: the GEMM block, the deterministic mode's sort
// buffers, and the transposed encoder gradient.
struct CudaTopKStepWorkspace {
  torch::Tensor block, sort, encoder_grad_t, dz;
};

// The top-k of x_c W_enc + b_enc per row. x_c [batch, d], W_enc [d, n],
// b_enc [n], float32 on one CUDA device.
CudaTopKCode CudaTopKEncode(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                            const torch::Tensor& b_enc, const CudaTopKOptions& options,
                            CudaTopKStepWorkspace* workspace);

// b_dec + sum_j values[:, j] W_dec[indices[:, j]]: [batch, d].
torch::Tensor CudaSparseDecode(const torch::Tensor& values, const torch::Tensor& indices,
                               const torch::Tensor& W_dec, const torch::Tensor& b_dec);

struct CudaTopKParameters {
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
};

// Copies of p's tensors converted to `options` (device, dtype), each a
// leaf that requires grad: what DenseTopKTrainStep differentiates.
CudaTopKParameters CloneForAutograd(const CudaTopKParameters& p, const torch::TensorOptions& options);

struct CudaTopKStepResult {
  double nmse = 0;
  CudaTopKCode code;
};

// Writes the gradients of the NMSE into grads (the parameters' shapes,
// float32, contiguous, on the device; every element overwritten).
CudaTopKStepResult CudaTopKTrainStep(const torch::Tensor& x, const CudaTopKParameters& params,
                                     const CudaTopKParameters& grads,
                                     const CudaTopKOptions& options,
                                     CudaTopKStepWorkspace* workspace);

// The same step with dense LibTorch operations and autograd (the [batch, n]
// code exists): the reference and the benchmark's baseline. Writes .grad()
// of params' tensors (which must require grad).
double DenseTopKTrainStep(const torch::Tensor& x, const CudaTopKParameters& params, int64_t k);

}  // namespace cuda
}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_CUDA_TOPK_CUDA_H_
