#include "harness/seed.h"

namespace saelab {
namespace {

// Hand-written on purpose: absl::Hash and std::hash are salted per process
// or unspecified across versions, and a seed must never change meaning.
// FNV-1a 64 folds the name; SplitMix64's finaliser mixes it with the root.
uint64_t Fnv1a64(absl::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t DeriveSeed(uint64_t root, absl::string_view component) {
  // Keep seeds below 2^63 so they survive a round trip through int64 fields
  // and torch generators.
  return SplitMix64(SplitMix64(root) ^ Fnv1a64(component)) >> 1;
}

uint64_t SeedTree::Derive(absl::string_view component) {
  uint64_t seed = DeriveSeed(root_, component);
  for (const auto& record : records_) {
    if (record.first == component) return seed;
  }
  records_.emplace_back(std::string(component), seed);
  return seed;
}

}  // namespace saelab
