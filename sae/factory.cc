#include "sae/factory.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "harness/textproto.h"
#include "sae/batch_topk.h"
#include "sae/gated.h"
#include "sae/jumprelu.h"
#include "sae/relu_l1.h"
#include "sae/topk.h"

namespace saelab {
namespace {

absl::Status Invalid(const SaeConfig& config, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("SAE '", config.name(), "' (", ArchitectureName(config), "): ", what));
}

// The power of two nearest x (ties go up), at least 1.
int64_t NearestPowerOfTwo(double x) {
  if (x <= 1.0) return 1;
  double log2 = std::log2(x);
  int64_t lower = int64_t{1} << static_cast<int>(std::floor(log2));
  int64_t upper = lower * 2;
  return (x - lower < upper - x) ? lower : upper;
}

}  // namespace

double SparsityKnob(const SaeConfig& config) {
  switch (config.architecture_case()) {
    case SaeConfig::kReluL1:
      return config.relu_l1().l1_coefficient();
    case SaeConfig::kTopk:
      return static_cast<double>(config.topk().k());
    case SaeConfig::kBatchTopk:
      return static_cast<double>(config.batch_topk().k());
    case SaeConfig::kJumprelu:
      return config.jumprelu().sparsity_coefficient();
    case SaeConfig::kGated:
      return config.gated().l1_coefficient();
    case SaeConfig::ARCHITECTURE_NOT_SET:
      break;
  }
  return 0;
}

void SetSparsityKnob(SaeConfig* config, double value) {
  switch (config->architecture_case()) {
    case SaeConfig::kReluL1:
      config->mutable_relu_l1()->set_l1_coefficient(value);
      break;
    case SaeConfig::kTopk:
      config->mutable_topk()->set_k(std::llround(value));
      break;
    case SaeConfig::kBatchTopk:
      config->mutable_batch_topk()->set_k(std::llround(value));
      break;
    case SaeConfig::kJumprelu:
      config->mutable_jumprelu()->set_sparsity_coefficient(value);
      break;
    case SaeConfig::kGated:
      config->mutable_gated()->set_l1_coefficient(value);
      break;
    case SaeConfig::ARCHITECTURE_NOT_SET:
      break;
  }
}

bool SparsityKnobIsK(const SaeConfig& config) {
  return config.architecture_case() == SaeConfig::kTopk ||
         config.architecture_case() == SaeConfig::kBatchTopk;
}

std::string ArchitectureName(const SaeConfig& config) {
  switch (config.architecture_case()) {
    case SaeConfig::kReluL1:
      return "relu_l1";
    case SaeConfig::kTopk:
      return "topk";
    case SaeConfig::kBatchTopk:
      return "batch_topk";
    case SaeConfig::kJumprelu:
      return "jumprelu";
    case SaeConfig::kGated:
      return "gated";
    case SaeConfig::ARCHITECTURE_NOT_SET:
      return "";
  }
  return "";
}

absl::Status ResolveSaeConfig(int64_t d_in, SaeConfig* config) {
  FillDefaults(config);
  const int64_t n = config->n_latents();
  if (config->architecture_case() == SaeConfig::ARCHITECTURE_NOT_SET) {
    return Invalid(*config, "no architecture set (choose relu_l1, topk, batch_topk, jumprelu or gated)");
  }
  if (d_in < 1) return Invalid(*config, absl::StrCat("d_in must be >= 1, got ", d_in));
  if (n < 1) return Invalid(*config, absl::StrCat("n_latents must be >= 1, got ", n));
  TrainerConfig* trainer = config->mutable_trainer();
  if (trainer->batch_size() < 1) {
    return Invalid(*config, absl::StrCat("trainer.batch_size must be >= 1, got ", trainer->batch_size()));
  }
  if (trainer->total_tokens() < trainer->batch_size()) {
    return Invalid(*config, absl::StrCat("trainer.total_tokens (", trainer->total_tokens(),
                                         ") is less than one batch (", trainer->batch_size(), ")"));
  }
  if (trainer->lr_decay_fraction() < 0 || trainer->lr_decay_fraction() > 1) {
    return Invalid(*config, "trainer.lr_decay_fraction must be in [0, 1]");
  }
  if (trainer->grad_clip_norm() < 0) return Invalid(*config, "trainer.grad_clip_norm must be >= 0");
  if (trainer->has_adam_eps() && !(trainer->adam_eps() > 0)) {
    return Invalid(*config, "trainer.adam_eps must be > 0");
  }
  if (trainer->adam_beta1() < 0 || trainer->adam_beta1() >= 1 || trainer->adam_beta2() < 0 ||
      trainer->adam_beta2() >= 1) {
    return Invalid(*config, "trainer.adam_beta1 and adam_beta2 must be in [0, 1)");
  }
  if (trainer->dead_after_tokens() < 1) return Invalid(*config, "trainer.dead_after_tokens must be >= 1");
  if (trainer->init_sample_tokens() < 1) {
    return Invalid(*config, "trainer.init_sample_tokens must be >= 1");
  }
  switch (config->architecture_case()) {
    case SaeConfig::kReluL1: {
      const ReluL1Config& relu = config->relu_l1();
      if (relu.l1_coefficient() < 0) return Invalid(*config, "relu_l1.l1_coefficient must be >= 0");
      if (relu.decoder_init_norm() <= 0) {
        return Invalid(*config, "relu_l1.decoder_init_norm must be > 0");
      }
      if (!trainer->has_lr()) trainer->set_lr(5e-5);
      if (!trainer->has_adam_eps()) trainer->set_adam_eps(1e-8);
      break;
    }
    case SaeConfig::kBatchTopk: {
      BatchTopKConfig* batch_topk = config->mutable_batch_topk();
      if (batch_topk->k() < 1 || batch_topk->k() > n) {
        return Invalid(*config, absl::StrCat("batch_topk.k must be in [1, n_latents = ", n,
                                             "], got ", batch_topk->k()));
      }
      if (batch_topk->auxk_coefficient() < 0) {
        return Invalid(*config, "batch_topk.auxk_coefficient must be >= 0");
      }
      if (batch_topk->threshold_decay() < 0 || batch_topk->threshold_decay() >= 1) {
        return Invalid(*config, "batch_topk.threshold_decay must be in [0, 1)");
      }
      if (!batch_topk->has_k_aux()) batch_topk->set_k_aux(std::min(n, NearestPowerOfTwo(d_in / 2.0)));
      if (batch_topk->k_aux() < 1 || batch_topk->k_aux() > n) {
        return Invalid(*config, absl::StrCat("batch_topk.k_aux must be in [1, n_latents = ", n,
                                             "], got ", batch_topk->k_aux()));
      }
      if (!trainer->has_lr()) trainer->set_lr(2e-4 / std::sqrt(n / 16384.0));
      if (!trainer->has_adam_eps()) trainer->set_adam_eps(6.25e-10);
      break;
    }
    case SaeConfig::kJumprelu: {
      const JumpReluConfig& jump = config->jumprelu();
      if (jump.sparsity_coefficient() < 0) {
        return Invalid(*config, "jumprelu.sparsity_coefficient must be >= 0");
      }
      if (!(jump.bandwidth() > 0)) return Invalid(*config, "jumprelu.bandwidth must be > 0");
      if (!(jump.initial_threshold() > 0)) {
        return Invalid(*config, "jumprelu.initial_threshold must be > 0");
      }
      // Rajamanoharan et al. train JumpReLU with Adam(0, 0.999) at 7e-5.
      if (!trainer->has_lr()) trainer->set_lr(7e-5);
      if (!trainer->has_adam_eps()) trainer->set_adam_eps(1e-8);
      break;
    }
    case SaeConfig::kGated: {
      if (config->gated().l1_coefficient() < 0) {
        return Invalid(*config, "gated.l1_coefficient must be >= 0");
      }
      if (!trainer->has_lr()) trainer->set_lr(5e-5);
      if (!trainer->has_adam_eps()) trainer->set_adam_eps(1e-8);
      break;
    }
    case SaeConfig::kTopk: {
      TopKConfig* topk = config->mutable_topk();
      if (topk->k() < 1 || topk->k() > n) {
        return Invalid(*config, absl::StrCat("topk.k must be in [1, n_latents = ", n, "], got ",
                                             topk->k()));
      }
      if (topk->auxk_coefficient() < 0) return Invalid(*config, "topk.auxk_coefficient must be >= 0");
      if (topk->geometric_median_iterations() < 0) {
        return Invalid(*config, "topk.geometric_median_iterations must be >= 0");
      }
      if (topk->multi_topk_factor() < 0) return Invalid(*config, "topk.multi_topk_factor must be >= 0");
      if (!topk->has_k_aux()) topk->set_k_aux(std::min(n, NearestPowerOfTwo(d_in / 2.0)));
      if (topk->k_aux() < 1 || topk->k_aux() > n) {
        return Invalid(*config, absl::StrCat("topk.k_aux must be in [1, n_latents = ", n,
                                             "], got ", topk->k_aux()));
      }
      if (!trainer->has_lr()) trainer->set_lr(2e-4 / std::sqrt(n / 16384.0));
      if (!trainer->has_adam_eps()) trainer->set_adam_eps(6.25e-10);
      break;
    }
    case SaeConfig::ARCHITECTURE_NOT_SET:
      break;
  }
  if (!(trainer->lr() > 0)) return Invalid(*config, "trainer.lr must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Sae>> CreateSae(const SaeConfig& config, int64_t d_in,
                                               uint64_t seed) {
  switch (config.architecture_case()) {
    case SaeConfig::kReluL1:
      return std::unique_ptr<Sae>(
          std::make_unique<ReluL1Sae>(d_in, config.n_latents(), config.relu_l1(), seed));
    case SaeConfig::kTopk:
      return std::unique_ptr<Sae>(
          std::make_unique<TopKSae>(d_in, config.n_latents(), config.topk(), seed));
    case SaeConfig::kBatchTopk:
      return std::unique_ptr<Sae>(
          std::make_unique<BatchTopKSae>(d_in, config.n_latents(), config.batch_topk(), seed));
    case SaeConfig::kJumprelu:
      return std::unique_ptr<Sae>(
          std::make_unique<JumpReluSae>(d_in, config.n_latents(), config.jumprelu(), seed));
    case SaeConfig::kGated:
      return std::unique_ptr<Sae>(
          std::make_unique<GatedSae>(d_in, config.n_latents(), config.gated(), seed));
    case SaeConfig::ARCHITECTURE_NOT_SET:
      break;
  }
  return Invalid(config, "no architecture set (choose relu_l1, topk, batch_topk, jumprelu or gated)");
}

}  // namespace saelab
