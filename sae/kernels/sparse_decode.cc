#include "sae/kernels/sparse_decode.h"

namespace saelab {

torch::Tensor SparseDecodeRagged(const torch::Tensor& values, const torch::Tensor& indices,
                                 const torch::Tensor& offsets, const torch::Tensor& W_dec,
                                 const torch::Tensor& b_dec) {
  // embedding_bag returns (output, offset2bag, bag_size, max_indices).
  auto bags = torch::embedding_bag(W_dec, indices, offsets, /*scale_grad_by_freq=*/false,
                                   /*mode=*/0 /* sum */, /*sparse=*/false, values,
                                   /*include_last_offset=*/false);
  return std::get<0>(bags) + b_dec;
}

torch::Tensor SparseDecode(const torch::Tensor& values, const torch::Tensor& indices,
                           const torch::Tensor& W_dec, const torch::Tensor& b_dec) {
  const int64_t batch = values.size(0);
  const int64_t k = values.size(1);
  torch::Tensor offsets = torch::arange(0, batch * k, k, indices.options().dtype(torch::kInt64));
  return SparseDecodeRagged(values.reshape({-1}), indices.reshape({-1}), offsets, W_dec, b_dec);
}

torch::Tensor SparseDecodeReference(const torch::Tensor& values, const torch::Tensor& indices,
                                    const torch::Tensor& W_dec, const torch::Tensor& b_dec) {
  torch::Tensor dense = torch::zeros({values.size(0), W_dec.size(0)}, values.options())
                            .scatter(1, indices, values);
  return torch::addmm(b_dec, dense, W_dec);
}

}  // namespace saelab
