#include "experiments/summary.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace saelab {

namespace {

// A left-aligned name column, then one right-aligned column per header, each
// `widths[j]` wide (in bytes, as printf pads); a missing cell prints "-".
std::string RenderTable(const std::string& name_header, const std::vector<std::string>& names,
                        const std::vector<std::string>& headers, const std::vector<int>& widths,
                        const std::vector<std::vector<std::optional<std::string>>>& cells) {
  size_t name_width = name_header.size();
  for (const std::string& name : names) name_width = std::max(name_width, name.size());
  const int nw = static_cast<int>(name_width);
  std::string out = absl::StrFormat("%-*s", nw, name_header);
  for (size_t j = 0; j < headers.size(); ++j) {
    absl::StrAppend(&out, absl::StrFormat("  %*s", widths[j], headers[j]));
  }
  absl::StrAppend(&out, "\n");
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, absl::StrFormat("%-*s", nw, names[i]));
    for (size_t j = 0; j < headers.size(); ++j) {
      absl::StrAppend(&out, absl::StrFormat("  %*s", widths[j], cells[i][j].value_or("-")));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace

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
  std::vector<std::string> names;
  std::vector<std::vector<std::optional<std::string>>> cells;
  // Seeds: one row per group, each cell "mean ±half-width of the 95% interval".
  const bool by_group = std::any_of(
      result.groups().begin(), result.groups().end(), [](const SaeGroupSummary& g) {
        return std::any_of(g.metrics().begin(), g.metrics().end(),
                           [](const auto& m) { return m.second.n() > 1; });
      });
  if (by_group) {
    std::vector<std::string> headers;
    for (const std::string& column : columns) headers.push_back(column.substr(0, 18));
    for (const SaeGroupSummary& g : result.groups()) {
      names.push_back(g.group());
      cells.emplace_back();
      for (const std::string& column : columns) {
        const auto it = g.metrics().find(column);
        if (it == g.metrics().end()) {
          cells.back().push_back(std::nullopt);
        } else {
          cells.back().push_back(absl::StrFormat("%.4f ±%.4f", it->second.mean(),
                                                 (it->second.ci95_high() - it->second.ci95_low()) /
                                                     2));
        }
      }
    }
    return RenderTable("group", names, headers, std::vector<int>(columns.size(), 18), cells);
  }
  std::vector<int> widths;
  for (const std::string& column : columns) {
    widths.push_back(static_cast<int>(std::max<size_t>(8, column.size())));
  }
  for (const SaeResult& sae : result.saes()) {
    names.push_back(sae.name());
    cells.emplace_back();
    for (const std::string& column : columns) {
      const auto it = sae.metrics().find(column);
      if (it == sae.metrics().end()) {
        cells.back().push_back(std::nullopt);
      } else {
        cells.back().push_back(absl::StrFormat("%.4f", it->second));
      }
    }
  }
  return RenderTable("sae", names, columns, widths, cells);
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
