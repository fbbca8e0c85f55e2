// synthetic_recovery: train SAEs on synthetic activations whose features are
// known (data/activations/synthetic_features.h) and measure how well each recovers them.
//
// For every SAE of every sweep: train (resumably, under
// <run_dir>/saes/<name>/), evaluate on the held-out set (mse, nmse, fvu,
// explained variance, l0, dead fraction, density histogram) and compare its
// decoder rows with the true features (mmcs). Series "<sweep>: mmcs vs l0"
// and "<sweep>: nmse vs l0" feed the plot.
//
//   ExperimentResult result;
//   RETURN_IF_ERROR(RunSyntheticRecovery(config, run_dir, &seeds, &result));
#ifndef SAELAB_EXPERIMENTS_SYNTHETIC_RECOVERY_H_
#define SAELAB_EXPERIMENTS_SYNTHETIC_RECOVERY_H_

#include <string>

#include "absl/status/status.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

// `config` has its defaults filled in. Appends to result->saes and
// result->series, and phase timings and the data hash to its provenance.
absl::Status RunSyntheticRecovery(const SyntheticRecoveryConfig& config, const std::string& run_dir,
                                  SeedTree* seeds, ExperimentResult* result);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SYNTHETIC_RECOVERY_H_
