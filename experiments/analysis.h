// Analyses over a finished result's groups, the same for every experiment:
// power-law fits (scaling laws) and the checks of the paper claims an
// experiment's config names.
//
//   RETURN_IF_ERROR(FitPowerLaws(config.fits(), seeds->Derive("fits"), &result));
//   CheckClaims(experiment_config.claims(), &result);   // result.claims
#ifndef SAELAB_EXPERIMENTS_ANALYSIS_H_
#define SAELAB_EXPERIMENTS_ANALYSIS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "experiments/experiment_config.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "harness/result.pb.h"

namespace saelab {

// Appends one PowerLawFit per config to result->fits, over result->groups
// (SummarizeGroups first): x from the group's hyperparameter of that name,
// else its metric's mean; y the metric's mean. InvalidArgument naming the
// fit when x or y is missing from a group, or the points cannot be fitted
// (fewer than 3 distinct x).
absl::Status FitPowerLaws(const google::protobuf::RepeatedPtrField<PowerLawFitConfig>& fits,
                          uint64_t seed, ExperimentResult* result);

// Appends one ClaimOutcome per claim to result->claims. A claim that cannot
// be checked (an unknown sweep or fit, no L0 overlap) is recorded as not
// held, with the reason as saelab's value.
void CheckClaims(const google::protobuf::RepeatedPtrField<PaperClaim>& claims,
                 ExperimentResult* result);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_ANALYSIS_H_
