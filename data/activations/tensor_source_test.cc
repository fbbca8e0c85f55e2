// The in-memory source against what its contract implies, recomputed here:
// every epoch is a permutation of the row range, batches are pure functions
// of (seed, step, batch size), and float16 rows arrive as float32.
#include "data/activations/tensor_source.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <set>
#include <tuple>

namespace saelab {
namespace {

// Row r is [r, r + 0.5, ...]: a batch row names the source row it came from.
torch::Tensor NumberedRows(int64_t n, int64_t d) {
  return torch::arange(n, torch::kFloat).unsqueeze(1) + 0.5 * torch::arange(d, torch::kFloat);
}

std::vector<int64_t> SourceRows(const torch::Tensor& batch) {
  torch::Tensor first = batch.select(1, 0).to(torch::kLong);
  return std::vector<int64_t>(first.data_ptr<int64_t>(), first.data_ptr<int64_t>() + first.numel());
}

TEST(TensorActivationSourceTest, EachEpochVisitsEveryRowOfTheRangeOnce) {
  const torch::Tensor rows = NumberedRows(50, 3);
  TensorActivationSource source(rows, /*seed=*/7, /*row_begin=*/10, /*row_end=*/40);
  EXPECT_EQ(source.d_in(), 3);
  // 30 rows per epoch in batches of 6: steps 0-4 are epoch 0, 5-9 epoch 1.
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    for (int step = 5 * epoch; step < 5 * epoch + 5; ++step) {
      absl::StatusOr<torch::Tensor> batch = source.TrainBatch(step, 6);
      ASSERT_TRUE(batch.ok()) << batch.status();
      ASSERT_EQ(batch->sizes(), (std::vector<int64_t>{6, 3}));
      // Whole rows, unchanged.
      EXPECT_TRUE(torch::equal(*batch, rows.index_select(0, torch::tensor(SourceRows(*batch)))));
      for (int64_t r : SourceRows(*batch)) seen.insert(r);
    }
    std::multiset<int64_t> expected;
    for (int64_t r = 10; r < 40; ++r) expected.insert(r);
    EXPECT_EQ(seen, expected) << "epoch " << epoch;
  }
  // Two epochs are shuffled differently.
  EXPECT_NE(SourceRows(*source.TrainBatch(0, 30)), SourceRows(*source.TrainBatch(1, 30)));
}

TEST(TensorActivationSourceTest, BatchesArePureFunctionsOfSeedAndStep) {
  const torch::Tensor rows = NumberedRows(64, 2);
  TensorActivationSource a(rows, 3), b(rows, 3), other(rows, 4);
  // b reads out of order (a resumed run): the same batches as a in order.
  const torch::Tensor late = *b.TrainBatch(9, 16);
  for (int step = 0; step < 10; ++step) ASSERT_TRUE(a.TrainBatch(step, 16).ok());
  EXPECT_TRUE(torch::equal(late, *a.TrainBatch(9, 16)));
  EXPECT_TRUE(torch::equal(*a.InitSample(16), *b.TrainBatch(0, 16)));
  EXPECT_FALSE(torch::equal(*a.TrainBatch(0, 16), *other.TrainBatch(0, 16)));
}

TEST(TensorActivationSourceTest, Float16RowsArriveAsFloat32) {
  const torch::Tensor rows = NumberedRows(8, 4).to(torch::kHalf);
  TensorActivationSource source(rows, 0);
  absl::StatusOr<torch::Tensor> batch = source.TrainBatch(0, 8);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(std::get<0>(batch->sort(0)), std::get<0>(rows.to(torch::kFloat).sort(0))));
}

TEST(TensorActivationSourceTest, RefusesBadRowsRangesAndArguments) {
  EXPECT_FALSE(TensorActivationSource(torch::zeros({4, 2}, torch::kDouble), 0).TrainBatch(0, 1).ok());
  EXPECT_FALSE(TensorActivationSource(torch::zeros({4}), 0).TrainBatch(0, 1).ok());
  EXPECT_FALSE(TensorActivationSource(NumberedRows(4, 2), 0, 3, 3).TrainBatch(0, 1).ok());
  EXPECT_FALSE(TensorActivationSource(NumberedRows(4, 2), 0, 0, 5).TrainBatch(0, 1).ok());
  TensorActivationSource fine(NumberedRows(4, 2), 0);
  EXPECT_FALSE(fine.TrainBatch(-1, 1).ok());
  EXPECT_FALSE(fine.TrainBatch(0, 0).ok());
}

}  // namespace
}  // namespace saelab
