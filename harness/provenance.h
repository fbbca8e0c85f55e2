// Provenance of a run: source revision, config hash, seeds, library
// versions, hardware, wall times, input hashes.
//
//   Provenance p = CollectProvenance(config_sha256, seeds, argc, argv);
//   PhaseClock clock;  ...  RecordPhase("train/topk_k8", clock.Seconds(), &p);
#ifndef SAELAB_HARNESS_PROVENANCE_H_
#define SAELAB_HARNESS_PROVENANCE_H_

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

// Fills everything known at start: commit + dirty flag (stamped at build),
// config hash, root seed, versions, CPU/GPU, host, start time, command line.
// Seeds derived later are added with RecordSeeds.
Provenance CollectProvenance(const std::string& config_sha256, uint64_t root_seed, int argc,
                             char** argv);

// Replaces the seed list with every derivation made so far.
void RecordSeeds(const SeedTree& seeds, Provenance* provenance);

// Appends a phase timing.
void RecordPhase(const std::string& phase, double wall_seconds, Provenance* provenance);

// Appends an input hash.
void RecordInput(const std::string& name, const std::string& sha256, Provenance* provenance);

// Wall-clock stopwatch for phases.
class PhaseClock {
 public:
  PhaseClock() : start_(absl::Now()) {}
  double Seconds() const { return absl::ToDoubleSeconds(absl::Now() - start_); }

 private:
  absl::Time start_;
};

}  // namespace saelab

#endif  // SAELAB_HARNESS_PROVENANCE_H_
