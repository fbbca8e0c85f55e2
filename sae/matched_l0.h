// Matched-L0 training: find the sparsity knob (lambda, or k) at which an
// architecture reaches a target L0, so architectures are compared at equal
// sparsity (Gao et al.; Rajamanoharan et al.).
//
// Coefficient knobs (relu_l1, gated, jumprelu): L0 falls as lambda grows.
// The search brackets the target on short runs (MatchedL0Search.
// short_run_fraction of the tokens), widening the bracket x10 as needed,
// then narrows it by interpolation in (log lambda, log L0), bisection when
// interpolation would leave the bracket. The best short-run lambda is then
// trained in full; if the full run misses the tolerance (short runs are
// biased), the search continues from there with full runs.
// k knobs (topk, batch_topk): L0 <= k and close to it, so the search starts
// with full runs at k = round(target) and steps k by integers.
// Every try is a resumable training in its own directory, so a rerun
// replays the search from disk.
//
//   ASSIGN_OR_RETURN(MatchedL0Result m, TrainAtTargetL0(config, 32.0, search, source,
//                                                       eval_x, seed, dir));
//   m.trained.sae, m.path (every try), m.l0
#ifndef SAELAB_SAE_MATCHED_L0_H_
#define SAELAB_SAE_MATCHED_L0_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sae/sae_config.pb.h"
#include "harness/result.pb.h"
#include "sae/trainer.h"

namespace saelab {

struct MatchedL0Result {
  // The chosen full-length training.
  TrainResult trained;
  // Its config (with the knob set) and directory.
  SaeConfig config;
  std::string dir;
  // L0 of the chosen SAE on the evaluation set.
  double l0 = 0;
  // True if |l0 - target| <= tolerance * target.
  bool within_tolerance = false;
  // Every try, in order.
  std::vector<L0SearchStep> path;
};

// Mean number of non-zero latents per row of sae.Encode(x) (x: [tokens, d]).
double MeasureL0(Sae& sae, const torch::Tensor& x);

// InvalidArgument for an impossible target (<= 0 or > n_latents), an
// architecture without a knob, or an invalid config.
absl::StatusOr<MatchedL0Result> TrainAtTargetL0(const SaeConfig& base, double target_l0,
                                                const MatchedL0Search& search,
                                                ActivationSource& source,
                                                const torch::Tensor& eval_x, uint64_t seed,
                                                const std::string& dir);

}  // namespace saelab

#endif  // SAELAB_SAE_MATCHED_L0_H_
