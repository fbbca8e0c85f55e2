// Shared fixtures of the activation store tests: a tiny random GPT-2, a few
// random contexts, a key over most of them, and small chunks, so every test
// harvests in well under a second.
#ifndef SAELAB_DATA_ACTIVATIONS_INTERNAL_TEST_STORE_H_
#define SAELAB_DATA_ACTIVATIONS_INTERNAL_TEST_STORE_H_

#include <cstdint>
#include <string>

#include <torch/types.h>

#include "data/activations/activation_store.h"
#include "data/activations/activation_store.pb.h"
#include "data/activations/harvest.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"

namespace saelab::store_testing {

inline constexpr char kHookName[] = "blocks.1.hook_resid_post";
// 12 contexts of 8 tokens; the key covers contexts [1, 11).
inline constexpr int64_t kContexts = 12, kLength = 8, kBegin = 1, kEnd = 11;
// The tiny model's n_embd.
inline constexpr int64_t kD = 16;

// ::testing::TempDir() + name.
std::string TestDir(const std::string& name);

// 2 blocks, 2 heads, n_embd 16, vocabulary 64; random weights (seed 3).
const Gpt2Model& TinyModel();
// kHookName parsed.
HookLocation TestHook();

// [kContexts, kLength] int64, random ids (seed 11).
torch::Tensor TestContexts();

// The key of a store over TestContexts()[kBegin, kEnd) at kHookName.
ActivationStoreKey TestKey(ActivationStoreKey::Dtype dtype = ActivationStoreKey::FLOAT32,
                           bool drop_bos = true);

// Chunks of 3 contexts (3, 3, 3, 1), 2 contexts per forward.
HarvestOptions SmallChunks();

// The activations computed directly, all contexts in one forward pass:
// [10 * P, kD].
torch::Tensor DirectRows(bool drop_bos);

// Harvests TestContexts() into `dir` (expects success).
ActivationStore HarvestForTest(const std::string& dir, const ActivationStoreKey& key = TestKey(),
                               const HarvestOptions& options = SmallChunks());

}  // namespace saelab::store_testing

#endif  // SAELAB_DATA_ACTIVATIONS_INTERNAL_TEST_STORE_H_
