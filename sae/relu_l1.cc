#include "sae/relu_l1.h"

#include <algorithm>

namespace saelab {

ReluL1Sae::ReluL1Sae(int64_t d_in, int64_t n_latents, const ReluL1Config& config, uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  RegisterTiedParameters(seed, config_.decoder_init_norm());
}

torch::Tensor ReluL1Sae::EncodeScaled(const torch::Tensor& x) {
  return torch::relu(torch::addmm(b_enc, x, W_enc));
}

torch::Tensor ReluL1Sae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

double ReluL1Sae::L1CoefficientAt(int64_t step, int64_t total_steps) const {
  double warmup_steps = config_.l1_warmup_fraction() * static_cast<double>(total_steps);
  if (warmup_steps <= 0.0) return config_.l1_coefficient();
  return config_.l1_coefficient() * std::min(1.0, static_cast<double>(step) / warmup_steps);
}

torch::Tensor ReluL1Loss(const torch::Tensor& x, const torch::Tensor& W_enc,
                         const torch::Tensor& b_enc, const torch::Tensor& W_dec,
                         const torch::Tensor& b_dec, double l1_coefficient, torch::Tensor* f,
                         torch::Tensor* x_hat, torch::Tensor* mse, torch::Tensor* l1) {
  *f = torch::relu(torch::addmm(b_enc, x, W_enc));        // [batch, n]
  *x_hat = torch::addmm(b_dec, *f, W_dec);                // [batch, d]
  *mse = (x - *x_hat).pow(2).sum(1).mean();               // E||x - x_hat||^2
  *l1 = ((*f) * W_dec.norm(2, {1})).sum(1).mean();        // E sum_i f_i ||W_dec_i||
  return *mse + l1_coefficient * (*l1);
}

TrainOutput ReluL1Sae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  double lambda = L1CoefficientAt(info.step, info.total_steps);
  TrainOutput out;
  torch::Tensor mse, l1;
  out.loss = ReluL1Loss(x, W_enc, b_enc, W_dec, b_dec, lambda, &out.f, &out.x_hat, &mse, &l1);
  out.terms["mse"] = mse.item<double>();
  out.terms["l1"] = l1.item<double>();
  out.terms["l1_coefficient"] = lambda;
  return out;
}

}  // namespace saelab
