// Geometric median of a point cloud (Weiszfeld's algorithm), used by TopK to
// initialise b_dec (Gao et al.'s b_pre).
//
//   torch::Tensor b = GeometricMedian(sample, /*iterations=*/100);  // [d]
#ifndef SAELAB_SAE_GEOMETRIC_MEDIAN_H_
#define SAELAB_SAE_GEOMETRIC_MEDIAN_H_

#include <cstdint>

#include <torch/types.h>

namespace saelab {

// points: [n, d]. Returns the point [d] minimising sum_i ||points_i - m||_2,
// starting from the mean; iterates in float64 and returns float32.
// Hand-written: LibTorch has no geometric median.
torch::Tensor GeometricMedian(const torch::Tensor& points, int64_t iterations);

}  // namespace saelab

#endif  // SAELAB_SAE_GEOMETRIC_MEDIAN_H_
