// Summary statistics over seeds: mean, sample standard deviation and a 95%
// confidence interval of the mean (Student's t, n - 1 degrees of freedom).
//
//   MetricStats s = Summarize({0.91, 0.93, 0.92});
//   // s.mean() = 0.92, s.ci95_low() = 0.92 - t_{0.975, 2} * sd / sqrt(3)
#ifndef SAELAB_HARNESS_STATISTICS_H_
#define SAELAB_HARNESS_STATISTICS_H_

#include <vector>

#include "harness/result.pb.h"

namespace saelab {

// The 0.975 quantile of Student's t with `df` >= 1 degrees of freedom.
// Hand-written table (no installed library has t quantiles): exact values
// for df <= 30, interpolation in 1/df between 30, 40, 60, 120 and infinity
// (the normal 1.959964) beyond, accurate to < 1e-3.
double StudentT975(int df);

// Mean, sd (n - 1), and the 95% t-interval of `values`. One value: sd 0 and
// the interval collapses to the mean. Empty: all zeros, n = 0.
MetricStats Summarize(const std::vector<double>& values);

}  // namespace saelab

#endif  // SAELAB_HARNESS_STATISTICS_H_
