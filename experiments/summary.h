// The short table an experiment binary prints when it finishes: one row per
// SAE with the headline metrics the run measured, so a user sees the answer
// without opening result.textproto.
//
//   std::fprintf(stderr, "%s", FormatSummaryTable(outcome.result).c_str());
//
//   sae           l0      nmse  delta_loss  probe_loss
//   topk_k16  16.000    0.0461      0.0665      0.3352
#ifndef SAELAB_EXPERIMENTS_SUMMARY_H_
#define SAELAB_EXPERIMENTS_SUMMARY_H_

#include <string>

#include "harness/result.pb.h"

namespace saelab {

// Columns, in this order, for each metric that some SAE of the result has:
// l0, nmse, mmcs, delta_loss, loss_recovered, kl_mean, probe_loss,
// sparse_probe_top1_accuracy, absorption_fraction, steering_concept_rate.
// A missing value prints as "-". Empty string for a result without SAEs.
// When some group has more than one seed, one row per group instead, each
// cell "mean ±h" with h the half-width of the 95% t-interval.
std::string FormatSummaryTable(const ExperimentResult& result);

// "paper claims: H of N held" and one line per claim (yes/NO, id, paper,
// saelab's figure); empty for a result without claims.
std::string FormatClaims(const ExperimentResult& result);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SUMMARY_H_
