// Logistic-regression probes, the statistical core of probe loss, sparse
// probing, feature absorption and feature-based classification:
//
//   // Gao et al.'s probe loss: one 1-D probe per latent, all latents at once.
//   PerLatentProbes probes = FitPerLatentProbes(train_f, train_y, test_f, test_y);
//   int64_t best = probes.test_cross_entropy.argmin().item<int64_t>();
//
//   // A multi-feature probe (liblinear), L2 for dense probes, L1 for sparse classifiers.
//   ASSIGN_OR_RETURN(LinearClassifier probe,
//                    FitLogisticRegression(train_x, train_y, {.penalty = Penalty::kL2}));
//   ClassifierScores scores = ScoreBinary(probe.DecisionValues(test_x), test_y);
//
// Labels are int64 class indices [N] (binary: 0 = negative, 1 = positive).
// Every fit is deterministic: the 1-D probes are Newton iterations in float64;
// liblinear's solvers are deterministic except the L1 solver's coordinate
// order, which draws from rand(), seeded here before each fit.
#ifndef SAELAB_EVAL_LINEAR_PROBE_H_
#define SAELAB_EVAL_LINEAR_PROBE_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace saelab {

// One 1-D logistic probe p(y=1 | f_j) = sigmoid(w_j f_j + b_j) per column j.
struct PerLatentProbes {
  torch::Tensor weight, bias;          // [m] float64
  torch::Tensor train_cross_entropy;   // [m] float64, nats per example
  torch::Tensor test_cross_entropy;    // [m] float64, nats per example
  torch::Tensor test_accuracy;         // [m] float64, threshold 0.5
};

// Fits every column of train_features ([N, m] float32, e.g. SAE latents)
// as its own 1-D probe of the binary labels train_labels ([N] int64 0/1) by
// Newton's method on the L2-regularised mean cross-entropy
// (l2 * w^2 / 2; the bias is not regularised; the small default keeps w
// finite on separable columns), then scores each on the test set. The work
// is batched over columns (`column_chunk` at a time) because a
// 2-parameter problem per latent is too small for a solver call each: one
// vectorised Newton step advances all of them.
PerLatentProbes FitPerLatentProbes(const torch::Tensor& train_features,
                                   const torch::Tensor& train_labels,
                                   const torch::Tensor& test_features,
                                   const torch::Tensor& test_labels, double l2 = 1e-4,
                                   int64_t column_chunk = 512);

enum class Penalty { kL1, kL2 };

struct LogisticOptions {
  Penalty penalty = Penalty::kL2;
  // liblinear's C: the inverse regularisation strength, per example summed
  // loss (C * sum_i loss_i + penalty(w)).
  double c = 1.0;
  // Scale each feature to unit standard deviation over the training set
  // before fitting (the weights returned are in the original units), so one
  // C suits latents and activations of any scale.
  bool standardize = true;
  double tolerance = 1e-4;  // liblinear's eps
  unsigned seed = 1;        // srand() for the L1 solver's coordinate order
};

// A fitted linear classifier: decision value d_c(x) = x . weight[c] + bias[c]
// per class; binary classifiers have one row (class 1 vs class 0).
struct LinearClassifier {
  int64_t classes = 2;
  torch::Tensor weight;  // [classes == 2 ? 1 : classes, d] float64
  torch::Tensor bias;    // [classes == 2 ? 1 : classes] float64

  // [N, d] float32 -> [N] (binary) or [N, classes] float64.
  torch::Tensor DecisionValues(const torch::Tensor& x) const;
  // [N] int64: argmax of the decision values (binary: d > 0).
  torch::Tensor Predict(const torch::Tensor& x) const;
  // Features with a non-zero weight for some class.
  int64_t FeaturesUsed() const;
};

// Logistic regression with liblinear (L2R_LR or L1R_LR; one-vs-rest for
// more than two classes) on x [N, d] float32 and labels [N] int64 in
// [0, classes). InvalidArgument for mismatched shapes, fewer than two
// classes present among the labels, or c <= 0.
absl::StatusOr<LinearClassifier> FitLogisticRegression(const torch::Tensor& x,
                                                       const torch::Tensor& labels,
                                                       const LogisticOptions& options = {});

struct ClassifierScores {
  double accuracy = 0;  // decision > 0 counted as class 1
  double auc = 0;       // ROC AUC, ties counted half
  double f1 = 0;        // of the positive class
};

// Binary scores of decision values [N] against labels [N] int64 0/1.
ClassifierScores ScoreBinary(const torch::Tensor& decision, const torch::Tensor& labels);

// ROC AUC = P(score of a random positive > score of a random negative) +
// P(tie) / 2 (the Mann-Whitney statistic with mid-ranks). 0.5 if a class
// is empty.
double RocAuc(const torch::Tensor& scores, const torch::Tensor& labels);

}  // namespace saelab

#endif  // SAELAB_EVAL_LINEAR_PROBE_H_
