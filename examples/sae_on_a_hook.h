// An example written as a program outside saelab would be: it uses only the
// libraries saelab makes visible to other repositories (the subject model,
// hooks, tokenizer, activation source, SAE trainer, evaluations and the
// SAELens interchange), as `@saelab//...` targets would be used from your
// own WORKSPACE. It collects one hook's activations over a text, trains a
// TopK SAE on them, measures it (reconstruction on held-out rows, and the
// model's loss with the SAE spliced in), and writes it for SAELens.
//
//   ./bazelw run //examples:sae_on_a_hook -- --model_dir=/models/gpt2 \
//       --text=/data/book.txt --hook=blocks.6.hook_resid_post --out=/tmp/sae
#ifndef SAELAB_EXAMPLES_SAE_ON_A_HOOK_H_
#define SAELAB_EXAMPLES_SAE_ON_A_HOOK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace example {

struct ExampleOptions {
  std::string model_dir;  // GPT-2 in Hugging Face's layout
  std::string text;       // the text to collect activations over
  std::string hook = "blocks.0.hook_resid_post";
  std::string out;        // where the SAE goes, in SAELens's layout
  int64_t context_length = 64;
  int64_t n_latents = 512;
  int64_t k = 16;
  int64_t train_tokens = 200000;
  uint64_t seed = 0;
};

struct ExampleOutcome {
  int64_t train_rows = 0, eval_rows = 0;
  double nmse = 0, l0 = 0;              // on the held-out rows
  double ce_clean = 0, ce_spliced = 0;  // nats per token, held-out contexts
};

absl::StatusOr<ExampleOutcome> TrainSaeOnHook(const ExampleOptions& options);

}  // namespace example

#endif  // SAELAB_EXAMPLES_SAE_ON_A_HOOK_H_
