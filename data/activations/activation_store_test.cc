#include "data/activations/activation_store.h"

#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "absl/strings/match.h"
#include "data/activations/harvest.h"
#include "data/activations/internal/test_store.h"
#include "data/activations/store_format.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using store_testing::DirectRows;
using store_testing::HarvestForTest;
using store_testing::SmallChunks;
using store_testing::TestContexts;
using store_testing::TestDir;
using store_testing::TestKey;
using store_testing::TinyModel;

TEST(ActivationStoreTest, RowsEqualTheModelsActivationsWithAndWithoutBos) {
  for (bool drop_bos : {true, false}) {
    const std::string dir = TestDir(drop_bos ? "roundtrip_drop" : "roundtrip_keep");
    ActivationStore store = HarvestForTest(dir, TestKey(ActivationStoreKey::FLOAT32, drop_bos));
    const torch::Tensor expected = DirectRows(drop_bos);
    ASSERT_EQ(store.num_rows(), 10 * (drop_bos ? 7 : 8));
    ASSERT_EQ(store.d(), 16);
    EXPECT_EQ(store.num_chunks(), 4);
    // The harvest batches contexts differently, so allow BLAS rounding.
    EXPECT_TRUE(torch::allclose(*store.Rows(0, store.num_rows()), expected, 1e-5, 1e-6));
    // A range crossing chunk boundaries (chunk 0 ends at row 3 P).
    EXPECT_TRUE(torch::allclose(*store.Rows(5, 40), expected.slice(0, 5, 40), 1e-5, 1e-6));
    EXPECT_EQ(store.Rows(3, 3)->size(0), 0);
    EXPECT_FALSE(store.Rows(0, store.num_rows() + 1).ok());
    // And the same from a fresh Open.
    absl::StatusOr<ActivationStore> opened =
        ActivationStore::Open(dir, TestKey(ActivationStoreKey::FLOAT32, drop_bos));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_TRUE(torch::equal(*opened->Rows(0, 70), *store.Rows(0, 70)));
    // CopyRow gives the same row as Rows, in the chunk after the first.
    torch::Tensor row = torch::empty({16}, torch::kFloat);
    store.CopyRow(30, row.data_ptr<float>());
    EXPECT_TRUE(torch::equal(row, (*store.Rows(30, 31))[0]));
  }
}

TEST(ActivationStoreTest, HalfPrecisionStoresAreWithinTheirRounding) {
  const torch::Tensor expected = DirectRows(true);
  // Relative rounding of float16 (11-bit significand) and bfloat16 (8-bit).
  for (auto [dtype, rtol] : {std::pair{ActivationStoreKey::FLOAT16, 1.0 / 2048},
                             std::pair{ActivationStoreKey::BFLOAT16, 1.0 / 256}}) {
    const std::string name = ActivationStoreKey::Dtype_Name(dtype);
    ActivationStore store = HarvestForTest(TestDir(name), TestKey(dtype));
    const torch::Tensor rows = *store.Rows(0, store.num_rows());
    EXPECT_EQ(rows.scalar_type(), torch::kFloat);
    const torch::Tensor error = (rows - expected).abs();
    const torch::Tensor bound = expected.abs() * rtol + 1e-5;
    EXPECT_TRUE((error <= bound).all().item<bool>()) << name;
    // And not float32 in disguise.
    EXPECT_GT(error.max().item<float>(), 0.0f) << name;
  }
}

TEST(ActivationStoreTest, StatsEqualAFloat64Computation) {
  ActivationStore store = HarvestForTest(TestDir("stats"));
  const torch::Tensor x = store.Rows(0, store.num_rows())->to(torch::kDouble);
  const torch::Tensor mean = x.mean(0);
  const double mean_norm = x.norm(2, 1).mean().item<double>();
  EXPECT_TRUE(torch::allclose(store.mean().to(torch::kDouble), mean, 1e-6, 1e-7));
  EXPECT_NEAR(store.mean_norm(), mean_norm, 1e-12 * mean_norm);
  EXPECT_EQ(store.mean().scalar_type(), torch::kFloat);
}

TEST(ActivationStoreTest, OpenRefusesEachDifferingKeyField) {
  const std::string dir = TestDir("key");
  HarvestForTest(dir);
  const std::vector<std::pair<std::string, std::function<void(ActivationStoreKey&)>>> edits = {
      {"model_sha256", [](ActivationStoreKey& k) { k.set_model_sha256("other"); }},
      {"hook_name", [](ActivationStoreKey& k) { k.set_hook_name("blocks.0.hook_resid_post"); }},
      {"shard_sha256", [](ActivationStoreKey& k) { k.set_shard_sha256("other"); }},
      {"context_begin", [](ActivationStoreKey& k) { k.set_context_begin(0); }},
      {"context_end", [](ActivationStoreKey& k) { k.set_context_end(12); }},
      {"context_length", [](ActivationStoreKey& k) { k.set_context_length(4); }},
      {"dtype", [](ActivationStoreKey& k) { k.set_dtype(ActivationStoreKey::FLOAT16); }},
      {"drop_bos", [](ActivationStoreKey& k) { k.set_drop_bos(false); }},
  };
  for (const auto& [field, edit] : edits) {
    ActivationStoreKey key = TestKey();
    edit(key);
    absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, key);
    ASSERT_FALSE(store.ok()) << field;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
    EXPECT_TRUE(absl::StrContains(store.status().message(), dir)) << store.status();
    EXPECT_TRUE(absl::StrContains(store.status().message(), "key field " + field))
        << store.status();
  }
  // Harvesting another key into the directory is refused, not overwritten.
  ActivationStoreKey other = TestKey();
  other.set_model_sha256("other-model");
  absl::StatusOr<ActivationStore> refused =
      HarvestActivations(TinyModel(), TestContexts(), other, dir, SmallChunks());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "model_sha256")) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "other-model")) << refused.status();
  EXPECT_TRUE(ActivationStore::Open(dir, TestKey()).ok());
}

TEST(ActivationStoreTest, FlippedChunkByteFailsTheChecksumNamingTheFile) {
  const std::string dir = TestDir("flipped");
  HarvestForTest(dir);
  const std::string chunk = dir + "/chunk-00001.bin";
  std::string bytes = *ReadFile(chunk);
  bytes[600] ^= 0x10;  // in the payload
  ASSERT_TRUE(AtomicWriteFile(chunk, bytes).ok());
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "checksum")) << store.status();
  // Without verification the payload is not read (documented).
  EXPECT_TRUE(ActivationStore::Open(dir, TestKey(), /*verify_checksums=*/false).ok());
  // A rerun of the harvest redoes the bad chunk.
  HarvestForTest(dir);
  EXPECT_TRUE(ActivationStore::Open(dir, TestKey()).ok());
}

TEST(ActivationStoreTest, FlippedHeaderByteFailsTheHeaderChecksumNamingTheFile) {
  const std::string dir = TestDir("flipped_header");
  HarvestForTest(dir);
  const std::string chunk = dir + "/chunk-00002.bin";
  std::string bytes = *ReadFile(chunk);
  bytes[100] ^= 0x01;  // in the header's fields (the chunk's rows)
  ASSERT_TRUE(AtomicWriteFile(chunk, bytes).ok());
  for (bool verify : {true, false}) {
    absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey(), verify);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
    EXPECT_TRUE(absl::StrContains(store.status().message(), "header_sha256")) << store.status();
  }
}

TEST(ActivationStoreTest, TruncatedChunkIsAnErrorNamingTheFile) {
  const std::string dir = TestDir("truncated");
  HarvestForTest(dir);
  const std::string chunk = dir + "/chunk-00002.bin";
  const std::string bytes = *ReadFile(chunk);
  for (size_t keep : {bytes.size() - 4, size_t{100}}) {
    ASSERT_TRUE(AtomicWriteFile(chunk, bytes.substr(0, keep)).ok());
    for (bool verify : {true, false}) {
      absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey(), verify);
      ASSERT_FALSE(store.ok());
      EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
      EXPECT_TRUE(absl::StrContains(store.status().message(), "truncated")) << store.status();
    }
  }
}

TEST(ActivationStoreTest, MissingChunkOrBadMagicIsAnErrorNamingTheFile) {
  const std::string dir = TestDir("magic");
  HarvestForTest(dir);
  const std::string chunk = dir + "/chunk-00003.bin";
  std::string bytes = *ReadFile(chunk);
  bytes[0] = 'X';
  ASSERT_TRUE(AtomicWriteFile(chunk, bytes).ok());
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey());
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "magic")) << store.status();
  ASSERT_EQ(std::remove(chunk.c_str()), 0);
  store = ActivationStore::Open(dir, TestKey());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
}

TEST(ActivationStoreTest, HugeContextsPerChunkIsRefusedWithoutOverflow) {
  // fuzz/crashes/store_manifest/: the chunk count was rounded up as
  // (n + contexts_per_chunk - 1) / contexts_per_chunk, which overflowed int64.
  const std::string dir = TestDir("huge_contexts_per_chunk");
  ASSERT_TRUE(MakeDirs(dir).ok());
  ActivationStoreManifest m;
  m.set_version(kStoreFormatVersion);
  *m.mutable_key() = TestKey();
  m.set_key_sha256(StoreKeySha256(m.key()));
  m.set_d(4);
  m.set_contexts_per_chunk(std::numeric_limits<int64_t>::max());
  m.set_rows_per_context(RowsPerContext(m.key()));
  m.set_num_rows((m.key().context_end() - m.key().context_begin()) * m.rows_per_context());
  m.set_complete(true);
  for (int i = 0; i < 4; ++i) m.mutable_stats()->add_mean(0);
  ASSERT_TRUE(WriteManifest(dir, m).ok());
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "lists 0 chunks, the key needs 1"))
      << store.status();
}

TEST(ActivationStoreTest, MissingOrIncompleteStoreIsRefused) {
  EXPECT_EQ(ActivationStore::Open(TestDir("nothing"), TestKey()).status().code(),
            absl::StatusCode::kNotFound);
  const std::string dir = TestDir("incomplete");
  HarvestOptions options = SmallChunks();
  options.stop_after_chunks = 2;
  EXPECT_EQ(
      HarvestActivations(TinyModel(), TestContexts(), TestKey(), dir, options).status().code(),
      absl::StatusCode::kAborted);
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, TestKey());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(store.status().message(), "incomplete")) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), dir)) << store.status();
}

}  // namespace
}  // namespace saelab
