// Probe loss (Gao et al.) and sparse probing (SAEBench): how well single SAE
// latents, and the k best of them, predict real labels, next to what a dense
// probe on the raw activation and a random direction achieve.
//
//   ASSIGN_OR_RETURN(auto tasks, BuildProbeDatasets(model, tokenizer, hook, config, seed));
//   ASSIGN_OR_RETURN(std::vector<ProbeTaskScores> scores,
//                    EvaluateProbes(sae, tasks, config, seeds.Derive("eval/probes")));
//   WriteProbeResults(scores, sae_result);   // typed results + probe_loss, sparse_probe_*
//
// Per task (binary; eval/probe_data.h builds them), on the SAE's latents
// (document-level tasks: the mean of the latents over the context's tokens):
//  - probe loss: a 1-D logistic probe per latent, fitted on train; the
//    smallest held-out cross-entropy over latents (nats), and that latent;
//  - k-sparse probes: the k latents with the largest |mean(positive) -
//    mean(negative)| on train, an L2 logistic probe on them; held-out
//    accuracy and AUC, for each k;
//  - the dense L2 probe on the raw activation (pooled the same way): the
//    ceiling a linear reader of the activation reaches;
//  - a random-direction baseline: 1-D probes on projections onto random unit
//    directions of the activation, averaged.
#ifndef SAELAB_EVAL_PROBING_H_
#define SAELAB_EVAL_PROBING_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/eval_config.pb.h"
#include "eval/probe_data.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

// SAE latents of a split's rows, pooled per example: [N, n_latents] float32.
// Encodes `batch_rows` rows at a time so pooled sets never hold [R, n].
torch::Tensor EncodePooled(Sae& sae, const ProbeDataset::Split& split, int64_t batch_rows = 8192);

struct ProbeTaskScores {
  std::string task, description;
  bool pooled = false;
  int64_t train_examples = 0, test_examples = 0;
  double class_entropy = 0;  // entropy of the test labels (a constant probe's loss), nats
  double probe_loss = 0;     // min over latents of the 1-D probe's test cross-entropy
  int64_t best_latent = -1;
  double best_latent_accuracy = 0;
  struct Sparse {
    int k = 0;
    double accuracy = 0, auc = 0;
    std::vector<int64_t> latents;  // by decreasing |mean difference|
  };
  std::vector<Sparse> sparse;
  double dense_accuracy = 0, dense_auc = 0;
  double random_direction_accuracy = 0, random_direction_loss = 0;
};

// One binary task. InvalidArgument if the task is not binary or a split
// lacks a class (naming the task), or the rows' width is not sae.d_in().
absl::StatusOr<ProbeTaskScores> EvaluateProbeTask(Sae& sae, const ProbeDataset& task,
                                                  const ProbeEvalConfig& config, uint64_t seed);

// Every task, seeds derived from `seed` and the task name.
absl::StatusOr<std::vector<ProbeTaskScores>> EvaluateProbes(Sae& sae,
                                                            const std::vector<ProbeDataset>& tasks,
                                                            const ProbeEvalConfig& config,
                                                            uint64_t seed);

// Appends one ProbeTaskResult per task to result->probes and sets the
// scalars regression gates read: probe_loss (mean over tasks), and
// sparse_probe_top1_accuracy, sparse_probe_top5_accuracy,
// dense_probe_accuracy (means over tasks; top-5 when k = 5 was run).
void WriteProbeResults(const std::vector<ProbeTaskScores>& scores, SaeResult* result);

}  // namespace saelab

#endif  // SAELAB_EVAL_PROBING_H_
