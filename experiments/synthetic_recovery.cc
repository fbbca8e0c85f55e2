#include "experiments/synthetic_recovery.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/activations/synthetic_features.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
#include "harness/log.h"
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

std::string DataHash(const SyntheticFeatureSource& source) {
  // The generated ground truth and eval set identify the data exactly.
  auto bytes = [](const torch::Tensor& t) {
    torch::Tensor c = t.contiguous();
    return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  };
  return Sha256Hex(absl::StrCat(bytes(source.features()), bytes(source.firing_probabilities()),
                                bytes(source.EvalSet())));
}

}  // namespace

absl::Status RunSyntheticRecovery(const SyntheticRecoveryConfig& config, const std::string& run_dir,
                                  SeedTree* seeds, ExperimentResult* result) {
  ASSIGN_OR_RETURN(std::unique_ptr<SyntheticFeatureSource> source,
                   SyntheticFeatureSource::Create(config.data(), seeds->Derive("data")));
  RecordInput("synthetic_data", DataHash(*source), result->mutable_provenance());

  torch::Tensor true_codes = source->EvalCodes();
  const double true_l0 = (true_codes != 0).sum().item<double>() / true_codes.size(0);
  // With a feature hierarchy, absorption too.
  const bool hierarchy = source->parents() > 0;
  std::vector<std::string> summarized = {"mmcs", "nmse"};
  if (hierarchy) summarized.push_back("absorption");
  const torch::Tensor parent_of = source->ParentOf();
  // Plot series: per sweep, group means with 95% intervals.
  RETURN_IF_ERROR(
      RunSweeps(config.sweeps(), *source, source->EvalSet(), config.reconstruction_eval(), run_dir,
                summarized, seeds, result, [&](TrainedSae& trained) {
                  const double mmcs =
                      MeanMaxCosineSimilarity(source->features(), trained.sae->DecoderDirections());
                  auto& metrics = *trained.result->mutable_metrics();
                  metrics["mmcs"] = mmcs;
                  metrics["true_l0"] = true_l0;
                  Log("%-28s mmcs %.4f", trained.result->name().c_str(), mmcs);
                  if (!hierarchy) return;
                  torch::NoGradGuard no_grad;
                  const AbsorptionRates absorption =
                      MeasureAbsorption(true_codes, trained.sae->Encode(source->EvalSet()),
                                        source->features(), trained.sae->DecoderDirections(),
                                        parent_of);
                  metrics["absorption"] = absorption.with_child;
                  metrics["parent_miss_alone"] = absorption.alone;
                  Log("%-28s absorption %.4f (parent latent silent with a child; %.4f without)",
                      trained.result->name().c_str(), absorption.with_child, absorption.alone);
                },
                config.train_together()));
  Log("\n%-24s %5s %18s %26s %26s", "group", "seeds", "l0", "nmse (95% CI)", "mmcs (95% CI)");
  for (const SaeGroupSummary& g : result->groups()) {
    const auto& m = g.metrics();
    Log("%-24s %5d %18.3f %8.4f [%.4f, %.4f] %8.4f [%.4f, %.4f]", g.group().c_str(), m.at("l0").n(),
        m.at("l0").mean(), m.at("nmse").mean(), m.at("nmse").ci95_low(), m.at("nmse").ci95_high(),
        m.at("mmcs").mean(), m.at("mmcs").ci95_low(), m.at("mmcs").ci95_high());
    if (hierarchy) {
      Log("%-24s %5s %18s absorption %.4f [%.4f, %.4f]", "", "", "", m.at("absorption").mean(),
          m.at("absorption").ci95_low(), m.at("absorption").ci95_high());
    }
  }
  return absl::OkStatus();
}

SAELAB_REGISTER_EXPERIMENT(synthetic_recovery, SyntheticRecoveryConfig, RunSyntheticRecovery,
                           "results/plot_synthetic_recovery.py");

}  // namespace saelab
