// The subject language model: the GPT-2 architecture in LibTorch, loading
// and saving Hugging Face-style directories, with TransformerLens-named hook
// points (data/subject_model/hooks.h) and KV-cache generation.
//
//   ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory("/models/gpt2"));
//   torch::Tensor resid;
//   HookSet hooks;
//   hooks.hooks["blocks.6.hook_resid_post"] = CaptureInto(&resid);
//   ForwardOptions options;
//   options.stop_at = HookLocation{6, HookPoint::kResidPost};  // harvesting: skip layers 7..11
//   ASSIGN_OR_RETURN(torch::Tensor logits, model.Forward(tokens, hooks, options));
//   // resid: [batch, seq, 768]; logits undefined (stopped early)
//
//   GenerateOptions gen;
//   gen.max_new_tokens = 20;
//   gen.temperature = 0.8;
//   gen.top_p = 0.95;
//   ASSIGN_OR_RETURN(GenerateResult out, model.Generate(prompt_ids, gen));
//
// Architecture (GPT-2; Radford et al. 2019, transformers' GPT2LMHeadModel):
//   h_0 = wte[tokens] + wpe[positions]
//   per block:  a = Attn(LN_1(h)),  h = h + a,  m = MLP(LN_2(h)),  h = h + m
//     Attn: [q k v] = x W_attn + b_attn (c_attn), per head
//           softmax(q k^T / sqrt(d_head) + causal/padding mask) v,
//           heads concatenated, then c_proj
//     MLP:  c_proj(gelu_tanh(c_fc(x))),
//           gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   logits = LN_f(h) wte^T   (tied unembedding)
// Conv1D weights are stored [in, out] and applied as y = x W + b.
//
// Checkpoint layout (model.safetensors; names with or without a
// "transformer." prefix are read, none is written, as in the GPT-2 files
// transformers publishes):
//   wte.weight [vocab_size, n_embd]    wpe.weight [n_positions, n_embd]
//   h.{i}.ln_1.weight, .bias [n_embd]  h.{i}.ln_2.weight, .bias [n_embd]
//   h.{i}.attn.c_attn.weight [n_embd, 3 n_embd]   .bias [3 n_embd]
//   h.{i}.attn.c_proj.weight [n_embd, n_embd]     .bias [n_embd]
//   h.{i}.mlp.c_fc.weight [n_embd, d_mlp]         .bias [d_mlp]
//   h.{i}.mlp.c_proj.weight [d_mlp, n_embd]       .bias [n_embd]
//   ln_f.weight, ln_f.bias [n_embd]
// Also accepted: h.{i}.attn.bias / attn.masked_bias (transformers' causal
// mask buffers, ignored) and lm_head.weight if it equals wte.weight. Any
// other tensor is an error (it would mean a model this code does not
// compute). F16/BF16/F64 tensors are converted to float32 on load.
//
// Padding (ForwardOptions::attention_mask): a padded position is never
// attended to, and position ids count real tokens only: the position of a
// real token is the number of real tokens before it in its row
// (cumsum(mask) - 1, as transformers' generate computes it). So left- and
// right-padded rows give their real tokens the same positions and the same
// logits as the unpadded sequence. Outputs at padded positions are finite
// but meaningless (a padded query attends only to itself).
//
// Weights are float32 tensors on the CPU. A Gpt2Model is cheap to copy; the
// copies share the weight tensors. Forward is const and thread-compatible;
// it records autograd only if the caller made weights require grad and grad
// mode is on (training the subject model), so inference callers should hold
// a torch::NoGradGuard.
#ifndef SAELAB_DATA_SUBJECT_MODEL_GPT2_MODEL_H_
#define SAELAB_DATA_SUBJECT_MODEL_GPT2_MODEL_H_

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <torch/utils.h>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/hooks.h"
#include "harness/safetensors.h"

namespace saelab {

struct ForwardOptions {
  // Stop right after this hook point has been computed (and its hook, if
  // any, applied): nothing later in the model is computed and Forward
  // returns an undefined tensor. Unset: run to the logits.
  std::optional<HookLocation> stop_at;
  // [batch, seq], 1 for a real token, 0 for padding (bool, integer or
  // floating dtype holding only 0 and 1). Undefined: every token is real.
  // See "Padding" above.
  torch::Tensor attention_mask;
};

struct GenerateOptions {
  // Tokens to generate after the prompt; prompt + max_new_tokens must fit
  // in n_positions.
  int64_t max_new_tokens = 32;
  // Softmax temperature; 0 means greedy (argmax; top_k and top_p unused).
  double temperature = 1.0;
  // Sample only among the k most likely tokens; 0 = no limit.
  int64_t top_k = 0;
  // Nucleus sampling: sample among the most likely tokens whose cumulative
  // probability first reaches top_p (at least one token); 1 = no limit.
  double top_p = 1.0;
  // Seeds the sampling generator: the same (prompt, options, hooks) give
  // the same tokens.
  uint64_t seed = 0;
  // Generation stops after producing this token (it is included in the
  // output); -1 = none.
  int64_t stop_token = -1;
};

struct GenerateResult {
  // The generated tokens only (not the prompt), stop token included if hit.
  std::vector<int64_t> tokens;
  // [tokens.size(), vocab_size] float32: the model's logits (before
  // temperature and filtering) that each generated token was chosen from.
  torch::Tensor logits;
};

class Gpt2Model {
 public:
  // GPT-2's initialisation (transformers' _init_weights): wte, wpe, c_attn
  // and c_fc weights ~ N(0, 0.02^2); both c_proj weights ~ N(0, (0.02 /
  // sqrt(2 n_layer))^2); biases 0; LayerNorm weights 1, biases 0. Drawn in a
  // fixed order from a generator seeded with `seed`: deterministic.
  // InvalidArgument if the config is invalid.
  static absl::StatusOr<Gpt2Model> RandomInit(const Gpt2Config& config, uint64_t seed);

  // A model over the given weights, named as in the checkpoint layout above
  // (no prefix; float32; exactly the expected set). Tensors are shared, not
  // copied. Errors start with `name_for_errors` and name the tensor.
  static absl::StatusOr<Gpt2Model> FromTensors(const Gpt2Config& config, const TensorMap& tensors,
                                               const std::string& name_for_errors);

  // Reads dir/config.json and dir/model.safetensors (the tokenizer files are
  // not read here). NotFound naming the file if one is missing (with a hint
  // when only pytorch_model.bin is there); DataLoss for a truncated
  // safetensors file; InvalidArgument naming the file and tensor for a
  // missing or misshapen tensor, an unexpected tensor, or an untied
  // lm_head.weight, and naming the file and n_layer when some layer below
  // n_layer has no tensor (checked before anything is allocated);
  // config errors name config.json and the key.
  static absl::StatusOr<Gpt2Model> LoadHfDirectory(const std::string& dir);

  // Writes dir/model.safetensors (checkpoint layout above, float32,
  // metadata {"format": "pt"} as transformers expects) and dir/config.json,
  // each atomically; creates dir. Copying vocab.json and merges.txt is the
  // caller's job. The result loads with LoadHfDirectory and with
  // transformers' GPT2LMHeadModel.from_pretrained.
  absl::Status SaveHfDirectory(const std::string& dir) const;

  const Gpt2Config& config() const { return config_; }

  // Every weight by checkpoint name (no prefix), sharing storage.
  TensorMap NamedTensors() const;
  // Every weight in a fixed order (wte, wpe, blocks, ln_f), sharing storage:
  // what an optimiser trains.
  std::vector<torch::Tensor> Parameters() const;

  // Every hook point name of this model, in forward order (data/subject_model/hooks.h).
  std::vector<std::string> HookNames() const { return ValidHookNames(config_.n_layer); }

  // tokens: [batch, seq] int64 (int32 accepted), ids in [0, vocab_size),
  // 1 <= seq <= n_positions. Runs the model, applying `hooks` at their
  // points. Returns logits [batch, seq, vocab_size] float32, or an
  // undefined tensor when options.stop_at stopped it early.
  // InvalidArgument for bad tokens or attention_mask, an unknown hook name
  // (the message lists the valid names), a stop_at outside the model, or a
  // hook that returns an undefined tensor or one of another shape, dtype or
  // device (the message names the hook point).
  absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& tokens, const HookSet& hooks = {},
                                        const ForwardOptions& options = {}) const;

  // Runs the model only as far as the last of `hook_names` (each parsed
  // once) and returns the activation [batch, seq, n_embd] at each of them
  // (no edits). Errors as Forward; InvalidArgument if hook_names is empty.
  absl::StatusOr<absl::flat_hash_map<std::string, torch::Tensor>> RunWithCache(
      const torch::Tensor& tokens, const std::vector<std::string>& hook_names,
      const torch::Tensor& attention_mask = {}) const;

  // Runs the model only as far as `location` and returns its activation
  // [batch, seq, n_embd] (no edits): harvesting's forward, with the hook
  // point already parsed. Errors as Forward; InvalidArgument for a location
  // outside the model.
  absl::StatusOr<torch::Tensor> RunToHook(const torch::Tensor& tokens, HookLocation location,
                                          const torch::Tensor& attention_mask = {}) const;

  // Continues `prompt` (ids, non-empty) by up to max_new_tokens tokens with
  // a per-layer key/value cache: the prompt is run once, then each step runs
  // only the new token. Hooks apply to the positions computed at each call:
  // [1, prompt length, n_embd] for the prompt, then [1, 1, n_embd] per new
  // token; positions already cached are not re-hooked. Runs without grad.
  // InvalidArgument for an empty prompt, ids out of range, prompt +
  // max_new_tokens > n_positions, temperature < 0, top_k < 0, top_p outside
  // (0, 1], or bad hooks.
  absl::StatusOr<GenerateResult> Generate(const std::vector<int64_t>& prompt,
                                          const GenerateOptions& options,
                                          const HookSet& hooks = {}) const;

 private:
  struct Block {
    torch::Tensor ln_1_weight, ln_1_bias;
    torch::Tensor c_attn_weight, c_attn_bias;  // [n_embd, 3 n_embd], [3 n_embd]
    torch::Tensor attn_proj_weight, attn_proj_bias;  // [n_embd, n_embd], [n_embd]
    torch::Tensor ln_2_weight, ln_2_bias;
    torch::Tensor c_fc_weight, c_fc_bias;  // [n_embd, d_mlp], [d_mlp]
    torch::Tensor mlp_proj_weight, mlp_proj_bias;  // [d_mlp, n_embd], [n_embd]
  };
  // Keys and values of the positions seen so far, per layer, for generation.
  struct LayerCache {
    torch::Tensor k, v;  // [batch, n_head, capacity, d_head]
  };
  struct KvCache {
    std::vector<LayerCache> layers;
    int64_t length = 0;  // positions filled
  };
  enum class InitKind { kNormal, kNormalResidual, kZeros, kOnes };
  // Visits every weight slot with its checkpoint name, shape and init kind.
  template <typename Model, typename Fn>
  static void ForEachWeight(Model& model, Fn&& fn);

  explicit Gpt2Model(const Gpt2Config& config);

  // The shared forward. tokens, positions: [batch, seq] int64. allowed:
  // bool, broadcastable to [batch, n_head, seq, past + seq], true where a
  // query may attend a key; undefined = everything (one new token). hooks:
  // HookSlotCount() slots (null = none). Stops after hook index
  // `stop_index` (-1: never) returning an undefined tensor. With `cache`,
  // keys/values are appended at cache->length (past = cache->length).
  absl::StatusOr<torch::Tensor> Run(const torch::Tensor& tokens, const torch::Tensor& positions,
                                    const torch::Tensor& allowed,
                                    const std::vector<const HookFn*>& hooks, int64_t stop_index,
                                    KvCache* cache) const;

  // Hook slots: one per hook point index, then one per layer for
  // blocks.{L}.attn.hook_z (HeadOutputsSlot).
  int64_t HookSlotCount() const;
  int64_t HeadOutputsSlot(int64_t layer) const;
  // The slots of `hooks`; InvalidArgument for unknown names.
  absl::StatusOr<std::vector<const HookFn*>> ResolveHooks(const HookSet& hooks) const;

  // Forward's inputs, checked: token ids, their positions and the
  // attention pattern (see Run).
  struct RunInputs {
    torch::Tensor ids, positions, allowed;
  };
  absl::StatusOr<RunInputs> CheckInputs(const torch::Tensor& tokens,
                                        const torch::Tensor& attention_mask) const;
  // Runs `inputs` capturing the activation at each of `locations` into the
  // matching `out` and stopping after the last of them.
  absl::Status RunCapturing(const RunInputs& inputs, const std::vector<HookLocation>& locations,
                            std::vector<torch::Tensor>* out) const;

  Gpt2Config config_;
  torch::Tensor wte_;  // [vocab_size, n_embd]
  torch::Tensor wpe_;  // [n_positions, n_embd]
  std::vector<Block> blocks_;
  torch::Tensor ln_f_weight_, ln_f_bias_;
};

}  // namespace saelab

#endif  // SAELAB_DATA_SUBJECT_MODEL_GPT2_MODEL_H_
