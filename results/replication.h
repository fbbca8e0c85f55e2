// The replication scorecard: every paper claim checked by a committed
// baseline (ExperimentResult.claims), as the markdown of
// results/REPLICATION.md.
//
//   ASSIGN_OR_RETURN(std::string markdown, ReplicationMarkdown("results/baselines"));
#ifndef SAELAB_RESULTS_REPLICATION_H_
#define SAELAB_RESULTS_REPLICATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "harness/result.pb.h"

namespace saelab {

// One baseline's claims.
struct BaselineClaims {
  std::string baseline;  // the folder name under results/baselines/
  ExperimentResult result;
};

// The markdown page for `baselines` (those without claims are skipped):
// one table per experiment (claim, paper, paper's figure, saelab's figure,
// held or not, link to the baseline), then a tally.
std::string FormatReplication(const std::vector<BaselineClaims>& baselines);

// Reads every <dir>/<name>/result.textproto, in name order, and formats
// them. Errors name the unreadable file.
absl::StatusOr<std::string> ReplicationMarkdown(const std::string& baselines_dir);

}  // namespace saelab

#endif  // SAELAB_RESULTS_REPLICATION_H_
