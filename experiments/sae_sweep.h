// The part every SAE experiment shares: expand a SaeSweep into SAE configs,
// train (or load) each one for each seed on an ActivationSource, evaluate it
// on a held-out activation set with eval/reconstruction, and summarise
// seeds into groups with 95% intervals.
//
//   RETURN_IF_ERROR(RunSweeps(config.sweeps(), source, eval_set, config.reconstruction_eval(),
//   run_dir, {"nmse"}, &seeds,
//                             &result, [&](TrainedSae& trained) {
//     (*trained.result->mutable_metrics())["my_metric"] = ...;
//   }));
#ifndef SAELAB_EXPERIMENTS_SAE_SWEEP_H_
#define SAELAB_EXPERIMENTS_SAE_SWEEP_H_

#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "eval/eval_config.pb.h"
#include "experiments/experiment_config.pb.h"
#include "harness/result.pb.h"
#include "harness/seed.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"
#include "sae/trainer.h"

namespace saelab {

// One SAE config of a sweep before seeds: a fixed knob or a target L0.
struct SweepPoint {
  SaeConfig config;      // named "<base>[_<field>_<value>...]_<knob>" or "..._l0_<target>"
  double target_l0 = 0;  // > 0: matched-L0 search
  // > 0: trained at the knob an earlier seed's search found for this
  // target L0 (SaeSweep.search_every_seed false); recorded as the
  // SAE's target_l0.
  double matched_target_l0 = 0;
  // The grid's value of each swept field path, recorded as hyperparameters.
  std::map<std::string, double> grid_values;
};

// The product of the grid's axes (in order), each cell with one point per
// sparsity value and per target L0, or alone if the sweep lists neither.
// InvalidArgument for a base without name or architecture, seeds < 1, or a
// grid axis that is empty or names no numeric field (harness/proto_path.h).
absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(const SaeSweep& sweep);

struct TrainedSae {
  std::unique_ptr<Sae> sae;
  // The entry appended to result->saes (metrics, hyperparameters, timings);
  // owned by the result.
  SaeResult* result = nullptr;
  bool loaded_from_disk = false;
};

// Trains (resumably, under <run_dir>/saes/<name>/) or loads the SAE of
// `point` for seed `seed_index`, evaluates it on `eval_set` ([N, d_in]
// float32, model units), and appends its SaeResult with the reconstruction
// metrics (mse, nmse, fvu, explained variance, l0, dead fraction, density
// histogram), hyperparameters, train tokens and wall times.
// With `trained` (not null; a point without a target L0), the SAE trained
// already (by TrainSaes, see RunSweeps) is taken from it instead.
// --shard_latents (the experiment binaries' flag): in a data-parallel job,
// plain TopK SAEs (not transcoders, no Multi-TopK) split their latents over
// the ranks instead of the batch (sae/latent_sharding.h). Process-wide, set
// once by main.
void SetShardLatents(bool shard);
bool ShardLatents();

// TrainSae(config, source, seed, options), or, with ShardLatents() in a
// data-parallel job and a plain TopK config, its latent-sharded training:
// each rank checkpoints its shard in rank 0's <options.dir>/shard_states
// (so a killed run resumes there, on as many ranks), rank 0 assembles the
// SAE, saves it at options.dir and removes the shard states, and every rank
// gets the SAE (broadcast), as data-parallel training leaves it. A saved
// SAE at rank 0's options.dir is loaded, as TrainSae does. The result has
// no training curve (the sharded loop keeps none) and last_terms["loss"].
absl::StatusOr<TrainResult> TrainSaeOrShards(const SaeConfig& config, ActivationSource& source,
                                             uint64_t seed, const TrainOptions& options);

absl::StatusOr<TrainedSae> TrainAndEvaluate(const SweepPoint& point, const SaeSweep& sweep,
                                            int seed_index, ActivationSource& source,
                                            const torch::Tensor& eval_set,
                                            const ReconstructionEvalConfig& eval_config,
                                            const std::string& run_dir, SeedTree* seeds,
                                            ExperimentResult* result,
                                            TrainResult* trained = nullptr);

// The training job of `point` for seed `seed_index`: its config named
// "<point>[_s<seed_index>]", its derived seed and its directory
// <run_dir>/saes/<name> (what TrainAndEvaluate trains).
TrainJob SweepTrainJob(const SweepPoint& point, const SaeSweep& sweep, int seed_index,
                       const std::string& run_dir, SeedTree* seeds);

// Fills result->groups: each group's metrics summarised over its seeds
// (SaeResult.group; an SAE without a group is its own group).
void SummarizeGroups(ExperimentResult* result);

// Appends, per sweep, one series "<sweep>: <metric> vs l0" for each metric:
// group means with their 95% intervals. `sweep_groups` is (sweep name,
// group names in order). Needs SummarizeGroups first.
void AddSweepSeries(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& sweep_groups,
    const std::vector<std::string>& metrics, ExperimentResult* result);

// Every SAE of `sweeps` (each point, each seed), in order, through
// TrainAndEvaluate; `after_each` (may be empty) adds experiment-specific
// metrics to each. Then SummarizeGroups and, per sweep, AddSweepSeries for
// `series_metrics`. With `train_together`, every SAE without a matched-L0
// search (of every sweep and seed) is first trained in one TrainSaes loop
// over the stream, each batch read once (the same weights as training them
// one by one); their train_wall_seconds is then the joint loop's.
absl::Status RunSweeps(const google::protobuf::RepeatedPtrField<SaeSweep>& sweeps,
                       ActivationSource& source, const torch::Tensor& eval_set,
                       const ReconstructionEvalConfig& eval_config, const std::string& run_dir,
                       const std::vector<std::string>& series_metrics, SeedTree* seeds,
                       ExperimentResult* result,
                       const std::function<void(TrainedSae&)>& after_each = {},
                       bool train_together = false);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SAE_SWEEP_H_
