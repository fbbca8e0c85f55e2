// Subject-model throughput on CPU for a GPT-2-small-shaped model (12 layers,
// n_embd 768, 12 heads, context 128, vocabulary 50257; random weights):
//   BM_Forward            full forward to the logits, batch 8 x 128 tokens
//   BM_HarvestToLayer6    the same batch, stopped after blocks.6.hook_resid_post
//                         (what activation harvesting at a middle layer runs)
//   BM_GenerateGreedy     KV-cache generation, batch 1: 64-token prompt + 64 new
// Each reports tokens/s and GFLOP/s (means over iterations); a summary at
// the end gives, from each benchmark's fastest iteration, tokens/s and
// sgemm_fraction: achieved FLOP/s over the sgemm ceiling measured in the
// same process (harness/benchmark_main.h), and the harvest/forward ratio.
// Batch-1 generation is bound by reading the weights (~500 MB per token),
// not by FLOPs: its fraction is small by nature.
//
// FLOPs credited per token (a multiply-add is 2 FLOPs; LayerNorm, GELU,
// softmax, adds and embedding lookups are not counted):
//   per block   24 d^2          c_attn 2*d*3d + attn c_proj 2*d*d
//                               + c_fc 2*d*4d + mlp c_proj 2*4d*d
//             +  4 seq d        q k^T and probs v over the whole seq x seq
//                               square the code computes (the causal half
//                               it masks is still computed)
//   unembedding 2 d vocab       logits = h wte^T
// GPT-2 small at seq 128: 12 (24 * 768^2 + 4 * 128 * 768) + 2 * 768 * 50257
// = 174.6M + 77.2M = 251.8 MFLOP/token. Harvesting to blocks.6.hook_resid_post
// runs 7 blocks and no unembedding: 101.8 MFLOP/token, so its tokens/s should
// be about 251.8 / 101.8 = 2.47x the full forward's. Generation credits the
// same per-block count with seq = the current length, and the unembedding
// of each new token.
//
//   ./bazelw run //data/subject_model:gpt2_forward_benchmark
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "harness/benchmark_main.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

constexpr int64_t kBatch = 8, kSeq = 128;
constexpr char kHarvestHookName[] = "blocks.6.hook_resid_post";
constexpr int64_t kHarvestBlocks = 7;

struct Result {
  std::string name;
  double gflops;        // achieved, by the FLOP count above
  double tokens_per_s;  // tokens through the model (new tokens for generation)
};
std::vector<Result> g_results;

Gpt2Config SmallConfig() {
  Gpt2Config config;
  config.n_layer = 12;
  config.n_head = 12;
  config.n_embd = 768;
  config.n_positions = kSeq;
  config.vocab_size = 50257;
  return config;
}

// FLOPs of one block for one token attending over `seq` positions.
double BlockFlopsPerToken(const Gpt2Config& c, int64_t seq) {
  const double d = static_cast<double>(c.n_embd);
  return 24.0 * d * d + 4.0 * seq * d;
}

double UnembedFlopsPerToken(const Gpt2Config& c) {
  return 2.0 * c.n_embd * static_cast<double>(c.vocab_size);
}

const Gpt2Model& Model() {
  static const Gpt2Model* model =
      new Gpt2Model(ValueOrDie(Gpt2Model::RandomInit(SmallConfig(), /*seed=*/1)));
  return *model;
}

void SetCounters(benchmark::State& state, double tokens, double flops_per_token) {
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(tokens * flops_per_token / 1e9, benchmark::Counter::kIsRate);
  state.counters["MFLOP/token"] = flops_per_token / 1e6;
}

// Records the achieved GFLOP/s of a benchmark for the summary main() prints.
// Google Benchmark calls a benchmark several times while it picks the
// iteration count; the last (longest) run is the reported one, and replaces
// the earlier ones here.
void Record(const char* name, double flops, double seconds, double tokens_per_s) {
  Result result{name, flops / seconds / 1e9, tokens_per_s};
  for (Result& r : g_results) {
    if (r.name == result.name) {
      r = result;
      return;
    }
  }
  g_results.push_back(result);
}

// Runs `run` once per benchmark iteration; returns the fastest iteration's
// seconds (the summary uses it: on a shared machine the fastest iteration is
// the one least disturbed by other processes).
template <typename Fn>
double TimeIterations(benchmark::State& state, Fn&& run) {
  double best = 1e300;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

void RunBatch(benchmark::State& state, bool harvest) {
  torch::NoGradGuard no_grad;
  const Gpt2Model& model = Model();
  const Gpt2Config& c = model.config();
  torch::manual_seed(2);
  torch::Tensor tokens = torch::randint(0, c.vocab_size, {kBatch, kSeq}, torch::kLong);
  torch::Tensor captured;
  HookSet hooks;
  ForwardOptions options;
  if (harvest) {
    hooks.hooks[kHarvestHookName] = CaptureInto(&captured);
    options.stop_at = ValueOrDie(ParseHookName(kHarvestHookName, c.n_layer));
  }
  auto run = [&] {
    absl::StatusOr<torch::Tensor> logits = model.Forward(tokens, hooks, options);
    if (!logits.ok()) {
      state.SkipWithError(logits.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(harvest ? captured : *logits);
  };
  run();  // warm-up: first-touch allocations
  const double best_seconds = TimeIterations(state, run);
  const double flops_per_token =
      harvest ? kHarvestBlocks * BlockFlopsPerToken(c, kSeq)
              : c.n_layer * BlockFlopsPerToken(c, kSeq) + UnembedFlopsPerToken(c);
  const double n_tokens = static_cast<double>(state.iterations()) * kBatch * kSeq;
  SetCounters(state, n_tokens, flops_per_token);
  const double batch_tokens = kBatch * kSeq;
  Record(harvest ? "harvest to blocks.6.hook_resid_post" : "full forward",
         batch_tokens * flops_per_token, best_seconds, batch_tokens / best_seconds);
}

void BM_Forward(benchmark::State& state) { RunBatch(state, /*harvest=*/false); }
void BM_HarvestToLayer6(benchmark::State& state) { RunBatch(state, /*harvest=*/true); }

void BM_GenerateGreedy(benchmark::State& state) {
  const Gpt2Model& model = Model();
  const Gpt2Config& c = model.config();
  constexpr int64_t kPrompt = 64, kNew = 64;
  std::vector<int64_t> prompt;
  for (int64_t i = 0; i < kPrompt; ++i) prompt.push_back((i * 7919) % c.vocab_size);
  GenerateOptions options;
  options.max_new_tokens = kNew;
  options.temperature = 0;
  // FLOPs of one generation: the prompt's forward (last position's logits
  // only are needed, but all are computed), then one token per step over
  // the cache.
  double flops = kPrompt * (c.n_layer * BlockFlopsPerToken(c, kPrompt) + UnembedFlopsPerToken(c));
  for (int64_t t = kPrompt; t < kPrompt + kNew - 1; ++t) {
    flops += c.n_layer * BlockFlopsPerToken(c, t + 1) + UnembedFlopsPerToken(c);
  }
  auto run = [&] {
    absl::StatusOr<GenerateResult> out = model.Generate(prompt, options);
    if (!out.ok()) {
      state.SkipWithError(out.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(out->tokens.data());
  };
  run();
  const double best_seconds = TimeIterations(state, run);
  const double generations = static_cast<double>(state.iterations());
  state.counters["new_tokens/s"] = benchmark::Counter(generations * kNew, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(generations * flops / 1e9, benchmark::Counter::kIsRate);
  Record("greedy generation, batch 1", flops, best_seconds, kNew / best_seconds);
}

BENCHMARK(BM_Forward)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(6.0);
BENCHMARK(BM_HarvestToLayer6)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(6.0);
BENCHMARK(BM_GenerateGreedy)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(6.0);

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  saelab::BenchmarkMainOptions options;
  options.setup = [](const saelab::BenchmarkBounds&) {
    saelab::Model();  // build the 124M-parameter model before timing anything
    return absl::OkStatus();
  };
  options.report = [](const saelab::BenchmarkBounds& bounds) {
    double forward = 0, harvest = 0;
    for (const saelab::Result& r : saelab::g_results) {
      std::printf("%-38s %9.1f tokens/s %7.1f GFLOP/s  sgemm_fraction %.2f\n", r.name.c_str(),
                  r.tokens_per_s, r.gflops, r.gflops / bounds.sgemm_gflops);
      if (r.name == "full forward") forward = r.tokens_per_s;
      if (r.name == "harvest to blocks.6.hook_resid_post") harvest = r.tokens_per_s;
    }
    if (forward > 0 && harvest > 0) {
      const saelab::Gpt2Config c = saelab::SmallConfig();
      const double predicted =
          (c.n_layer * saelab::BlockFlopsPerToken(c, saelab::kSeq) +
           saelab::UnembedFlopsPerToken(c)) /
          (saelab::kHarvestBlocks * saelab::BlockFlopsPerToken(c, saelab::kSeq));
      std::printf("harvest to %s vs full forward: %.2fx tokens/s (FLOP count predicts %.2fx)\n",
                  saelab::kHarvestHookName, harvest / forward, predicted);
    }
  };
  return saelab::RunBenchmarkMain(argc, argv, options);
}
