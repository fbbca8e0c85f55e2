// Tiny subject models and hand-settable SAEs for eval/'s tests: small enough
// that a test can recompute every number by hand or brute force.
//
//   Gpt2Model model = TinyGpt2(/*vocab=*/40, /*embd=*/16, /*positions=*/32, /*seed=*/3);
//   std::unique_ptr<Sae> sae = PlantableReluSae(16, 32);   // then set W_enc columns
#ifndef SAELAB_EVAL_INTERNAL_TEST_MODELS_H_
#define SAELAB_EVAL_INTERNAL_TEST_MODELS_H_

#include <cstdint>
#include <memory>

#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "sae/sae.h"

namespace saelab {

// A 1-layer, 2-head GPT-2 with GPT-2's random init (deterministic in seed).
Gpt2Model TinyGpt2(int64_t vocab, int64_t embd, int64_t positions, uint64_t seed);

// A ReLU-L1 SAE (dense decode) with GPT-2-style random tied weights from
// `seed`: many latents fire on any input.
std::unique_ptr<Sae> RandomReluSae(int64_t d_in, int64_t n_latents, uint64_t seed);

// A ReLU-L1 SAE with input scale 1 and both biases 0 (random tied weights
// from `seed`), so f = relu(x W_enc) and x_hat = f W_dec: tests plant the
// encoder columns and decoder rows they need.
std::unique_ptr<Sae> PlantableReluSae(int64_t d_in, int64_t n_latents, uint64_t seed);

// The reference subject model and its tokenizer
// (data/models/saelab-ref-lm; the test needs //data/models:saelab_ref_lm in
// its data). A missing or broken model stops the test binary.
Gpt2Model ReferenceModel();
BpeTokenizer ReferenceTokenizer();

}  // namespace saelab

#endif  // SAELAB_EVAL_INTERNAL_TEST_MODELS_H_
