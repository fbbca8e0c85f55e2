// The row primitives of the sparse step kernels: float32 rows of length d,
// summed in a fixed order so that the bits do not depend on threads.
// Compiled into each kernel with its copts (AVX2 + FMA, -O3).
#ifndef SAELAB_SAE_KERNELS_INTERNAL_ROW_OPS_H_
#define SAELAB_SAE_KERNELS_INTERNAL_ROW_OPS_H_

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "harness/parallel_for.h"

namespace saelab {
namespace kernels_internal {

// y += a * x over d floats, one FMA per element.
inline void Axpy(int64_t d, float a, const float* x, float* y) {
  for (int64_t j = 0; j < d; ++j) y[j] = std::fma(a, x[j], y[j]);
}

// <a, b> in eight partial sums (so the compiler can vectorise without
// reassociating; it contracts each lane's step into an FMA), combined in a
// fixed order, then the tail past the last multiple of 8 by FMA (written
// out: GCC vectorises a plain tail as products, then adds).
inline float Dot(int64_t d, const float* a, const float* b) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[j + l] * b[j + l];
  }
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
              ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; j < d; ++j) sum = std::fma(a[j], b[j], sum);
  return sum;
}

// Several Axpys or Dots at once, register-blocked. Each gives exactly the
// bits of the plain loops above (every element is one FMA per entry, in
// entry order; each dot sums in Dot's eight lanes and combines them in
// Dot's order), which row_ops_test checks; what changes is the memory
// traffic. An Axpy reads and writes y once per entry and is bound by
// loads and stores, not FMAs; these hold a 64-float chunk of the
// accumulator (or of the shared row) in eight registers across all the
// entries, so each FMA costs one load. Hand-written with AVX2 intrinsics
// because GCC does not keep an accumulator array in registers across an
// inner loop of unknown length.

// y[0:d] += sum over e in [0, count), in order, of coef(e) * row(e)[0:d]:
// the bits of `for e: Axpy(d, coef(e), row(e), y)`. With SkipZero, entries
// whose coefficient is 0 are left out (as callers that test before an
// Axpy do). coef: int64_t -> float, row: int64_t -> const float*.
template <bool SkipZero = false, typename Coef, typename Row>
inline void AxpyEntries(int64_t d, int64_t count, Coef&& coef, Row&& row, float* y) {
  int64_t j = 0;
  for (; j + 64 <= d; j += 64) {
    __m256 acc[8];
    for (int q = 0; q < 8; ++q) acc[q] = _mm256_loadu_ps(y + j + 8 * q);
    for (int64_t e = 0; e < count; ++e) {
      const float a = coef(e);
      if (SkipZero && a == 0.0f) continue;
      const __m256 av = _mm256_set1_ps(a);
      const float* x = row(e) + j;
      for (int q = 0; q < 8; ++q) acc[q] = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + 8 * q), acc[q]);
    }
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(y + j + 8 * q, acc[q]);
  }
  if (j + 32 <= d) {
    __m256 acc[4];
    for (int q = 0; q < 4; ++q) acc[q] = _mm256_loadu_ps(y + j + 8 * q);
    for (int64_t e = 0; e < count; ++e) {
      const float a = coef(e);
      if (SkipZero && a == 0.0f) continue;
      const __m256 av = _mm256_set1_ps(a);
      const float* x = row(e) + j;
      for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + 8 * q), acc[q]);
    }
    for (int q = 0; q < 4; ++q) _mm256_storeu_ps(y + j + 8 * q, acc[q]);
    j += 32;
  }
  for (; j + 8 <= d; j += 8) {
    __m256 acc = _mm256_loadu_ps(y + j);
    for (int64_t e = 0; e < count; ++e) {
      const float a = coef(e);
      if (SkipZero && a == 0.0f) continue;
      acc = _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_loadu_ps(row(e) + j), acc);
    }
    _mm256_storeu_ps(y + j, acc);
  }
  for (; j < d; ++j) {
    float acc = y[j];
    for (int64_t e = 0; e < count; ++e) {
      const float a = coef(e);
      if (SkipZero && a == 0.0f) continue;
      acc = std::fma(a, row(e)[j], acc);
    }
    y[j] = acc;
  }
}

// out(e) = Dot(d, a, b(e)) for e in [0, count), four entries at a time
// sharing each load of a (eight at a time measured slower: more rows
// streaming through L1 at once). b: int64_t -> const float*;
// out: (int64_t, float).
template <typename Row, typename Out>
inline void DotEntries(int64_t d, const float* a, int64_t count, Row&& b, Out&& out) {
  const int64_t vector_end = d / 8 * 8;
  int64_t e = 0;
  for (; e + 4 <= count; e += 4) {
    const float* rows[4];
    __m256 acc[4];
    for (int q = 0; q < 4; ++q) {
      rows[q] = b(e + q);
      acc[q] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < vector_end; j += 8) {
      const __m256 av = _mm256_loadu_ps(a + j);
      for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(av, _mm256_loadu_ps(rows[q] + j), acc[q]);
    }
    for (int q = 0; q < 4; ++q) {
      float lanes[8];
      _mm256_storeu_ps(lanes, acc[q]);
      float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                  ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      for (int64_t j = vector_end; j < d; ++j) sum = std::fma(a[j], rows[q][j], sum);
      out(e + q, sum);
    }
  }
  for (; e < count; ++e) out(e, Dot(d, a, b(e)));
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
