#include "sae/sae.h"

#include <cmath>

namespace saelab {

Sae::Sae(int64_t d_in, int64_t n_latents) : d_in_(d_in), n_latents_(n_latents) {
  input_scale_ = register_buffer("input_scale", torch::ones({}, torch::kFloat32));
}

void Sae::set_input_scale(double scale) {
  torch::NoGradGuard no_grad;
  input_scale_.fill_(scale);
}

torch::Tensor Sae::Encode(const torch::Tensor& x) { return EncodeScaled(x * input_scale_); }

torch::Tensor Sae::Decode(const torch::Tensor& f) { return DecodeScaled(f) / input_scale_; }

torch::Tensor Sae::Reconstruct(const torch::Tensor& x) { return Decode(Encode(x)); }

std::map<std::string, torch::Tensor> Sae::NamedTensors() {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : named_parameters(/*recurse=*/false)) tensors[item.key()] = item.value();
  for (const auto& item : named_buffers(/*recurse=*/false)) tensors[item.key()] = item.value();
  return tensors;
}

double EstimateInputScale(const torch::Tensor& sample) {
  // Mean L2 norm in double: the scale must not depend on summation order.
  double mean_norm = sample.to(torch::kFloat64).norm(2, /*dim=*/{1}).mean().item<double>();
  if (!(mean_norm > 0.0)) return 1.0;
  return std::sqrt(static_cast<double>(sample.size(1))) / mean_norm;
}

torch::Tensor ScatterTopK(const torch::Tensor& values, const torch::Tensor& indices, int64_t n) {
  return torch::zeros({values.size(0), n}, values.options()).scatter(1, indices, values);
}

}  // namespace saelab
