// CUDA kernels of k-sparse SAE training and inference, on raw device
// pointers so that they need only the CUDA toolkit (nvcc, CUB); the
// LibTorch glue is topk_cuda.h. Each kernel has a CPU reference in
// sae/kernels/ (the same definitions, ties included): RowTopK is
// TopKEncode's selection, SparseDecode is SparseDecode's, and
// SparseWeightGradients is TopKTrainStep's pass 5.
//
//   // z: [rows, n] pre-activations of a block of rows (cuBLAS wrote them)
//   RowTopK<float>(z, bias, /*include=*/nullptr, rows, n, n, k, false, values, indices, stream);
//   SparseDecode(values_relu, indices, rows, k, W_dec, b_dec, d, x_hat, stream);
//
// Order and ties are TopKEncode's: per row, largest value first, equal
// values by lower latent index, and of tied candidates at the cut the lower
// indices are kept. Every kernel here except SparseWeightGradients in fast
// mode sums in a fixed order, so its bits do not depend on scheduling;
// deterministic mode sorts the entries by latent (a stable radix sort) and
// sums each latent's entries in (row, slot) order, as the CPU kernel does.
#ifndef SAELAB_SAE_KERNELS_CUDA_TOPK_KERNELS_H_
#define SAELAB_SAE_KERNELS_CUDA_TOPK_KERNELS_H_

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace saelab {
namespace cuda {

// The largest k of z[r, :] + bias (bias may be null) per row r, over the
// latents with include[i] != 0 (include may be null: all), written to
// values [rows, k] (float32) and indices [rows, k] (int64). T is float or
// __nv_bfloat16 (z's type; the values are widened to float32). ld: z's row
// stride in elements. With order_by_index the k entries come in ascending
// latent order instead (AuxK's order on the CPU). 1 <= k <= 1024 and k <=
// the number of included latents. One thread block per row.
template <typename T>
cudaError_t RowTopK(const T* z, const float* bias, const uint8_t* include, int64_t rows, int64_t n,
                    int64_t ld, int64_t k, bool order_by_index, float* values, int64_t* indices,
                    cudaStream_t stream);

// out[r, :] = b_dec + sum_{j < k, values[r, j] != 0} values[r, j] * W_dec[indices[r, j], :],
// summed from zero in slot order, the bias added last. W_dec [n, d], out
// [rows, d], all float32.
cudaError_t SparseDecode(const float* values, const int64_t* indices, int64_t rows, int64_t k,
                         const float* W_dec, const float* b_dec, int64_t d, float* out,
                         cudaStream_t stream);

// dv[r, j] = <G[r, :], W_dec[indices[r, j], :]> if pre[r, j] > 0, else 0:
// the gradient of each entry's pre-activation through the ReLU and the
// decode. One warp per entry, its lanes summed in a fixed tree.
cudaError_t SparseEntryGradients(const float* G, const float* pre, const int64_t* indices,
                                 int64_t rows, int64_t k, const float* W_dec, int64_t d, float* dz,
                                 cudaStream_t stream);

// The weight gradients of the active entries (value v = ReLU(pre), dz from
// SparseEntryGradients), every element of the outputs written:
//   dW_dec[i, :]   = sum over entries of latent i of v * G[r, :]
//   dW_enc_t[i, :] = sum of dz * x_c[r, :]   (W_enc's gradient transposed, [n, d])
//   db_enc[i]      = sum of dz
// deterministic: entries sorted by latent (stable), each latent's summed in
// (row, slot) order by one block: the same bits on every run. Otherwise
// each entry adds itself with atomics (faster; the order, hence the last
// bits, varies between runs). `workspace` holds
// SparseWeightGradientsWorkspaceBytes(rows * k, n) bytes.
size_t SparseWeightGradientsWorkspaceBytes(int64_t entries, int64_t n);
cudaError_t SparseWeightGradients(const float* G, const float* x_c, const float* pre,
                                  const float* dz, const int64_t* indices, int64_t rows, int64_t k,
                                  int64_t n, int64_t d, bool deterministic, void* workspace,
                                  float* dW_dec, float* dW_enc_t, float* db_enc,
                                  cudaStream_t stream);

// out[c] = sum_r G[r, c], rows in order (one thread per column).
cudaError_t ColumnSums(const float* G, int64_t rows, int64_t d, float* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_CUDA_TOPK_KERNELS_H_
