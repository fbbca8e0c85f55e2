#include "sae/topk.h"

#include <algorithm>
#include <limits>

#include "sae/geometric_median.h"
#include "sae/kernels/sparse_decode.h"

namespace saelab {

TopKSae::TopKSae(int64_t d_in, int64_t n_latents, const TopKConfig& config, uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
}

torch::Tensor TopKSae::EncodeScaled(const torch::Tensor& x) {
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);
  auto [values, indices] = z.topk(config_.k(), /*dim=*/1);
  return ScatterTopK(torch::relu(values), indices, n_latents_);
}

torch::Tensor TopKSae::EncodeTopK(const torch::Tensor& x, torch::Tensor* indices) {
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);
  auto [values, top] = z.topk(config_.k(), /*dim=*/1);
  *indices = top;
  return torch::relu(values);
}

torch::Tensor TopKSae::DecodeScaled(const torch::Tensor& f) { return torch::addmm(b_dec, f, W_dec); }

torch::Tensor BatchNmse(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).pow(2).sum() / b.pow(2).sum().clamp_min(std::numeric_limits<float>::min());
}

TopKLossOptions TopKLossOptionsFrom(const TopKConfig& config) {
  TopKLossOptions options;
  options.k = config.k();
  options.k_aux = config.k_aux();
  options.auxk_coefficient = config.auxk_coefficient();
  options.multi_topk_factor = config.multi_topk_factor();
  options.multi_topk_coefficient = config.multi_topk_coefficient();
  options.sparse_decode = config.sparse_decode();
  return options;
}

namespace {

// x_hat from the top-k of z: values/indices [batch, k].
torch::Tensor DecodeTopK(const torch::Tensor& values, const torch::Tensor& indices,
                         const torch::Tensor& W_dec, const torch::Tensor& b_dec, bool sparse) {
  return sparse ? SparseDecode(values, indices, W_dec, b_dec)
                : SparseDecodeReference(values, indices, W_dec, b_dec);
}

}  // namespace

torch::Tensor TopKLoss(const torch::Tensor& x, const torch::Tensor& W_enc,
                       const torch::Tensor& b_enc, const torch::Tensor& W_dec,
                       const torch::Tensor& b_dec, const TopKLossOptions& options,
                       const torch::Tensor& dead_mask, torch::Tensor* f, torch::Tensor* x_hat,
                       std::map<std::string, torch::Tensor>* terms) {
  const int64_t n = W_enc.size(1);
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);  // [batch, n]
  auto [values, indices] = z.topk(options.k, /*dim=*/1);    // [batch, k]
  values = torch::relu(values);
  *f = ScatterTopK(values.detach(), indices, n);            // [batch, n], for statistics
  *x_hat = DecodeTopK(values, indices, W_dec, b_dec, options.sparse_decode);
  torch::Tensor nmse = BatchNmse(*x_hat, x);
  torch::Tensor loss = nmse;
  (*terms)["nmse"] = nmse;
  if (options.auxk_coefficient > 0.0) {
    torch::Tensor auxk = AuxKLoss(z, W_dec, dead_mask, options.k_aux, (x - *x_hat).detach());
    (*terms)["auxk"] = auxk;
    loss = loss + options.auxk_coefficient * auxk;
  }
  if (options.multi_topk_factor > 0) {
    auto [multi_values, multi_indices] = z.topk(std::min(n, options.multi_topk_factor * options.k), 1);
    torch::Tensor multi_x_hat =
        DecodeTopK(torch::relu(multi_values), multi_indices, W_dec, b_dec, options.sparse_decode);
    torch::Tensor multi_nmse = BatchNmse(multi_x_hat, x);
    (*terms)["multi_topk_nmse"] = multi_nmse;
    loss = loss + options.multi_topk_coefficient * multi_nmse;
  }
  return loss;
}

torch::Tensor AuxKLoss(const torch::Tensor& z, const torch::Tensor& W_dec,
                       const torch::Tensor& dead_mask, int64_t k_aux,
                       const torch::Tensor& residual) {
  int64_t n_dead = dead_mask.defined() ? dead_mask.sum().item<int64_t>() : 0;
  if (n_dead == 0) return torch::zeros({}, z.options());
  // Live latents can never win the aux top-k.
  torch::Tensor z_dead = z.masked_fill(dead_mask.logical_not().unsqueeze(0),
                                       -std::numeric_limits<float>::infinity());
  auto [values, indices] = z_dead.topk(std::min(k_aux, n_dead), /*dim=*/1);
  torch::Tensor aux_f = ScatterTopK(torch::relu(values), indices, z.size(1));
  return BatchNmse(torch::mm(aux_f, W_dec), residual);  // no bias: e has none
}

TrainOutput TopKSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  TrainOutput out;
  std::map<std::string, torch::Tensor> terms;
  out.loss = TopKLoss(x, W_enc, b_enc, W_dec, b_dec, TopKLossOptionsFrom(config_), info.dead_mask,
                      &out.f, &out.x_hat, &terms);
  for (const auto& [name, value] : terms) out.terms[name] = value.item<double>();
  out.terms["dead_latents"] =
      info.dead_mask.defined() ? info.dead_mask.sum().item<double>() : 0.0;
  return out;
}

void TopKSae::InitFromSample(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec.copy_(GeometricMedian(x, config_.geometric_median_iterations()));
}

void TopKSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void TopKSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

}  // namespace saelab
