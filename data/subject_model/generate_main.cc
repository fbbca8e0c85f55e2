// Generates text from a Hugging Face-style GPT-2 directory (config.json,
// model.safetensors, and the tokenizer: vocab.json + merges.txt, or
// encoder.json + vocab.bpe) and prints the continuation of the prompt.
//
//   ./bazelw run //data/subject_model:generate -- --model_dir=/models/gpt2 --prompt="The bridge"
//   ./bazelw run //data/subject_model:generate -- --model_dir=DIR --prompt="..."
//       --max_new_tokens=40 --temperature=0.8 --top_p=0.95 --seed=3   (one line)
//
// stdout: the continuation only (the generated tokens decoded; a final
// end-of-text token is not printed). stderr: what was loaded and how many
// tokens were generated. Exit status 1 with the error on stderr for bad
// input (a missing or malformed file names the file), 2 for bad flags.
//
// Defaults: greedy (temperature 0), as transformers' generate defaults to.
// Generation stops at <|endoftext|> (the tokenizer's, else config.json's
// eos_token_id) unless --nostop_at_eos; max_new_tokens is reduced to fit
// the model's context, with a note on stderr. An empty prompt starts from
// <|endoftext|> alone, as GPT-2's unconditional samples do.
#include <ATen/Parallel.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "data/text/bpe_tokenizer.h"
#include "data/subject_model/gpt2_model.h"
#include "harness/status_macros.h"

ABSL_FLAG(std::string, model_dir, "",
          "Directory with config.json, model.safetensors, vocab.json and merges.txt.");
ABSL_FLAG(std::string, prompt, "", "Text to continue (empty: start from <|endoftext|>).");
ABSL_FLAG(int64_t, max_new_tokens, 50, "Tokens to generate at most.");
ABSL_FLAG(double, temperature, 0.0, "Sampling temperature; 0 = greedy.");
ABSL_FLAG(int64_t, top_k, 0, "Sample among the k most likely tokens; 0 = no limit.");
ABSL_FLAG(double, top_p, 1.0, "Nucleus sampling mass in (0, 1]; 1 = no limit.");
ABSL_FLAG(uint64_t, seed, 0, "Sampling seed: the same flags give the same text.");
ABSL_FLAG(bool, stop_at_eos, true, "Stop after generating <|endoftext|>.");
ABSL_FLAG(int, threads, 0, "Intra-op threads for LibTorch (0: its default, the core count).");

namespace saelab {
namespace {

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_model_dir);
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(dir));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(dir));
  const Gpt2Config& config = model.config();
  if (tokenizer.vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": the tokenizer has ", tokenizer.vocab_size(), " tokens but config.json's vocab_size is ",
        config.vocab_size, ": they do not belong together"));
  }
  int64_t eos = -1;
  if (tokenizer.eos_id().has_value()) {
    eos = *tokenizer.eos_id();
  } else {
    eos = config.eos_token_id;
  }

  std::vector<int64_t> prompt;
  for (int32_t id : tokenizer.EncodeWithSpecialTokens(absl::GetFlag(FLAGS_prompt))) {
    prompt.push_back(id);
  }
  if (prompt.empty()) {
    if (eos < 0) {
      return absl::InvalidArgumentError(
          "--prompt is empty and the model has no <|endoftext|> token to start from");
    }
    prompt.push_back(eos);
  }
  if (static_cast<int64_t>(prompt.size()) >= config.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("--prompt is ", prompt.size(),
                                                   " tokens; the model's context is ",
                                                   config.n_positions));
  }

  GenerateOptions options;
  options.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  const int64_t room = config.n_positions - static_cast<int64_t>(prompt.size());
  if (options.max_new_tokens > room) {
    std::fprintf(stderr, "note: --max_new_tokens=%lld reduced to %lld to fit the context of %lld\n",
                 static_cast<long long>(options.max_new_tokens), static_cast<long long>(room),
                 static_cast<long long>(config.n_positions));
    options.max_new_tokens = room;
  }
  options.temperature = absl::GetFlag(FLAGS_temperature);
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.top_p = absl::GetFlag(FLAGS_top_p);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.stop_token = absl::GetFlag(FLAGS_stop_at_eos) ? eos : -1;

  ASSIGN_OR_RETURN(GenerateResult result, model.Generate(prompt, options));
  std::vector<int32_t> ids(result.tokens.begin(), result.tokens.end());
  if (!ids.empty() && ids.back() == options.stop_token) ids.pop_back();
  std::fprintf(stderr, "%s: %d layers, d=%lld; prompt %zu tokens, generated %zu\n", dir.c_str(),
               static_cast<int>(config.n_layer), static_cast<long long>(config.n_embd),
               prompt.size(), result.tokens.size());
  const std::string text = tokenizer.Decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Continues --prompt with the GPT-2 model in --model_dir and prints the continuation.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_model_dir).empty()) {
    std::fprintf(stderr, "error: --model_dir is required\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  torch::NoGradGuard no_grad;
  absl::Status status = saelab::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
