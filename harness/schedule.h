// Learning-rate and coefficient schedules, in one place so every trainer and
// every loss warm-up uses the same formulas (and a change to one is a change
// to all). Each is a pure function of the step, so a resumed run follows the
// same schedule bit for bit.
//
//   // SAE trainer: constant, then linear decay to 0 over the last 20%.
//   double lr = peak_lr * LinearDecayTailFactor(step, total_steps, 0.2);
//   // Sparsity coefficient warm-up over the first 5% of steps.
//   double lambda = lambda_max * LinearWarmupFactor(step, 0.05 * total_steps);
//   // LM trainer: linear warm-up, then cosine to a floor.
//   double lr = WarmupCosine(step, /*warmup_steps=*/100, /*total_steps=*/4000, 3e-3, 3e-4);
#ifndef SAELAB_HARNESS_SCHEDULE_H_
#define SAELAB_HARNESS_SCHEDULE_H_

#include <cstdint>

namespace saelab {

// min(1, step / warmup_steps): 0 at step 0, 1 from warmup_steps on; 1 when
// warmup_steps <= 0 (no warm-up). For coefficients that start at zero
// (Anthropic's L1 warm-up, JumpReLU's sparsity warm-up).
double LinearWarmupFactor(int64_t step, double warmup_steps);

// 1 until the last decay_fraction * total_steps steps, then linear down to
// 0 at step total_steps: max(0, (total_steps - step) / decay_steps). 1 when
// decay_fraction <= 0 (Anthropic's April-2024 SAE recipe: decay over the
// last 20%).
double LinearDecayTailFactor(int64_t step, int64_t total_steps, double decay_fraction);

// Linear warm-up from peak / warmup_steps (step 0) to peak (step
// warmup_steps - 1), then a cosine from peak down to `floor` at step
// total_steps - 1 (and floor after it). GPT-2-style LM training.
double WarmupCosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak,
                    double floor);

}  // namespace saelab

#endif  // SAELAB_HARNESS_SCHEDULE_H_
