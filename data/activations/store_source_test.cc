#include "data/activations/store_source.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "data/activations/internal/test_store.h"

namespace saelab {
namespace {

using store_testing::HarvestForTest;
using store_testing::TestDir;

TEST(StoreActivationSourceTest, ShuffledBatchesArePureFunctionsOfTheStep) {
  ActivationStore store = HarvestForTest(TestDir("shuffle"));
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

TEST(StoreActivationSourceTest, EveryRowAppearsOncePerEpoch) {
  ActivationStore store = HarvestForTest(TestDir("epoch"));
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

}  // namespace
}  // namespace saelab
