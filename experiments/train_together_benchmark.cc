// Several SAEs trained from one activation stream (sae/trainer.h TrainSaes,
// each batch read once) against the same SAEs trained one after another
// (TrainSae each), in one run, from two streams:
//   model  ModelActivationSource: a random GPT-2 (2 blocks, d 256) run on the
//          fly to blocks.1.hook_resid_post; one forward pass per batch is
//          shared by all the SAEs
//   store  StoreActivationSource over those activations harvested once; what
//          is shared is the shuffled gather
// Four TopK SAEs (n 1024; k 8, 16, 32, 64; batch 1024, 16 steps each).
// Reports the wall time of each way and the speedup, one-after-another time
// over together time, per stream. Both ways train bit-identical SAEs
// (sae/trainer_test.cc), so the speedup is free.
//
//   ./bazelw run -c opt //experiments:train_together_benchmark
#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/activations/activation_store.h"
#include "data/activations/harvest.h"
#include "data/activations/model_source.h"
#include "data/activations/store_source.h"
#include "data/subject_model/gpt2_model.h"
#include "harness/benchmark_main.h"
#include "harness/status_macros.h"
#include "sae/sae_config.pb.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

constexpr int64_t kContexts = 512, kSeq = 64, kBatch = 1024, kSteps = 16;
constexpr char kHook[] = "blocks.1.hook_resid_post";

std::string g_tmp;
// Seconds, best of the iterations: [stream][0 one after another, 1 together].
double g_seconds[2][2] = {{0, 0}, {0, 0}};

const Gpt2Model& Model() {
  static const Gpt2Model* model = [] {
    Gpt2Config config;
    config.n_layer = 2;
    config.n_head = 4;
    config.n_embd = 256;
    config.n_positions = kSeq;
    config.vocab_size = 4096;
    return new Gpt2Model(ValueOrDie(Gpt2Model::RandomInit(config, 1)));
  }();
  return *model;
}

const torch::Tensor& Contexts() {
  static const torch::Tensor* contexts = [] {
    torch::manual_seed(2);
    return new torch::Tensor(torch::randint(0, 4096, {kContexts, kSeq}, torch::kLong));
  }();
  return *contexts;
}

const ActivationStore& Store() {
  static const ActivationStore* store = [] {
    ActivationStoreKey key;
    key.set_model_sha256("random-init-1");
    key.set_hook_name(kHook);
    key.set_shard_sha256("random-tokens-2");
    key.set_context_end(kContexts);
    key.set_context_length(kSeq);
    key.set_drop_bos(true);
    HarvestOptions options;
    options.contexts_per_chunk = 128;
    options.label = "benchmark store";
    return new ActivationStore(
        ValueOrDie(HarvestActivations(Model(), Contexts(), key, g_tmp + "/store", options)));
  }();
  return *store;
}

std::vector<TrainJob> Jobs() {
  std::vector<TrainJob> jobs;
  for (int64_t k : {8, 16, 32, 64}) {
    TrainJob job;
    job.config.set_name("topk_k" + std::to_string(k));
    job.config.set_n_latents(1024);
    job.config.mutable_topk()->set_k(k);
    job.config.mutable_topk()->set_geometric_median_iterations(10);
    job.config.mutable_trainer()->set_batch_size(kBatch);
    job.config.mutable_trainer()->set_total_tokens(kSteps * kBatch);
    job.config.mutable_trainer()->set_init_sample_tokens(kBatch);
    job.config.mutable_trainer()->set_log_every_steps(1000);
    job.seed = static_cast<uint64_t>(k);
    jobs.push_back(job);
  }
  return jobs;
}

// stream 0: the model, 1: the store; together 0: one after another, 1: TrainSaes.
void BM_FourSaes(benchmark::State& state) {
  const int stream = static_cast<int>(state.range(0)), together = static_cast<int>(state.range(1));
  double best = 1e300;
  for (auto _ : state) {
    ModelActivationSource model_source(Model(), Contexts(), ValueOrDie(ParseHookName(kHook, 2)),
                                       /*drop_bos=*/true, /*seed=*/3);
    StoreActivationSource store_source(Store(), /*seed=*/3);
    ActivationSource& source =
        stream == 0 ? static_cast<ActivationSource&>(model_source) : store_source;
    const auto start = std::chrono::steady_clock::now();
    if (together == 1) {
      benchmark::DoNotOptimize(ValueOrDie(TrainSaes(Jobs(), source)).size());
    } else {
      for (const TrainJob& job : Jobs()) {
        benchmark::DoNotOptimize(ValueOrDie(TrainSae(job.config, source, job.seed)).steps);
      }
    }
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  g_seconds[stream][together] = best;
  state.counters["sae_tokens/s"] = 4.0 * kSteps * kBatch / best;
  if (together == 1 && g_seconds[stream][0] > 0) {
    state.counters["speedup"] = g_seconds[stream][0] / best;
  }
}

BENCHMARK(BM_FourSaes)
    ->ArgNames({"store", "together"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  saelab::BenchmarkMainOptions options;
  options.scratch_dir = "train_together_benchmark";
  // The ratio reported is between two ways of doing the same work; the sgemm
  // ceiling would not enter it.
  options.measure_sgemm = false;
  options.setup = [&](const saelab::BenchmarkBounds& bounds) -> absl::Status {
    saelab::g_tmp = bounds.scratch_dir;
    saelab::Store();  // harvest before timing anything
    return absl::OkStatus();
  };
  options.report = [&](const saelab::BenchmarkBounds&) {
    std::printf("\nFour TopK SAEs (d 256, n 1024, k 8-64, batch %lld, %lld steps each), best of 2:\n",
                static_cast<long long>(saelab::kBatch), static_cast<long long>(saelab::kSteps));
    const char* names[] = {"model (forward on the fly)", "store"};
    for (int s = 0; s < 2; ++s) {
      std::printf("%-28s one after another %7.2f s  together %7.2f s  speedup %.2f\n", names[s],
                  saelab::g_seconds[s][0], saelab::g_seconds[s][1],
                  saelab::g_seconds[s][0] / saelab::g_seconds[s][1]);
    }
  };
  return saelab::RunBenchmarkMain(argc, argv, options);
}
