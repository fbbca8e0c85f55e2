// saelab generate: continue a prompt with a GPT-2 model directory.
#include <cstdio>
#include <string>

#include "harness/status_macros.h"
#include "data/subject_model/text_generation.h"
#include "tools/command.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab generate --model_dir=DIR [--prompt=TEXT] [flags]

Continues --prompt with the GPT-2 model in DIR (Hugging Face layout:
config.json, model.safetensors, vocab.json + merges.txt) and prints the
continuation only on stdout. Greedy by default (temperature 0); stops at
<|endoftext|> unless --nostop_at_eos. The same flags give the same text.

Example:
  saelab generate --model_dir=/models/gpt2 --prompt="The bridge" --max_new_tokens=40 \
      --temperature=0.8 --top_p=0.95 --seed=3)";

absl::Status Run(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("model_dir"));
  TextGenerationOptions options;
  options.prompt = flags.String("prompt");
  options.max_new_tokens = flags.Int("max_new_tokens");
  options.temperature = flags.Double("temperature");
  options.top_k = flags.Int("top_k");
  options.top_p = flags.Double("top_p");
  options.seed = static_cast<uint64_t>(flags.Int("seed"));
  options.stop_at_eos = flags.Bool("stop_at_eos");
  ASSIGN_OR_RETURN(GeneratedText out, GenerateText(flags.String("model_dir"), options));
  if (!out.note.empty()) std::fprintf(stderr, "note: %s\n", out.note.c_str());
  std::fprintf(stderr, "%s\n", out.summary.c_str());
  std::fwrite(out.text.data(), 1, out.text.size(), stdout);
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

}  // namespace

Command GenerateCommand() {
  return {
      "generate",
      "Continue a prompt with a GPT-2 model directory",
      kUsage,
      {
          {"model_dir", FlagType::kString, "", "GPT-2 directory (Hugging Face layout)."},
          {"prompt", FlagType::kString, "", "Text to continue (empty: from <|endoftext|>)."},
          {"max_new_tokens", FlagType::kInt, "50", "Tokens to generate at most."},
          {"temperature", FlagType::kDouble, "0", "Sampling temperature; 0 = greedy."},
          {"top_k", FlagType::kInt, "0", "Sample among the k most likely tokens; 0 = no limit."},
          {"top_p", FlagType::kDouble, "1", "Nucleus sampling mass in (0, 1]; 1 = no limit."},
          {"seed", FlagType::kInt, "0", "Sampling seed."},
          {"stop_at_eos", FlagType::kBool, "true", "Stop after generating <|endoftext|>."},
      },
      &Run,
  };
}

}  // namespace saelab
