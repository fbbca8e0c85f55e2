// Seeded permutations for the activation sources' shuffling: the same
// permutation for the same (n, seed) on every platform and standard library.
#ifndef SAELAB_DATA_ACTIVATIONS_INTERNAL_PERMUTATION_H_
#define SAELAB_DATA_ACTIVATIONS_INTERNAL_PERMUTATION_H_

#include <cstdint>
#include <vector>

namespace saelab {

// A permutation of [0, n) (n >= 0) drawn by Fisher-Yates from an
// std::mt19937_64 seeded with `seed`, each draw by rejection sampling
// (unbiased, and unlike std::uniform_int_distribution, specified exactly).
std::vector<int64_t> Permutation(int64_t n, uint64_t seed);

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_INTERNAL_PERMUTATION_H_
