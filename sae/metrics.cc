#include "sae/metrics.h"

#include <cmath>
#include <torch/utils.h>

namespace saelab {

ReconstructionMetrics::ReconstructionMetrics(int64_t d_in, int64_t n_latents, int histogram_bins)
    : d_in_(d_in),
      n_latents_(n_latents),
      histogram_bins_(histogram_bins),
      sum_x_(torch::zeros({d_in}, torch::kFloat64)),
      fire_counts_(torch::zeros({n_latents}, torch::kInt64)) {}

void ReconstructionMetrics::Add(const torch::Tensor& x, const torch::Tensor& x_hat,
                                const torch::Tensor& f) {
  torch::NoGradGuard no_grad;
  torch::Tensor x64 = x.to(torch::kFloat64);
  torch::Tensor error = x64 - x_hat.to(torch::kFloat64);
  tokens_ += x.size(0);
  sum_squared_error_ += error.pow(2).sum().item<double>();
  sum_squared_x_ += x64.pow(2).sum().item<double>();
  sum_x_ += x64.sum(0);
  torch::Tensor active = f != 0;  // [batch, n]
  active_latents_ += active.sum().item<double>();
  fire_counts_ += active.sum(0).to(torch::kInt64);
}

void ReconstructionMetrics::AddTrainingMode(const torch::Tensor& x, const torch::Tensor& x_hat,
                                            const torch::Tensor& f) {
  if (training_mode_ == nullptr) {
    training_mode_ = std::make_unique<ReconstructionMetrics>(d_in_, n_latents_, histogram_bins_);
  }
  training_mode_->Add(x, x_hat, f);
}

double ReconstructionMetrics::Mse() const {
  return tokens_ == 0 ? 0.0 : sum_squared_error_ / (static_cast<double>(tokens_) * d_in_);
}

double ReconstructionMetrics::Nmse() const {
  return sum_squared_x_ == 0 ? 0.0 : sum_squared_error_ / sum_squared_x_;
}

double ReconstructionMetrics::Fvu() const {
  if (tokens_ == 0) return 0.0;
  // sum ||x - mean||^2 = sum ||x||^2 - N ||mean||^2.
  torch::Tensor mean = sum_x_ / static_cast<double>(tokens_);
  double centred = sum_squared_x_ - static_cast<double>(tokens_) * mean.pow(2).sum().item<double>();
  return centred <= 0 ? 0.0 : sum_squared_error_ / centred;
}

double ReconstructionMetrics::L0() const {
  return tokens_ == 0 ? 0.0 : active_latents_ / static_cast<double>(tokens_);
}

double ReconstructionMetrics::DeadFraction() const {
  return (fire_counts_ == 0).sum().item<double>() / static_cast<double>(n_latents_);
}

DensityHistogram ReconstructionMetrics::DensityHistogramOf(int bins) const {
  DensityHistogram histogram;
  double low = tokens_ > 0 ? -std::log10(static_cast<double>(tokens_)) : 0.0;
  for (int i = 0; i <= bins; ++i) histogram.add_log10_edges(low + (0.0 - low) * i / bins);
  std::vector<int64_t> counts(bins, 0);
  int64_t never = 0;
  auto fire = fire_counts_.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n_latents_; ++i) {
    if (fire[i] == 0) {
      ++never;
      continue;
    }
    double log_density = std::log10(static_cast<double>(fire[i]) / tokens_);
    int bin = low < 0 ? static_cast<int>((log_density - low) / (0.0 - low) * bins) : 0;
    counts[std::min(std::max(bin, 0), bins - 1)]++;
  }
  for (int64_t c : counts) histogram.add_counts(c);
  histogram.set_never_fired(never);
  return histogram;
}

void ReconstructionMetrics::WriteTo(SaeResult* result) const {
  auto& metrics = *result->mutable_metrics();
  metrics["mse"] = Mse();
  metrics["nmse"] = Nmse();
  metrics["fvu"] = Fvu();
  metrics["explained_variance"] = ExplainedVariance();
  metrics["l0"] = L0();
  metrics["dead_fraction"] = DeadFraction();
  if (training_mode_ != nullptr) {
    metrics["nmse_training_mode"] = training_mode_->Nmse();
    metrics["l0_training_mode"] = training_mode_->L0();
  }
  result->set_eval_tokens(tokens_);
  *result->mutable_density_histogram() = DensityHistogramOf(histogram_bins_);
}

namespace {

// Signed cosines [n_true, n_latents] between the rows of true_features and
// of decoder, in float64 (norms clamped below at 1e-30).
torch::Tensor RowCosines(const torch::Tensor& true_features, const torch::Tensor& decoder) {
  torch::Tensor t = true_features.to(torch::kFloat64);
  torch::Tensor w = decoder.to(torch::kFloat64);
  t = t / t.norm(2, {1}, true).clamp_min(1e-30);
  w = w / w.norm(2, {1}, true).clamp_min(1e-30);
  return torch::mm(t, w.t());
}

}  // namespace

double MeanMaxCosineSimilarity(const torch::Tensor& true_features, const torch::Tensor& decoder) {
  torch::NoGradGuard no_grad;
  return std::get<0>(RowCosines(true_features, decoder).max(1)).mean().item<double>();
}

AbsorptionRates MeasureAbsorption(const torch::Tensor& true_codes, const torch::Tensor& latents,
                                  const torch::Tensor& true_features, const torch::Tensor& decoder,
                                  const torch::Tensor& parent_of) {
  torch::NoGradGuard no_grad;
  const torch::Tensor best_latent =
      std::get<1>(RowCosines(true_features, decoder).max(1));  // [n_features]
  const torch::Tensor active = true_codes != 0;
  const torch::Tensor fired = latents != 0;
  const torch::Tensor parents = std::get<0>(at::_unique(parent_of.masked_select(parent_of >= 0)));
  AbsorptionRates rates;
  int64_t silent_with_child = 0, silent_alone = 0;
  for (int64_t i = 0; i < parents.numel(); ++i) {
    const int64_t parent = parents[i].item<int64_t>();
    const torch::Tensor children = (parent_of == parent).nonzero().squeeze(1);
    const torch::Tensor parent_active = active.select(1, parent);
    const torch::Tensor child_active = active.index_select(1, children).any(1);
    const torch::Tensor silent = fired.select(1, best_latent[parent].item<int64_t>()).logical_not();
    const torch::Tensor with_child = parent_active.logical_and(child_active);
    const torch::Tensor alone = parent_active.logical_and(child_active.logical_not());
    rates.pairs_with_child += with_child.sum().item<int64_t>();
    rates.pairs_alone += alone.sum().item<int64_t>();
    silent_with_child += with_child.logical_and(silent).sum().item<int64_t>();
    silent_alone += alone.logical_and(silent).sum().item<int64_t>();
  }
  if (rates.pairs_with_child > 0) {
    rates.with_child = static_cast<double>(silent_with_child) / rates.pairs_with_child;
  }
  if (rates.pairs_alone > 0) rates.alone = static_cast<double>(silent_alone) / rates.pairs_alone;
  return rates;
}

}  // namespace saelab
