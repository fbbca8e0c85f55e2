// t-SNE (van der Maaten and Hinton 2008), exact: a 2-D map in which points
// that are near in the input stay near. saelab draws decoder directions of
// several dictionaries on it (experiments/feature_splitting.h), as
// Anthropic's feature-neighbourhood maps do with UMAP.
//
//   TsneOptions options;
//   options.seed = seeds->Derive("map");
//   ASSIGN_OR_RETURN(torch::Tensor xy, Tsne(squared_distances, options));  // [n, 2]
//
// Hand-written because no installed library has it (no scikit-learn or
// UMAP among the Debian packages here). Exact O(n^2) memory and time per
// iteration: meant for a few thousand points (3,000 points x 500
// iterations take about half a minute on one core).
#ifndef SAELAB_HARNESS_TSNE_H_
#define SAELAB_HARNESS_TSNE_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace saelab {

struct TsneOptions {
  // Effective number of neighbours of each point (2^entropy of its P row).
  double perplexity = 30;
  int iterations = 500;
  // P is multiplied by this over the first exaggeration_iterations.
  double early_exaggeration = 12;
  int exaggeration_iterations = 125;
  // Gradient-descent step; <= 0: max(n / early_exaggeration / 4, 50)
  // (Belkina et al. 2019, scikit-learn's "auto").
  double learning_rate = 0;
  // Seeds the initial layout (isotropic Gaussian, sd 1e-4).
  uint64_t seed = 0;
};

// Row-conditional affinities p_{j|i} = exp(-beta_i d_ij) / sum_k, p_{i|i} = 0,
// with each beta_i found by bisection so that the row's entropy (nats) is
// log(perplexity) within 1e-5. `squared_distances` [n, n] float64,
// symmetric, zero diagonal. Returns [n, n] float64. InvalidArgument for a
// bad shape, n < 2, or perplexity outside (1, n - 1].
absl::StatusOr<torch::Tensor> ConditionalAffinities(const torch::Tensor& squared_distances,
                                                    double perplexity);

// The embedding [n, 2] float64: P = (P_cond + P_cond^T) / 2n, Student-t
// similarities in the map, KL(P || Q) minimised by gradient descent with
// momentum (0.5, then 0.8 after the exaggeration phase) and per-coordinate
// gains. Deterministic for a given seed on CPU. Errors as above.
absl::StatusOr<torch::Tensor> Tsne(const torch::Tensor& squared_distances,
                                   const TsneOptions& options);

}  // namespace saelab

#endif  // SAELAB_HARNESS_TSNE_H_
