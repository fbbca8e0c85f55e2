#include "experiments/summary.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace saelab {

std::string FormatSummaryTable(const ExperimentResult& result) {
  if (result.saes().empty()) return "";
  static const char* const kColumns[] = {"l0",
                                         "nmse",
                                         "mmcs",
                                         "delta_loss",
                                         "loss_recovered",
                                         "kl_mean",
                                         "probe_loss",
                                         "sparse_probe_top1_accuracy",
                                         "absorption_fraction",
                                         "steering_concept_rate"};
  std::vector<std::string> columns;
  for (const char* column : kColumns) {
    if (std::any_of(result.saes().begin(), result.saes().end(),
                    [&](const SaeResult& sae) { return sae.metrics().count(column) > 0; })) {
      columns.push_back(column);
    }
  }
  size_t name_width = 3;  // "sae"
  for (const SaeResult& sae : result.saes()) name_width = std::max(name_width, sae.name().size());
  std::string out = absl::StrFormat("%-*s", static_cast<int>(name_width), "sae");
  for (const std::string& column : columns) {
    absl::StrAppend(&out, absl::StrFormat("  %*s", static_cast<int>(std::max<size_t>(8, column.size())),
                                          column));
  }
  absl::StrAppend(&out, "\n");
  for (const SaeResult& sae : result.saes()) {
    absl::StrAppend(&out, absl::StrFormat("%-*s", static_cast<int>(name_width), sae.name()));
    for (const std::string& column : columns) {
      const int width = static_cast<int>(std::max<size_t>(8, column.size()));
      const auto it = sae.metrics().find(column);
      absl::StrAppend(&out, it == sae.metrics().end()
                                ? absl::StrFormat("  %*s", width, "-")
                                : absl::StrFormat("  %*.4f", width, it->second));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace saelab
