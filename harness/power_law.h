// A power law with an offset, y = a * x^(-alpha) + c, the form of the SAE
// scaling laws (Gao et al. 2024, L(n) and L(C)), fitted by least squares on
// relative residuals (so each point weighs alike across decades), with
// percentile-bootstrap 95% intervals:
//
//   ASSIGN_OR_RETURN(PowerLawFit fit, FitPowerLaw(n, nmse, /*bootstrap=*/1000, seed));
//   // fit.alpha().mean(), fit.alpha().ci95_low(), fit.alpha().ci95_high()
//
// Hand-written: no installed library fits a nonlinear three-parameter
// model. For a fixed alpha the model is linear in (a, c), solved in closed
// form; alpha itself is found by a log grid and golden-section refinement.
#ifndef SAELAB_HARNESS_POWER_LAW_H_
#define SAELAB_HARNESS_POWER_LAW_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "harness/result.pb.h"

namespace saelab {

struct PowerLawParameters {
  double a = 0;
  double alpha = 0;
  double c = 0;
  // sqrt(mean((log y_fit - log y)^2)).
  double rms_log_residual = 0;
};

// The least-squares fit with a >= 0, c >= 0 and alpha in [1e-3, 8].
// InvalidArgument unless x and y have equal length, every value is finite
// and positive, and x has at least 3 distinct values.
absl::StatusOr<PowerLawParameters> FitPowerLawPoints(const std::vector<double>& x,
                                                     const std::vector<double>& y);

// The fit of all points (each MetricStats' mean), the bootstrap's sample sd
// and 2.5% / 97.5% percentiles (over `bootstrap_samples` resamplings of the
// points with replacement, seeded; resamples with fewer than 3 distinct x
// are skipped; n counts the fits made), and the points. Name, x and y
// labels are left to the caller.
absl::StatusOr<PowerLawFit> FitPowerLaw(const std::vector<double>& x,
                                        const std::vector<double>& y, int bootstrap_samples,
                                        uint64_t seed);

}  // namespace saelab

#endif  // SAELAB_HARNESS_POWER_LAW_H_
