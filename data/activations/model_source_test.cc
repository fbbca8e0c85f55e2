#include "data/activations/model_source.h"

#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "data/activations/internal/test_store.h"

namespace saelab {
namespace {

using store_testing::HarvestForTest;
using store_testing::kBegin;
using store_testing::kEnd;
using store_testing::TestContexts;
using store_testing::TestDir;
using store_testing::TestHook;
using store_testing::TinyModel;

// The model source and the store over the same contexts yield the same rows
// per epoch as sets (their orders differ by design): every model row is
// matched to a distinct store row.
TEST(ModelActivationSourceTest, YieldsTheStoresRowsEachEpoch) {
  ActivationStore store = HarvestForTest(TestDir("model_source"));
  const int64_t R = store.num_rows();  // 70
  const torch::Tensor contexts = TestContexts().slice(0, kBegin, kEnd);
  ModelActivationSource source(TinyModel(), contexts, TestHook(), /*drop_bos=*/true, /*seed=*/5);
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
  ModelActivationSource fresh(TinyModel(), contexts, TestHook(), true, 5);
  const torch::Tensor late = *fresh.TrainBatch(7, 9);  // rows 63..71: epochs 0 and 1
  EXPECT_TRUE(torch::equal(*source.TrainBatch(7, 9), late));
  EXPECT_TRUE(torch::allclose(*fresh.InitSample(10), *source.TrainBatch(0, 10)));
  ModelActivationSource other_seed(TinyModel(), contexts, TestHook(), true, 6);
  EXPECT_FALSE(torch::allclose(*other_seed.TrainBatch(0, 10), *source.TrainBatch(0, 10)));
}

TEST(ModelActivationSourceTest, WithATargetItYieldsThePairedStoresRowsEachEpoch) {
  ActivationStoreKey key = store_testing::TestKey();
  key.set_hook_name("blocks.1.hook_mlp_in");
  key.set_target_hook_name("blocks.1.hook_mlp_out");
  ActivationStore store = HarvestForTest(TestDir("model_source_paired"), key);
  const int64_t R = store.num_rows();
  const torch::Tensor contexts = TestContexts().slice(0, kBegin, kEnd);
  ModelActivationSource source(TinyModel(), contexts, HookLocation{1, HookPoint::kMlpIn}, true, 5,
                               /*batch_contexts=*/32, HookLocation{1, HookPoint::kMlpOut});
  EXPECT_EQ(source.d_in(), store_testing::kD);
  EXPECT_EQ(source.d_target(), store_testing::kD);
  // One epoch in one batch: every paired row (input and target together)
  // matches a distinct row of the paired store.
  const torch::Tensor rows = *source.TrainBatch(0, R);
  ASSERT_EQ(rows.size(1), 2 * store_testing::kD);
  // Exact distances (compute mode 2): the matrix-product route's
  // cancellation error (~1e-3 at these norms) would swamp the comparison.
  auto [nearest, index] = torch::cdist(rows, *store.Rows(0, R), 2.0, 2).min(1);
  EXPECT_LT(nearest.max().item<float>(), 1e-4);
  EXPECT_TRUE(torch::equal(std::get<0>(index.sort()), torch::arange(R)));
}

TEST(ModelActivationSourceTest, ErrorsSurfaceFromTrainBatch) {
  ModelActivationSource no_contexts(TinyModel(), torch::zeros({0, 8}, torch::kLong), TestHook(),
                                    true, 1);
  EXPECT_EQ(no_contexts.TrainBatch(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  ModelActivationSource past_the_model(TinyModel(), TestContexts(),
                                       HookLocation{2, HookPoint::kResidPost}, true, 1);
  EXPECT_EQ(past_the_model.TrainBatch(0, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
