#include "data/activations/harvest.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "absl/strings/match.h"
#include "data/activations/hook_rows.h"
#include "data/activations/internal/test_store.h"
#include "data/activations/store_format.h"
#include "data/activations/store_source.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using store_testing::HarvestForTest;
using store_testing::SmallChunks;
using store_testing::TestContexts;
using store_testing::TestDir;
using store_testing::TestKey;
using store_testing::TinyModel;

std::map<std::string, std::string> DirectoryContents(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    files[entry.path().filename().string()] = *ReadFile(entry.path().string());
  }
  return files;
}

TEST(HarvestTest, KilledHarvestResumesToIdenticalFiles) {
  const std::string whole = TestDir("whole"), resumed = TestDir("resumed");
  HarvestForTest(whole);
  HarvestOptions kill = SmallChunks();
  kill.stop_after_chunks = 1;
  EXPECT_EQ(
      HarvestActivations(TinyModel(), TestContexts(), TestKey(), resumed, kill).status().code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(DirectoryContents(resumed).size(), 2u);  // chunk 0 and the manifest
  EXPECT_EQ(
      HarvestActivations(TinyModel(), TestContexts(), TestKey(), resumed, kill).status().code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(DirectoryContents(resumed).size(), 3u);  // chunks 0, 1
  // A temporary a real kill could leave behind is cleaned up.
  ASSERT_TRUE(AtomicWriteFile(resumed + "/chunk-00002.bin.tmp.12345", "half").ok());
  HarvestForTest(resumed);
  const auto expected = DirectoryContents(whole);
  const auto got = DirectoryContents(resumed);
  ASSERT_EQ(expected.size(), 5u);  // 4 chunks and the manifest
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, bytes] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
  }
  // Harvesting a complete store again reuses it untouched.
  HarvestForTest(resumed);
  EXPECT_TRUE(DirectoryContents(resumed) == expected);
}

// Distributed harvesting: two ranks' shares (here one after the other, in
// threads of a job they would run at once), then the finishing call, give
// the single harvest's files byte for byte, and the finishing call
// computes nothing.
TEST(HarvestTest, SharesOfRanksThenTheFinishingCallAreTheSingleHarvest) {
  const std::string whole = TestDir("share_whole"), shared = TestDir("shared");
  HarvestForTest(whole);
  for (int rank = 0; rank < 2; ++rank) {
    HarvestOptions share = SmallChunks();
    share.shard_rank = rank;
    share.shard_count = 2;
    absl::StatusOr<std::vector<ActivationStore>> none =
        HarvestActivationsAtHooks(TinyModel(), TestContexts(), {TestKey()}, {shared}, share);
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_TRUE(none->empty());
    // Rank 0 wrote chunks 0 and 2; rank 1 adds 1 and 3; no manifest yet.
    EXPECT_EQ(DirectoryContents(shared).size(), 2u * (rank + 1));
    EXPECT_FALSE(PathExists(shared + "/manifest"));
  }
  ASSERT_TRUE(HarvestActivations(TinyModel(), TestContexts(), TestKey(), shared,
                                 SmallChunks()).ok());
  EXPECT_TRUE(DirectoryContents(shared) == DirectoryContents(whole));
  HarvestOptions bad = SmallChunks();
  bad.shard_rank = 2;
  bad.shard_count = 2;
  EXPECT_EQ(HarvestActivations(TinyModel(), TestContexts(), TestKey(), TestDir("bad_share"), bad)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HarvestTest, PairedStoreHoldsInputAndTargetSideBySideAndIsAPairedSource) {
  ActivationStoreKey key = TestKey();
  key.set_hook_name("blocks.1.hook_mlp_in");
  key.set_target_hook_name("blocks.1.hook_mlp_out");
  ActivationStore store = HarvestForTest(TestDir("paired"), key);
  EXPECT_EQ(store.d(), 2 * store_testing::kD);
  // The rows by another route: both hooks' rows for the key's contexts.
  const torch::Tensor contexts = TestContexts().slice(0, store_testing::kBegin, store_testing::kEnd);
  const torch::Tensor in =
      *HookActivationRows(TinyModel(), contexts, HookLocation{1, HookPoint::kMlpIn}, true);
  const torch::Tensor out =
      *HookActivationRows(TinyModel(), contexts, HookLocation{1, HookPoint::kMlpOut}, true);
  StoreActivationSource source(store, /*seed=*/4);
  EXPECT_EQ(source.d_in(), store_testing::kD);
  EXPECT_EQ(source.d_target(), store_testing::kD);
  // Every stream row is one token's (input, target) pair: its halves sit in
  // the same row of `in` and `out`.
  const torch::Tensor rows = *source.TrainBatch(0, in.size(0));
  const torch::Tensor order = *source.StreamRowIndices(0, in.size(0));
  EXPECT_TRUE(torch::allclose(rows.slice(1, 0, store_testing::kD), in.index_select(0, order),
                              1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(rows.slice(1, store_testing::kD, 2 * store_testing::kD),
                              out.index_select(0, order), 1e-5, 1e-6));
  // A plain store of the same hook is another store.
  EXPECT_NE(StoreKeySha256(key), StoreKeySha256(TestKey()));
}

TEST(HarvestTest, SeveralStoresFromOnePassAreByteForByteTheSeparateHarvests) {
  // A plain store, in float16 a hook the paired store reads too, and a
  // paired store.
  std::vector<ActivationStoreKey> keys = {TestKey(), TestKey(ActivationStoreKey::FLOAT16),
                                          TestKey()};
  keys[1].set_hook_name("blocks.1.hook_mlp_out");
  keys[2].set_hook_name("blocks.1.hook_mlp_in");
  keys[2].set_target_hook_name("blocks.1.hook_mlp_out");
  std::vector<std::string> apart, together, killed;
  for (size_t i = 0; i < keys.size(); ++i) {
    apart.push_back(TestDir("apart_" + std::to_string(i)));
    together.push_back(TestDir("together_" + std::to_string(i)));
    killed.push_back(TestDir("killed_together_" + std::to_string(i)));
    HarvestForTest(apart[i], keys[i]);
  }
  auto stores = HarvestActivationsAtHooks(TinyModel(), TestContexts(), keys, together, SmallChunks());
  ASSERT_TRUE(stores.ok()) << stores.status();
  ASSERT_EQ(stores->size(), 3u);
  EXPECT_EQ((*stores)[2].d(), 2 * store_testing::kD);
  // Killed after one chunk, with the first store already complete from a
  // separate harvest: the rest resumes in one pass.
  HarvestForTest(killed[0], keys[0]);
  HarvestOptions kill = SmallChunks();
  kill.stop_after_chunks = 1;
  EXPECT_EQ(HarvestActivationsAtHooks(TinyModel(), TestContexts(), keys, killed, kill).status().code(),
            absl::StatusCode::kAborted);
  ASSERT_TRUE(HarvestActivationsAtHooks(TinyModel(), TestContexts(), keys, killed, SmallChunks()).ok());
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto expected = DirectoryContents(apart[i]);
    EXPECT_TRUE(DirectoryContents(together[i]) == expected) << keys[i].hook_name();
    EXPECT_TRUE(DirectoryContents(killed[i]) == expected) << keys[i].hook_name();
  }
  // One forward pass needs one context range.
  std::vector<ActivationStoreKey> mismatched = {TestKey(), TestKey()};
  mismatched[1].set_hook_name("blocks.0.hook_mlp_out");
  mismatched[1].set_context_end(store_testing::kEnd - 1);
  auto refused = HarvestActivationsAtHooks(TinyModel(), TestContexts(), mismatched,
                                           {TestDir("mismatch_0"), TestDir("mismatch_1")});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "one forward pass")) << refused.status();
}

TEST(HarvestTest, UnknownHookNameIsRefusedBeforeAnyForward) {
  ActivationStoreKey key = TestKey();
  key.set_hook_name("blocks.1.hook_resid");
  const std::string dir = TestDir("unknown_hook");
  absl::StatusOr<ActivationStore> store =
      HarvestActivations(TinyModel(), TestContexts(), key, dir, SmallChunks());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(store.status().message(), "key.hook_name")) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "'blocks.1.hook_resid'"))
      << store.status();
  EXPECT_FALSE(PathExists(dir));
}

TEST(HarvestTest, BadRangeOrContextLengthIsInvalidArgument) {
  ActivationStoreKey past_the_end = TestKey();
  past_the_end.set_context_end(13);
  ActivationStoreKey empty = TestKey();
  empty.set_context_end(empty.context_begin());
  ActivationStoreKey other_length = TestKey();
  other_length.set_context_length(9);
  for (const ActivationStoreKey& key : {past_the_end, empty, other_length}) {
    EXPECT_EQ(HarvestActivations(TinyModel(), TestContexts(), key, TestDir("bad_range"))
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument)
        << key.ShortDebugString();
  }
}

TEST(HarvestTest, OtherChunkSizeIsRefusedNotMixed) {
  const std::string dir = TestDir("chunk_size");
  HarvestOptions kill = SmallChunks();
  kill.stop_after_chunks = 1;
  ASSERT_EQ(HarvestActivations(TinyModel(), TestContexts(), TestKey(), dir, kill).status().code(),
            absl::StatusCode::kAborted);
  HarvestOptions other = SmallChunks();
  other.contexts_per_chunk = 4;
  absl::StatusOr<ActivationStore> store =
      HarvestActivations(TinyModel(), TestContexts(), TestKey(), dir, other);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(store.status().message(), "contexts_per_chunk is 3 there, 4"))
      << store.status();
}

}  // namespace
}  // namespace saelab
