#include "tools/viewer/internal/test_session.h"

#include <cstdlib>
#include <iostream>
#include <utility>
#include <vector>

#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

template <typename T>
T OrDie(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) {
    std::cerr << what << ": " << value.status() << "\n";
    std::abort();
  }
  return *std::move(value);
}

}  // namespace

std::unique_ptr<Sae> RandomTopKSae(uint64_t seed) {
  SaeConfig config;
  config.set_name("topk");
  config.set_n_latents(256);
  config.mutable_topk()->set_k(8);
  if (absl::Status status = ResolveSaeConfig(128, &config); !status.ok()) {
    std::cerr << "RandomTopKSae: " << status << "\n";
    std::abort();
  }
  return OrDie(CreateSae(config, 128, seed), "RandomTopKSae");
}

ViewerSession TestSession() {
  std::vector<ViewerSae> saes;
  saes.push_back({"blocks.1.hook_resid_post", "a", RandomTopKSae(1)});
  saes.push_back({"blocks.2.hook_mlp_out", "b", RandomTopKSae(2)});
  return OrDie(ViewerSession::Create(OrDie(Gpt2Model::LoadHfDirectory(kTestModelDir), "model"),
                                     OrDie(BpeTokenizer::FromDir(kTestModelDir), "tokenizer"),
                                     std::move(saes)),
               "TestSession");
}

ViewEdits LatentEdits(std::vector<PromptEdit> latents) {
  ViewEdits edits;
  edits.latents = std::move(latents);
  return edits;
}

}  // namespace saelab
