// SAE training fed from an activation store vs from memory, in one run.
//
// The same rows (a small random GPT-2's activations, d = 256) serve as
//   BM_TrainFromMemory  an in-memory tensor, batches gathered by a seeded
//                       permutation: the trainer's speed with free data
//   BM_TrainFromStore   the memory-mapped activation store through
//                       StoreActivationSource (seeded shuffling buffer)
// and TrainSae runs a TopK SAE (n = 4096, k = 32, batch 4096) on each for
// 24 steps. Reports training tokens/s of both and store_vs_memory, their
// ratio: how much of the trainer's speed survives reading from the store.
//
//   ./bazelw run -c opt //experiments:store_training_benchmark
#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/activations/activation_store.h"
#include "data/activations/harvest.h"
#include "data/activations/store_source.h"
#include "data/subject_model/gpt2_model.h"
#include "harness/benchmark_main.h"
#include "harness/status_macros.h"
#include "sae/sae_config.pb.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

constexpr int64_t kContexts = 1024, kSeq = 64, kBatch = 4096, kSteps = 24;
constexpr char kHook[] = "blocks.1.hook_resid_post";

std::string g_tmp;
double g_memory_tokens_per_s = 0, g_store_tokens_per_s = 0;

const ActivationStore& Store() {
  static const ActivationStore* store = [] {
    Gpt2Config config;
    config.n_layer = 2;
    config.n_head = 4;
    config.n_embd = 256;
    config.n_positions = kSeq;
    config.vocab_size = 4096;
    Gpt2Model model = ValueOrDie(Gpt2Model::RandomInit(config, 1));
    torch::manual_seed(2);
    torch::Tensor contexts = torch::randint(0, 4096, {kContexts, kSeq}, torch::kLong);
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
        ValueOrDie(HarvestActivations(model, contexts, key, g_tmp + "/store", options)));
  }();
  return *store;
}

// Every store row in memory; batch `step` = rows of a seeded permutation.
class MemorySource : public ActivationSource {
 public:
  explicit MemorySource(torch::Tensor rows) : rows_(std::move(rows)) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(3);
    order_ = torch::randperm(rows_.size(0), generator, torch::kLong);
  }
  int64_t d_in() const override { return rows_.size(1); }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override {
    torch::Tensor index =
        (torch::arange(batch_size, torch::kLong) + step * batch_size).remainder(rows_.size(0));
    return rows_.index_select(0, order_.index_select(0, index));
  }
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override {
    return TrainBatch(0, tokens);
  }

 private:
  torch::Tensor rows_;
  torch::Tensor order_;
};

SaeConfig TopKConfig() {
  SaeConfig config;
  config.set_name("topk");
  config.set_n_latents(4096);
  config.mutable_topk()->set_k(32);
  config.mutable_topk()->set_geometric_median_iterations(10);
  config.mutable_trainer()->set_batch_size(kBatch);
  config.mutable_trainer()->set_total_tokens(kSteps * kBatch);
  config.mutable_trainer()->set_init_sample_tokens(kBatch);
  return config;
}

double TrainSeconds(benchmark::State& state, ActivationSource& source) {
  double best = 1e300;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    TrainResult trained = ValueOrDie(TrainSae(TopKConfig(), source, /*seed=*/4));
    benchmark::DoNotOptimize(trained.steps);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(kSteps * kBatch) * state.iterations(), benchmark::Counter::kIsRate);
  return best;
}

void BM_TrainFromMemory(benchmark::State& state) {
  MemorySource source(ValueOrDie(Store().Rows(0, Store().num_rows())));
  g_memory_tokens_per_s = kSteps * kBatch / TrainSeconds(state, source);
}

void BM_TrainFromStore(benchmark::State& state) {
  StoreActivationSource source(Store(), /*seed=*/3);
  g_store_tokens_per_s = kSteps * kBatch / TrainSeconds(state, source);
  if (g_memory_tokens_per_s > 0) {
    state.counters["store_vs_memory"] = g_store_tokens_per_s / g_memory_tokens_per_s;
  }
}

BENCHMARK(BM_TrainFromMemory)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_TrainFromStore)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  saelab::BenchmarkMainOptions options;
  options.scratch_dir = "store_training_benchmark";
  // Training tokens/s from the store vs from memory is the ratio reported;
  // the sgemm ceiling would not enter it.
  options.measure_sgemm = false;
  options.setup = [&](const saelab::BenchmarkBounds& bounds) -> absl::Status {
    saelab::g_tmp = bounds.scratch_dir;
    saelab::Store();  // harvest before timing anything
    return absl::OkStatus();
  };
  options.report = [&](const saelab::BenchmarkBounds&) {
    std::printf("\nTopK SAE training (d 256, n 4096, k 32, batch %lld), best of 3 x %lld steps:\n",
                static_cast<long long>(saelab::kBatch), static_cast<long long>(saelab::kSteps));
    std::printf("from memory: %8.0f tokens/s\nfrom store:  %8.0f tokens/s\nstore_vs_memory: %.2f\n",
                saelab::g_memory_tokens_per_s, saelab::g_store_tokens_per_s,
                saelab::g_store_tokens_per_s / saelab::g_memory_tokens_per_s);
  };
  return saelab::RunBenchmarkMain(argc, argv, options);
}
