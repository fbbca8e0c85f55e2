// The row primitives of the sparse step kernels: float32 rows of length d,
// summed in a fixed order so that the bits do not depend on threads.
// Compiled into each kernel with its copts (AVX2 + FMA, -O3).
#ifndef SAELAB_SAE_KERNELS_INTERNAL_ROW_OPS_H_
#define SAELAB_SAE_KERNELS_INTERNAL_ROW_OPS_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "harness/parallel_for.h"

namespace saelab {
namespace kernels_internal {

// y += a * x over d floats.
inline void Axpy(int64_t d, float a, const float* x, float* y) {
  for (int64_t j = 0; j < d; ++j) y[j] += a * x[j];
}

// <a, b> in eight partial sums (so the compiler can vectorise without
// reassociating), combined in a fixed order.
inline float Dot(int64_t d, const float* a, const float* b) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[j + l] * b[j + l];
  }
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
              ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; j < d; ++j) sum += a[j] * b[j];
  return sum;
}

// ||a - b||^2 in float64.
inline double SquaredDistance(int64_t d, const float* a, const float* b) {
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - b[j];
    sum += diff * diff;
  }
  return sum;
}

// out[j] = sum over rows b of a[b * d + j], each column in row order (the
// same bits for any thread count); columns split over threads.
inline void ColumnSums(int64_t rows, int64_t d, const float* a, float* out) {
  ParallelFor(0, d, /*grain=*/64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float sum = 0.0f;
      for (int64_t b = 0; b < rows; ++b) sum += a[b * d + j];
      out[j] = sum;
    }
  });
}

// Sums per-row partial sums in row order (the same for any thread count).
inline double Total(const std::vector<double>& per_row) {
  double sum = 0;
  for (double v : per_row) sum += v;
  return sum;
}

// Counting sort of per-row entries (each with a `latent`) by latent, rows
// in order: offsets [n + 1] (latent i owns [offsets[i], offsets[i + 1])),
// and for each grouped entry the (row, position in the row) it came from.
// Sequential, O(entries): the order, hence every later sum, is fixed.
template <typename Entry>
void GroupByLatent(const std::vector<std::vector<Entry>>& per_row, int64_t n,
                   std::vector<int64_t>* offsets, std::vector<std::pair<int32_t, int32_t>>* from) {
  offsets->assign(n + 1, 0);
  for (const auto& row : per_row) {
    for (const Entry& e : row) ++(*offsets)[e.latent + 1];
  }
  for (int64_t i = 0; i < n; ++i) (*offsets)[i + 1] += (*offsets)[i];
  from->resize((*offsets)[n]);
  std::vector<int64_t> next(offsets->begin(), offsets->end() - 1);
  for (int64_t b = 0; b < static_cast<int64_t>(per_row.size()); ++b) {
    for (int64_t s = 0; s < static_cast<int64_t>(per_row[b].size()); ++s) {
      const int64_t at = next[per_row[b][s].latent]++;
      (*from)[at] = {static_cast<int32_t>(b), static_cast<int32_t>(s)};
    }
  }
}

// Rows per pre-activation block of the sparse steps that scan the encoder
// GEMM block by block: at most 512 rows (so that a dense batch is given up
// after its first block) and 2^24 floats (64 MiB: 256 rows at n 65536).
inline int64_t PreActivationBlockRows(int64_t batch, int64_t n) {
  constexpr int64_t kBlockRows = 512;
  constexpr int64_t kBlockFloats = int64_t{1} << 24;
  return std::max<int64_t>(1, std::min({batch, kBlockRows, kBlockFloats / std::max<int64_t>(n, 1)}));
}

}  // namespace kernels_internal
}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_INTERNAL_ROW_OPS_H_
