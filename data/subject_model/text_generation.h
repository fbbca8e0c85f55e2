// Text in, text out: a model directory's tokenizer and GPT-2 around
// Gpt2Model::Generate. What `generate` and `saelab generate` run.
//
//   TextGenerationOptions options;
//   options.prompt = "The bridge";
//   ASSIGN_OR_RETURN(GeneratedText out, GenerateText("/models/gpt2", options));
//   std::puts(out.text.c_str());
#ifndef SAELAB_DATA_SUBJECT_MODEL_TEXT_GENERATION_H_
#define SAELAB_DATA_SUBJECT_MODEL_TEXT_GENERATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace saelab {

struct TextGenerationOptions {
  // Text to continue; empty starts from <|endoftext|> alone, as GPT-2's
  // unconditional samples do.
  std::string prompt;
  // Reduced to fit the model's context (GeneratedText::note says so).
  int64_t max_new_tokens = 50;
  // 0 = greedy, as transformers' generate defaults to.
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  // Stop after <|endoftext|> (the tokenizer's, else config.json's
  // eos_token_id); a final end-of-text token is not part of `text`.
  bool stop_at_eos = true;
};

struct GeneratedText {
  // The continuation only, decoded.
  std::string text;
  // "DIR: 12 layers, d=768; prompt 3 tokens, generated 50".
  std::string summary;
  // Non-empty when max_new_tokens was reduced to fit the context.
  std::string note;
};

// Loads `model_dir` (config.json, model.safetensors, and vocab.json +
// merges.txt or encoder.json + vocab.bpe) and continues the prompt. Errors
// name the file at fault; InvalidArgument when the tokenizer is larger than
// config.json's vocab_size, the prompt fills the context, or the prompt is
// empty and the model has no <|endoftext|>.
absl::StatusOr<GeneratedText> GenerateText(const std::string& model_dir,
                                           const TextGenerationOptions& options);

}  // namespace saelab

#endif  // SAELAB_DATA_SUBJECT_MODEL_TEXT_GENERATION_H_
