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
  // Seeds: one row per group, each cell "mean ±half-width of the 95% interval".
  const bool by_group = std::any_of(
      result.groups().begin(), result.groups().end(), [](const SaeGroupSummary& g) {
        return std::any_of(g.metrics().begin(), g.metrics().end(),
                           [](const auto& m) { return m.second.n() > 1; });
      });
  if (by_group) {
    size_t width = 5;  // "group"
    for (const SaeGroupSummary& g : result.groups()) width = std::max(width, g.group().size());
    std::string out = absl::StrFormat("%-*s", static_cast<int>(width), "group");
    for (const std::string& column : columns) {
      absl::StrAppend(&out, absl::StrFormat("  %18s", column.substr(0, 18)));
    }
    absl::StrAppend(&out, "\n");
    for (const SaeGroupSummary& g : result.groups()) {
      absl::StrAppend(&out, absl::StrFormat("%-*s", static_cast<int>(width), g.group()));
      for (const std::string& column : columns) {
        const auto it = g.metrics().find(column);
        absl::StrAppend(&out, it == g.metrics().end()
                                  ? absl::StrFormat("  %18s", "-")
                                  : absl::StrFormat("  %18s", absl::StrFormat(
                                                                  "%.4f ±%.4f", it->second.mean(),
                                                                  (it->second.ci95_high() -
                                                                   it->second.ci95_low()) / 2)));
      }
      absl::StrAppend(&out, "\n");
    }
    return out;
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

std::string FormatClaims(const ExperimentResult& result) {
  if (result.claims().empty()) return "";
  int held = 0;
  for (const ClaimOutcome& c : result.claims()) held += c.held() ? 1 : 0;
  std::string out = absl::StrFormat("paper claims: %d of %d held\n", held, result.claims_size());
  for (const ClaimOutcome& c : result.claims()) {
    absl::StrAppend(&out, absl::StrFormat("  %-4s %s (%s): %s\n", c.held() ? "yes" : "NO",
                                          c.id(), c.paper(), c.saelab_value()));
  }
  return out;
}

}  // namespace saelab
