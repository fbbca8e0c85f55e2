#include "sae/kernels/batch_topk_train_step.h"

#include <algorithm>
#include <vector>

namespace saelab {
namespace {

struct Candidate {
  float value;
  int64_t flat;  // row * n + latent
};

// The selection order: larger value first, then lower flat index.
bool Before(const Candidate& a, const Candidate& b) {
  return a.value > b.value || (a.value == b.value && a.flat < b.flat);
}

}  // namespace

BatchTopKTrainStepResult BatchTopKTrainStep(const torch::Tensor& x, const TopKParameters& params,
                                            const torch::Tensor& dead_mask,
                                            const BatchTopKTrainStepOptions& options,
                                            const TopKGradients& grads,
                                            TopKTrainStepWorkspace* workspace) {
  TORCH_CHECK(x.dim() == 2 && params.W_enc.dim() == 2, "BatchTopKTrainStep: bad shapes");
  TORCH_CHECK(options.k >= 1, "BatchTopKTrainStep: k = ", options.k, " < 1");
  const torch::Tensor x_in = x.contiguous();
  const int64_t batch = x.size(0), n = params.W_enc.size(1);
  const int64_t kept_total = std::min(options.k * batch, batch * n);
  int64_t per_row = std::min(n, options.candidates_per_row > 0 ? options.candidates_per_row
                                                                : 4 * options.k);
  const torch::Tensor centered = workspace->CenteredInput(x_in, params.b_dec);
  TopKEncodeOptions encode_options;
  encode_options.k_aux = options.auxk_coefficient > 0 ? options.k_aux : 0;
  encode_options.dead_mask = dead_mask;

  BatchTopKTrainStepResult result;
  TopKCode code;
  std::vector<Candidate> positive;
  for (;;) {
    ++result.candidate_rounds;
    encode_options.k = per_row;
    code = TopKEncode(centered, params.W_enc, params.b_enc, encode_options, &workspace->encode);
    const float* z = code.values.data_ptr<float>();
    const int64_t* idx = code.indices.data_ptr<int64_t>();
    // Only positive entries count: ReLU(z) = 0 contributes nothing, kept or not.
    positive.clear();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < per_row && z[b * per_row + s] > 0.0f; ++s) {
        positive.push_back({z[b * per_row + s], b * n + idx[b * per_row + s]});
      }
    }
    // The cut: the last kept candidate (every positive one if there are
    // fewer than kept_total).
    Candidate cut{0.0f, -1};
    if (static_cast<int64_t>(positive.size()) > kept_total) {
      std::nth_element(positive.begin(), positive.begin() + (kept_total - 1), positive.end(),
                       Before);
      cut = positive[kept_total - 1];
    }
    auto kept = [&](float value, int64_t flat) {
      return value > 0.0f && (cut.flat < 0 || !Before(cut, {value, flat}));
    };
    bool saturated = false;
    if (per_row < n) {
      for (int64_t b = 0; b < batch && !saturated; ++b) {
        const int64_t last = b * per_row + per_row - 1;
        saturated = kept(z[last], b * n + idx[last]);
      }
    }
    if (saturated) {
      per_row = std::min(n, 2 * per_row);
      continue;
    }
    // Unkept candidates become inactive slots.
    float* values = code.values.data_ptr<float>();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < per_row; ++s) {
        const int64_t e = b * per_row + s;
        if (!kept(values[e], b * n + idx[e])) values[e] = 0.0f;
      }
    }
    break;
  }
  TopKTrainStepOptions step_options;
  step_options.k = per_row;
  step_options.k_aux = options.k_aux;
  step_options.auxk_coefficient = options.auxk_coefficient;
  static_cast<TopKTrainStepResult&>(result) = TopKTrainStepFromCode(
      x_in, centered, params, code, step_options, grads, workspace);
  return result;
}

}  // namespace saelab
