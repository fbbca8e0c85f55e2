#include "harness/tsne.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {
namespace {

torch::Tensor SquaredDistances(const torch::Tensor& x) {
  return torch::cdist(x, x).pow(2);
}

// Each row's distribution has entropy log(perplexity): recomputed here from
// the returned probabilities, independently of the bisection's formula.
TEST(TsneTest, AffinityRowsHaveTheRequestedPerplexity) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({200, 5}, torch::kFloat64);
  for (double perplexity : {5.0, 30.0}) {
    auto p = ConditionalAffinities(SquaredDistances(x), perplexity);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(torch::allclose(p->sum(1), torch::ones({200}, torch::kFloat64)));
    EXPECT_EQ(p->diagonal().abs().max().item<double>(), 0.0);
    const torch::Tensor entropy = -(*p * p->clamp_min(1e-300).log()).sum(1);
    EXPECT_LT((entropy - std::log(perplexity)).abs().max().item<double>(), 1e-4) << perplexity;
  }
}

// Three clusters far apart in 10-D: in the map, each point's nearest
// neighbour is in its own cluster and the clusters' centres are further
// apart than their spreads.
TEST(TsneTest, SeparatedClustersStaySeparatedAndTheMapIsDeterministic) {
  torch::manual_seed(2);
  const int per = 60;
  torch::Tensor x = torch::randn({3 * per, 10}, torch::kFloat64);
  for (int c = 0; c < 3; ++c) x.slice(0, c * per, (c + 1) * per).select(1, c).add_(20);
  TsneOptions options;
  options.perplexity = 15;
  options.iterations = 300;
  options.seed = 7;
  auto y = Tsne(SquaredDistances(x), options);
  auto again = Tsne(SquaredDistances(x), options);
  ASSERT_TRUE(y.ok() && again.ok());
  EXPECT_TRUE(torch::equal(*y, *again));
  torch::Tensor d = torch::cdist(*y, *y);
  d.fill_diagonal_(INFINITY);
  const torch::Tensor nearest = d.argmin(1);
  const torch::Tensor label = torch::div(torch::arange(3 * per), per, "floor");
  EXPECT_TRUE(torch::equal(label.index_select(0, nearest), label));
  const torch::Tensor centres = torch::stack(
      {y->slice(0, 0, per).mean(0), y->slice(0, per, 2 * per).mean(0), y->slice(0, 2 * per).mean(0)});
  double spread = 0;
  for (int c = 0; c < 3; ++c) {
    spread = std::max(spread,
                      (y->slice(0, c * per, (c + 1) * per) - centres[c]).norm(2, 1).max().item<double>());
  }
  const torch::Tensor between = torch::cdist(centres, centres) + torch::eye(3) * 1e9;
  EXPECT_GT(between.min().item<double>(), spread);
}

TEST(TsneTest, BadInputsAreRefused) {
  const torch::Tensor d = torch::zeros({10, 10}, torch::kFloat64);
  EXPECT_FALSE(ConditionalAffinities(d, 20).ok());          // perplexity > n - 1
  EXPECT_FALSE(ConditionalAffinities(d.to(torch::kFloat32), 5).ok());
  EXPECT_FALSE(ConditionalAffinities(torch::zeros({3, 4}, torch::kFloat64), 2).ok());
}

}  // namespace
}  // namespace saelab
