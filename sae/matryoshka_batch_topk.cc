#include "sae/matryoshka_batch_topk.h"

#include <cmath>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"
#include "sae/topk.h"

namespace saelab {

MatryoshkaBatchTopKSae::MatryoshkaBatchTopKSae(int64_t d_in, int64_t n_latents,
                                               const MatryoshkaBatchTopKConfig& config,
                                               uint64_t seed)
    : BatchTopKSae(d_in, n_latents, config.batch_topk(),
                   {config.prefix_widths().begin(), config.prefix_widths().end()}, seed) {}

std::vector<int64_t> DefaultMatryoshkaPrefixWidths(int64_t n_latents) {
  std::vector<int64_t> widths;
  for (int64_t width : {n_latents / 16, n_latents / 4}) {
    if (width >= 1 && width < n_latents && (widths.empty() || width > widths.back())) {
      widths.push_back(width);
    }
  }
  return widths;
}

namespace {

absl::Status Resolve(int64_t d_in, SaeConfig* config) {
  const int64_t n = config->n_latents();
  MatryoshkaBatchTopKConfig* matryoshka = config->mutable_matryoshka_batch_topk();
  RETURN_IF_ERROR(ResolveBatchTopKConfig(d_in, n, "matryoshka_batch_topk.batch_topk",
                                         matryoshka->mutable_batch_topk()));
  if (matryoshka->prefix_widths().empty()) {
    for (int64_t width : DefaultMatryoshkaPrefixWidths(n)) matryoshka->add_prefix_widths(width);
    if (matryoshka->prefix_widths().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "matryoshka_batch_topk.prefix_widths: n_latents = ", n,
          " has no default inner prefix (n/16, n/4); list the widths"));
    }
  }
  int64_t previous = 0;
  for (int64_t width : matryoshka->prefix_widths()) {
    if (width <= previous || width >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "matryoshka_batch_topk.prefix_widths must increase strictly within [1, n_latents = ", n,
          "), got ", width, " after ", previous));
    }
    previous = width;
  }
  FillOptimizerDefaults(TopKLearningRate(n), kTopKAdamEps, config);
  return absl::OkStatus();
}

}  // namespace

const SaeArchitecture& MatryoshkaBatchTopKArchitecture() {
  static const SaeArchitecture* const architecture = [] {
    // BatchTopK's row (the SAELens form, its threshold tensor) with its own
    // name, config and knob.
    auto* row = new SaeArchitecture(BatchTopKArchitecture());
    row->name = "matryoshka_batch_topk";
    row->config_case = SaeConfig::kMatryoshkaBatchTopk;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<MatryoshkaBatchTopKSae>(d_in, config.n_latents(),
                                                      config.matryoshka_batch_topk(), seed);
    };
    row->sparsity_knob = [](const SaeConfig& config) {
      return static_cast<double>(config.matryoshka_batch_topk().batch_topk().k());
    };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      config->mutable_matryoshka_batch_topk()->mutable_batch_topk()->set_k(std::llround(value));
    };
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
