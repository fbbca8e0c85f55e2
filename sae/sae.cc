#include "sae/sae.h"

#include <cmath>
#include <torch/utils.h>

#include "harness/parallel_for.h"

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

torch::Tensor Sae::EncodeAsTrained(const torch::Tensor& x) {
  return EncodeAsTrainedScaled(x * input_scale_);
}

torch::Tensor Sae::Reconstruct(const torch::Tensor& x) {
  return ReconstructScaled(x * input_scale_) / input_scale_;
}

std::map<std::string, torch::Tensor> Sae::NamedTensors() {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : named_parameters(/*recurse=*/false)) tensors[item.key()] = item.value();
  for (const auto& item : named_buffers(/*recurse=*/false)) tensors[item.key()] = item.value();
  return tensors;
}

const torch::Tensor& LossInputs::Extra(const std::string& name) const {
  auto it = extra.find(name);
  TORCH_CHECK(it != extra.end(), "LossInputs: no extra tensor '", name, "'");
  return it->second;
}

TrainOutput TrainOutputFrom(const LossOutput& loss) {
  TrainOutput out;
  out.x_hat = loss.x_hat;
  out.f = loss.f;
  out.loss = loss.loss;
  for (const auto& [name, value] : loss.terms) out.terms[name] = value.item<double>();
  return out;
}

LossInputs Sae::LossInputsFor(const torch::Tensor& x, const TrainStepInfo& info) {
  LossInputs inputs{x, W_enc, b_enc, W_dec, b_dec};
  for (const auto& item : named_parameters(/*recurse=*/false)) {
    const std::string& name = item.key();
    if (name != "W_enc" && name != "b_enc" && name != "W_dec" && name != "b_dec") {
      inputs.extra[name] = item.value();
    }
  }
  inputs.dead_mask = info.dead_mask;
  inputs.target = info.target;
  inputs.shard_mean = info.shard_mean;
  inputs.shard_sum = info.shard_sum;
  inputs.shard_gather = info.shard_gather;
  return inputs;
}

bool PrepareSparseStep(const torch::Tensor& x, std::initializer_list<torch::Tensor*> params) {
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) return false;
  // The kernels read the parameters as plain float32 arrays.
  for (const torch::Tensor* p : params) {
    if (!p->is_contiguous() || p->scalar_type() != torch::kFloat) return false;
  }
  torch::NoGradGuard no_grad;
  for (torch::Tensor* p : params) {
    if (!p->grad().defined()) p->mutable_grad() = torch::zeros_like(*p);
  }
  return true;
}

void Sae::RegisterTiedParameters(uint64_t seed, double decoder_row_norm) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  torch::Tensor directions = at::randn({n_latents_, d_in_}, generator, torch::kFloat32);
  directions = directions / directions.norm(2, {1}, /*keepdim=*/true) * decoder_row_norm;
  W_dec = register_parameter("W_dec", directions);
  W_enc = register_parameter("W_enc", directions.t().contiguous());
  b_enc = register_parameter("b_enc", torch::zeros({n_latents_}));
  b_dec = register_parameter("b_dec", torch::zeros({d_in_}));
}

void Sae::UntieEncoder(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  torch::Tensor directions = at::randn({d_in_, n_latents_}, generator, torch::kFloat32);
  W_enc.copy_(directions / directions.norm(2, {0}, /*keepdim=*/true) *
              W_enc.norm(2, {0}, /*keepdim=*/true));
}

void ProjectOutParallelGradient(const torch::Tensor& weight, torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  const bool plain = weight.device().is_cpu() && grad.device().is_cpu() &&
                     weight.scalar_type() == torch::kFloat && grad.scalar_type() == torch::kFloat &&
                     weight.is_contiguous() && grad.is_contiguous() && weight.dim() == 2 &&
                     grad.sizes() == weight.sizes();
  if (!plain) {
    torch::Tensor parallel = (grad * weight).sum(1, /*keepdim=*/true);  // [n, 1]
    grad.sub_(parallel * weight);
    return;
  }
  // In place, row by row: the tensor expression above allocates two
  // [n, d] temporaries every step. Rows are independent (same bits on any
  // thread count); the dot product is summed in float64.
  const int64_t d = weight.size(1);
  const float* w = weight.data_ptr<float>();
  float* g = grad.data_ptr<float>();
  ParallelFor(0, weight.size(0), /*grain_size=*/64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* w_row = w + i * d;
      float* g_row = g + i * d;
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(g_row[j]) * w_row[j];
      const float parallel = static_cast<float>(dot);
      for (int64_t j = 0; j < d; ++j) g_row[j] -= parallel * w_row[j];
    }
  });
}

void Sae::ProjectDecoderGradient() {
  if (W_dec.grad().defined()) ProjectOutParallelGradient(W_dec, W_dec.mutable_grad());
}

void Sae::RenormalizeDecoderRows() {
  torch::NoGradGuard no_grad;
  W_dec.div_(W_dec.norm(2, {1}, /*keepdim=*/true));
}

double EstimateInputScale(const torch::Tensor& sample) {
  // Mean L2 norm in double: the scale must not depend on summation order.
  double mean_norm = sample.to(torch::kFloat64).norm(2, /*dim=*/{1}).mean().item<double>();
  if (!(mean_norm > 0.0)) return 1.0;
  return std::sqrt(static_cast<double>(sample.size(1))) / mean_norm;
}

namespace {
constexpr int64_t kSumRow = 8192;
}  // namespace

torch::Tensor SumAnyThreadCount(const torch::Tensor& t) {
  const torch::Tensor flat = t.reshape({-1});
  const int64_t n = flat.numel();
  if (n <= kSumRow) return flat.sum();
  const int64_t full = n / kSumRow * kSumRow;
  torch::Tensor partial = flat.narrow(0, 0, full).view({-1, kSumRow}).sum(1);
  if (full < n) partial = torch::cat({partial, flat.narrow(0, full, n - full).sum().unsqueeze(0)});
  return SumAnyThreadCount(partial);
}

double SquaredNormAnyThreadCount(const torch::Tensor& t) {
  torch::NoGradGuard no_grad;
  const torch::Tensor flat = t.detach().reshape({-1});
  const int64_t n = flat.numel();
  const int64_t full = n / kSumRow * kSumRow;
  double total = 0;
  if (full > 0) {
    const torch::Tensor norms =
        flat.narrow(0, 0, full).view({-1, kSumRow}).norm(2, {1}).to(torch::kFloat64).contiguous();
    const double* row = norms.data_ptr<double>();
    for (int64_t i = 0; i < norms.numel(); ++i) total += row[i] * row[i];
  }
  if (full < n) total += flat.narrow(0, full, n - full).to(torch::kFloat64).pow(2).sum().item<double>();
  return total;
}

torch::Tensor ScatterTopK(const torch::Tensor& values, const torch::Tensor& indices, int64_t n) {
  return torch::zeros({values.size(0), n}, values.options()).scatter(1, indices, values);
}

}  // namespace saelab
