#include "sae/geometric_median.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "gtest/gtest.h"

namespace saelab {
namespace {

// 2-D points [n, 2] as float64 pairs.
std::vector<std::pair<double, double>> Pairs(const torch::Tensor& points) {
  torch::Tensor p = points.to(torch::kFloat64).contiguous();
  auto a = p.accessor<double, 2>();
  std::vector<std::pair<double, double>> out;
  for (int64_t i = 0; i < p.size(0); ++i) out.emplace_back(a[i][0], a[i][1]);
  return out;
}

// sum_i ||points_i - (mx, my)||_2 in float64, as a plain loop.
double SumOfDistances(const std::vector<std::pair<double, double>>& points, double mx, double my) {
  double total = 0;
  for (const auto& [px, py] : points) total += std::hypot(px - mx, py - my);
  return total;
}

TEST(GeometricMedianTest, CornersOfASquareGiveItsCentre) {
  // Square of side 2 centred at (2, -3).
  torch::Tensor corners = torch::tensor({1.0, -4.0, 3.0, -4.0, 3.0, -2.0, 1.0, -2.0}).reshape({4, 2});
  torch::Tensor median = GeometricMedian(corners, /*iterations=*/100);
  ASSERT_EQ(median.sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(median.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(median[0].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(median[1].item<double>(), -3.0, 1e-6);
}

TEST(GeometricMedianTest, OddCollinearPointsGiveTheMiddlePointUnlikeTheMean) {
  // Points t * u on the line through (1, 1) with direction u = (0.6, 0.8),
  // t = 1, 2, 3, 4, 1000: in 1-D the sum of distances is minimised at the
  // median t = 3, i.e. (1 + 1.8, 1 + 2.4) = (2.8, 3.4). The mean sits at
  // t = 1010 / 5 = 202, dragged away by the one far point.
  auto on_line = [](double t) { return std::vector<double>{1 + 0.6 * t, 1 + 0.8 * t}; };
  torch::Tensor points = torch::zeros({5, 2}, torch::kFloat64);
  const double ts[] = {1, 2, 3, 4, 1000};
  for (int i = 0; i < 5; ++i) {
    points[i][0] = on_line(ts[i])[0];
    points[i][1] = on_line(ts[i])[1];
  }
  torch::Tensor median = GeometricMedian(points, /*iterations=*/200);
  EXPECT_NEAR(median[0].item<double>(), 2.8, 1e-4);
  EXPECT_NEAR(median[1].item<double>(), 3.4, 1e-4);
  EXPECT_GT(points.mean(0)[0].item<double>(), 100.0);  // the mean is not robust

  // Moving the outlier a thousand times further leaves the median in place.
  points[4][0] = on_line(1e6)[0];
  points[4][1] = on_line(1e6)[1];
  torch::Tensor moved = GeometricMedian(points, /*iterations=*/200);
  EXPECT_NEAR(moved[0].item<double>(), 2.8, 1e-4);
  EXPECT_NEAR(moved[1].item<double>(), 3.4, 1e-4);
}

TEST(GeometricMedianTest, MatchesBruteForceGridMinimumOfSumOfDistances) {
  // A skewed 2-D cloud (so the median and the mean differ) with outliers.
  torch::manual_seed(3);
  torch::Tensor points = torch::randn({60, 2});
  points.select(1, 0).copy_(torch::exp(points.select(1, 0)));  // log-normal x
  points.slice(0, 0, 4).mul_(15.0);                             // a few outliers
  torch::Tensor median = GeometricMedian(points, /*iterations=*/500);
  const double mx = median[0].item<double>(), my = median[1].item<double>();
  const std::vector<std::pair<double, double>> cloud = Pairs(points);

  // Brute force: a 101 x 101 grid over the bounding box, then repeatedly a
  // 101 x 101 grid over +-2 cells around the best point (the objective is
  // convex, so zooming in cannot lose the minimum).
  double lo_x = points.select(1, 0).min().item<double>();
  double hi_x = points.select(1, 0).max().item<double>();
  double lo_y = points.select(1, 1).min().item<double>();
  double hi_y = points.select(1, 1).max().item<double>();
  double best = std::numeric_limits<double>::infinity(), bx = 0, by = 0;
  for (int level = 0; level < 8; ++level) {
    const double step_x = (hi_x - lo_x) / 100, step_y = (hi_y - lo_y) / 100;
    for (int i = 0; i <= 100; ++i) {
      for (int j = 0; j <= 100; ++j) {
        double gx = lo_x + i * step_x, gy = lo_y + j * step_y;
        double value = SumOfDistances(cloud, gx, gy);
        if (value < best) best = value, bx = gx, by = gy;
      }
    }
    lo_x = bx - 2 * step_x, hi_x = bx + 2 * step_x;
    lo_y = by - 2 * step_y, hi_y = by + 2 * step_y;
  }

  const double at_median = SumOfDistances(cloud, mx, my);
  const double at_mean =
      SumOfDistances(cloud, points.mean(0)[0].item<double>(), points.mean(0)[1].item<double>());
  EXPECT_LE(at_median, at_mean);
  EXPECT_LE(at_median, best * (1 + 1e-4));
  EXPECT_GE(at_median, best * (1 - 1e-4));  // the grid found the true minimum
  EXPECT_NEAR(mx, bx, 1e-2);
  EXPECT_NEAR(my, by, 1e-2);
  // The cloud is skewed enough that the mean is a clearly worse centre.
  EXPECT_GT(at_mean, best * 1.01);
}

}  // namespace
}  // namespace saelab
