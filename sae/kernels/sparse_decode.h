// Sparse decoding for k-sparse SAEs: x_hat = b_dec + sum_j values[b, j] *
// W_dec[indices[b, j]], a gather-and-sum over the active latents instead of
// a dense [batch, n] x [n, d] product.
//
// Cost: forward O(batch * k * d) instead of O(batch * n * d); backward
// computes dW_dec only for the active rows (an index-add of batch * k rows;
// the [n, d] gradient buffer is still allocated dense, because Adam needs
// dense gradients), and d values = <grad, W_dec row> for each active entry.
// So training cost in the decoder stops growing with n.
//
// Determinism: on CPU the backward's index-add runs in a fixed order, so
// results are bitwise reproducible for a fixed thread count; they differ
// from the dense reference only by floating-point summation order.
//
//   torch::Tensor x_hat = SparseDecode(values, indices, W_dec, b_dec);  // [B, d]
//   torch::Tensor ref = SparseDecodeReference(values, indices, W_dec, b_dec);
#ifndef SAELAB_SAE_KERNELS_SPARSE_DECODE_H_
#define SAELAB_SAE_KERNELS_SPARSE_DECODE_H_

#include <torch/types.h>

namespace saelab {

// values: [batch, k] float (activations of the active latents; zeros are
// allowed), indices: [batch, k] int64 in [0, n), W_dec: [n, d], b_dec: [d].
// Returns [batch, d]; differentiable in values, W_dec and b_dec.
// Implemented with embedding_bag (mode sum, per-sample weights): LibTorch's
// fused gather-and-sum with a backward that touches only the gathered rows.
torch::Tensor SparseDecode(const torch::Tensor& values, const torch::Tensor& indices,
                           const torch::Tensor& W_dec, const torch::Tensor& b_dec);

// A variable number of active latents per row (BatchTopK): the active
// entries of all rows concatenated, values/indices [nnz], with row r owning
// entries [offsets[r], offsets[r + 1]) (offsets [batch] int64, ascending,
// offsets[0] = 0).
torch::Tensor SparseDecodeRagged(const torch::Tensor& values, const torch::Tensor& indices,
                                 const torch::Tensor& offsets, const torch::Tensor& W_dec,
                                 const torch::Tensor& b_dec);

// The reference: scatter into a dense [batch, n] code and multiply.
torch::Tensor SparseDecodeReference(const torch::Tensor& values, const torch::Tensor& indices,
                                    const torch::Tensor& W_dec, const torch::Tensor& b_dec);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_SPARSE_DECODE_H_
