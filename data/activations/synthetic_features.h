// Synthetic activations with known ground truth, for checking that an SAE
// recovers the features that generated its data (synthetic_recovery).
//
// n_features unit vectors F_i in R^d (rows of features(), n_features > d is
// superposition). A token is x = sum_i c_i F_i + noise, with c_i = a_i m_i:
// a_i in {0, 1} fires with probability p_i (p_i proportional to
// (i+1)^-frequency_decay, summing to mean_active_features), m_i a magnitude
// from the configured distribution. With correlation rho > 0 the firing is
// correlated through a Gaussian copula: a_i = [z_i < Phi^-1(p_i)] with
// z = sqrt(1 - rho) eps + sqrt(rho) L g, L [n, rank] with unit rows, so the
// marginal rates stay p_i. With children_per_parent c > 0 the first
// P = n_features / (1 + c) features are parents, each firing on its own,
// and child j of parent p (feature P + p c + j) fires only with its parent,
// then with probability child_probability.
//
//   ASSIGN_OR_RETURN(auto source, SyntheticFeatureSource::Create(config, seed));
//   ASSIGN_OR_RETURN(torch::Tensor x, source->TrainBatch(step, 1024));  // [1024, d]
//   torch::Tensor eval = source->EvalSet();                            // [eval_tokens, d]
#ifndef SAELAB_DATA_ACTIVATIONS_SYNTHETIC_FEATURES_H_
#define SAELAB_DATA_ACTIVATIONS_SYNTHETIC_FEATURES_H_

#include <cstdint>
#include <memory>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/activations/activations_config.pb.h"

namespace saelab {

class SyntheticFeatureSource : public ActivationSource {
 public:
  // `config` with defaults filled in. InvalidArgument naming the field if a
  // value is out of range (e.g. a firing probability would exceed 1).
  static absl::StatusOr<std::unique_ptr<SyntheticFeatureSource>> Create(
      const SyntheticDataConfig& config, uint64_t seed);

  int64_t d_in() const override { return config_.d(); }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override;
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override;

  // The held-out evaluation set [eval_tokens, d] (its own random stream).
  const torch::Tensor& EvalSet() const { return eval_x_; }
  // True codes of the evaluation set [eval_tokens, n_features].
  const torch::Tensor& EvalCodes() const { return eval_codes_; }
  // Ground-truth feature directions [n_features, d], unit rows.
  const torch::Tensor& features() const { return features_; }
  // Firing probabilities p_i [n_features] (float64), marginal (a child's
  // is its parent's times child_probability).
  const torch::Tensor& firing_probabilities() const { return probabilities_; }
  // The hierarchy: the number of parents P (0 without one) and c; parent
  // p's children are features P + p c + j, j < c.
  int64_t parents() const { return parents_; }
  int64_t children_per_parent() const { return config_.children_per_parent(); }
  // [n_features] int64: each feature's parent, -1 for none (every feature
  // without a hierarchy), as MeasureAbsorption (sae/metrics.h) reads it.
  torch::Tensor ParentOf() const;

  // Draws `tokens` tokens from the stream named by `stream_seed`;
  // fills *codes [tokens, n_features] if non-null. Returns [tokens, d].
  torch::Tensor Sample(int64_t tokens, uint64_t stream_seed, torch::Tensor* codes = nullptr) const;

 private:
  SyntheticFeatureSource(const SyntheticDataConfig& config, uint64_t seed);

  SyntheticDataConfig config_;
  uint64_t seed_;
  torch::Tensor features_;       // [n, d] float32
  torch::Tensor probabilities_;  // [n] float64
  int64_t parents_ = 0;
  torch::Tensor thresholds_;     // [n] float32, Phi^-1(p_i) for the copula
  torch::Tensor loadings_;       // [n, rank] float32, unit rows
  torch::Tensor eval_x_;
  torch::Tensor eval_codes_;
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_SYNTHETIC_FEATURES_H_
