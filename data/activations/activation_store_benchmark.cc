// Activation store throughput on CPU, each number beside its bound measured
// in the same run:
//   BM_Forward         RunToHook to blocks.3.hook_resid_post of a small
//                      GPT-2 (4 layers, n_embd 256, 4 heads, vocabulary 8192,
//                      context 128), batch 32 contexts: the harvest's compute
//   BM_Harvest         HarvestActivations of 64 contexts (8192 tokens) at the
//                      same hook into a fresh directory: forward + float32
//                      chunk files (sha256, atomic writes) + manifest + stats
//   BM_RawRead         read() of every chunk file of a 16-chunk store
//                      (~133 MB, page cache warm) into a 1 MiB buffer
//   BM_StoreTrainBatch StoreActivationSource::TrainBatch(step, 4096) over the
//                      same store, steps continuing across iterations
// The summary gives harvest tokens/s and its FLOP/s as a fraction of the
// sgemm ceiling (harness/benchmark_main.h), harvest/forward, and the store's
// batch bytes/s over the raw sequential read's (ratio_vs_raw).
//
// FLOPs credited per token, as in data/subject_model/gpt2_forward_benchmark.cc (a
// multiply-add is 2 FLOPs; LayerNorm, GELU, softmax and adds not counted):
// per block 24 d^2 + 4 seq d; 4 blocks at d = 256, seq = 128:
// 4 (24 * 65536 + 4 * 128 * 256) = 6.82 MFLOP/token.
//
// The read-bandwidth store is harvested at blocks.0.hook_resid_pre (the
// embeddings: almost no compute) so that building it takes ~1 s.
//
//   ./bazelw run -c opt //data/activations:activation_store_benchmark
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "data/activations/activation_store.h"
#include "data/activations/harvest.h"
#include "data/activations/store_source.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/gpt2_model.h"
#include "harness/benchmark_main.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

constexpr int64_t kSeq = 128, kBatchContexts = 32, kHarvestContexts = 64;
constexpr int64_t kBatchRows = 4096;
constexpr char kHookName[] = "blocks.3.hook_resid_post";
constexpr char kReadHookName[] = "blocks.0.hook_resid_pre";

std::string g_tmp;  // scratch directory, removed at exit
double g_forward_tokens_per_s = 0, g_harvest_tokens_per_s = 0, g_harvest_gflops = 0;
double g_raw_bytes_per_s = 0, g_store_bytes_per_s = 0;

Gpt2Config SmallConfig() {
  Gpt2Config config;
  config.n_layer = 4;
  config.n_head = 4;
  config.n_embd = 256;
  config.n_positions = kSeq;
  config.vocab_size = 8192;
  return config;
}

double FlopsPerToken() {
  const double d = 256;
  return 4 * (24.0 * d * d + 4.0 * kSeq * d);
}

const Gpt2Model& Model() {
  static const Gpt2Model* model = new Gpt2Model(ValueOrDie(Gpt2Model::RandomInit(SmallConfig(), 1)));
  return *model;
}

const torch::Tensor& Contexts() {
  static const torch::Tensor* contexts = [] {
    torch::manual_seed(2);
    return new torch::Tensor(torch::randint(0, 8192, {1024, kSeq}, torch::kLong));
  }();
  return *contexts;
}

ActivationStoreKey Key(const std::string& hook_name, int64_t contexts) {
  ActivationStoreKey key;
  key.set_model_sha256("random-init-1");
  key.set_hook_name(hook_name);
  key.set_shard_sha256("random-tokens-2");
  key.set_context_begin(0);
  key.set_context_end(contexts);
  key.set_context_length(kSeq);
  key.set_drop_bos(true);
  return key;
}

// The ~133 MB store the read benchmarks use (16 chunks of 64 contexts).
const ActivationStore& ReadStore() {
  static const ActivationStore* store = [] {
    HarvestOptions options;
    options.contexts_per_chunk = 64;
    options.label = "read-bandwidth store";
    return new ActivationStore(ValueOrDie(HarvestActivations(Model(), Contexts(), Key(kReadHookName, 1024),
                                                        g_tmp + "/read_store", options)));
  }();
  return *store;
}

template <typename Fn>
double TimeIterations(benchmark::State& state, Fn&& run) {
  double best = 1e300;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    run();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

void BM_Forward(benchmark::State& state) {
  const torch::Tensor tokens = Contexts().slice(0, 0, kBatchContexts);
  const HookLocation location = ValueOrDie(ParseHookName(kHookName, Model().config().n_layer));
  torch::NoGradGuard no_grad;
  const double best = TimeIterations(
      state, [&] { benchmark::DoNotOptimize(ValueOrDie(Model().RunToHook(tokens, location))); });
  const double tokens_per_iter = kBatchContexts * kSeq;
  state.counters["tokens/s"] =
      benchmark::Counter(tokens_per_iter * state.iterations(), benchmark::Counter::kIsRate);
  g_forward_tokens_per_s = tokens_per_iter / best;
}

void BM_Harvest(benchmark::State& state) {
  int64_t n = 0;
  HarvestOptions options;
  options.contexts_per_chunk = 32;
  options.batch_contexts = kBatchContexts;
  options.label = "benchmark";
  double best = 1e300;
  for (auto _ : state) {
    const std::string dir = g_tmp + "/harvest_" + std::to_string(n++);
    const auto start = std::chrono::steady_clock::now();
    ActivationStore store =
        ValueOrDie(HarvestActivations(Model(), Contexts(), Key(kHookName, kHarvestContexts), dir, options));
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    benchmark::DoNotOptimize(store.mean_norm());
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  const double tokens = kHarvestContexts * kSeq;
  state.counters["tokens/s"] =
      benchmark::Counter(tokens * state.iterations(), benchmark::Counter::kIsRate);
  g_harvest_tokens_per_s = tokens / best;
  g_harvest_gflops = tokens * FlopsPerToken() / best / 1e9;
}

void BM_RawRead(benchmark::State& state) {
  const std::vector<std::string> paths = ReadStore().ChunkPaths();
  std::vector<char> buffer(1 << 20);
  int64_t bytes = 0;
  const double best = TimeIterations(state, [&] {
    bytes = 0;
    for (const std::string& path : paths) {
      const int fd = ::open(path.c_str(), O_RDONLY);
      ssize_t n;
      while ((n = ::read(fd, buffer.data(), buffer.size())) > 0) bytes += n;
      ::close(fd);
    }
    benchmark::DoNotOptimize(buffer.data());
  });
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(bytes) * state.iterations(),
                                                 benchmark::Counter::kIsRate);
  g_raw_bytes_per_s = static_cast<double>(bytes) / best;
}

void BM_StoreTrainBatch(benchmark::State& state) {
  const ActivationStore& store = ReadStore();
  StoreActivationSource source(store, /*seed=*/3);
  const double batch_bytes = static_cast<double>(kBatchRows) * store.d() * sizeof(float);
  // Time whole epochs (each buffer loaded once per epoch), as training sees it.
  const int64_t steps_per_epoch = source.epoch_rows() / kBatchRows;
  int64_t step = 0;
  const double best = TimeIterations(state, [&] {
    for (int64_t i = 0; i < steps_per_epoch; ++i) {
      benchmark::DoNotOptimize(ValueOrDie(source.TrainBatch(step++, kBatchRows)).data_ptr());
    }
  });
  const double bytes_per_epoch = batch_bytes * steps_per_epoch;
  state.counters["bytes/s"] =
      benchmark::Counter(bytes_per_epoch * state.iterations(), benchmark::Counter::kIsRate);
  g_store_bytes_per_s = bytes_per_epoch / best;
  if (g_raw_bytes_per_s > 0)
    state.counters["ratio_vs_raw"] = g_store_bytes_per_s / g_raw_bytes_per_s;
}

BENCHMARK(BM_Forward)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_Harvest)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(5.0);
BENCHMARK(BM_RawRead)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_StoreTrainBatch)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(5.0);

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  saelab::BenchmarkMainOptions options;
  options.scratch_dir = "activation_store_benchmark";
  options.setup = [&](const saelab::BenchmarkBounds& bounds) -> absl::Status {
    saelab::g_tmp = bounds.scratch_dir;
    saelab::ReadStore();  // build the read store before timing anything
    return absl::OkStatus();
  };
  options.report = [&](const saelab::BenchmarkBounds& bounds) {
    const double ceiling = bounds.sgemm_gflops;
    using saelab::g_harvest_gflops;
    std::printf("forward to %s: %10.0f tokens/s %7.1f GFLOP/s  sgemm_fraction %.2f\n",
                saelab::kHookName, saelab::g_forward_tokens_per_s,
                saelab::g_forward_tokens_per_s * saelab::FlopsPerToken() / 1e9,
                saelab::g_forward_tokens_per_s * saelab::FlopsPerToken() / 1e9 / ceiling);
    std::printf(
        "harvest (store written):          %10.0f tokens/s %7.1f GFLOP/s  sgemm_fraction %.2f\n",
        saelab::g_harvest_tokens_per_s, g_harvest_gflops, g_harvest_gflops / ceiling);
    if (saelab::g_forward_tokens_per_s > 0) {
      std::printf("harvest / forward: %.2f\n",
                  saelab::g_harvest_tokens_per_s / saelab::g_forward_tokens_per_s);
    }
    std::printf("raw sequential read of the chunks: %.2f GB/s\n", saelab::g_raw_bytes_per_s / 1e9);
    std::printf("StoreActivationSource TrainBatch(step, %lld): %.2f GB/s  ratio_vs_raw %.2f\n",
                static_cast<long long>(saelab::kBatchRows), saelab::g_store_bytes_per_s / 1e9,
                saelab::g_raw_bytes_per_s > 0
                    ? saelab::g_store_bytes_per_s / saelab::g_raw_bytes_per_s
                    : 0.0);
  };
  return saelab::RunBenchmarkMain(argc, argv, options);
}
