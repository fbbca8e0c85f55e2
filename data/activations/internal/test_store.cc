#include "data/activations/internal/test_store.h"

#include <cstdlib>
#include <utility>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "data/subject_model/gpt2_config.h"

namespace saelab::store_testing {

std::string TestDir(const std::string& name) {
  return ::testing::TempDir() + name;
}

const Gpt2Model& TinyModel() {
  static const Gpt2Model* model = [] {
    Gpt2Config config;
    config.n_layer = 2;
    config.n_head = 2;
    config.n_embd = kD;
    config.n_positions = 16;
    config.vocab_size = 64;
    return new Gpt2Model(*Gpt2Model::RandomInit(config, /*seed=*/3));
  }();
  return *model;
}

HookLocation TestHook() { return *ParseHookName(kHookName, TinyModel().config().n_layer); }

torch::Tensor TestContexts() {
  torch::manual_seed(11);
  return torch::randint(0, 64, {kContexts, kLength}, torch::kLong);
}

ActivationStoreKey TestKey(ActivationStoreKey::Dtype dtype, bool drop_bos) {
  ActivationStoreKey key;
  key.set_model_sha256("model-hash");
  key.set_hook_name(kHookName);
  key.set_shard_sha256("shard-hash");
  key.set_context_begin(kBegin);
  key.set_context_end(kEnd);
  key.set_context_length(kLength);
  key.set_dtype(dtype);
  key.set_drop_bos(drop_bos);
  return key;
}

HarvestOptions SmallChunks() {
  HarvestOptions options;
  options.contexts_per_chunk = 3;
  options.batch_contexts = 2;
  return options;
}

torch::Tensor DirectRows(bool drop_bos) {
  torch::NoGradGuard no_grad;
  auto cache = TinyModel().RunWithCache(TestContexts().slice(0, kBegin, kEnd), {kHookName});
  EXPECT_TRUE(cache.ok()) << cache.status();
  torch::Tensor act = cache->at(kHookName);
  if (drop_bos) act = act.slice(1, 1);
  return act.reshape({-1, kD});
}

ActivationStore HarvestForTest(const std::string& dir, const ActivationStoreKey& key,
                               const HarvestOptions& options) {
  absl::StatusOr<ActivationStore> store =
      HarvestActivations(TinyModel(), TestContexts(), key, dir, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return *std::move(store);
}

}  // namespace saelab::store_testing
