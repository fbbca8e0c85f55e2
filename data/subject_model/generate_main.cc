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

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "data/subject_model/text_generation.h"

ABSL_FLAG(std::string, model_dir, "",
          "Directory with config.json, model.safetensors, vocab.json and merges.txt.");
ABSL_FLAG(std::string, prompt, "", "Text to continue (empty: start from <|endoftext|>).");
ABSL_FLAG(int64_t, max_new_tokens, 50, "Tokens to generate at most.");
ABSL_FLAG(double, temperature, 0.0, "Sampling temperature; 0 = greedy.");
ABSL_FLAG(int64_t, top_k, 0, "Sample among the k most likely tokens; 0 = no limit.");
ABSL_FLAG(double, top_p, 1.0, "Nucleus sampling mass in (0, 1]; 1 = no limit.");
ABSL_FLAG(uint64_t, seed, 0, "Sampling seed: the same flags give the same text.");
ABSL_FLAG(bool, stop_at_eos, true, "Stop after generating <|endoftext|>.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for LibTorch (0: its default, which is 1 on some machines; "
          "provenance records the count used).");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Continues --prompt with the GPT-2 model in --model_dir and prints the continuation.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_model_dir).empty()) {
    std::fprintf(stderr, "error: --model_dir is required\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  saelab::TextGenerationOptions options;
  options.prompt = absl::GetFlag(FLAGS_prompt);
  options.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  options.temperature = absl::GetFlag(FLAGS_temperature);
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.top_p = absl::GetFlag(FLAGS_top_p);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.stop_at_eos = absl::GetFlag(FLAGS_stop_at_eos);
  absl::StatusOr<saelab::GeneratedText> out =
      saelab::GenerateText(absl::GetFlag(FLAGS_model_dir), options);
  if (!out.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(out.status().message()).c_str());
    return 1;
  }
  if (!out->note.empty()) std::fprintf(stderr, "note: %s\n", out->note.c_str());
  std::fprintf(stderr, "%s\n", out->summary.c_str());
  std::fwrite(out->text.data(), 1, out->text.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}
