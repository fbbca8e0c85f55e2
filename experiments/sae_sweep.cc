#include "experiments/sae_sweep.h"

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "eval/reconstruction.h"
#include "harness/distributed.h"
#include "harness/log.h"
#include "harness/proto_path.h"
#include "harness/provenance.h"
#include "harness/statistics.h"
#include "harness/status_macros.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/latent_sharding.h"
#include "sae/matched_l0.h"
#include "sae/metrics.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

// The hyperparameter the sparsity knob is recorded under. JumpReLU's target
// is recorded under its field path: "target_l0" is the matched-L0 search's
// target, which the knob can differ from (the search corrects the target).
const char* KnobHyperparameter(const SaeConfig& config) {
  if (SparsityKnobIsTargetL0(config)) return "jumprelu.target.l0";
  return SparsityKnobIsK(config) ? "k" : "sparsity_coefficient";
}

std::string KnobLabel(const SaeConfig& config, double value) {
  if (SparsityKnobIsTargetL0(config)) return absl::StrFormat("target%g", value);
  return SparsityKnobIsK(config) ? absl::StrCat("k", std::llround(value))
                                 : absl::StrFormat("l1_%g", value);
}

}  // namespace

absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(const SaeSweep& sweep) {
  const SaeConfig& base = sweep.base();
  if (base.architecture_case() == SaeConfig::ARCHITECTURE_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep '", base.name(), "': base has no architecture"));
  }
  if (base.name().empty()) return absl::InvalidArgumentError("a sweep's base has no name");
  if (sweep.seeds() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep '", base.name(), "': seeds must be >= 1"));
  }
  // The grid's product first, each cell a base for the sparsity values.
  std::vector<SweepPoint> cells = {SweepPoint{base, 0, {}}};
  for (const FieldValues& axis : sweep.grid()) {
    if (axis.values().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sweep '", base.name(), "': grid field '",
                                                     axis.field(), "' lists no values"));
    }
    const std::string leaf = axis.field().substr(axis.field().rfind('.') + 1);
    std::vector<SweepPoint> next;
    for (const SweepPoint& cell : cells) {
      for (double value : axis.values()) {
        SweepPoint point = cell;
        absl::Status set = SetNumericField(&point.config, axis.field(), value);
        if (!set.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("sweep '", base.name(), "': ", set.message()));
        }
        // %g writes 1e+06; '+' is not allowed in an SAE name.
        point.config.set_name(
            absl::StrCat(point.config.name(), "_", leaf, "_",
                         absl::StrReplaceAll(absl::StrFormat("%g", value), {{"+", ""}})));
        point.grid_values[axis.field()] = value;
        next.push_back(point);
      }
    }
    cells = std::move(next);
  }
  std::vector<SweepPoint> points;
  for (const SweepPoint& cell : cells) {
    for (double value : sweep.sparsity()) {
      // k is a count: 2.5 would silently become 3.
      if (SparsityKnobIsK(base) && !SparsityKnobIsTargetL0(base) &&
          (value != std::floor(value) || value < 1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sweep '", base.name(), "': sparsity value ", value,
            " is not a valid k (a positive integer) for architecture ", ArchitectureName(base)));
      }
      SweepPoint point = cell;
      SetSparsityKnob(&point.config, value);
      point.config.set_name(absl::StrCat(cell.config.name(), "_", KnobLabel(base, value)));
      points.push_back(point);
    }
    for (double target : sweep.target_l0()) {
      SweepPoint point = cell;
      point.config.set_name(absl::StrFormat("%s_l0_%g", cell.config.name(), target));
      point.target_l0 = target;
      points.push_back(point);
    }
    if (sweep.sparsity().empty() && sweep.target_l0().empty()) points.push_back(cell);
  }
  return points;
}

namespace {

void FillHyperparameters(const SaeConfig& resolved, const SweepPoint& point, SaeResult* result) {
  auto& hyper = *result->mutable_hyperparameters();
  for (const auto& [field, value] : point.grid_values) hyper[field] = value;
  if (point.target_l0 > 0) hyper["target_l0"] = point.target_l0;
  if (point.matched_target_l0 > 0) hyper["target_l0"] = point.matched_target_l0;
  hyper["n_latents"] = resolved.n_latents();
  hyper["lr"] = resolved.trainer().lr();
  hyper["batch_size"] = resolved.trainer().batch_size();
  hyper["total_tokens"] = resolved.trainer().total_tokens();
  hyper[KnobHyperparameter(resolved)] = SparsityKnob(resolved);
}

// The SAE's name for seed `seed_index`: the point's, with "_s<i>" when the
// sweep has several seeds.
std::string SweepSaeName(const SweepPoint& point, const SaeSweep& sweep, int seed_index) {
  return sweep.seeds() > 1 ? absl::StrCat(point.config.name(), "_s", seed_index)
                           : point.config.name();
}

}  // namespace

namespace {
bool shard_latents = false;
}  // namespace

void SetShardLatents(bool shard) { shard_latents = shard; }
bool ShardLatents() { return shard_latents; }

absl::StatusOr<TrainResult> TrainSaeOrShards(const SaeConfig& config, ActivationSource& source,
                                             uint64_t seed, const TrainOptions& options) {
  Communicator* comm =
      options.communicator != nullptr ? options.communicator : ProcessCommunicator();
  const bool plain_topk =
      config.has_topk() && !config.has_transcoder() && config.topk().multi_topk_factor() == 0;
  if (!ShardLatents() || comm == nullptr || !plain_topk || options.dir.empty()) {
    return TrainSae(config, source, seed, options);
  }
  // Rank 0's directory holds the SAE and every rank's shard states.
  ASSIGN_OR_RETURN(const std::string dir, comm->BroadcastString(options.dir));
  ASSIGN_OR_RETURN(const std::string saved,
                   comm->BroadcastString(comm->rank() == 0 && HasSavedSae(dir) ? "1" : "0"));
  if (saved == "1") return TrainSae(config, source, seed, options);
  PhaseClock clock;
  Log("%s: latents split over %d ranks", config.name().c_str(), comm->world_size());
  ASSIGN_OR_RETURN(SavedShardedTraining sharded,
                   TrainLatentShardedTopKAndSave(config, source, seed, *comm, dir));
  // Every rank continues the experiment with the SAE, as after data-parallel
  // training: rank 0's, broadcast.
  std::unique_ptr<Sae> gathered = std::move(sharded.sae);
  if (gathered == nullptr) {
    ASSIGN_OR_RETURN(gathered, CreateSae(sharded.trained.config, source.d_in(), /*seed=*/0));
  }
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> tensors;
    for (const auto& [name, tensor] : gathered->NamedTensors()) tensors.push_back(tensor);
    RETURN_IF_ERROR(comm->Broadcast(tensors));
  }
  gathered->set_input_scale(sharded.trained.input_scale);
  TrainResult trained;
  trained.config = sharded.trained.config;
  trained.sae = std::move(gathered);
  trained.steps = sharded.trained.steps;
  trained.finished = true;
  trained.last_terms["loss"] = sharded.trained.last_loss;
  trained.wall_seconds = clock.Seconds();
  return trained;
}

TrainJob SweepTrainJob(const SweepPoint& point, const SaeSweep& sweep, int seed_index,
                       const std::string& run_dir, SeedTree* seeds) {
  TrainJob job;
  job.config = point.config;
  job.config.set_name(SweepSaeName(point, sweep, seed_index));
  job.seed = seeds->Derive(absl::StrCat("sae/", job.config.name()));
  job.options.dir = absl::StrCat(run_dir, "/saes/", job.config.name());
  return job;
}

absl::StatusOr<TrainedSae> TrainAndEvaluate(const SweepPoint& point, const SaeSweep& sweep,
                                            int seed_index, ActivationSource& source,
                                            const torch::Tensor& eval_set,
                                            const ReconstructionEvalConfig& eval_config,
                                            const std::string& run_dir, SeedTree* seeds,
                                            ExperimentResult* result, TrainResult* pretrained) {
  const TrainJob job = SweepTrainJob(point, sweep, seed_index, run_dir, seeds);
  const SaeConfig& config = job.config;
  const std::string group = point.config.name();
  const uint64_t seed = job.seed;
  const std::string& dir = job.options.dir;
  Provenance* provenance = result->mutable_provenance();

  SaeResult* sae_result = result->add_saes();
  TrainResult trained;
  std::string checkpoint = absl::StrCat("saes/", config.name());
  if (pretrained != nullptr) {
    trained = std::move(*pretrained);
    if (point.matched_target_l0 > 0) sae_result->set_target_l0(point.matched_target_l0);
  } else if (point.target_l0 > 0) {
    MatchedL0Search search = sweep.matched_l0();
    ASSIGN_OR_RETURN(MatchedL0Result matched,
                     TrainAtTargetL0(config, point.target_l0, search, source, eval_set, seed, dir));
    trained = std::move(matched.trained);
    sae_result->set_target_l0(point.target_l0);
    for (const L0SearchStep& step : matched.path) *sae_result->add_l0_search() = step;
    checkpoint = matched.dir.substr(run_dir.size() + 1);
  } else {
    ASSIGN_OR_RETURN(trained, TrainSaeOrShards(config, source, seed, job.options));
    if (point.matched_target_l0 > 0) sae_result->set_target_l0(point.matched_target_l0);
  }
  RecordPhase(absl::StrCat("train/", config.name()), trained.wall_seconds, provenance);

  PhaseClock eval_clock;
  Sae& sae = *trained.sae;
  ASSIGN_OR_RETURN(ReconstructionMetrics metrics,
                   EvaluateReconstruction(sae, eval_set, eval_config));
  sae_result->set_name(config.name());
  sae_result->set_group(group);
  sae_result->set_seed_index(seed_index);
  sae_result->set_architecture(sae.architecture());
  sae_result->set_seed(seed);
  metrics.WriteTo(sae_result);
  FillHyperparameters(trained.config, point, sae_result);
  sae_result->set_sweep(sweep.base().name());
  sae_result->set_train_tokens(trained.config.trainer().total_tokens() /
                               trained.config.trainer().batch_size() *
                               trained.config.trainer().batch_size());
  sae_result->set_train_wall_seconds(trained.wall_seconds);
  // Training compute, as Gao et al. count it: 6 flops per parameter of the
  // encoder and decoder matrices per token (forward 2, backward 4).
  (*sae_result->mutable_metrics())["train_flops"] = 6.0 * static_cast<double>(eval_set.size(1)) *
                                                    static_cast<double>(sae.n_latents()) *
                                                    static_cast<double>(sae_result->train_tokens());
  sae_result->set_checkpoint(checkpoint);
  for (const TrainingCurvePoint& point : trained.curve) {
    TrainingCurveSample* out = sae_result->add_training_curve();
    out->set_tokens(point.tokens);
    out->set_loss(point.loss);
    out->set_dead_fraction(point.dead_fraction);
  }
  RecordPhase(absl::StrCat("eval/", config.name()), eval_clock.Seconds(), provenance);
  Log("%-28s l0 %7.3f  nmse %.4f  fvu %.4f  dead %.3f%s", config.name().c_str(), metrics.L0(),
      metrics.Nmse(), metrics.Fvu(), metrics.DeadFraction(),
      trained.loaded_from_disk ? "  (loaded)" : "");
  TrainedSae out;
  out.sae = std::move(trained.sae);
  out.result = sae_result;
  out.loaded_from_disk = trained.loaded_from_disk;
  return out;
}

void SummarizeGroups(ExperimentResult* result) {
  std::map<std::string, std::vector<const SaeResult*>> groups;
  std::vector<std::string> order;
  for (const SaeResult& sae : result->saes()) {
    std::string group = sae.group().empty() ? sae.name() : sae.group();
    if (groups[group].empty()) order.push_back(group);
    groups[group].push_back(&sae);
  }
  result->clear_groups();
  for (const std::string& name : order) {
    const auto& members = groups[name];
    SaeGroupSummary* summary = result->add_groups();
    summary->set_group(name);
    summary->set_architecture(members.front()->architecture());
    summary->set_sweep(members.front()->sweep());
    summary->set_hook_name(members.front()->hook_name());
    std::map<std::string, std::vector<double>> values;
    std::map<std::string, std::vector<double>> hypers;
    for (const SaeResult* sae : members) {
      for (const auto& [metric, value] : sae->metrics()) values[metric].push_back(value);
      for (const auto& [key, value] : sae->hyperparameters()) hypers[key].push_back(value);
    }
    for (const auto& [metric, list] : values)
      (*summary->mutable_metrics())[metric] = Summarize(list);
    // Matched-L0 searches may pick different knobs per seed: report the mean.
    for (const auto& [key, list] : hypers) {
      (*summary->mutable_hyperparameters())[key] = Summarize(list).mean();
    }
  }
}

void AddSweepSeries(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& sweep_groups,
    const std::vector<std::string>& metrics, ExperimentResult* result) {
  std::map<std::string, const SaeGroupSummary*> by_group;
  for (const SaeGroupSummary& g : result->groups()) by_group[g.group()] = &g;
  for (const auto& [sweep_name, groups] : sweep_groups) {
    for (const std::string& metric : metrics) {
      Series series;
      series.set_name(absl::StrCat(sweep_name, ": ", metric, " vs l0"));
      series.set_x_label("l0");
      series.set_y_label(metric);
      for (const std::string& group : groups) {
        const SaeGroupSummary& g = *by_group.at(group);
        // A metric an experiment did not measure (delta_loss with the
        // downstream evaluation off) has no series.
        auto y = g.metrics().find(metric);
        auto l0 = g.metrics().find("l0");
        if (y == g.metrics().end() || l0 == g.metrics().end()) continue;
        series.add_x(l0->second.mean());
        series.add_y(y->second.mean());
        series.add_y_low(y->second.ci95_low());
        series.add_y_high(y->second.ci95_high());
      }
      if (series.x_size() > 0) *result->add_series() = std::move(series);
    }
  }
}

absl::Status RunSweeps(const google::protobuf::RepeatedPtrField<SaeSweep>& sweeps,
                       ActivationSource& source, const torch::Tensor& eval_set,
                       const ReconstructionEvalConfig& eval_config, const std::string& run_dir,
                       const std::vector<std::string>& series_metrics, SeedTree* seeds,
                       ExperimentResult* result, const std::function<void(TrainedSae&)>& after_each,
                       bool train_together) {
  // With train_together: every SAE without a search, trained in one loop.
  std::map<std::string, TrainResult> together;
  // Latent-sharded SAEs train one at a time (each over every rank).
  if (train_together && !ShardLatents()) {
    std::vector<TrainJob> jobs;
    for (const SaeSweep& sweep : sweeps) {
      ASSIGN_OR_RETURN(std::vector<SweepPoint> points, ExpandSweep(sweep));
      for (const SweepPoint& point : points) {
        if (point.target_l0 > 0) continue;
        for (int s = 0; s < sweep.seeds(); ++s) {
          jobs.push_back(SweepTrainJob(point, sweep, s, run_dir, seeds));
        }
      }
    }
    if (!jobs.empty()) {
      PhaseClock clock;
      Log("training %zu SAEs together, each batch read once", jobs.size());
      ASSIGN_OR_RETURN(std::vector<TrainResult> trained, TrainSaes(jobs, source));
      for (size_t i = 0; i < jobs.size(); ++i) {
        together[jobs[i].config.name()] = std::move(trained[i]);
      }
      RecordPhase("train_together", clock.Seconds(), result->mutable_provenance());
    }
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> sweep_groups;
  for (const SaeSweep& sweep : sweeps) {
    ASSIGN_OR_RETURN(std::vector<SweepPoint> points, ExpandSweep(sweep));
    std::vector<std::string> groups;
    for (const SweepPoint& point : points) {
      groups.push_back(point.config.name());
      SweepPoint seed_point = point;
      for (int s = 0; s < sweep.seeds(); ++s) {
        TrainResult* pretrained = nullptr;
        if (seed_point.target_l0 <= 0) {
          auto it = together.find(SweepSaeName(seed_point, sweep, s));
          if (it != together.end()) pretrained = &it->second;
        }
        ASSIGN_OR_RETURN(TrainedSae trained,
                         TrainAndEvaluate(seed_point, sweep, s, source, eval_set, eval_config,
                                          run_dir, seeds, result, pretrained));
        if (s == 0 && point.target_l0 > 0 && !sweep.search_every_seed()) {
          // The other seeds train at the knob this seed's search found.
          SetSparsityKnob(&seed_point.config,
                          trained.result->hyperparameters().at(KnobHyperparameter(point.config)));
          seed_point.target_l0 = 0;
          seed_point.matched_target_l0 = point.target_l0;
        }
        if (after_each) after_each(trained);
      }
    }
    sweep_groups.emplace_back(sweep.base().name(), groups);
  }
  SummarizeGroups(result);
  AddSweepSeries(sweep_groups, series_metrics, result);
  return absl::OkStatus();
}

}  // namespace saelab
