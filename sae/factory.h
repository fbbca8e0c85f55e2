// Builds SAEs from configs: resolves the recipe defaults that depend on the
// architecture and the data (learning rate, Adam eps, k_aux), validates, and
// constructs the right class. Every architecture-specific fact comes from
// the architecture table (sae/architecture.h), which lives here.
//
//   SaeConfig config = ...;                          // from a textproto
//   RETURN_IF_ERROR(ResolveSaeConfig(d_in, &config));  // as-run values
//   ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(config, d_in, seed));
#ifndef SAELAB_SAE_FACTORY_H_
#define SAELAB_SAE_FACTORY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sae/architecture.h"
#include "sae/sae_config.pb.h"
#include "sae/sae.h"

namespace saelab {

// The architecture table: one row per SaeConfig `architecture` oneof field,
// in the proto's order.
const std::vector<const SaeArchitecture*>& SaeArchitectures();

// The row of a oneof case, of config's architecture, or of a name ("topk");
// nullptr if the case is unset or the name unknown.
const SaeArchitecture* FindArchitecture(SaeConfig::ArchitectureCase config_case);
const SaeArchitecture* FindArchitecture(const SaeConfig& config);
const SaeArchitecture* FindArchitecture(absl::string_view name);

// Fills explicit defaults (FillDefaults) and the recipe-derived ones of the
// architecture's row (SaeArchitecture::resolve): lr (ReLU-L1 5e-5; TopK
// 2e-4 / sqrt(n / 2^14)), adam_eps (1e-8; 6.25e-10), k_aux (the power of
// two nearest d_in / 2, at most n). InvalidArgument, naming the SAE and
// field, if no architecture is set, n_latents < 1, k is not in
// [1, n_latents], a trainer or architecture setting is out of range, or
// transcoder is set for an architecture other than topk.
absl::Status ResolveSaeConfig(int64_t d_in, SaeConfig* config);

// Constructs the SAE (random init from `seed`). `config` must be resolved.
// InvalidArgument naming the SAE if no architecture is set.
absl::StatusOr<std::unique_ptr<Sae>> CreateSae(const SaeConfig& config, int64_t d_in,
                                               uint64_t seed);

// The architecture's sparsity knob: lambda for relu_l1, gated and jumprelu;
// k for topk and batch_topk; the target L0 for jumprelu in target mode
// (jumprelu.target set). 0 if no architecture is set. Setting k rounds to
// the nearest integer; setting it without an architecture does nothing.
double SparsityKnob(const SaeConfig& config);
void SetSparsityKnob(SaeConfig* config, double value);
// True if the knob is k or a target L0 (L0 grows with it), false if it is
// a coefficient (L0 shrinks as it grows) or no architecture is set.
bool SparsityKnobIsK(const SaeConfig& config);
// True if the knob is a target L0 (jumprelu with `target` set): a real
// number, not a count.
bool SparsityKnobIsTargetL0(const SaeConfig& config);

// The architecture oneof's case name ("relu_l1", "topk"), or "" if unset.
std::string ArchitectureName(const SaeConfig& config);

}  // namespace saelab

#endif  // SAELAB_SAE_FACTORY_H_
