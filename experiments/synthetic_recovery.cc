#include "experiments/synthetic_recovery.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/synthetic_features.h"
#include "harness/provenance.h"
#include "harness/sha256.h"
#include "harness/statistics.h"
#include "harness/status_macros.h"
#include "sae/factory.h"
#include "sae/matched_l0.h"
#include "sae/metrics.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

constexpr int64_t kEvalBatch = 4096;

// One SAE config of a sweep before seeds: a fixed knob or a target L0.
struct SweepPoint {
  SaeConfig config;  // named "<base>_<knob>" or "<base>_l0_<target>"
  double target_l0 = 0;  // > 0: matched-L0 search
};

std::string KnobLabel(const SaeConfig& config, double value) {
  return SparsityKnobIsK(config) ? absl::StrCat("k", std::llround(value))
                                 : absl::StrFormat("l1_%g", value);
}

absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(const SaeSweep& sweep) {
  const SaeConfig& base = sweep.base();
  if (base.architecture_case() == SaeConfig::ARCHITECTURE_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep '", base.name(), "': base has no architecture"));
  }
  if (base.name().empty()) return absl::InvalidArgumentError("a sweep's base has no name");
  if (sweep.seeds() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("sweep '", base.name(), "': seeds must be >= 1"));
  }
  std::vector<SweepPoint> points;
  for (double value : sweep.sparsity()) {
    SweepPoint point;
    point.config = base;
    SetSparsityKnob(&point.config, value);
    point.config.set_name(absl::StrCat(base.name(), "_", KnobLabel(base, value)));
    points.push_back(point);
  }
  for (double target : sweep.target_l0()) {
    SweepPoint point;
    point.config = base;
    point.config.set_name(absl::StrFormat("%s_l0_%g", base.name(), target));
    point.target_l0 = target;
    points.push_back(point);
  }
  if (points.empty()) points.push_back(SweepPoint{base, 0});
  return points;
}

std::string DataHash(const SyntheticFeatureSource& source) {
  // The generated ground truth and eval set identify the data exactly.
  auto bytes = [](const torch::Tensor& t) {
    torch::Tensor c = t.contiguous();
    return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  };
  return Sha256Hex(absl::StrCat(bytes(source.features()), bytes(source.firing_probabilities()),
                                bytes(source.EvalSet())));
}

void FillHyperparameters(const SaeConfig& resolved, SaeResult* result) {
  auto& hyper = *result->mutable_hyperparameters();
  hyper["n_latents"] = resolved.n_latents();
  hyper["lr"] = resolved.trainer().lr();
  hyper["batch_size"] = resolved.trainer().batch_size();
  hyper["total_tokens"] = resolved.trainer().total_tokens();
  hyper[SparsityKnobIsK(resolved) ? "k" : "sparsity_coefficient"] = SparsityKnob(resolved);
}

// Trains (or loads) one SAE of a point and evaluates it.
absl::Status RunOne(const SweepPoint& point, const SaeSweep& sweep, int seed_index,
                    SyntheticFeatureSource& source, const std::string& run_dir, SeedTree* seeds,
                    ExperimentResult* result) {
  SaeConfig config = point.config;
  const std::string group = config.name();
  if (sweep.seeds() > 1) config.set_name(absl::StrCat(group, "_s", seed_index));
  const uint64_t seed = seeds->Derive(absl::StrCat("sae/", config.name()));
  const std::string dir = absl::StrCat(run_dir, "/saes/", config.name());
  Provenance* provenance = result->mutable_provenance();

  SaeResult* sae_result = result->add_saes();
  TrainResult trained;
  std::string checkpoint = absl::StrCat("saes/", config.name());
  if (point.target_l0 > 0) {
    MatchedL0Search search = sweep.matched_l0();
    ASSIGN_OR_RETURN(MatchedL0Result matched, TrainAtTargetL0(config, point.target_l0, search, source,
                                                              source.EvalSet(), seed, dir));
    trained = std::move(matched.trained);
    sae_result->set_target_l0(point.target_l0);
    for (const L0SearchStep& step : matched.path) *sae_result->add_l0_search() = step;
    checkpoint = matched.dir.substr(run_dir.size() + 1);
  } else {
    TrainOptions options;
    options.dir = dir;
    ASSIGN_OR_RETURN(trained, TrainSae(config, source, seed, options));
  }
  RecordPhase(absl::StrCat("train/", config.name()), trained.wall_seconds, provenance);

  PhaseClock eval_clock;
  Sae& sae = *trained.sae;
  ReconstructionMetrics metrics(sae.d_in(), sae.n_latents());
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor& eval = source.EvalSet();
    for (int64_t begin = 0; begin < eval.size(0); begin += kEvalBatch) {
      torch::Tensor x = eval.slice(0, begin, std::min(begin + kEvalBatch, eval.size(0)));
      torch::Tensor f = sae.Encode(x);
      metrics.Add(x, sae.Decode(f), f);
    }
  }
  sae_result->set_name(config.name());
  sae_result->set_group(group);
  sae_result->set_seed_index(seed_index);
  sae_result->set_architecture(sae.architecture());
  sae_result->set_seed(seed);
  metrics.WriteTo(sae_result);
  double mmcs = MeanMaxCosineSimilarity(source.features(), sae.DecoderDirections());
  (*sae_result->mutable_metrics())["mmcs"] = mmcs;
  torch::Tensor true_codes = source.EvalCodes();
  (*sae_result->mutable_metrics())["true_l0"] =
      (true_codes != 0).sum().item<double>() / true_codes.size(0);
  FillHyperparameters(trained.config, sae_result);
  sae_result->set_train_tokens(trained.config.trainer().total_tokens() /
                               trained.config.trainer().batch_size() *
                               trained.config.trainer().batch_size());
  sae_result->set_train_wall_seconds(trained.wall_seconds);
  sae_result->set_checkpoint(checkpoint);
  RecordPhase(absl::StrCat("eval/", config.name()), eval_clock.Seconds(), provenance);
  std::fprintf(stderr, "%-28s l0 %7.3f  nmse %.4f  mmcs %.4f  dead %.3f%s\n", config.name().c_str(),
               metrics.L0(), metrics.Nmse(), mmcs, metrics.DeadFraction(),
               trained.loaded_from_disk ? "  (loaded)" : "");
  return absl::OkStatus();
}

}  // namespace

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
    std::map<std::string, std::vector<double>> values;
    std::map<std::string, std::vector<double>> hypers;
    for (const SaeResult* sae : members) {
      for (const auto& [metric, value] : sae->metrics()) values[metric].push_back(value);
      for (const auto& [key, value] : sae->hyperparameters()) hypers[key].push_back(value);
    }
    for (const auto& [metric, list] : values) (*summary->mutable_metrics())[metric] = Summarize(list);
    // Matched-L0 searches may pick different knobs per seed: report the mean.
    for (const auto& [key, list] : hypers) {
      (*summary->mutable_hyperparameters())[key] = Summarize(list).mean();
    }
  }
}

absl::Status RunSyntheticRecovery(const SyntheticRecoveryConfig& config, const std::string& run_dir,
                                  SeedTree* seeds, ExperimentResult* result) {
  ASSIGN_OR_RETURN(std::unique_ptr<SyntheticFeatureSource> source,
                   SyntheticFeatureSource::Create(config.data(), seeds->Derive("data")));
  RecordInput("synthetic_data", DataHash(*source), result->mutable_provenance());

  std::vector<std::pair<std::string, std::vector<std::string>>> sweep_groups;
  for (const SaeSweep& sweep : config.sweeps()) {
    ASSIGN_OR_RETURN(std::vector<SweepPoint> points, ExpandSweep(sweep));
    std::vector<std::string> groups;
    for (const SweepPoint& point : points) {
      groups.push_back(point.config.name());
      for (int s = 0; s < sweep.seeds(); ++s) {
        RETURN_IF_ERROR(RunOne(point, sweep, s, *source, run_dir, seeds, result));
      }
    }
    sweep_groups.emplace_back(sweep.base().name(), groups);
  }
  SummarizeGroups(result);

  // Plot series: per sweep, group means with 95% intervals.
  std::map<std::string, const SaeGroupSummary*> by_group;
  for (const SaeGroupSummary& g : result->groups()) by_group[g.group()] = &g;
  for (const auto& [sweep_name, groups] : sweep_groups) {
    for (const char* metric : {"mmcs", "nmse"}) {
      Series* series = result->add_series();
      series->set_name(absl::StrCat(sweep_name, ": ", metric, " vs l0"));
      series->set_x_label("l0");
      series->set_y_label(metric);
      for (const std::string& group : groups) {
        const SaeGroupSummary& g = *by_group.at(group);
        const MetricStats& y = g.metrics().at(metric);
        series->add_x(g.metrics().at("l0").mean());
        series->add_y(y.mean());
        series->add_y_low(y.ci95_low());
        series->add_y_high(y.ci95_high());
      }
    }
  }
  std::fprintf(stderr, "\n%-24s %5s %18s %26s %26s\n", "group", "seeds", "l0", "nmse (95% CI)", "mmcs (95% CI)");
  for (const SaeGroupSummary& g : result->groups()) {
    const auto& m = g.metrics();
    std::fprintf(stderr, "%-24s %5d %18.3f %8.4f [%.4f, %.4f] %8.4f [%.4f, %.4f]\n", g.group().c_str(),
                 m.at("l0").n(), m.at("l0").mean(), m.at("nmse").mean(), m.at("nmse").ci95_low(),
                 m.at("nmse").ci95_high(), m.at("mmcs").mean(), m.at("mmcs").ci95_low(),
                 m.at("mmcs").ci95_high());
  }
  return absl::OkStatus();
}

}  // namespace saelab
