#include "harness/schedule.h"

#include <algorithm>
#include <cmath>

namespace saelab {

double LinearWarmupFactor(int64_t step, double warmup_steps) {
  if (warmup_steps <= 0.0) return 1.0;
  return std::min(1.0, static_cast<double>(step) / warmup_steps);
}

double LinearDecayTailFactor(int64_t step, int64_t total_steps, double decay_fraction) {
  const double decay_steps = decay_fraction * static_cast<double>(total_steps);
  const double remaining = static_cast<double>(total_steps - step);
  if (decay_steps <= 0.0 || remaining >= decay_steps) return 1.0;
  return std::max(0.0, remaining / decay_steps);
}

double WarmupCosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak,
                    double floor) {
  if (step < warmup_steps) {
    return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - 1 - warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace saelab
