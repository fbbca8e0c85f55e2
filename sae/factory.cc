#include "sae/factory.h"

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "harness/seed.h"
#include "harness/textproto.h"
#include "sae/batch_topk.h"
#include "sae/gated.h"
#include "sae/jumprelu.h"
#include "sae/matryoshka_batch_topk.h"
#include "sae/relu_l1.h"
#include "sae/topk.h"

namespace saelab {
namespace {

absl::Status Invalid(const SaeConfig& config, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("SAE '", config.name(), "' (", ArchitectureName(config), "): ", what));
}

// "no architecture set (choose relu_l1, topk, batch_topk, jumprelu or gated)".
std::string NoArchitectureMessage() {
  std::string choices;
  const std::vector<const SaeArchitecture*>& rows = SaeArchitectures();
  for (size_t i = 0; i < rows.size(); ++i) {
    absl::StrAppend(&choices, i == 0 ? "" : (i + 1 == rows.size() ? " or " : ", "), rows[i]->name);
  }
  return absl::StrCat("no architecture set (choose ", choices, ")");
}

}  // namespace

// The table: each row is defined in its architecture's own file. A new
// architecture adds its line here (and its field to SaeConfig's oneof).
const std::vector<const SaeArchitecture*>& SaeArchitectures() {
  static const std::vector<const SaeArchitecture*>* const rows =
      new std::vector<const SaeArchitecture*>{
          &ReluL1Architecture(),
          &TopKArchitecture(),
          &BatchTopKArchitecture(),
          &JumpReluArchitecture(),
          &GatedArchitecture(),
          &MatryoshkaBatchTopKArchitecture(),
      };
  return *rows;
}

const SaeArchitecture* FindArchitecture(SaeConfig::ArchitectureCase config_case) {
  for (const SaeArchitecture* row : SaeArchitectures()) {
    if (row->config_case == config_case) return row;
  }
  return nullptr;
}

const SaeArchitecture* FindArchitecture(const SaeConfig& config) {
  return FindArchitecture(config.architecture_case());
}

const SaeArchitecture* FindArchitecture(absl::string_view name) {
  for (const SaeArchitecture* row : SaeArchitectures()) {
    if (row->name == name) return row;
  }
  return nullptr;
}

double SparsityKnob(const SaeConfig& config) {
  const SaeArchitecture* architecture = FindArchitecture(config);
  return architecture == nullptr ? 0.0 : architecture->sparsity_knob(config);
}

void SetSparsityKnob(SaeConfig* config, double value) {
  const SaeArchitecture* architecture = FindArchitecture(*config);
  if (architecture != nullptr) architecture->set_sparsity_knob(config, value);
}

bool SparsityKnobIsK(const SaeConfig& config) {
  const SaeArchitecture* architecture = FindArchitecture(config);
  return architecture != nullptr &&
         (architecture->sparsity_knob_is_k || SparsityKnobIsTargetL0(config));
}

bool SparsityKnobIsTargetL0(const SaeConfig& config) {
  const SaeArchitecture* architecture = FindArchitecture(config);
  return architecture != nullptr && architecture->sparsity_knob_is_target_l0 != nullptr &&
         architecture->sparsity_knob_is_target_l0(config);
}

std::string ArchitectureName(const SaeConfig& config) {
  const SaeArchitecture* architecture = FindArchitecture(config);
  return architecture == nullptr ? "" : architecture->name;
}

absl::Status ResolveSaeConfig(int64_t d_in, SaeConfig* config) {
  FillDefaults(config);
  const int64_t n = config->n_latents();
  const SaeArchitecture* architecture = FindArchitecture(*config);
  if (architecture == nullptr) return Invalid(*config, NoArchitectureMessage());
  if (d_in < 1) return Invalid(*config, absl::StrCat("d_in must be >= 1, got ", d_in));
  if (n < 1) return Invalid(*config, absl::StrCat("n_latents must be >= 1, got ", n));
  // The name becomes a directory under the run directory: letters, digits
  // and . _ - only, not starting with a dot (so never "..").
  static const RE2* safe_name = new RE2("[A-Za-z0-9_-][A-Za-z0-9._-]*");
  if (!config->name().empty() && !RE2::FullMatch(config->name(), *safe_name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SAE name '", absl::CHexEscape(config->name()),
        "' may use only letters, digits, '.', '_' and '-' and must not start with '.'"));
  }
  TrainerConfig* trainer = config->mutable_trainer();
  if (trainer->checkpoint_every_steps() < 0) {
    return Invalid(*config, absl::StrCat("trainer.checkpoint_every_steps must be >= 0, got ",
                                         trainer->checkpoint_every_steps()));
  }
  if (trainer->log_every_steps() < 0) {
    return Invalid(*config, absl::StrCat("trainer.log_every_steps must be >= 0, got ",
                                         trainer->log_every_steps()));
  }
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
  if (!(trainer->grad_clip_norm() >= 0) || std::isinf(trainer->grad_clip_norm())) {
    return Invalid(*config, "trainer.grad_clip_norm must be finite and >= 0");
  }
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
  if (config->has_transcoder() && config->architecture_case() != SaeConfig::kTopk) {
    return Invalid(*config, absl::StrCat("transcoder is supported for topk only, not ",
                                         architecture->name));
  }
  // The architecture's own fields and recipe; its errors name the field.
  if (absl::Status own = architecture->resolve(d_in, config); !own.ok()) {
    return Invalid(*config, own.message());
  }
  if (!(trainer->lr() > 0) || std::isinf(trainer->lr())) {
    return Invalid(*config, absl::StrCat("trainer.lr must be finite and > 0, got ", trainer->lr()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Sae>> CreateSae(const SaeConfig& config, int64_t d_in,
                                               uint64_t seed) {
  const SaeArchitecture* architecture = FindArchitecture(config);
  if (architecture == nullptr) return Invalid(config, NoArchitectureMessage());
  std::unique_ptr<Sae> sae = architecture->create(config, d_in, seed);
  // A stream apart from the decoder's (seed), so that TIED and RANDOM share W_dec.
  if (config.encoder_init() == SaeConfig::RANDOM) sae->UntieEncoder(DeriveSeed(seed, "encoder_init"));
  return sae;
}

}  // namespace saelab
