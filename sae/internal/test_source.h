// Test helper: the small synthetic activation source the trainer tests
// train on (48 features in 16 dimensions, 3 active per token, seed 11).
//
//   auto source = SmallSyntheticSource();
//   TrainSae(config, *source, seed);
#ifndef SAELAB_SAE_INTERNAL_TEST_SOURCE_H_
#define SAELAB_SAE_INTERNAL_TEST_SOURCE_H_

#include <memory>

#include "data/activations/synthetic_features.h"

namespace saelab {

std::unique_ptr<SyntheticFeatureSource> SmallSyntheticSource();

}  // namespace saelab

#endif  // SAELAB_SAE_INTERNAL_TEST_SOURCE_H_
