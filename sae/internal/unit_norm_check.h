// Test helper: trains an SAE for a few Adam steps on random data through the
// same hooks the trainer calls, checking after every step that the decoder
// rows have unit norm (for the architectures that constrain them).
//
//   EXPECT_TRUE(DecoderStaysUnitNormUnderAdam(sae, /*steps=*/50, dead_mask));
#ifndef SAELAB_SAE_INTERNAL_UNIT_NORM_CHECK_H_
#define SAELAB_SAE_INTERNAL_UNIT_NORM_CHECK_H_

#include <torch/types.h>

#include "gtest/gtest.h"
#include "sae/sae.h"

namespace saelab {

// Steps of TrainForward on randn [16, d_in] (scaled space), backward,
// BeforeOptimizerStep, Adam (lr 1e-2), AfterOptimizerStep. dead_mask may be
// undefined. Fails naming the first step whose rows are not unit norm (1e-5).
::testing::AssertionResult DecoderStaysUnitNormUnderAdam(Sae& sae, int steps,
                                                         const torch::Tensor& dead_mask);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERNAL_UNIT_NORM_CHECK_H_
