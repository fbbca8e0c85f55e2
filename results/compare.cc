// Two runs side by side: their config differences, then every metric of
// every SAE with both values and the difference.
//
//   ./bazelw run //results:compare -- RUN_A RUN_B
//   ./bazelw run //results:compare -- $PWD/results/baselines/quickstart $PWD/results/runs/quickstart/<run>
//
// A run is a run directory or a baseline folder (config.textproto and
// result.pb or result.textproto). Exit status 0, 1 on an unreadable run,
// 2 on bad usage.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "harness/proto_diff.h"
#include "results/result_comparison.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Usage: compare RUN_A RUN_B (run directories or baseline folders)");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 3) {
    std::fprintf(stderr, "usage: compare RUN_A RUN_B\n");
    return 2;
  }
  const std::string a = args[1], b = args[2];
  absl::StatusOr<saelab::ExperimentResult> result_a = saelab::ReadRunResult(a);
  absl::StatusOr<saelab::ExperimentResult> result_b = saelab::ReadRunResult(b);
  for (const auto* r : {&result_a, &result_b}) {
    if (!r->ok()) {
      std::fprintf(stderr, "error: %s\n", r->status().ToString().c_str());
      return 1;
    }
  }
  std::printf("A: %s\n   %s, commit %s%s, config %s\n", a.c_str(), result_a->name().c_str(),
              result_a->provenance().git_commit().c_str(),
              result_a->provenance().git_dirty() ? "+dirty" : "",
              result_a->provenance().config_sha256().substr(0, 12).c_str());
  std::printf("B: %s\n   %s, commit %s%s, config %s\n\n", b.c_str(), result_b->name().c_str(),
              result_b->provenance().git_commit().c_str(),
              result_b->provenance().git_dirty() ? "+dirty" : "",
              result_b->provenance().config_sha256().substr(0, 12).c_str());
  absl::StatusOr<saelab::ExperimentConfig> config_a = saelab::ReadRunConfig(a);
  absl::StatusOr<saelab::ExperimentConfig> config_b = saelab::ReadRunConfig(b);
  if (config_a.ok() && config_b.ok()) {
    std::vector<saelab::ProtoFieldDifference> diffs =
        saelab::ProtoDifferences(*config_a, *config_b);
    std::printf("config differences (%zu):\n", diffs.size());
    for (const saelab::ProtoFieldDifference& d : diffs) {
      std::printf("  %s: %s -> %s\n", d.path.c_str(), d.first.c_str(), d.second.c_str());
    }
  } else {
    std::printf("config differences: not compared (%s)\n",
                (config_a.ok() ? config_b.status() : config_a.status()).ToString().c_str());
  }
  std::printf("\n%s", saelab::FormatComparisonTable(
                          saelab::CompareMetrics(*result_a, *result_b, nullptr), "A", "B")
                          .c_str());
  return 0;
}
