#include "eval/internal/test_models.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <iostream>

#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

// Test fixtures cannot return a Status: a broken fixture stops the test binary.
template <typename T>
T OrDie(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) {
    std::cerr << what << ": " << value.status() << "\n";
    std::abort();
  }
  return *std::move(value);
}

}  // namespace

Gpt2Model TinyGpt2(int64_t vocab, int64_t embd, int64_t positions, uint64_t seed) {
  Gpt2Config config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = embd;
  config.n_positions = positions;
  config.vocab_size = vocab;
  return OrDie(Gpt2Model::RandomInit(config, seed), "TinyGpt2");
}

std::unique_ptr<Sae> RandomReluSae(int64_t d_in, int64_t n_latents, uint64_t seed) {
  SaeConfig config;
  config.set_name("tiny");
  config.set_n_latents(n_latents);
  config.mutable_relu_l1();
  if (absl::Status status = ResolveSaeConfig(d_in, &config); !status.ok()) {
    std::cerr << "RandomReluSae: " << status << "\n";
    std::abort();
  }
  return OrDie(CreateSae(config, d_in, seed), "RandomReluSae");
}

std::unique_ptr<Sae> PlantableReluSae(int64_t d_in, int64_t n_latents, uint64_t seed) {
  std::unique_ptr<Sae> sae = RandomReluSae(d_in, n_latents, seed);
  torch::NoGradGuard no_grad;
  sae->set_input_scale(1.0);
  sae->b_enc.zero_();
  sae->b_dec.zero_();
  return sae;
}

constexpr char kReferenceModelDir[] = "data/models/saelab-ref-lm";

Gpt2Model ReferenceModel() {
  return OrDie(Gpt2Model::LoadHfDirectory(kReferenceModelDir), "ReferenceModel");
}

BpeTokenizer ReferenceTokenizer() {
  return OrDie(BpeTokenizer::FromDir(kReferenceModelDir), "ReferenceTokenizer");
}

}  // namespace saelab
