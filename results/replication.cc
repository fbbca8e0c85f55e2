#include "results/replication.h"

#include <dirent.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

// A table cell: pipes escaped, newlines flattened.
std::string Cell(const std::string& text) {
  return absl::StrReplaceAll(text, {{"|", "\\|"}, {"\n", " "}});
}

}  // namespace

std::string FormatReplication(const std::vector<BaselineClaims>& baselines) {
  std::string out =
      "# Replication scorecard\n\n"
      "Generated from the committed baselines (`results/baselines/*/result.textproto`) by\n"
      "`./bazelw run //results:replication -- --write`; `//results:replication_test`\n"
      "fails when this file is not current. Each experiment's config names the paper\n"
      "claims it tests; the runner checks them on the result (`experiments/analysis.h`).\n"
      "The runs are small CPU runs on saelab's own 4-layer reference model, not the\n"
      "papers' models, so a claim that does not hold here is a finding about this\n"
      "scale, not a refutation.\n";
  int total = 0, held = 0;
  for (const BaselineClaims& b : baselines) {
    if (b.result.claims().empty()) continue;
    const Provenance& p = b.result.provenance();
    absl::StrAppend(&out, "\n## ", b.baseline, "\n\n",
                    "[baseline](baselines/", b.baseline, "/) from commit `",
                    p.git_commit().substr(0, 10), p.git_dirty() ? "+dirty" : "",
                    "`, config `", p.config_sha256().substr(0, 12), "`\n\n",
                    "| claim | paper | paper's figure | saelab | held |\n",
                    "|---|---|---|---|---|\n");
    for (const ClaimOutcome& c : b.result.claims()) {
      ++total;
      held += c.held() ? 1 : 0;
      absl::StrAppend(&out, "| ", Cell(c.statement()), " (`", c.id(), "`) | ", Cell(c.paper()),
                      " | ", Cell(c.paper_value()), " | ", Cell(c.saelab_value()), " | ",
                      c.held() ? "yes" : "**no**", " |\n");
    }
  }
  absl::StrAppend(&out, "\n", held, " of ", total, " claims held.\n");
  return out;
}

absl::StatusOr<std::string> ReplicationMarkdown(const std::string& baselines_dir) {
  std::vector<std::string> names;
  DIR* dir = opendir(baselines_dir.c_str());
  if (dir == nullptr) {
    return absl::NotFoundError(absl::StrCat(baselines_dir, ": cannot open the folder"));
  }
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name[0] != '.' && PathExists(absl::StrCat(baselines_dir, "/", name, "/result.textproto")))
      names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  std::vector<BaselineClaims> baselines;
  for (const std::string& name : names) {
    BaselineClaims b{name, {}};
    RETURN_IF_ERROR(
        ParseTextProtoFile(absl::StrCat(baselines_dir, "/", name, "/result.textproto"), &b.result));
    baselines.push_back(std::move(b));
  }
  return FormatReplication(baselines);
}

}  // namespace saelab
