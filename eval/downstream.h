// Core metrics with the SAE spliced into the subject model (Gao et al.'s
// downstream loss, SAEBench's "core" evaluation): what the SAE costs the
// model when its reconstruction replaces the activation, next to what the
// activation is worth (zero and mean ablation), and the reconstruction and
// sparsity statistics on the same tokens. docs/metrics.md defines each.
//
//   ASSIGN_OR_RETURN(DownstreamMetrics m,
//                    EvaluateDownstream(model, hook_name, sae, val_contexts, store.mean(),
//                    config));
//   m.WriteTo(sae_result);   // ce_clean, ce_spliced, delta_loss, loss_recovered, kl_mean, ...
//
// Positions: contexts start with <|endoftext|> as BOS. The BOS position is
// never spliced (eval/splice.h) and is excluded everywhere: the losses are
// the next-token predictions made at positions 1..L-2 (of tokens 2..L-1),
// and the reconstruction statistics are over the activations at positions
// 1..L-1. All sums are float64 over the whole set.
#ifndef SAELAB_EVAL_DOWNSTREAM_H_
#define SAELAB_EVAL_DOWNSTREAM_H_

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "eval/eval_config.pb.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

struct DownstreamMetrics {
  int64_t loss_tokens = 0;         // next-token predictions scored
  int64_t activation_tokens = 0;   // activation rows measured
  double ce_clean = 0;             // nats/token, the model as it is
  double ce_spliced = 0;           // the SAE's reconstruction at the hook
  double ce_zero_ablation = 0;     // the hook's activation set to 0
  double ce_mean_ablation = 0;     // set to the given mean activation
  double delta_loss = 0;           // ce_spliced - ce_clean
  double loss_recovered = 0;       // (ce_zero - ce_spliced) / (ce_zero - ce_clean)
  double kl_mean = 0, kl_max = 0;  // KL(clean || spliced) over positions, nats
  double explained_variance = 0;   // 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2
  double cosine_similarity = 0;    // mean over tokens of cos(x, x_hat)
  double l2_ratio = 0;             // mean over tokens of ||x_hat|| / ||x||
  double l0 = 0;                   // mean non-zero latents per token
  double l1 = 0;                   // mean sum_i |f_i| per token
  double dead_fraction = 0;        // latents that never fired on these tokens
  double dense_fraction = 0;       // latents firing on > dense_threshold of tokens

  // Writes every field above into result->metrics under its own name
  // (loss_tokens as downstream_tokens).
  void WriteTo(SaeResult* result) const;
};

// contexts: [N, L] int64, each starting with BOS, L >= 3. mean_activation:
// [d_in] float32, the hook's mean activation (for mean ablation). Runs four
// forwards per batch of config.batch_contexts() contexts (first
// config.eval_contexts() contexts; -1: all). Errors: InvalidArgument for an
// unknown hook_name, an SAE whose d_in is not the hook's width, contexts
// that are not [N >= 1, L >= 3] int64, a mean of the wrong shape, or
// batch_contexts < 1; errors from the model's forward.
//
// A transcoder (sae.is_transcoder()) reads at input_hook_name and stands in
// for what produces hook_name (eval/splice.h SpliceTranscoder): ce_spliced
// is the loss with hook_name's activation replaced by Reconstruct(input),
// the ablations and mean_activation are of hook_name's activation, and the
// reconstruction statistics compare that activation (the target) with the
// transcoder's estimate. input_hook_name must be set for a transcoder and
// empty otherwise (InvalidArgument).
absl::StatusOr<DownstreamMetrics> EvaluateDownstream(const Gpt2Model& model,
                                                     const std::string& hook_name, Sae& sae,
                                                     const torch::Tensor& contexts,
                                                     const torch::Tensor& mean_activation,
                                                     const DownstreamEvalConfig& config,
                                                     const std::string& input_hook_name = "");

}  // namespace saelab

#endif  // SAELAB_EVAL_DOWNSTREAM_H_
