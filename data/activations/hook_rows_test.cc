#include "data/activations/hook_rows.h"

#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "data/activations/internal/test_store.h"

namespace saelab {
namespace {

using store_testing::kContexts;
using store_testing::kD;
using store_testing::kHookName;
using store_testing::kLength;
using store_testing::TestContexts;
using store_testing::TestHook;
using store_testing::TinyModel;

// The activations by another route: one RunWithCache over every context,
// by name, laid out by hand.
torch::Tensor Expected(bool drop_bos) {
  torch::NoGradGuard no_grad;
  auto cache = TinyModel().RunWithCache(TestContexts(), {kHookName});
  EXPECT_TRUE(cache.ok()) << cache.status();
  const torch::Tensor act = cache->at(kHookName);  // [12, 8, 16]
  std::vector<torch::Tensor> rows;
  for (int64_t c = 0; c < kContexts; ++c) {
    for (int64_t p = drop_bos ? 1 : 0; p < kLength; ++p) rows.push_back(act[c][p]);
  }
  return torch::stack(rows);
}

TEST(HookRowsTest, RowsAreContextByContextWhateverTheBatching) {
  for (bool drop_bos : {true, false}) {
    const torch::Tensor expected = Expected(drop_bos);
    ASSERT_EQ(expected.size(0), kContexts * (kLength - (drop_bos ? 1 : 0)));
    for (int64_t batch : {1, 5, 12, 100}) {
      std::vector<int64_t> done;
      absl::StatusOr<torch::Tensor> rows =
          HookActivationRows(TinyModel(), TestContexts(), TestHook(), drop_bos, batch,
                             [&](int64_t n) { done.push_back(n); });
      ASSERT_TRUE(rows.ok()) << rows.status();
      EXPECT_EQ(rows->sizes(), expected.sizes());
      EXPECT_EQ(rows->scalar_type(), torch::kFloat);
      EXPECT_TRUE(rows->is_contiguous());
      EXPECT_TRUE(torch::allclose(*rows, expected, 1e-5, 1e-6)) << "batch " << batch;
      // Progress after every batch, ending at all contexts.
      EXPECT_EQ(static_cast<int64_t>(done.size()), (kContexts + batch - 1) / batch);
      EXPECT_EQ(done.back(), kContexts);
    }
  }
}

TEST(HookRowsTest, SameBatchesGiveTheSameBits) {
  const torch::Tensor a = *HookActivationRows(TinyModel(), TestContexts(), TestHook(), true, 5);
  const torch::Tensor b = *HookActivationRows(TinyModel(), TestContexts(), TestHook(), true, 5);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(a.size(1), kD);
}

TEST(HookRowsTest, SeveralHooksFromOneForwardAreEachHooksRowsSideBySide) {
  // A later point and an earlier one, in that order: columns follow the
  // order asked for, not the forward order.
  const HookLocation mlp_out{0, HookPoint::kMlpOut}, mlp_in{0, HookPoint::kMlpIn};
  std::vector<int64_t> done;
  absl::StatusOr<torch::Tensor> paired = HookActivationRows(
      TinyModel(), TestContexts(), std::vector<HookLocation>{mlp_out, mlp_in}, true, 5,
      [&](int64_t n) { done.push_back(n); });
  ASSERT_TRUE(paired.ok()) << paired.status();
  const torch::Tensor out = *HookActivationRows(TinyModel(), TestContexts(), mlp_out, true, 5);
  const torch::Tensor in = *HookActivationRows(TinyModel(), TestContexts(), mlp_in, true, 5);
  ASSERT_EQ(paired->sizes(), (std::vector<int64_t>{out.size(0), 2 * kD}));
  EXPECT_TRUE(torch::equal(paired->slice(1, 0, kD), out));
  EXPECT_TRUE(torch::equal(paired->slice(1, kD, 2 * kD), in));
  EXPECT_FALSE(torch::equal(out, in));
  EXPECT_EQ(done.back(), kContexts);
  // Stores harvested together may share a hook: it fills both its slots.
  absl::StatusOr<torch::Tensor> repeated = HookActivationRows(
      TinyModel(), TestContexts(), std::vector<HookLocation>{mlp_in, mlp_out, mlp_in}, true, 5);
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_TRUE(torch::equal(repeated->slice(1, 0, kD), in));
  EXPECT_TRUE(torch::equal(repeated->slice(1, kD, 2 * kD), out));
  EXPECT_TRUE(torch::equal(repeated->slice(1, 2 * kD, 3 * kD), in));
  EXPECT_EQ(HookActivationRows(TinyModel(), TestContexts(), std::vector<HookLocation>{}, true)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HookRowsTest, BadInputsAreInvalidArgument) {
  const Gpt2Model& model = TinyModel();
  for (const torch::Tensor& contexts :
       {torch::zeros({0, 8}, torch::kLong), torch::zeros({3, 1}, torch::kLong),
        torch::zeros({8}, torch::kLong)}) {
    EXPECT_EQ(HookActivationRows(model, contexts, TestHook(), true).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(HookActivationRows(model, TestContexts(), TestHook(), true, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HookActivationRows(model, TestContexts(), HookLocation{5, HookPoint::kResidPre}, true)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // One token per context is enough when BOS is kept.
  EXPECT_TRUE(HookActivationRows(model, torch::zeros({3, 1}, torch::kLong), TestHook(), false).ok());
}

}  // namespace
}  // namespace saelab
