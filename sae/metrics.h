// SAE evaluation metrics, exactly as docs/metrics.md defines them, accumulated
// over the whole evaluation set (never averaged per batch).
//
//   mse  = E||x - x_hat||^2 / d          nmse = E||x - x_hat||^2 / E||x||^2
//   fvu  = E||x - x_hat||^2 / E||x - E[x]||^2,   explained_variance = 1 - fvu
//   l0   = mean number of non-zero latents per token
//   dead_fraction = latents that never fired / n, over `tokens` tokens
//   log10 firing-density histogram
//   mmcs = mean over true features of the best cosine with any decoder row
//
//   ReconstructionMetrics metrics(d_in, n_latents);
//   for (batch : eval) metrics.Add(x, x_hat, f);
//   double nmse = metrics.Nmse();
#ifndef SAELAB_SAE_METRICS_H_
#define SAELAB_SAE_METRICS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "harness/result.pb.h"

namespace saelab {

class ReconstructionMetrics {
 public:
  // WriteTo draws the density histogram with `histogram_bins` bins.
  ReconstructionMetrics(int64_t d_in, int64_t n_latents, int histogram_bins = 20);

  // x, x_hat: [batch, d_in] (model units); f: [batch, n_latents].
  // Sums are kept in float64.
  void Add(const torch::Tensor& x, const torch::Tensor& x_hat, const torch::Tensor& f);
  // The same rows reconstructed from the training forward's code
  // (Sae::EncodeAsTrained), for SAEs whose training and inference codes
  // differ: reported beside the others as nmse_training_mode and
  // l0_training_mode.
  void AddTrainingMode(const torch::Tensor& x, const torch::Tensor& x_hat, const torch::Tensor& f);

  int64_t tokens() const { return tokens_; }
  double Mse() const;
  double Nmse() const;
  double Fvu() const;
  double ExplainedVariance() const { return 1.0 - Fvu(); }
  double L0() const;
  double DeadFraction() const;
  // Per-latent firing counts [n_latents] (int64).
  const torch::Tensor& fire_counts() const { return fire_counts_; }
  // Histogram of log10(fire_count / tokens) over latents that fired, with
  // `bins` equal bins on [log10(1 / tokens), 0]; never-fired counted apart.
  DensityHistogram DensityHistogramOf(int bins = 20) const;

  // Writes mse, nmse, fvu, explained_variance, l0, dead_fraction (and,
  // after AddTrainingMode, nmse_training_mode and l0_training_mode) into
  // `result` (metrics map), with eval_tokens and the histogram.
  void WriteTo(SaeResult* result) const;

 private:
  int64_t d_in_;
  int64_t n_latents_;
  int histogram_bins_;
  int64_t tokens_ = 0;
  double sum_squared_error_ = 0;  // sum ||x - x_hat||^2
  double sum_squared_x_ = 0;      // sum ||x||^2
  double active_latents_ = 0;     // sum of per-token L0
  torch::Tensor sum_x_;           // [d_in] float64, for E[x]
  torch::Tensor fire_counts_;     // [n_latents] int64
  // AddTrainingMode's rows, summed as Add sums; null until the first call.
  std::unique_ptr<ReconstructionMetrics> training_mode_;
};

// Mean max cosine similarity: true_features [n_true, d] (rows), decoder
// [n_latents, d] (rows). For each true feature, the best signed cosine with
// any decoder row (a feature learned with flipped sign is not recovered);
// returns the mean over true features.
double MeanMaxCosineSimilarity(const torch::Tensor& true_features, const torch::Tensor& decoder);

// Feature absorption where the true hierarchy is known (the toy measure of
// Chanin et al., "A is for Absorption", 2024, and the Matryoshka paper): a
// parent feature's latent is the one whose decoder row has the largest
// signed cosine with the parent's direction; it absorbs when, on a token
// where the parent and one of its children are active, it stays silent
// (a child latent carries the parent's direction instead).
struct AbsorptionRates {
  // Silent parent latent over the (parent, token) pairs with a child active.
  double with_child = 0;
  // The same over pairs where the parent fires without any child: the
  // latent's plain miss rate, against which with_child is read.
  double alone = 0;
  int64_t pairs_with_child = 0;
  int64_t pairs_alone = 0;
};
// true_codes [tokens, n_features] (0 = inactive), latents [tokens, n]
// (0 = silent), true_features [n_features, d], decoder [n, d] (rows);
// parent_of [n_features] int64: the parent feature of each feature, -1 for
// none. Parents are the features some feature names as its parent.
AbsorptionRates MeasureAbsorption(const torch::Tensor& true_codes, const torch::Tensor& latents,
                                  const torch::Tensor& true_features, const torch::Tensor& decoder,
                                  const torch::Tensor& parent_of);

}  // namespace saelab

#endif  // SAELAB_SAE_METRICS_H_
