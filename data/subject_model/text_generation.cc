#include "data/subject_model/text_generation.h"

#include <torch/types.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<GeneratedText> GenerateText(const std::string& dir,
                                           const TextGenerationOptions& options) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(dir));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(dir));
  const Gpt2Config& config = model.config();
  if (tokenizer.vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": the tokenizer has ", tokenizer.vocab_size(), " tokens but config.json's vocab_size is ",
        config.vocab_size, ": they do not belong together"));
  }
  const int64_t eos = tokenizer.eos_id().has_value() ? *tokenizer.eos_id() : config.eos_token_id;

  std::vector<int64_t> prompt;
  for (int32_t id : tokenizer.EncodeWithSpecialTokens(options.prompt)) prompt.push_back(id);
  if (prompt.empty()) {
    if (eos < 0) {
      return absl::InvalidArgumentError(
          "the prompt is empty and the model has no <|endoftext|> token to start from");
    }
    prompt.push_back(eos);
  }
  if (static_cast<int64_t>(prompt.size()) >= config.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt is ", prompt.size(),
                                                   " tokens; the model's context is ",
                                                   config.n_positions));
  }

  GeneratedText out;
  GenerateOptions generate;
  generate.max_new_tokens = options.max_new_tokens;
  const int64_t room = config.n_positions - static_cast<int64_t>(prompt.size());
  if (generate.max_new_tokens > room) {
    out.note = absl::StrCat("max_new_tokens=", generate.max_new_tokens, " reduced to ", room,
                            " to fit the context of ", config.n_positions);
    generate.max_new_tokens = room;
  }
  generate.temperature = options.temperature;
  generate.top_k = options.top_k;
  generate.top_p = options.top_p;
  generate.seed = options.seed;
  generate.stop_token = options.stop_at_eos ? eos : -1;

  ASSIGN_OR_RETURN(GenerateResult result, model.Generate(prompt, generate));
  std::vector<int32_t> ids(result.tokens.begin(), result.tokens.end());
  if (!ids.empty() && ids.back() == generate.stop_token) ids.pop_back();
  out.summary = absl::StrCat(dir, ": ", config.n_layer, " layers, d=", config.n_embd, "; prompt ",
                             prompt.size(), " tokens, generated ", result.tokens.size());
  out.text = tokenizer.Decode(ids);
  return out;
}

}  // namespace saelab
