#include "eval/probing.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "eval/linear_probe.h"
#include "harness/seed.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

std::vector<int> SparseKs(const ProbeEvalConfig& config) {
  std::vector<int> ks(config.sparse_k().begin(), config.sparse_k().end());
  if (ks.empty()) ks = {1, 2, 5, 10, 20};
  return ks;
}

double BinaryEntropy(const torch::Tensor& labels) {
  const double p = labels.to(torch::kFloat64).mean().item<double>();
  if (p <= 0 || p >= 1) return 0;
  return -p * std::log(p) - (1 - p) * std::log(1 - p);
}

absl::Status CheckBinary(const ProbeDataset& task, int64_t d_in) {
  if (task.class_names.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("probe task ", task.name, " has ",
                                                   task.class_names.size(),
                                                   " classes; probing needs a binary task"));
  }
  for (const auto* split : {&task.train, &task.test}) {
    const char* name = split == &task.train ? "train" : "test";
    if (split->examples() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("probe task ", task.name, ": the ", name, " split is empty"));
    }
    const int64_t positives = split->labels.sum().item<int64_t>();
    if (positives == 0 || positives == split->examples()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "probe task ", task.name, ": the ", name, " split has one class only (all ",
          split->examples(), " examples are \"", task.class_names[positives == 0 ? 0 : 1],
          "\"); a probe needs both"));
    }
  }
  return CheckRowsWidth(task, d_in, "probe");
}

}  // namespace

torch::Tensor EncodePooled(Sae& sae, const ProbeDataset::Split& split, int64_t batch_rows) {
  torch::NoGradGuard no_grad;
  const int64_t n = split.examples(), rows = split.rows.size(0);
  torch::Tensor sums = torch::zeros({n, sae.n_latents()}, torch::kFloat32);
  for (int64_t begin = 0; begin < rows; begin += batch_rows) {
    const int64_t end = std::min(rows, begin + batch_rows);
    sums.index_add_(0, split.example_of_row.slice(0, begin, end),
                    sae.Encode(split.rows.slice(0, begin, end)));
  }
  const torch::Tensor counts =
      torch::bincount(split.example_of_row, {}, n).to(torch::kFloat32).unsqueeze(1);
  return sums / counts;
}

absl::StatusOr<ProbeTaskScores> EvaluateProbeTask(Sae& sae, const ProbeDataset& task,
                                                  const ProbeEvalConfig& config, uint64_t seed) {
  RETURN_IF_ERROR(CheckBinary(task, sae.d_in()));
  torch::NoGradGuard no_grad;
  ProbeTaskScores scores;
  scores.task = task.name;
  scores.description = task.description;
  scores.pooled = task.pooled;
  scores.train_examples = task.train.examples();
  scores.test_examples = task.test.examples();
  scores.class_entropy = BinaryEntropy(task.test.labels);
  const torch::Tensor& y_train = task.train.labels;
  const torch::Tensor& y_test = task.test.labels;

  // Probe loss: every latent's 1-D probe.
  const torch::Tensor f_train = EncodePooled(sae, task.train);
  const torch::Tensor f_test = EncodePooled(sae, task.test);
  const PerLatentProbes probes = FitPerLatentProbes(f_train, y_train, f_test, y_test);
  scores.best_latent = probes.test_cross_entropy.argmin().item<int64_t>();
  scores.probe_loss = probes.test_cross_entropy[scores.best_latent].item<double>();
  scores.best_latent_accuracy = probes.test_accuracy[scores.best_latent].item<double>();

  // k-sparse probes on the latents with the largest mean difference.
  const torch::Tensor positive = y_train == 1;
  const torch::Tensor difference =
      (f_train.index({positive}).to(torch::kFloat64).mean(0) -
       f_train.index({positive.logical_not()}).to(torch::kFloat64).mean(0))
          .abs();
  // Ties (e.g. dead latents) broken by latent id: a stable descending sort.
  const torch::Tensor ranked = std::get<1>(difference.sort(/*stable=*/true, 0, /*descending=*/true));
  LogisticOptions options;
  options.c = config.probe_c();
  for (int k : SparseKs(config)) {
    if (k < 1 || k > sae.n_latents()) continue;
    const torch::Tensor chosen = ranked.slice(0, 0, k);
    ASSIGN_OR_RETURN(LinearClassifier probe,
                     FitLogisticRegression(f_train.index_select(1, chosen), y_train, options));
    const ClassifierScores s =
        ScoreBinary(probe.DecisionValues(f_test.index_select(1, chosen)), y_test);
    ProbeTaskScores::Sparse sparse;
    sparse.k = k;
    sparse.accuracy = s.accuracy;
    sparse.auc = s.auc;
    sparse.latents.assign(chosen.data_ptr<int64_t>(), chosen.data_ptr<int64_t>() + k);
    scores.sparse.push_back(std::move(sparse));
  }

  // The dense ceiling and the random baseline, on the raw activation.
  const torch::Tensor x_train = PoolByExample(task.train.rows, task.train);
  const torch::Tensor x_test = PoolByExample(task.test.rows, task.test);
  ASSIGN_OR_RETURN(LinearClassifier dense, FitLogisticRegression(x_train, y_train, options));
  const ClassifierScores d = ScoreBinary(dense.DecisionValues(x_test), y_test);
  scores.dense_accuracy = d.accuracy;
  scores.dense_auc = d.auc;
  const int directions = std::max(1, config.random_directions());
  auto generator = at::make_generator<at::CPUGeneratorImpl>(DeriveSeed(seed, "random_directions"));
  torch::Tensor u = torch::randn({sae.d_in(), directions}, generator, torch::kFloat32);
  u = u / u.norm(2, 0, /*keepdim=*/true);
  const PerLatentProbes random = FitPerLatentProbes(torch::matmul(x_train, u), y_train,
                                                    torch::matmul(x_test, u), y_test);
  scores.random_direction_accuracy = random.test_accuracy.mean().item<double>();
  scores.random_direction_loss = random.test_cross_entropy.mean().item<double>();
  return scores;
}

absl::StatusOr<std::vector<ProbeTaskScores>> EvaluateProbes(Sae& sae,
                                                            const std::vector<ProbeDataset>& tasks,
                                                            const ProbeEvalConfig& config,
                                                            uint64_t seed) {
  std::vector<ProbeTaskScores> out;
  for (const ProbeDataset& task : tasks) {
    ASSIGN_OR_RETURN(ProbeTaskScores scores,
                     EvaluateProbeTask(sae, task, config, DeriveSeed(seed, task.name)));
    out.push_back(std::move(scores));
  }
  return out;
}

void WriteProbeResults(const std::vector<ProbeTaskScores>& scores, SaeResult* result) {
  if (scores.empty()) return;
  double loss = 0, top1 = 0, top5 = 0, dense = 0;
  int top1_n = 0, top5_n = 0;
  for (const ProbeTaskScores& s : scores) {
    ProbeTaskResult* r = result->add_probes();
    r->set_task(s.task);
    r->set_description(s.description);
    r->set_pooled(s.pooled);
    r->set_train_examples(s.train_examples);
    r->set_test_examples(s.test_examples);
    r->set_class_entropy(s.class_entropy);
    r->set_probe_loss(s.probe_loss);
    r->set_best_latent(s.best_latent);
    r->set_best_latent_accuracy(s.best_latent_accuracy);
    for (const ProbeTaskScores::Sparse& sparse : s.sparse) {
      SparseProbeResult* p = r->add_sparse();
      p->set_k(sparse.k);
      p->set_accuracy(sparse.accuracy);
      p->set_auc(sparse.auc);
      for (int64_t latent : sparse.latents) p->add_latents(latent);
      if (sparse.k == 1) top1 += sparse.accuracy, ++top1_n;
      if (sparse.k == 5) top5 += sparse.accuracy, ++top5_n;
    }
    r->set_dense_accuracy(s.dense_accuracy);
    r->set_dense_auc(s.dense_auc);
    r->set_random_direction_accuracy(s.random_direction_accuracy);
    r->set_random_direction_loss(s.random_direction_loss);
    loss += s.probe_loss;
    dense += s.dense_accuracy;
  }
  auto& metrics = *result->mutable_metrics();
  const double n = static_cast<double>(scores.size());
  metrics["probe_loss"] = loss / n;
  metrics["dense_probe_accuracy"] = dense / n;
  if (top1_n > 0) metrics["sparse_probe_top1_accuracy"] = top1 / top1_n;
  if (top5_n > 0) metrics["sparse_probe_top5_accuracy"] = top5 / top5_n;
}

}  // namespace saelab
