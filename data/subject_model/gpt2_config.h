// The shape of a GPT-2-architecture subject model, read from and written to
// a Hugging Face `config.json` (transformers' GPT2Config keys), so that a
// model directory moves between saelab and transformers unchanged.
//
//   ASSIGN_OR_RETURN(Gpt2Config config, ReadGpt2Config(dir + "/config.json"));
//   config.n_layer;      // 12 for GPT-2 small
//   RETURN_IF_ERROR(WriteGpt2Config(out_dir + "/config.json", config));
//
// Keys read (all others, e.g. dropout rates and task_specific_params, are
// ignored):
//   n_layer, n_head, n_embd, vocab_size     required positive integers
//   n_positions                             required (old configs: n_ctx)
//   n_inner                                 MLP width; absent or null = 4 n_embd
//   layer_norm_epsilon                      default 1e-5
//   activation_function                     default "gelu_new"; "gelu_new" and
//                                           "gelu_pytorch_tanh" (the same GELU,
//                                           tanh approximation) are accepted
//   bos_token_id, eos_token_id              optional (-1 when absent or null)
//   model_type                              if present, must be "gpt2"
//   tie_word_embeddings, scale_attn_weights if present, must be true
//   scale_attn_by_inverse_layer_idx,
//   reorder_and_upcast_attn                 if present, must be false
// The last four pin the variants this implementation computes: a config
// asking for another one is an error rather than a silently different model.
#ifndef SAELAB_DATA_SUBJECT_MODEL_GPT2_CONFIG_H_
#define SAELAB_DATA_SUBJECT_MODEL_GPT2_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

struct Gpt2Config {
  // Transformer blocks.
  int64_t n_layer = 12;
  // Attention heads per block; n_embd must be a multiple of it.
  int64_t n_head = 12;
  // Residual stream width (d_model).
  int64_t n_embd = 768;
  // MLP hidden width (d_mlp); 0 means 4 * n_embd (transformers' n_inner = null).
  int64_t n_inner = 0;
  // Context length: rows of the learned positional embedding wpe.
  int64_t n_positions = 1024;
  // Rows of the token embedding wte (also the logits' width: tied unembedding).
  int64_t vocab_size = 50257;
  // LayerNorm epsilon (ln_1, ln_2, ln_f).
  double layer_norm_epsilon = 1e-5;
  // Always "gelu_new": GELU, tanh approximation (the only one supported).
  std::string activation_function = "gelu_new";
  // Token ids from the config, -1 when it has none. Informational: written
  // back, and a default stop token for generation.
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // The MLP width actually used: n_inner, or 4 * n_embd when n_inner is 0.
  int64_t d_mlp() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  // Per-head width, n_embd / n_head.
  int64_t d_head() const { return n_embd / n_head; }
};

// The largest n_layer, n_head, n_embd, n_inner, n_positions and vocab_size
// accepted (2^31 - 1, far above any GPT-2): the shapes derived from them
// (3 n_embd, 4 n_embd, vocab_size x n_embd) then never overflow int64.
inline constexpr int64_t kMaxGpt2Size = (int64_t{1} << 31) - 1;

// OK if `config` describes a model this implementation can build: sizes in
// [1, kMaxGpt2Size] (n_inner in [0, kMaxGpt2Size]), n_embd divisible by
// n_head, a finite positive epsilon, activation "gelu_new", token ids in
// [-1, vocab_size).
// InvalidArgument otherwise; messages start with `name_for_errors` and name
// the field.
absl::Status ValidateGpt2Config(const Gpt2Config& config, const std::string& name_for_errors);

// Parses config.json text (see the keys above) and validates the result.
// InvalidArgument naming `path_for_errors` and the key for malformed JSON, a
// missing required key, a value of the wrong type or range, or an
// unsupported variant.
absl::StatusOr<Gpt2Config> ParseGpt2ConfigJson(absl::string_view text,
                                               const std::string& path_for_errors);

// Reads and parses `path`. NotFound if it does not exist; otherwise as
// ParseGpt2ConfigJson, with messages starting with `path`.
absl::StatusOr<Gpt2Config> ReadGpt2Config(const std::string& path);

// The config as transformers writes it for GPT2LMHeadModel: model_type,
// architectures, the keys above (n_ctx too, for old readers), two-space
// indented, keys in a fixed order. Deterministic.
std::string Gpt2ConfigToJson(const Gpt2Config& config);

// Validates `config` and writes Gpt2ConfigToJson(config) to `path`
// atomically. Errors name `path`.
absl::Status WriteGpt2Config(const std::string& path, const Gpt2Config& config);

}  // namespace saelab

#endif  // SAELAB_DATA_SUBJECT_MODEL_GPT2_CONFIG_H_
