// The blocked, fused TopK encoder: the k largest pre-activations of every
// row of z = x_c W_enc + b_enc, without the [batch, n] matrix z ever
// existing. The GEMM runs over blocks of block_rows x block_cols into one
// reused workspace (sized to stay in cache); each block is scanned at once
// for the per-row top-k (and, for AuxK, the top-k_aux among dead latents),
// so the only O(batch * n) work left is the GEMM itself and one comparison
// per element.
//
// Order and ties: each row's entries come sorted by value, largest first;
// equal values are ordered by latent index, lower index first, so the
// selection is deterministic: of tied candidates at the cut the lower
// indices are kept. AuxK's entries are selected by the same order (ties at
// the cut to the lower index) but come in ascending latent order: nothing
// downstream reads their rank, and sorting hundreds per row cost more than
// the selection. (torch::topk leaves ties unspecified.) A row's result
// does not depend on the thread count, and the values are the bits of
// torch::addmm(b_enc, x_c, W_enc) wherever OpenBLAS's sgemm gives an
// element the same bits in a block's product as in the full one (each
// block's GEMM sums over d in the same order, the bias added by the GEMM as
// torch::addmm adds it). OpenBLAS's AVX-512 kernel (SkylakeX) does; its
// AVX2 kernel (Haswell, which the experiment binaries pin and which
// OpenBLAS picks itself on AVX2-only CPUs such as AMD EPYC) rounds some
// elements an ulp differently with their position and the product's shape.
// Under it the values agree with torch::addmm to float32 rounding and a tie
// within rounding at the cut may resolve differently. The blocking is fixed
// by the options, so a run's bits are still reproducible.
//
//   TopKEncodeWorkspace workspace;  // reuse across calls
//   TopKCode code = TopKEncode(x - b_dec, W_enc, b_enc, {/*k=*/32}, &workspace);
//   torch::Tensor f_values = torch::relu(code.values);  // [batch, k]
//
// TopKEncodeReference computes the same from the dense z with a stable sort;
// the test holds the two bitwise equal on inputs whose products are exact.
#ifndef SAELAB_SAE_KERNELS_TOPK_ENCODE_H_
#define SAELAB_SAE_KERNELS_TOPK_ENCODE_H_

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace saelab {

struct TopKEncodeOptions {
  // Entries kept per row, in [1, n].
  int64_t k = 32;
  // AuxK: also keep, per row, the top min(k_aux, dead latents) among the
  // latents dead_mask marks; 0 or an undefined/all-false mask: none.
  int64_t k_aux = 0;
  torch::Tensor dead_mask;  // [n] bool, or undefined
  // Block shape of the GEMM workspace (block_rows x block_cols floats).
  // 512 x 4096 is 8 MiB: wide blocks keep OpenBLAS near its full-product
  // rate (1 MiB blocks of 256 x 1024 cost 15% of the step at d 768, n 4096
  // on 2 cores), and the scan reads each block once, from L3. block_cols is
  // rounded down to a multiple of 64 (at least 64): a block edge elsewhere
  // would make OpenBLAS sum some columns in another order.
  int64_t block_rows = 512;
  int64_t block_cols = 4096;
};

// A sparse code: per row, pre-activations (before any ReLU) and their
// latent indices, sorted as described above.
struct TopKCode {
  torch::Tensor values;       // [batch, k] float32
  torch::Tensor indices;      // [batch, k] int64
  // AuxK's top-k_aux' among the dead latents, k_aux' = min(k_aux, dead), in
  // ascending latent order; undefined when no AuxK.
  torch::Tensor aux_values;   // [batch, k_aux'] float32
  torch::Tensor aux_indices;  // [batch, k_aux'] int64
};

// Reused buffers; one per training loop (not shared between threads).
class TopKEncodeWorkspace {
 public:
  // A [rows, cols] float32 block over this workspace's storage, grown (and
  // then kept) as needed.
  torch::Tensor Block(int64_t rows, int64_t cols);
  // AuxK: a row block's pre-activations of the dead latents.
  std::vector<float> dead_values;

 private:
  torch::Tensor storage_;
};

// x_c: [batch, d] float32 (the encoder's input, x - b_dec for TopK),
// W_enc: [d, n] float32 (may be a strided view), b_enc: [n] float32.
// options.k in [1, n]; k_aux >= 0. Rows run in parallel (ParallelFor);
// the result is the same for any thread count.
TopKCode TopKEncode(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                    const torch::Tensor& b_enc, const TopKEncodeOptions& options,
                    TopKEncodeWorkspace* workspace);

// The reference: z = addmm(b_enc, x_c, W_enc) in full, a stable descending
// sort of each row, the first k (and the same over the dead latents, then
// put in ascending latent order).
TopKCode TopKEncodeReference(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                             const torch::Tensor& b_enc, const TopKEncodeOptions& options);

}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_TOPK_ENCODE_H_
