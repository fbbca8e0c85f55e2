#include "experiments/synthetic_recovery.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/synthetic_features.h"
#include "harness/provenance.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "sae/factory.h"
#include "sae/metrics.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

constexpr int64_t kEvalBatch = 4096;

// One concrete SAE config per swept value.
absl::StatusOr<std::vector<SaeConfig>> ExpandSweep(const SaeSweep& sweep) {
  const SaeConfig& base = sweep.base();
  std::vector<SaeConfig> configs;
  switch (base.architecture_case()) {
    case SaeConfig::kReluL1:
      if (sweep.k_size() > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("sweep '", base.name(), "': relu_l1 sweeps l1_coefficient, not k"));
      }
      for (double lambda : sweep.l1_coefficient()) {
        SaeConfig config = base;
        config.mutable_relu_l1()->set_l1_coefficient(lambda);
        config.set_name(absl::StrCat(base.name(), "_l1_", absl::StrFormat("%g", lambda)));
        configs.push_back(config);
      }
      if (sweep.l1_coefficient_size() == 0) configs.push_back(base);
      break;
    case SaeConfig::kTopk:
      if (sweep.l1_coefficient_size() > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("sweep '", base.name(), "': topk sweeps k, not l1_coefficient"));
      }
      for (int64_t k : sweep.k()) {
        SaeConfig config = base;
        config.mutable_topk()->set_k(k);
        config.set_name(absl::StrCat(base.name(), "_k", k));
        configs.push_back(config);
      }
      if (sweep.k_size() == 0) configs.push_back(base);
      break;
    case SaeConfig::ARCHITECTURE_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat("sweep '", base.name(), "': base has no architecture"));
  }
  return configs;
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

}  // namespace

absl::Status RunSyntheticRecovery(const SyntheticRecoveryConfig& config, const std::string& run_dir,
                                  SeedTree* seeds, ExperimentResult* result) {
  ASSIGN_OR_RETURN(std::unique_ptr<SyntheticFeatureSource> source,
                   SyntheticFeatureSource::Create(config.data(), seeds->Derive("data")));
  Provenance* provenance = result->mutable_provenance();
  RecordInput("synthetic_data", DataHash(*source), provenance);
  torch::Tensor true_codes = source->EvalCodes();
  double true_l0 = (true_codes != 0).sum().item<double>() / true_codes.size(0);

  for (const SaeSweep& sweep : config.sweeps()) {
    ASSIGN_OR_RETURN(std::vector<SaeConfig> configs, ExpandSweep(sweep));
    Series* mmcs_series = result->add_series();
    mmcs_series->set_name(absl::StrCat(sweep.base().name(), ": mmcs vs l0"));
    mmcs_series->set_x_label("l0");
    mmcs_series->set_y_label("mmcs");
    Series* nmse_series = result->add_series();
    nmse_series->set_name(absl::StrCat(sweep.base().name(), ": nmse vs l0"));
    nmse_series->set_x_label("l0");
    nmse_series->set_y_label("nmse");

    for (const SaeConfig& sae_config : configs) {
      uint64_t seed = seeds->Derive(absl::StrCat("sae/", sae_config.name()));
      TrainOptions options;
      options.dir = absl::StrCat(run_dir, "/saes/", sae_config.name());
      ASSIGN_OR_RETURN(TrainResult trained, TrainSae(sae_config, *source, seed, options));
      RecordPhase(absl::StrCat("train/", sae_config.name()), trained.wall_seconds, provenance);

      PhaseClock eval_clock;
      Sae& sae = *trained.sae;
      ReconstructionMetrics metrics(sae.d_in(), sae.n_latents());
      {
        torch::NoGradGuard no_grad;
        const torch::Tensor& eval = source->EvalSet();
        for (int64_t begin = 0; begin < eval.size(0); begin += kEvalBatch) {
          torch::Tensor x = eval.slice(0, begin, std::min(begin + kEvalBatch, eval.size(0)));
          torch::Tensor f = sae.Encode(x);
          metrics.Add(x, sae.Decode(f), f);
        }
      }
      SaeResult* sae_result = result->add_saes();
      sae_result->set_name(sae_config.name());
      sae_result->set_architecture(sae.architecture());
      sae_result->set_seed(seed);
      metrics.WriteTo(sae_result);
      double mmcs = MeanMaxCosineSimilarity(source->features(), sae.DecoderDirections());
      (*sae_result->mutable_metrics())["mmcs"] = mmcs;
      (*sae_result->mutable_metrics())["true_l0"] = true_l0;
      const SaeConfig& resolved = trained.config;
      auto& hyper = *sae_result->mutable_hyperparameters();
      hyper["n_latents"] = resolved.n_latents();
      hyper["lr"] = resolved.trainer().lr();
      hyper["batch_size"] = resolved.trainer().batch_size();
      hyper["total_tokens"] = resolved.trainer().total_tokens();
      if (resolved.has_topk()) {
        hyper["k"] = resolved.topk().k();
        hyper["k_aux"] = resolved.topk().k_aux();
        hyper["auxk_coefficient"] = resolved.topk().auxk_coefficient();
      } else if (resolved.has_relu_l1()) {
        hyper["l1_coefficient"] = resolved.relu_l1().l1_coefficient();
      }
      sae_result->set_train_tokens(trained.steps * resolved.trainer().batch_size());
      sae_result->set_train_wall_seconds(trained.wall_seconds);
      sae_result->set_checkpoint(absl::StrCat("saes/", sae_config.name()));
      mmcs_series->add_x(metrics.L0());
      mmcs_series->add_y(mmcs);
      nmse_series->add_x(metrics.L0());
      nmse_series->add_y(metrics.Nmse());
      RecordPhase(absl::StrCat("eval/", sae_config.name()), eval_clock.Seconds(), provenance);
      std::fprintf(stderr, "%-24s l0 %7.3f  nmse %.4f  mmcs %.4f  dead %.3f%s\n",
                   sae_config.name().c_str(), metrics.L0(), metrics.Nmse(), mmcs,
                   metrics.DeadFraction(), trained.loaded_from_disk ? "  (loaded)" : "");
    }
  }
  return absl::OkStatus();
}

}  // namespace saelab
