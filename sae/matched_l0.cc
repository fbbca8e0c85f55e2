#include "sae/matched_l0.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "harness/log.h"
#include "harness/status_macros.h"
#include "sae/factory.h"

namespace saelab {
namespace {

constexpr int64_t kEvalBatch = 4096;

struct Try {
  double knob;
  double l0;
};

// Trains one try and measures its L0; records it in *result.
// A full run (`full`) becomes result->trained if it is the closest to
// `target` so far.
absl::StatusOr<Try> TrainTry(const SaeConfig& base, double knob, bool full, double target,
                             const MatchedL0Search& search, ActivationSource& source,
                             const torch::Tensor& eval_x, uint64_t seed, const std::string& dir,
                             MatchedL0Result* result) {
  SaeConfig config = base;
  SetSparsityKnob(&config, knob);
  TrainerConfig* trainer = config.mutable_trainer();
  if (!full) {
    int64_t batches = trainer->total_tokens() / trainer->batch_size();
    int64_t short_batches =
        std::max<int64_t>(1, std::llround(batches * search.short_run_fraction()));
    trainer->set_total_tokens(short_batches * trainer->batch_size());
  }
  std::string try_dir = absl::StrCat(dir, "/try_", result->path.size());
  TrainOptions options;
  options.dir = try_dir;
  options.label =
      absl::StrCat(config.name(), " try ", result->path.size(), full ? " (full)" : " (short)");
  ASSIGN_OR_RETURN(TrainResult trained, TrainSae(config, source, seed, options));
  double l0 = MeasureL0(*trained.sae, eval_x);
  Log("%s: sparsity %.6g -> l0 %.4f (target %.4g)", options.label.c_str(), knob, l0, target);
  L0SearchStep* step = &result->path.emplace_back();
  step->set_sparsity(knob);
  step->set_l0(l0);
  step->set_train_tokens(trainer->total_tokens());
  if (full && (!result->trained.sae || std::fabs(l0 - target) < std::fabs(result->l0 - target))) {
    result->trained = std::move(trained);
    result->config = result->trained.config;
    result->dir = try_dir;
    result->l0 = l0;
  }
  return Try{knob, l0};
}

bool Within(double l0, double target, double tolerance) {
  return std::fabs(l0 - target) <= tolerance * target;
}

}  // namespace

double MeasureL0(Sae& sae, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  double active = 0;
  for (int64_t begin = 0; begin < x.size(0); begin += kEvalBatch) {
    torch::Tensor batch = x.slice(0, begin, std::min(begin + kEvalBatch, x.size(0)));
    active += (sae.Encode(batch) != 0).sum().item<double>();
  }
  return x.size(0) == 0 ? 0.0 : active / x.size(0);
}

absl::StatusOr<MatchedL0Result> TrainAtTargetL0(const SaeConfig& base, double target_l0,
                                                const MatchedL0Search& search,
                                                ActivationSource& source,
                                                const torch::Tensor& eval_x, uint64_t seed,
                                                const std::string& dir) {
  SaeConfig resolved = base;
  RETURN_IF_ERROR(ResolveSaeConfig(source.d_in(), &resolved));
  if (!(target_l0 > 0) || target_l0 > resolved.n_latents()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SAE '", base.name(), "': impossible target L0 ", target_l0,
                     " (must be in (0, n_latents = ", resolved.n_latents(), "])"));
  }
  const double tol = search.tolerance();
  const int budget = search.max_trainings();
  MatchedL0Result result;

  if (SparsityKnobIsK(resolved)) {
    // L0 <= k: start at round(target) and walk k by integers with full runs.
    double k = std::clamp<double>(std::round(target_l0), 1, resolved.n_latents());
    double lo = 1, hi = resolved.n_latents();  // bracket on k
    while (static_cast<int>(result.path.size()) < budget) {
      ASSIGN_OR_RETURN(
          Try t, TrainTry(base, k, true, target_l0, search, source, eval_x, seed, dir, &result));
      if (Within(t.l0, target_l0, tol)) break;
      if (t.l0 < target_l0)
        lo = k + 1;
      else
        hi = k - 1;
      if (lo > hi) break;
      // Step by the ratio, as L0 tracks k nearly proportionally.
      double next = std::round(k * target_l0 / std::max(t.l0, 1e-9));
      if (next == k) next += t.l0 < target_l0 ? 1 : -1;
      k = std::clamp(next, lo, hi);
    }
  } else {
    // Coefficient knob: L0 decreases in lambda. Work in u = log lambda.
    auto log_l0 = [](double l0) { return std::log(std::max(l0, 1e-6)); };
    std::vector<Try> short_tries;
    auto short_try = [&](double lambda) -> absl::StatusOr<Try> {
      return TrainTry(base, lambda, false, target_l0, search, source, eval_x, seed, dir, &result);
    };
    double low = search.coefficient_low(), high = search.coefficient_high();
    ASSIGN_OR_RETURN(Try a, short_try(low));
    ASSIGN_OR_RETURN(Try b, short_try(high));
    // Widen while the bracket misses the target and L0 still responds (a
    // short run's L0 can saturate: Adam bounds how far it moves per step).
    for (int widen = 0; widen < 6 && a.l0 < target_l0; ++widen) {
      ASSIGN_OR_RETURN(Try wider, short_try(a.knob / 10));
      bool responds = wider.l0 > 1.05 * a.l0;
      a = wider;
      if (!responds) break;
    }
    for (int widen = 0; widen < 6 && b.l0 > target_l0; ++widen) {
      ASSIGN_OR_RETURN(Try wider, short_try(b.knob * 10));
      bool responds = wider.l0 < 0.95 * b.l0;
      b = wider;
      if (!responds) break;
    }
    // a: lambda small, L0 >= target; b: lambda large, L0 <= target.
    // Next lambda inside a bracket: the secant in (log lambda, log L0),
    // kept well inside; after two updates of the same end (the secant's
    // known stall near a cliff of the L0 curve), plain bisection.
    int same_side = 0;
    bool last_was_a = false;
    auto next_lambda = [&](const Try& x, const Try& y) {
      double ux = std::log(x.knob), uy = std::log(y.knob);
      double fx = log_l0(x.l0) - std::log(target_l0), fy = log_l0(y.l0) - std::log(target_l0);
      double u = (ux + uy) / 2;
      if (fx != fy && same_side < 2) {
        double secant = ux - fx * (uy - ux) / (fy - fx);
        double margin = 0.05 * (uy - ux);
        if (secant > ux + margin && secant < uy - margin) u = secant;
      }
      return std::exp(u);
    };
    auto update = [&](Try& x, Try& y, const Try& t) {
      bool is_a = t.l0 >= target_l0;
      same_side = (is_a == last_was_a) ? same_side + 1 : 1;
      if (same_side > 2) same_side = 0;  // one bisection, then secant again
      last_was_a = is_a;
      (is_a ? x : y) = t;
    };
    auto distance = [&](const Try& t) { return std::fabs(log_l0(t.l0) - std::log(target_l0)); };
    Try best = distance(a) < distance(b) ? a : b;
    // Leave at least three trainings for full runs.
    while (!Within(best.l0, target_l0, tol) && static_cast<int>(result.path.size()) < budget - 3 &&
           a.l0 >= target_l0 && b.l0 <= target_l0) {
      ASSIGN_OR_RETURN(Try t, short_try(next_lambda(a, b)));
      update(a, b, t);
      if (distance(t) < distance(best)) best = t;
    }
    // Full runs, starting at the best short-run lambda. Their L0s form a new
    // bracket; until both ends exist, step by the secant of the last two
    // full runs (or the short bracket's slope), at most x10 per step and
    // never past the widened short bracket.
    const double lambda_min = std::min(a.knob, b.knob) / 10,
                 lambda_max = std::max(a.knob, b.knob) * 10;
    double short_slope = -1.0;
    if (a.knob != b.knob && a.l0 > 0 && b.l0 > 0) {
      short_slope =
          std::min(-0.1, (log_l0(b.l0) - log_l0(a.l0)) / (std::log(b.knob) - std::log(a.knob)));
    }
    double lambda = best.knob;
    std::vector<Try> fulls;
    Try full_a{0, 0}, full_b{0, 0};
    bool has_a = false, has_b = false;
    same_side = 0;
    while (static_cast<int>(result.path.size()) < budget) {
      // A lambda already trained in full (the step was clamped to the
      // widened bracket, the L0 does not respond to lambda) would give the
      // same SAE again: stop with the closest full run.
      if (std::any_of(fulls.begin(), fulls.end(),
                      [&](const Try& f) { return f.knob == lambda; })) {
        break;
      }
      ASSIGN_OR_RETURN(Try t, TrainTry(base, lambda, true, target_l0, search, source, eval_x, seed,
                                       dir, &result));
      if (Within(t.l0, target_l0, tol)) break;
      fulls.push_back(t);
      if (t.l0 > target_l0)
        has_a = true;
      else
        has_b = true;
      update(full_a, full_b, t);
      if (has_a && has_b) {
        lambda = next_lambda(full_a, full_b);
        continue;
      }
      double slope = short_slope;
      if (fulls.size() >= 2) {
        const Try& p = fulls[fulls.size() - 2];
        double du = std::log(t.knob) - std::log(p.knob);
        double dl = log_l0(t.l0) - log_l0(p.l0);
        if (du != 0 && dl / du < 0) slope = dl / du;
      }
      double step =
          std::clamp((std::log(target_l0) - log_l0(t.l0)) / slope, -std::log(10.0), std::log(10.0));
      lambda = std::clamp(std::exp(std::log(t.knob) + step), lambda_min, lambda_max);
    }
    // If the budget ran out, the closest full run is kept (TrainTry).
  }
  if (!result.trained.sae) {
    return absl::ResourceExhaustedError(absl::StrCat("SAE '", base.name(),
                                                     "': matched-L0 search used its ", budget,
                                                     " trainings without a full run"));
  }
  result.within_tolerance = Within(result.l0, target_l0, tol);
  return result;
}

}  // namespace saelab
