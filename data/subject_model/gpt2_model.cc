#include "data/subject_model/gpt2_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

constexpr char kConfigFile[] = "config.json";
constexpr char kWeightsFile[] = "model.safetensors";
// transformers' GPT2LMHeadModel state dict puts the trunk under this prefix.
constexpr char kTrunkPrefix[] = "transformer.";

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsFloatingDtype(torch::ScalarType type) {
  return type == torch::kFloat || type == torch::kHalf || type == torch::kBFloat16 ||
         type == torch::kDouble;
}

// Tensor `name` of `contents` with shape `shape`, as float32: any floating
// dtype is converted (half-precision checkpoints are common); others are a
// dtype error from GetTensor.
absl::StatusOr<torch::Tensor> GetFloatTensor(const SafetensorsContents& contents,
                                             const std::string& path, const std::string& name,
                                             const std::vector<int64_t>& shape) {
  auto it = contents.tensors.find(name);
  torch::ScalarType want = torch::kFloat;
  if (it != contents.tensors.end() && it->second.defined() &&
      IsFloatingDtype(it->second.scalar_type())) {
    want = it->second.scalar_type();
  }
  ASSIGN_OR_RETURN(torch::Tensor tensor, GetTensor(contents, path, name, shape, want));
  return tensor.to(torch::kFloat);
}

// y = x W + b over the last dimension (GPT-2's Conv1D; W is [in, out]).
torch::Tensor Conv1D(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = weight.size(1);
  return torch::addmm(bias, x.reshape({-1, weight.size(0)}), weight).view(out_shape);
}

// Causal mask [seq, seq], true where query i may attend key j (j <= i).
torch::Tensor CausalMask(int64_t seq) {
  return torch::ones({seq, seq}, torch::kBool).tril();
}

// Picks the next token from one row of logits [vocab] (see GenerateOptions).
int64_t ChooseToken(const torch::Tensor& logits, const GenerateOptions& options,
                    at::Generator& generator) {
  if (options.temperature == 0) return logits.argmax().item<int64_t>();
  const double kNegInf = -std::numeric_limits<double>::infinity();
  torch::Tensor scaled = logits.to(torch::kDouble) / options.temperature;
  const int64_t vocab = scaled.size(0);
  if (options.top_k > 0 && options.top_k < vocab) {
    // Ties with the k-th value stay in (as transformers' TopKLogitsWarper).
    torch::Tensor kth = std::get<0>(scaled.topk(options.top_k)).min();
    scaled = scaled.masked_fill(scaled < kth, kNegInf);
  }
  if (options.top_p < 1.0) {
    auto [sorted, order] = scaled.sort(/*dim=*/0, /*descending=*/true);
    torch::Tensor probs = sorted.softmax(0);
    // Drop a token once the tokens more likely than it already hold top_p;
    // the most likely token always stays.
    torch::Tensor mass_before = probs.cumsum(0) - probs;
    torch::Tensor drop_sorted = mass_before >= options.top_p;
    drop_sorted[0] = false;
    torch::Tensor drop = torch::zeros_like(drop_sorted).scatter(0, order, drop_sorted);
    scaled = scaled.masked_fill(drop, kNegInf);
  }
  torch::Tensor probs = scaled.softmax(0);
  return torch::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

}  // namespace

template <typename Model, typename Fn>
void Gpt2Model::ForEachWeight(Model& model, Fn&& fn) {
  const Gpt2Config& c = model.config_;
  const int64_t d = c.n_embd, d_mlp = c.d_mlp();
  fn("wte.weight", std::vector<int64_t>{c.vocab_size, d}, InitKind::kNormal, model.wte_);
  fn("wpe.weight", std::vector<int64_t>{c.n_positions, d}, InitKind::kNormal, model.wpe_);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto& b = model.blocks_[i];
    const std::string p = absl::StrCat("h.", i, ".");
    fn(p + "ln_1.weight", std::vector<int64_t>{d}, InitKind::kOnes, b.ln_1_weight);
    fn(p + "ln_1.bias", std::vector<int64_t>{d}, InitKind::kZeros, b.ln_1_bias);
    fn(p + "attn.c_attn.weight", std::vector<int64_t>{d, 3 * d}, InitKind::kNormal,
       b.c_attn_weight);
    fn(p + "attn.c_attn.bias", std::vector<int64_t>{3 * d}, InitKind::kZeros, b.c_attn_bias);
    fn(p + "attn.c_proj.weight", std::vector<int64_t>{d, d}, InitKind::kNormalResidual,
       b.attn_proj_weight);
    fn(p + "attn.c_proj.bias", std::vector<int64_t>{d}, InitKind::kZeros, b.attn_proj_bias);
    fn(p + "ln_2.weight", std::vector<int64_t>{d}, InitKind::kOnes, b.ln_2_weight);
    fn(p + "ln_2.bias", std::vector<int64_t>{d}, InitKind::kZeros, b.ln_2_bias);
    fn(p + "mlp.c_fc.weight", std::vector<int64_t>{d, d_mlp}, InitKind::kNormal, b.c_fc_weight);
    fn(p + "mlp.c_fc.bias", std::vector<int64_t>{d_mlp}, InitKind::kZeros, b.c_fc_bias);
    fn(p + "mlp.c_proj.weight", std::vector<int64_t>{d_mlp, d}, InitKind::kNormalResidual,
       b.mlp_proj_weight);
    fn(p + "mlp.c_proj.bias", std::vector<int64_t>{d}, InitKind::kZeros, b.mlp_proj_bias);
  }
  fn("ln_f.weight", std::vector<int64_t>{d}, InitKind::kOnes, model.ln_f_weight_);
  fn("ln_f.bias", std::vector<int64_t>{d}, InitKind::kZeros, model.ln_f_bias_);
}

Gpt2Model::Gpt2Model(const Gpt2Config& config) : config_(config), blocks_(config.n_layer) {}

absl::StatusOr<Gpt2Model> Gpt2Model::RandomInit(const Gpt2Config& config, uint64_t seed) {
  RETURN_IF_ERROR(ValidateGpt2Config(config, "Gpt2Model::RandomInit"));
  Gpt2Model model(config);
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std_normal = 0.02;
  const double std_residual = 0.02 / std::sqrt(2.0 * config.n_layer);
  ForEachWeight(model, [&](const std::string&, const std::vector<int64_t>& shape, InitKind kind,
                           torch::Tensor& slot) {
    switch (kind) {
      case InitKind::kNormal:
        slot = torch::empty(shape).normal_(0.0, std_normal, generator);
        break;
      case InitKind::kNormalResidual:
        slot = torch::empty(shape).normal_(0.0, std_residual, generator);
        break;
      case InitKind::kZeros:
        slot = torch::zeros(shape);
        break;
      case InitKind::kOnes:
        slot = torch::ones(shape);
        break;
    }
  });
  return model;
}

absl::StatusOr<Gpt2Model> Gpt2Model::FromTensors(const Gpt2Config& config,
                                                 const TensorMap& tensors,
                                                 const std::string& name_for_errors) {
  RETURN_IF_ERROR(ValidateGpt2Config(config, name_for_errors));
  SafetensorsContents contents;
  contents.tensors = tensors;
  Gpt2Model model(config);
  absl::Status status;
  ForEachWeight(model, [&](const std::string& name, const std::vector<int64_t>& shape, InitKind,
                           torch::Tensor& slot) {
    if (!status.ok()) return;
    absl::StatusOr<torch::Tensor> tensor =
        GetTensor(contents, name_for_errors, name, shape, torch::kFloat);
    if (!tensor.ok()) {
      status = tensor.status();
      return;
    }
    slot = *std::move(tensor);
  });
  RETURN_IF_ERROR(status);
  const TensorMap expected = model.NamedTensors();
  for (const auto& [name, tensor] : tensors) {
    if (expected.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name_for_errors, ": unexpected tensor '", name, "': not a weight of a GPT-2 with n_layer = ",
          config.n_layer));
    }
  }
  return model;
}

absl::StatusOr<Gpt2Model> Gpt2Model::LoadHfDirectory(const std::string& dir) {
  // Each file is checked against the directory's SHA256SUMS when it has one
  // (saelab writes one; a flipped bit in the weights generates garbage).
  ASSIGN_OR_RETURN(std::string config_text, ReadVerifiedFile(dir, kConfigFile));
  ASSIGN_OR_RETURN(Gpt2Config config,
                   ParseGpt2ConfigJson(config_text, absl::StrCat(dir, "/", kConfigFile)));
  const std::string path = absl::StrCat(dir, "/", kWeightsFile);
  absl::StatusOr<std::string> weight_bytes = ReadVerifiedFile(dir, kWeightsFile);
  absl::StatusOr<SafetensorsContents> read =
      weight_bytes.ok() ? ParseSafetensors(*weight_bytes, path)
                        : absl::StatusOr<SafetensorsContents>(weight_bytes.status());
  weight_bytes = std::string();  // The tensors own copies; free the file's bytes.
  if (absl::IsNotFound(read.status())) {
    for (const char* other : {"pytorch_model.bin", "model.safetensors.index.json"}) {
      if (PathExists(absl::StrCat(dir, "/", other))) {
        return absl::NotFoundError(absl::StrCat(
            read.status().message(), " (the directory has ", other,
            "; saelab reads a single model.safetensors: convert it with transformers' "
            "save_pretrained(safe_serialization=True, max_shard_size=\"100GB\"))"));
      }
    }
  }
  RETURN_IF_ERROR(read.status());
  const SafetensorsContents& contents = *read;

  // transformers writes the trunk with or without "transformer." (the
  // GPT2LMHeadModel vs GPT2Model state dict); lm_head.weight never has it.
  const std::string prefix =
      contents.tensors.count(absl::StrCat(kTrunkPrefix, "wte.weight")) > 0 ? kTrunkPrefix : "";

  // The model allocates its n_layer blocks before any tensor is checked, so
  // a config.json with a huge n_layer beside a tiny file allocated gigabytes
  // (fuzz/crashes/hf_config/). Every layer must have a tensor in the file;
  // checking in order stops at the first one missing, so this costs at most
  // one lookup per layer the file really has.
  for (int64_t i = 0; i < config.n_layer; ++i) {
    const std::string layer = absl::StrCat(prefix, "h.", i, ".");
    auto it = contents.tensors.lower_bound(layer);
    if (it == contents.tensors.end() || !absl::StartsWith(it->first, layer)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": has no tensor of layer ", i, " (",
                                                     layer, "*), but n_layer = ", config.n_layer,
                                                     " in ", dir, "/", kConfigFile));
    }
  }
  Gpt2Model model(config);
  std::set<std::string> known;
  absl::Status status;
  ForEachWeight(model, [&](const std::string& name, const std::vector<int64_t>& shape, InitKind,
                           torch::Tensor& slot) {
    const std::string full = prefix + name;
    known.insert(full);
    if (!status.ok()) return;
    absl::StatusOr<torch::Tensor> tensor = GetFloatTensor(contents, path, full, shape);
    if (!tensor.ok()) {
      status = tensor.status();
      return;
    }
    slot = *std::move(tensor);
  });
  RETURN_IF_ERROR(status);
  // transformers' causal-mask buffers (older versions saved them).
  for (int64_t i = 0; i < config.n_layer; ++i) {
    known.insert(absl::StrCat(prefix, "h.", i, ".attn.bias"));
    known.insert(absl::StrCat(prefix, "h.", i, ".attn.masked_bias"));
  }
  if (contents.tensors.count("lm_head.weight") > 0) {
    known.insert("lm_head.weight");
    ASSIGN_OR_RETURN(torch::Tensor lm_head,
                     GetFloatTensor(contents, path, "lm_head.weight",
                                    {config.vocab_size, config.n_embd}));
    if (!torch::equal(lm_head, model.wte_)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor 'lm_head.weight' differs from '", prefix,
          "wte.weight'; saelab's GPT-2 ties the unembedding to the token embedding"));
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : contents.tensors) {
    if (known.count(name) == 0) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    if (unexpected.size() > 5) {
      unexpected.resize(5);
      unexpected.push_back("...");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": unexpected tensor(s) ", absl::StrJoin(unexpected, ", "),
        ": not part of a GPT-2 with n_layer = ", config.n_layer, " (", dir, "/", kConfigFile,
        ")"));
  }
  return model;
}

absl::Status Gpt2Model::SaveHfDirectory(const std::string& dir) const {
  RETURN_IF_ERROR(MakeDirs(dir));
  TensorMap tensors = NamedTensors();
  for (auto& [name, tensor] : tensors) tensor = tensor.detach().to(torch::kCPU, torch::kFloat);
  // transformers refuses safetensors files without format metadata.
  RETURN_IF_ERROR(WriteSafetensors(absl::StrCat(dir, "/", kWeightsFile), tensors,
                                   {{"format", "pt"}}));
  return WriteGpt2Config(absl::StrCat(dir, "/", kConfigFile), config_);
}

TensorMap Gpt2Model::NamedTensors() const {
  TensorMap tensors;
  ForEachWeight(*this, [&](const std::string& name, const std::vector<int64_t>&, InitKind,
                           const torch::Tensor& slot) { tensors[name] = slot; });
  return tensors;
}

std::vector<torch::Tensor> Gpt2Model::Parameters() const {
  std::vector<torch::Tensor> parameters;
  ForEachWeight(*this, [&](const std::string&, const std::vector<int64_t>&, InitKind,
                           const torch::Tensor& slot) { parameters.push_back(slot); });
  return parameters;
}

int64_t Gpt2Model::HookSlotCount() const {
  return config_.n_layer * (kHookPointsPerLayer + 1);
}

int64_t Gpt2Model::HeadOutputsSlot(int64_t layer) const {
  return config_.n_layer * kHookPointsPerLayer + layer;
}

absl::StatusOr<std::vector<const HookFn*>> Gpt2Model::ResolveHooks(const HookSet& hooks) const {
  std::vector<const HookFn*> slots(HookSlotCount(), nullptr);
  for (const auto& [name, fn] : hooks.hooks) {
    ASSIGN_OR_RETURN(std::optional<int64_t> head_layer,
                     ParseHeadOutputsHookName(name, config_.n_layer));
    if (head_layer.has_value()) {
      if (fn) slots[HeadOutputsSlot(*head_layer)] = &fn;
      continue;
    }
    ASSIGN_OR_RETURN(HookLocation location, ParseHookName(name, config_.n_layer));
    if (fn) slots[location.index()] = &fn;
  }
  return slots;
}

absl::StatusOr<torch::Tensor> Gpt2Model::Run(const torch::Tensor& tokens,
                                             const torch::Tensor& positions,
                                             const torch::Tensor& allowed,
                                             const std::vector<const HookFn*>& hooks,
                                             int64_t stop_index, KvCache* cache) const {
  const int64_t batch = tokens.size(0), seq = tokens.size(1);
  const int64_t d = config_.n_embd, n_head = config_.n_head, d_head = config_.d_head();
  const double eps = config_.layer_norm_epsilon;
  const int64_t past = cache != nullptr ? cache->length : 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d_head));

  // Applies the hook in `slot` (named `name` in errors) to *x.
  auto apply = [&](int64_t slot, auto name, torch::Tensor* x) -> absl::Status {
    const HookFn* fn = hooks[slot];
    if (fn == nullptr) return absl::OkStatus();
    torch::Tensor out;
    try {
      out = (*fn)(*x);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("hook '", name(), "' threw: ", e.what()));
    }
    if (!out.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("hook '", name(), "' returned an undefined tensor"));
    }
    if (out.sizes() != x->sizes() || out.scalar_type() != x->scalar_type() ||
        out.device() != x->device()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hook '", name(), "' returned ", ShapeString(out.sizes()), " ",
          c10::toString(out.scalar_type()), " on ", out.device().str(), ", expected ",
          ShapeString(x->sizes()), " ", c10::toString(x->scalar_type()), " on ",
          x->device().str(), " (the activation's own shape, dtype and device)"));
    }
    *x = std::move(out);
    return absl::OkStatus();
  };
  // Applies the hook at (layer, point) to *x; true if the forward stops here.
  auto hook = [&](int64_t layer, HookPoint point, torch::Tensor* x) -> absl::StatusOr<bool> {
    const int64_t index = layer * kHookPointsPerLayer + static_cast<int>(point);
    RETURN_IF_ERROR(apply(index, [&] { return HookName(layer, point); }, x));
    return index == stop_index;
  };

  torch::Tensor h = torch::embedding(wte_, tokens) + torch::embedding(wpe_, positions);
  for (int64_t layer = 0; layer < config_.n_layer; ++layer) {
    const Block& b = blocks_[layer];
    ASSIGN_OR_RETURN(bool stop, hook(layer, HookPoint::kResidPre, &h));
    if (stop) return torch::Tensor();

    // Attention.
    torch::Tensor x = torch::layer_norm(h, {d}, b.ln_1_weight, b.ln_1_bias, eps);
    std::vector<torch::Tensor> qkv = Conv1D(x, b.c_attn_weight, b.c_attn_bias).split(d, -1);
    auto heads = [&](const torch::Tensor& t) {  // [batch, seq, d] -> [batch, head, seq, d_head]
      return t.view({batch, seq, n_head, d_head}).transpose(1, 2);
    };
    torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
    if (cache != nullptr) {
      LayerCache& c = cache->layers[layer];
      c.k.narrow(2, past, seq).copy_(k);
      c.v.narrow(2, past, seq).copy_(v);
      k = c.k.narrow(2, 0, past + seq);
      v = c.v.narrow(2, 0, past + seq);
    }
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    if (allowed.defined()) {
      scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
    }
    torch::Tensor z = torch::matmul(scores.softmax(-1), v).transpose(1, 2);  // [b, s, head, d_head]
    RETURN_IF_ERROR(apply(HeadOutputsSlot(layer), [&] { return HeadOutputsHookName(layer); }, &z));
    torch::Tensor attn = Conv1D(z.reshape({batch, seq, d}), b.attn_proj_weight, b.attn_proj_bias);
    ASSIGN_OR_RETURN(stop, hook(layer, HookPoint::kAttnOut, &attn));
    if (stop) return torch::Tensor();
    h = h + attn;
    ASSIGN_OR_RETURN(stop, hook(layer, HookPoint::kResidMid, &h));
    if (stop) return torch::Tensor();

    // MLP.
    x = torch::layer_norm(h, {d}, b.ln_2_weight, b.ln_2_bias, eps);
    ASSIGN_OR_RETURN(stop, hook(layer, HookPoint::kMlpIn, &x));
    if (stop) return torch::Tensor();
    torch::Tensor mlp = torch::gelu(Conv1D(x, b.c_fc_weight, b.c_fc_bias), "tanh");
    mlp = Conv1D(mlp, b.mlp_proj_weight, b.mlp_proj_bias);
    ASSIGN_OR_RETURN(stop, hook(layer, HookPoint::kMlpOut, &mlp));
    if (stop) return torch::Tensor();
    h = h + mlp;
    ASSIGN_OR_RETURN(stop, hook(layer, HookPoint::kResidPost, &h));
    if (stop) return torch::Tensor();
  }
  if (cache != nullptr) cache->length += seq;
  h = torch::layer_norm(h, {d}, ln_f_weight_, ln_f_bias_, eps);
  return torch::matmul(h, wte_.t());
}

absl::StatusOr<Gpt2Model::RunInputs> Gpt2Model::CheckInputs(
    const torch::Tensor& tokens, const torch::Tensor& attention_mask) const {
  if (!tokens.defined() || tokens.dim() != 2 || tokens.size(0) < 1 || tokens.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Forward: tokens must be a non-empty [batch, seq] tensor, got ",
        tokens.defined() ? ShapeString(tokens.sizes()) : "an undefined tensor"));
  }
  if (tokens.scalar_type() != torch::kLong && tokens.scalar_type() != torch::kInt) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: tokens must be int64 or int32, got ",
                                                   c10::toString(tokens.scalar_type())));
  }
  const int64_t batch = tokens.size(0), seq = tokens.size(1);
  if (seq > config_.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: sequence length ", seq,
                                                   " exceeds the context n_positions = ",
                                                   config_.n_positions));
  }
  torch::Tensor ids = tokens.to(wte_.device(), torch::kLong);
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: token id ", lo < 0 ? lo : hi,
                                                   " is outside [0, vocab_size = ",
                                                   config_.vocab_size, ")"));
  }

  torch::Tensor positions, allowed = CausalMask(seq).to(wte_.device());
  if (attention_mask.defined()) {
    const torch::Tensor& mask = attention_mask;
    if (mask.sizes() != tokens.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: attention_mask has shape ",
                                                     ShapeString(mask.sizes()),
                                                     ", expected the tokens' shape ",
                                                     ShapeString(tokens.sizes())));
    }
    if (mask.is_complex() || !((mask == 0) | (mask == 1)).all().item<bool>()) {
      return absl::InvalidArgumentError(
          "Forward: attention_mask must hold only 0 (padding) and 1 (real token)");
    }
    torch::Tensor real = (mask != 0).to(wte_.device());
    positions = (real.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
    // A padded query may attend itself only, so every softmax row has a
    // finite entry (no NaN at padded positions).
    allowed = (allowed.view({1, 1, seq, seq}) & real.view({batch, 1, 1, seq})) |
              torch::eye(seq, torch::TensorOptions().dtype(torch::kBool).device(wte_.device()))
                  .view({1, 1, seq, seq});
  } else {
    positions = torch::arange(seq, torch::TensorOptions().dtype(torch::kLong).device(wte_.device()))
                    .expand({batch, seq});
  }

  return RunInputs{ids, positions, allowed};
}

absl::StatusOr<torch::Tensor> Gpt2Model::Forward(const torch::Tensor& tokens,
                                                 const HookSet& hooks,
                                                 const ForwardOptions& options) const {
  ASSIGN_OR_RETURN(RunInputs inputs, CheckInputs(tokens, options.attention_mask));
  int64_t stop_index = -1;
  if (options.stop_at.has_value()) {
    absl::Status valid = CheckHookLocation(*options.stop_at, config_.n_layer);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: stop_at: ", valid.message()));
    }
    stop_index = options.stop_at->index();
  }
  ASSIGN_OR_RETURN(std::vector<const HookFn*> slots, ResolveHooks(hooks));
  return Run(inputs.ids, inputs.positions, inputs.allowed, slots, stop_index, /*cache=*/nullptr);
}

absl::Status Gpt2Model::RunCapturing(const RunInputs& inputs,
                                     const std::vector<HookLocation>& locations,
                                     std::vector<torch::Tensor>* out) const {
  out->assign(locations.size(), torch::Tensor());
  std::vector<HookFn> captures;
  captures.reserve(locations.size());
  std::vector<const HookFn*> slots(HookSlotCount(), nullptr);
  int64_t last = -1;
  for (size_t i = 0; i < locations.size(); ++i) {
    captures.push_back(CaptureInto(&(*out)[i]));
    slots[locations[i].index()] = &captures.back();
    last = std::max(last, locations[i].index());
  }
  return Run(inputs.ids, inputs.positions, inputs.allowed, slots, last, /*cache=*/nullptr)
      .status();
}

absl::StatusOr<absl::flat_hash_map<std::string, torch::Tensor>> Gpt2Model::RunWithCache(
    const torch::Tensor& tokens, const std::vector<std::string>& hook_names,
    const torch::Tensor& attention_mask) const {
  if (hook_names.empty()) {
    return absl::InvalidArgumentError("RunWithCache: hook_names is empty");
  }
  // One location per distinct name (a name listed twice is captured once).
  std::vector<std::string> names;
  std::vector<HookLocation> locations;
  for (const std::string& name : hook_names) {
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    ASSIGN_OR_RETURN(HookLocation location, ParseHookName(name, config_.n_layer));
    names.push_back(name);
    locations.push_back(location);
  }
  ASSIGN_OR_RETURN(RunInputs inputs, CheckInputs(tokens, attention_mask));
  std::vector<torch::Tensor> captured;
  RETURN_IF_ERROR(RunCapturing(inputs, locations, &captured));
  absl::flat_hash_map<std::string, torch::Tensor> cache;
  for (size_t i = 0; i < names.size(); ++i) cache[names[i]] = captured[i];
  return cache;
}

absl::StatusOr<torch::Tensor> Gpt2Model::RunToHook(const torch::Tensor& tokens,
                                                   HookLocation location,
                                                   const torch::Tensor& attention_mask) const {
  absl::Status valid = CheckHookLocation(location, config_.n_layer);
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("RunToHook: ", valid.message()));
  ASSIGN_OR_RETURN(RunInputs inputs, CheckInputs(tokens, attention_mask));
  std::vector<torch::Tensor> captured;
  RETURN_IF_ERROR(RunCapturing(inputs, {location}, &captured));
  return captured[0];
}

absl::StatusOr<GenerateResult> Gpt2Model::Generate(const std::vector<int64_t>& prompt,
                                                   const GenerateOptions& options,
                                                   const HookSet& hooks) const {
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  if (n_prompt == 0) return absl::InvalidArgumentError("Generate: the prompt is empty");
  for (int64_t id : prompt) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("Generate: prompt token id ", id,
                                                     " is outside [0, vocab_size = ",
                                                     config_.vocab_size, ")"));
    }
  }
  if (options.max_new_tokens < 0 || n_prompt + options.max_new_tokens > config_.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Generate: prompt length ", n_prompt, " + max_new_tokens ", options.max_new_tokens,
        " must be within the context n_positions = ", config_.n_positions,
        " (and max_new_tokens >= 0)"));
  }
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Generate: temperature must be >= 0 (0: greedy), got ", options.temperature));
  }
  if (options.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Generate: top_k must be >= 0 (0: no limit), got ", options.top_k));
  }
  if (!(options.top_p > 0 && options.top_p <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Generate: top_p must be in (0, 1], got ", options.top_p));
  }
  ASSIGN_OR_RETURN(std::vector<const HookFn*> slots, ResolveHooks(hooks));

  torch::NoGradGuard no_grad;
  GenerateResult result;
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(wte_.device());
  if (options.max_new_tokens == 0) {
    result.logits = torch::empty({0, config_.vocab_size});
    return result;
  }
  // The last generated token is never fed back, so this is one too many:
  // harmless, and it keeps the bound obvious.
  const int64_t capacity = n_prompt + options.max_new_tokens;
  KvCache cache;
  for (int64_t i = 0; i < config_.n_layer; ++i) {
    cache.layers.push_back(
        {torch::empty({1, config_.n_head, capacity, config_.d_head()}, wte_.options()),
         torch::empty({1, config_.n_head, capacity, config_.d_head()}, wte_.options())});
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);

  torch::Tensor tokens = torch::tensor(prompt, torch::kLong).view({1, n_prompt}).to(wte_.device());
  ASSIGN_OR_RETURN(torch::Tensor logits,
                   Run(tokens, torch::arange(n_prompt, long_options).view({1, n_prompt}),
                       CausalMask(n_prompt).to(wte_.device()), slots, -1, &cache));
  torch::Tensor last = logits[0][n_prompt - 1].to(torch::kCPU);
  std::vector<torch::Tensor> rows;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t next = ChooseToken(last, options, generator);
    result.tokens.push_back(next);
    rows.push_back(last);
    if (next == options.stop_token || step + 1 == options.max_new_tokens) break;
    // One new token attends every cached position: no mask needed.
    ASSIGN_OR_RETURN(logits, Run(torch::full({1, 1}, next, long_options),
                                 torch::full({1, 1}, cache.length, long_options), torch::Tensor(),
                                 slots, -1, &cache));
    last = logits[0][0].to(torch::kCPU);
  }
  result.logits = torch::stack(rows);
  return result;
}

}  // namespace saelab
