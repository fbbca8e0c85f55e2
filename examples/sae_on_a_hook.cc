#include "examples/sae_on_a_hook.h"

#include <torch/types.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activations/tensor_source.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/downstream.h"
#include "eval/reconstruction.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"
#include "sae/interchange/saelens.h"
#include "sae/sae_config.pb.h"
#include "sae/trainer.h"

namespace example {

using saelab::BpeTokenizer;
using saelab::Gpt2Model;

absl::StatusOr<ExampleOutcome> TrainSaeOnHook(const ExampleOptions& options) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(options.model_dir));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(options.model_dir));
  ASSIGN_OR_RETURN(std::string text, saelab::ReadFile(options.text));

  // Contexts of context_length tokens, each starting with <|endoftext|> as
  // BOS, as GPT-2 saw text in training. [N, L] int64.
  const std::vector<int32_t> ids = tokenizer.Encode(text);
  const int64_t body = options.context_length - 1;
  const int64_t n = static_cast<int64_t>(ids.size()) / body;
  if (n < 8) return absl::InvalidArgumentError(absl::StrCat(options.text, ": too short"));
  torch::Tensor contexts = torch::empty({n, options.context_length}, torch::kLong);
  contexts.select(1, 0).fill_(static_cast<int64_t>(*tokenizer.eos_id()));
  contexts.slice(1, 1).copy_(
      torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n * body)).reshape({n, body}));

  // The hook's activations; the first 7/8 of the contexts train, the rest
  // evaluate. [rows, d] with the BOS position left out.
  ASSIGN_OR_RETURN(auto cache, model.RunWithCache(contexts, {options.hook}));
  const torch::Tensor acts = cache.at(options.hook).slice(1, 1).reshape({-1, model.config().n_embd});
  const int64_t train_contexts = n * 7 / 8;
  const int64_t split = train_contexts * body;
  ExampleOutcome outcome;
  outcome.train_rows = split;
  outcome.eval_rows = acts.size(0) - split;

  saelab::SaeConfig config;
  config.set_name("example_topk");
  config.set_n_latents(options.n_latents);
  config.mutable_topk()->set_k(options.k);
  config.mutable_trainer()->set_total_tokens(options.train_tokens);
  config.mutable_trainer()->set_batch_size(1024);
  saelab::TensorActivationSource source(acts.contiguous(), options.seed, 0, split);
  ASSIGN_OR_RETURN(saelab::TrainResult trained, saelab::TrainSae(config, source, options.seed));

  const torch::Tensor eval_x = acts.slice(0, split).contiguous();
  ASSIGN_OR_RETURN(saelab::ReconstructionMetrics metrics,
                   saelab::EvaluateReconstruction(*trained.sae, eval_x));
  outcome.nmse = metrics.Nmse();
  outcome.l0 = metrics.L0();

  saelab::DownstreamEvalConfig downstream;
  downstream.set_eval_contexts(-1);
  ASSIGN_OR_RETURN(saelab::DownstreamMetrics spliced,
                   saelab::EvaluateDownstream(model, options.hook, *trained.sae,
                                              contexts.slice(0, train_contexts), eval_x.mean(0),
                                              downstream));
  outcome.ce_clean = spliced.ce_clean;
  outcome.ce_spliced = spliced.ce_spliced;

  // Python: sae_lens.SAE.load_from_disk(options.out)
  RETURN_IF_ERROR(saelab::ExportSaeLens(*trained.sae, trained.config, options.out));
  return outcome;
}

}  // namespace example
