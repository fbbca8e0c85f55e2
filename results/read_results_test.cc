// read_results.py (Python's protobuf) against this test's own reading of
// the same results (C++ protobuf): every SAE becomes one row, every metric
// and hyperparameter its exact value; trees are searched; bad paths fail.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/internal/child_process.h"
#include "harness/result.pb.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;

constexpr char kBaseline[] = "results/baselines/l1_vs_topk/result.textproto";

// Runs the read_results script; stdout and stderr captured.
CommandResult ReadResults(const std::string& args) {
  return RunCommand(absl::StrCat("RUNFILES_DIR=", std::getenv("TEST_SRCDIR"), " ",
                                 Runfile("results/read_results"), " ", args));
}

// CSV rows as column -> cell (the baselines hold no comma or quote).
std::vector<std::map<std::string, std::string>> ParseCsv(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  std::vector<std::map<std::string, std::string>> rows;
  if (lines.empty()) return rows;
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> cells = absl::StrSplit(lines[i], ',');
    EXPECT_EQ(cells.size(), header.size()) << lines[i];
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < header.size() && c < cells.size(); ++c) row[header[c]] = cells[c];
    rows.push_back(row);
  }
  return rows;
}

ExperimentResult Baseline() {
  ExperimentResult result;
  EXPECT_TRUE(ParseTextProtoFile(kBaseline, &result).ok());
  return result;
}

void ExpectRowsMatch(const std::vector<std::map<std::string, std::string>>& rows,
                     const ExperimentResult& result) {
  ASSERT_EQ(rows.size(), static_cast<size_t>(result.saes_size()));
  for (int i = 0; i < result.saes_size(); ++i) {
    const SaeResult& sae = result.saes(i);
    const auto& row = rows[i];
    EXPECT_EQ(row.at("sae"), sae.name());
    EXPECT_EQ(row.at("architecture"), sae.architecture());
    EXPECT_EQ(row.at("seed"), absl::StrCat(sae.seed()));
    EXPECT_EQ(row.at("git_commit"), result.provenance().git_commit());
    EXPECT_EQ(row.at("config_sha256"), result.provenance().config_sha256());
    ASSERT_FALSE(sae.metrics().empty());
    for (const auto& [name, value] : sae.metrics()) {
      double parsed = 0;
      ASSERT_TRUE(absl::SimpleAtod(row.at(name), &parsed)) << name << "=" << row.at(name);
      EXPECT_EQ(parsed, value) << sae.name() << " " << name;  // exact: repr round-trips
    }
    for (const auto& [name, value] : sae.hyperparameters()) {
      double parsed = 0;
      ASSERT_TRUE(absl::SimpleAtod(row.at("hp." + name), &parsed)) << name;
      EXPECT_EQ(parsed, value) << sae.name() << " hp." << name;
    }
  }
}

TEST(ReadResultsTest, OneRowPerSaeWithEveryMetricExactly) {
  CommandResult csv = ReadResults("results/baselines/l1_vs_topk");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  ExpectRowsMatch(ParseCsv(csv.out), Baseline());

  CommandResult jsonl = ReadResults(absl::StrCat("--format=jsonl ", kBaseline));
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.err;
  const std::vector<std::string> lines = absl::StrSplit(jsonl.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), static_cast<size_t>(Baseline().saes_size()));
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("\"sae\": \"", Baseline().saes(0).name(), "\"")));
}

TEST(ReadResultsTest, ATreeOfRunsIsSearchedAndBinaryResultsRead) {
  const std::string root = absl::StrCat(::testing::TempDir(), "/runs");
  ExperimentResult result = Baseline();
  ASSERT_TRUE(MakeDirs(root + "/b/run").ok());
  ASSERT_TRUE(MakeDirs(root + "/a").ok());
  ASSERT_TRUE(WriteBinaryProtoFile(root + "/b/run/result.pb", result).ok());
  result.set_name("renamed");
  result.mutable_saes()->DeleteSubrange(1, result.saes_size() - 1);
  ASSERT_TRUE(WriteTextProtoFile(root + "/a/result.textproto", result).ok());
  CommandResult out = ReadResults(absl::StrCat(root, " --out=", root, "/table.csv"));
  ASSERT_EQ(out.exit_code, 0) << out.err;
  auto rows = ParseCsv(*ReadFile(root + "/table.csv"));
  ASSERT_EQ(rows.size(), 1u + Baseline().saes_size());
  // Directories in sorted order: a, then b/run.
  EXPECT_EQ(rows[0].at("run"), root + "/a");
  EXPECT_EQ(rows[0].at("result"), "renamed");
  EXPECT_EQ(rows[1].at("run"), root + "/b/run");
  rows.erase(rows.begin());
  ExpectRowsMatch(rows, Baseline());
}

TEST(ReadResultsTest, MissingAndMalformedInputsFailNamingThePath) {
  CommandResult missing = ReadResults("/no/such/run");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/no/such/run: no such file or directory"));
  const std::string bad = absl::StrCat(::testing::TempDir(), "/bad/result.pb");
  ASSERT_TRUE(MakeDirs(absl::StrCat(::testing::TempDir(), "/bad")).ok());
  ASSERT_TRUE(AtomicWriteFile(bad, "\xff\xff\xff not a proto").ok());
  CommandResult malformed = ReadResults(bad);
  EXPECT_EQ(malformed.exit_code, 1);
  EXPECT_THAT(malformed.err, HasSubstr(bad + ": not a saelab result"));
}

}  // namespace
}  // namespace saelab
