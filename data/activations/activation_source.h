// Where an SAE trainer gets activations: synthetic data now, a language
// model's cached activations later. The one contract that makes training
// resumable and deterministic: a batch is a pure function of the step.
//
//   class MySource : public ActivationSource { ... };
//   ASSIGN_OR_RETURN(torch::Tensor x, source.TrainBatch(step, 4096));  // [4096, d_in]
#ifndef SAELAB_DATA_ACTIVATIONS_ACTIVATION_SOURCE_H_
#define SAELAB_DATA_ACTIVATIONS_ACTIVATION_SOURCE_H_

#include <cstdint>
#include <string>

#include <torch/types.h>

#include "absl/status/statusor.h"

namespace saelab {

class ActivationSource {
 public:
  virtual ~ActivationSource() = default;

  // Activation dimension d_in.
  virtual int64_t d_in() const = 0;

  // A paired source (for transcoders) returns d_target > 0: each row is
  // then [input | target], d_in + d_target wide, so that a row's two halves
  // come from the same token through every shuffle. 0: plain rows.
  virtual int64_t d_target() const { return 0; }

  // The training batch for `step` (0-based): [batch_size, d_in + d_target()] float32 CPU,
  // in model units. Must be a pure function of (this source, step,
  // batch_size), so a resumed run sees exactly the batches it would have.
  virtual absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) = 0;

  // `tokens` activations for one-time initialisation (input scale,
  // geometric median): [tokens, d_in + d_target()] float32, a pure function
  // of tokens.
  virtual absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) = 0;
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_ACTIVATION_SOURCE_H_
