#include "data/activation_store.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "eval/gpt2_config.h"
#include "eval/gpt2_model.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

constexpr char kHook[] = "blocks.1.hook_resid_post";
constexpr int64_t kContexts = 12, kLength = 8, kBegin = 1, kEnd = 11;

std::string TestDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

const Gpt2Model& Model() {
  static const Gpt2Model* model = [] {
    Gpt2Config config;
    config.n_layer = 2;
    config.n_head = 2;
    config.n_embd = 16;
    config.n_positions = 16;
    config.vocab_size = 64;
    return new Gpt2Model(*Gpt2Model::RandomInit(config, /*seed=*/3));
  }();
  return *model;
}

torch::Tensor Contexts() {
  torch::manual_seed(11);
  return torch::randint(0, 64, {kContexts, kLength}, torch::kLong);
}

ActivationStoreKey Key(StoreDtype dtype = StoreDtype::kFloat32, bool drop_bos = true) {
  ActivationStoreKey key;
  key.model_sha256 = "model-hash";
  key.hook_name = kHook;
  key.shard_sha256 = "shard-hash";
  key.context_begin = kBegin;
  key.context_end = kEnd;
  key.context_length = kLength;
  key.dtype = dtype;
  key.drop_bos = drop_bos;
  return key;
}

HarvestOptions SmallChunks() {
  HarvestOptions options;
  options.contexts_per_chunk = 3;  // chunks of 3, 3, 3, 1 contexts
  options.batch_contexts = 2;
  return options;
}

// The activations computed directly, all contexts in one forward pass:
// [10 * P, 16].
torch::Tensor DirectRows(bool drop_bos) {
  torch::NoGradGuard no_grad;
  auto cache = Model().RunWithCache(Contexts().slice(0, kBegin, kEnd), {kHook});
  EXPECT_TRUE(cache.ok()) << cache.status();
  torch::Tensor act = cache->at(kHook);
  if (drop_bos) act = act.slice(1, 1);
  return act.reshape({-1, 16});
}

ActivationStore Harvest(const std::string& dir, const ActivationStoreKey& key = Key(),
                        const HarvestOptions& options = SmallChunks()) {
  absl::StatusOr<ActivationStore> store =
      HarvestActivations(Model(), Contexts(), key, dir, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return *std::move(store);
}

std::map<std::string, std::string> DirectoryContents(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    files[entry.path().filename().string()] = *ReadFile(entry.path().string());
  }
  return files;
}

TEST(ActivationStoreTest, RowsEqualTheModelsActivationsWithAndWithoutBos) {
  for (bool drop_bos : {true, false}) {
    const std::string dir = TestDir(drop_bos ? "roundtrip_drop" : "roundtrip_keep");
    ActivationStore store = Harvest(dir, Key(StoreDtype::kFloat32, drop_bos));
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
        ActivationStore::Open(dir, Key(StoreDtype::kFloat32, drop_bos));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_TRUE(torch::equal(*opened->Rows(0, 70), *store.Rows(0, 70)));
  }
}

TEST(ActivationStoreTest, HalfPrecisionStoresAreWithinTheirRounding) {
  const torch::Tensor expected = DirectRows(true);
  // Relative rounding of float16 (11-bit significand) and bfloat16 (8-bit).
  for (auto [dtype, rtol] :
       {std::pair{StoreDtype::kFloat16, 1.0 / 2048}, std::pair{StoreDtype::kBFloat16, 1.0 / 256}}) {
    ActivationStore store = Harvest(TestDir(StoreDtypeName(dtype)), Key(dtype));
    const torch::Tensor rows = *store.Rows(0, store.num_rows());
    EXPECT_EQ(rows.scalar_type(), torch::kFloat);
    const torch::Tensor error = (rows - expected).abs();
    const torch::Tensor bound = expected.abs() * rtol + 1e-5;
    EXPECT_TRUE((error <= bound).all().item<bool>()) << StoreDtypeName(dtype);
    // And not float32 in disguise.
    EXPECT_GT(error.max().item<float>(), 0.0f) << StoreDtypeName(dtype);
  }
}

TEST(ActivationStoreTest, StatsEqualAFloat64Computation) {
  ActivationStore store = Harvest(TestDir("stats"));
  const torch::Tensor x = store.Rows(0, store.num_rows())->to(torch::kDouble);
  const torch::Tensor mean = x.mean(0);
  const double mean_norm = x.norm(2, 1).mean().item<double>();
  EXPECT_TRUE(torch::allclose(store.mean().to(torch::kDouble), mean, 1e-6, 1e-7));
  EXPECT_NEAR(store.mean_norm(), mean_norm, 1e-12 * mean_norm);
  EXPECT_EQ(store.mean().scalar_type(), torch::kFloat);
}

TEST(ActivationStoreTest, ShuffledBatchesArePureFunctionsOfTheStep) {
  ActivationStore store = Harvest(TestDir("shuffle"));
  StoreActivationSource in_order(store, /*seed=*/7, /*buffer_chunks=*/2);
  StoreActivationSource out_of_order(store, /*seed=*/7, /*buffer_chunks=*/2);
  std::vector<torch::Tensor> batches;
  for (int64_t step = 0; step < 12; ++step) batches.push_back(*in_order.TrainBatch(step, 9));
  for (int64_t step : {5, 0, 3, 11, 1, 4, 2, 10, 7, 6, 9, 8, 5}) {
    EXPECT_TRUE(torch::equal(*out_of_order.TrainBatch(step, 9), batches[step])) << "step " << step;
  }
  StoreActivationSource other_seed(store, /*seed=*/8, /*buffer_chunks=*/2);
  EXPECT_FALSE(torch::equal(*other_seed.TrainBatch(0, 9), batches[0]));
  EXPECT_TRUE(torch::equal(*in_order.InitSample(9), batches[0]));
}

TEST(ActivationStoreTest, EveryRowAppearsOncePerEpoch) {
  ActivationStore store = Harvest(TestDir("epoch"));
  const int64_t R = store.num_rows();  // 70
  StoreActivationSource source(store, /*seed=*/1, /*buffer_chunks=*/2);
  for (int64_t epoch : {0, 1}) {
    const torch::Tensor indices = *source.StreamRowIndices(epoch * R, (epoch + 1) * R);
    EXPECT_TRUE(torch::equal(std::get<0>(indices.sort()), torch::arange(R))) << "epoch " << epoch;
  }
  EXPECT_FALSE(torch::equal(*source.StreamRowIndices(0, R), *source.StreamRowIndices(R, 2 * R)));
  // The batches are the store rows at those indices, across buffers and into
  // the next epoch (batches of 9 do not divide 70).
  std::vector<torch::Tensor> batches;
  for (int64_t step = 0; step < 10; ++step) batches.push_back(*source.TrainBatch(step, 9));
  const torch::Tensor stream = torch::cat(batches);
  const torch::Tensor all = *store.Rows(0, R);
  EXPECT_TRUE(torch::equal(stream, all.index_select(0, *source.StreamRowIndices(0, 90))));
  // A row range: only its rows, each once.
  StoreActivationSource range(store, /*seed=*/1, /*buffer_chunks=*/3, /*row_begin=*/5,
                              /*row_end=*/40);
  EXPECT_EQ(range.epoch_rows(), 35);
  EXPECT_TRUE(
      torch::equal(std::get<0>(range.StreamRowIndices(0, 35)->sort()), torch::arange(5, 40)));
  StoreActivationSource empty(store, 1, 2, 10, 10);
  EXPECT_FALSE(empty.TrainBatch(0, 4).ok());
}

TEST(ActivationStoreTest, OpenRefusesEachDifferingKeyField) {
  const std::string dir = TestDir("key");
  Harvest(dir);
  const std::vector<std::pair<std::string, std::function<void(ActivationStoreKey&)>>> edits = {
      {"model_sha256", [](ActivationStoreKey& k) { k.model_sha256 = "other"; }},
      {"hook_name", [](ActivationStoreKey& k) { k.hook_name = "blocks.0.hook_resid_post"; }},
      {"shard_sha256", [](ActivationStoreKey& k) { k.shard_sha256 = "other"; }},
      {"context_begin", [](ActivationStoreKey& k) { k.context_begin = 0; }},
      {"context_end", [](ActivationStoreKey& k) { k.context_end = 12; }},
      {"context_length", [](ActivationStoreKey& k) { k.context_length = 4; }},
      {"dtype", [](ActivationStoreKey& k) { k.dtype = StoreDtype::kFloat16; }},
      {"drop_bos", [](ActivationStoreKey& k) { k.drop_bos = false; }},
  };
  for (const auto& [field, edit] : edits) {
    ActivationStoreKey key = Key();
    edit(key);
    absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, key);
    ASSERT_FALSE(store.ok()) << field;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
    EXPECT_TRUE(absl::StrContains(store.status().message(), dir)) << store.status();
    EXPECT_TRUE(absl::StrContains(store.status().message(), "key field " + field))
        << store.status();
  }
  // Harvesting another key into the directory is refused, not overwritten.
  ActivationStoreKey other = Key();
  other.model_sha256 = "other-model";
  absl::StatusOr<ActivationStore> refused =
      HarvestActivations(Model(), Contexts(), other, dir, SmallChunks());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "model_sha256")) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "other-model")) << refused.status();
  EXPECT_TRUE(ActivationStore::Open(dir, Key()).ok());
}

TEST(ActivationStoreTest, FlippedChunkByteFailsTheChecksumNamingTheFile) {
  const std::string dir = TestDir("flipped");
  Harvest(dir);
  const std::string chunk = dir + "/chunk-00001.bin";
  std::string bytes = *ReadFile(chunk);
  bytes[600] ^= 0x10;  // in the payload
  ASSERT_TRUE(AtomicWriteFile(chunk, bytes).ok());
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, Key());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "checksum")) << store.status();
  // Without verification the payload is not read (documented).
  EXPECT_TRUE(ActivationStore::Open(dir, Key(), /*verify_checksums=*/false).ok());
  // A rerun of the harvest redoes the bad chunk.
  Harvest(dir);
  EXPECT_TRUE(ActivationStore::Open(dir, Key()).ok());
}

TEST(ActivationStoreTest, TruncatedChunkIsAnErrorNamingTheFile) {
  const std::string dir = TestDir("truncated");
  Harvest(dir);
  const std::string chunk = dir + "/chunk-00002.bin";
  const std::string bytes = *ReadFile(chunk);
  for (size_t keep : {bytes.size() - 4, size_t{100}}) {
    ASSERT_TRUE(AtomicWriteFile(chunk, bytes.substr(0, keep)).ok());
    for (bool verify : {true, false}) {
      absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, Key(), verify);
      ASSERT_FALSE(store.ok());
      EXPECT_TRUE(absl::StrContains(store.status().message(), chunk)) << store.status();
      EXPECT_TRUE(absl::StrContains(store.status().message(), "truncated")) << store.status();
    }
  }
}

TEST(ActivationStoreTest, MissingOrIncompleteStoreIsRefused) {
  EXPECT_EQ(ActivationStore::Open(TestDir("nothing"), Key()).status().code(),
            absl::StatusCode::kNotFound);
  const std::string dir = TestDir("incomplete");
  HarvestOptions options = SmallChunks();
  options.stop_after_chunks = 2;
  EXPECT_EQ(HarvestActivations(Model(), Contexts(), Key(), dir, options).status().code(),
            absl::StatusCode::kAborted);
  absl::StatusOr<ActivationStore> store = ActivationStore::Open(dir, Key());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(store.status().message(), "incomplete")) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), dir)) << store.status();
}

TEST(ActivationStoreTest, KilledHarvestResumesToIdenticalFiles) {
  const std::string whole = TestDir("whole"), resumed = TestDir("resumed");
  Harvest(whole);
  HarvestOptions kill = SmallChunks();
  kill.stop_after_chunks = 1;
  EXPECT_EQ(HarvestActivations(Model(), Contexts(), Key(), resumed, kill).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(DirectoryContents(resumed).size(), 2u);  // chunk 0 and the manifest
  EXPECT_EQ(HarvestActivations(Model(), Contexts(), Key(), resumed, kill).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(DirectoryContents(resumed).size(), 3u);  // chunks 0, 1
  // A temporary a real kill could leave behind is cleaned up.
  ASSERT_TRUE(AtomicWriteFile(resumed + "/chunk-00002.bin.tmp.12345", "half").ok());
  Harvest(resumed);
  const auto expected = DirectoryContents(whole);
  const auto got = DirectoryContents(resumed);
  ASSERT_EQ(expected.size(), 5u);  // 4 chunks and the manifest
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, bytes] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
  }
  // Harvesting a complete store again reuses it untouched.
  Harvest(resumed);
  EXPECT_TRUE(DirectoryContents(resumed) == expected);
}

// The model source and the store over the same contexts yield the same rows
// per epoch as sets (their orders differ by design): every model row is
// matched to a distinct store row.
TEST(ActivationStoreTest, ModelSourceYieldsTheStoresRowsEachEpoch) {
  ActivationStore store = Harvest(TestDir("model_source"));
  const int64_t R = store.num_rows();  // 70
  ModelActivationSource source(Model(), Contexts().slice(0, kBegin, kEnd), kHook, /*drop_bos=*/true,
                               /*seed=*/5);
  EXPECT_EQ(source.epoch_rows(), R);
  for (int64_t epoch : {0, 1}) {
    // Batches of 10 divide 70: steps 7 e .. 7 e + 6 are epoch e.
    std::vector<torch::Tensor> batches;
    for (int64_t step = 7 * epoch; step < 7 * epoch + 7; ++step)
      batches.push_back(*source.TrainBatch(step, 10));
    const torch::Tensor rows = torch::cat(batches);
    const torch::Tensor distance = torch::cdist(rows, *store.Rows(0, R));
    auto [nearest, index] = distance.min(1);
    EXPECT_LT(nearest.max().item<float>(), 1e-4) << "epoch " << epoch;
    EXPECT_TRUE(torch::equal(std::get<0>(index.sort()), torch::arange(R))) << "epoch " << epoch;
  }
  // Pure in the step: a batch crossing contexts and the epoch boundary,
  // asked for out of order, by a fresh source.
  ModelActivationSource fresh(Model(), Contexts().slice(0, kBegin, kEnd), kHook, true, 5);
  const torch::Tensor late = *fresh.TrainBatch(7, 9);  // rows 63..71: epochs 0 and 1
  EXPECT_TRUE(torch::equal(*source.TrainBatch(7, 9), late));
  EXPECT_TRUE(torch::allclose(*fresh.InitSample(10), *source.TrainBatch(0, 10)));
  ModelActivationSource other_seed(Model(), Contexts().slice(0, kBegin, kEnd), kHook, true, 6);
  EXPECT_FALSE(torch::allclose(*other_seed.TrainBatch(0, 10), *source.TrainBatch(0, 10)));
}

}  // namespace
}  // namespace saelab
