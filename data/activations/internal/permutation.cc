#include "data/activations/internal/permutation.h"

#include <random>
#include <utility>

namespace saelab {
namespace {

// A uniform integer in [0, n) from rng.
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace

std::vector<int64_t> Permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[i], p[UniformBelow(rng, static_cast<uint64_t>(i) + 1)]);
  }
  return p;
}

}  // namespace saelab
