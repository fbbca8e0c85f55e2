#include "results/replication.h"

#include <gtest/gtest.h>

#include "harness/file_io.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

TEST(ReplicationTest, CommittedScorecardIsCurrent) {
  absl::StatusOr<std::string> markdown = ReplicationMarkdown("results/baselines");
  ASSERT_TRUE(markdown.ok()) << markdown.status();
  absl::StatusOr<std::string> committed = ReadFile("results/REPLICATION.md");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, *markdown)
      << "results/REPLICATION.md is stale: ./bazelw run //results:replication -- --write";
}

TEST(ReplicationTest, TableListsEachClaimWithItsOutcomeAndTally) {
  BaselineClaims b{"frontier", {}};
  ASSERT_TRUE(ParseTextProto(R"pb(
    provenance { git_commit: "0123456789abcdef" config_sha256: "feedfacecafe0000" }
    claims { id: "x" statement: "TopK | beats L1" paper: "Gao" paper_value: "lower" saelab_value: "0.1 vs 0.2" held: true }
    claims { id: "y" statement: "Gated beats L1" paper: "R" paper_value: "lower" saelab_value: "0.3 vs 0.2" held: false }
  )pb", "result", &b.result).ok());
  BaselineClaims none{"quickstart", {}};
  const std::string md = FormatReplication({none, b});
  EXPECT_EQ(md.find("## quickstart"), std::string::npos);
  EXPECT_NE(md.find("## frontier"), std::string::npos);
  EXPECT_NE(md.find("commit `0123456789`"), std::string::npos);
  EXPECT_NE(md.find("| TopK \\| beats L1 (`x`) | Gao | lower | 0.1 vs 0.2 | yes |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| **no** |"), std::string::npos);
  EXPECT_NE(md.find("1 of 2 claims held."), std::string::npos);
}

}  // namespace
}  // namespace saelab
