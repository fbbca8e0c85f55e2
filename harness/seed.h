// Seeding: one root seed per run; every component derives its own seed from
// it by name, and every derivation is recorded for the result's provenance.
//
//   SeedTree seeds(config.seed());
//   uint64_t data_seed = seeds.Derive("data/train");
//   uint64_t sae_seed = seeds.Derive("sae/topk_k8");
//   for (const auto& [component, seed] : seeds.records()) ...
#ifndef SAELAB_HARNESS_SEED_H_
#define SAELAB_HARNESS_SEED_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace saelab {

// The derived seed for `component`: a pure function of (root, component),
// stable across platforms, compilers and library versions.
uint64_t DeriveSeed(uint64_t root, absl::string_view component);

class SeedTree {
 public:
  explicit SeedTree(uint64_t root) : root_(root) {}

  uint64_t root() const { return root_; }

  // DeriveSeed(root, component), recorded (once per component).
  uint64_t Derive(absl::string_view component);

  // (component, seed) in first-derivation order.
  const std::vector<std::pair<std::string, uint64_t>>& records() const { return records_; }

 private:
  uint64_t root_;
  std::vector<std::pair<std::string, uint64_t>> records_;
};

}  // namespace saelab

#endif  // SAELAB_HARNESS_SEED_H_
