// Tests of the GPT-2 subject model on a tiny random model (2 layers,
// n_embd 32, 4 heads, context 16, vocabulary 50).
//
// The forward is checked against ReferenceForward below: a second GPT-2
// written directly from the equations (Radford et al. 2019; transformers'
// modeling_gpt2.py), in float64, over the tensors read back from the saved
// model.safetensors file. It shares no code with the model: its own layer
// norm (mean and biased variance), attention as explicit loops over heads,
// queries and the keys j <= i (the causal mask), its own softmax, and the
// tanh-GELU formula written out.
#include "data/subject_model/gpt2_model.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/hooks.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/safetensors.h"
#include "harness/sha256.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using ::testing::TempDir;

Gpt2Config TinyConfig() {
  Gpt2Config config;
  config.n_layer = 2;
  config.n_embd = 32;
  config.n_head = 4;
  config.n_positions = 16;
  config.vocab_size = 50;
  return config;
}

// The checkpoint names and shapes of the tiny model, spelled out here from
// transformers' GPT-2 layout (not taken from the model code).
std::vector<std::pair<std::string, std::vector<int64_t>>> TinyCheckpointShapes() {
  const int64_t d = 32, v = 50, ctx = 16;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"wte.weight", {v, d}}, {"wpe.weight", {ctx, d}}, {"ln_f.weight", {d}}, {"ln_f.bias", {d}}};
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = absl::StrCat("h.", layer, ".");
    shapes.push_back({p + "ln_1.weight", {d}});
    shapes.push_back({p + "ln_1.bias", {d}});
    shapes.push_back({p + "attn.c_attn.weight", {d, 3 * d}});
    shapes.push_back({p + "attn.c_attn.bias", {3 * d}});
    shapes.push_back({p + "attn.c_proj.weight", {d, d}});
    shapes.push_back({p + "attn.c_proj.bias", {d}});
    shapes.push_back({p + "ln_2.weight", {d}});
    shapes.push_back({p + "ln_2.bias", {d}});
    shapes.push_back({p + "mlp.c_fc.weight", {d, 4 * d}});
    shapes.push_back({p + "mlp.c_fc.bias", {4 * d}});
    shapes.push_back({p + "mlp.c_proj.weight", {4 * d, d}});
    shapes.push_back({p + "mlp.c_proj.bias", {d}});
  }
  return shapes;
}

// Random weights with every parameter non-trivial (GPT-2's own init has zero
// biases and unit LayerNorm weights, which would hide a miswired bias or
// gain), scaled so attention is far from uniform and logits spread widely.
TensorMap RandomTinyWeights(uint64_t seed) {
  torch::manual_seed(seed);
  TensorMap weights;
  for (const auto& [name, shape] : TinyCheckpointShapes()) {
    torch::Tensor t;
    if (absl::EndsWith(name, "ln_1.weight") || absl::EndsWith(name, "ln_2.weight") ||
        name == "ln_f.weight") {
      t = 1.0 + 0.2 * torch::randn(shape);
    } else if (shape.size() == 1) {
      t = 0.2 * torch::randn(shape);
    } else if (name == "wte.weight" || name == "wpe.weight") {
      t = 0.4 * torch::randn(shape);
    } else {
      t = torch::randn(shape) / std::sqrt(static_cast<double>(shape[0]));
    }
    weights[name] = t;
  }
  return weights;
}

// Builds the tiny model, saves it as an HF directory under `name` and loads
// it back: every test runs the loaded model.
Gpt2Model SavedAndLoadedTinyModel(const std::string& name, uint64_t seed = 1) {
  absl::StatusOr<Gpt2Model> built = Gpt2Model::FromTensors(TinyConfig(), RandomTinyWeights(seed), name);
  EXPECT_TRUE(built.ok()) << built.status();
  const std::string dir = TempDir() + "/" + name;
  absl::Status saved = built->SaveHfDirectory(dir);
  EXPECT_TRUE(saved.ok()) << saved;
  absl::StatusOr<Gpt2Model> loaded = Gpt2Model::LoadHfDirectory(dir);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return *std::move(loaded);
}

torch::Tensor RandomTokens(int64_t batch, int64_t seq, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 50, {batch, seq}, torch::kLong);
}

// ---- The independent reference ------------------------------------------

// GPT-2's forward for one sequence, from the equations, in float64.
// `w`: the checkpoint's tensors by name. Returns logits [seq, vocab]. Head
// `zero_head.second` of layer `zero_head.first` contributes nothing when set.
torch::Tensor ReferenceForward(const TensorMap& w, const std::vector<int64_t>& tokens,
                               int64_t n_layer, int64_t n_head, double eps,
                               std::pair<int64_t, int64_t> zero_head = {-1, -1}) {
  auto W = [&](const std::string& name) { return w.at(name).to(torch::kDouble); };
  auto layer_norm = [&](const torch::Tensor& x, const std::string& name) {
    torch::Tensor mean = x.mean(-1, /*keepdim=*/true);
    torch::Tensor var = (x - mean).pow(2).mean(-1, /*keepdim=*/true);  // biased
    return (x - mean) / torch::sqrt(var + eps) * W(name + ".weight") + W(name + ".bias");
  };
  auto gelu = [](const torch::Tensor& x) {
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
  };
  const int64_t seq = static_cast<int64_t>(tokens.size());
  const torch::Tensor wte = W("wte.weight"), wpe = W("wpe.weight");
  const int64_t d = wte.size(1), d_head = d / n_head;
  torch::Tensor h = torch::zeros({seq, d}, torch::kDouble);
  for (int64_t t = 0; t < seq; ++t) h[t] = wte[tokens[t]] + wpe[t];
  for (int64_t layer = 0; layer < n_layer; ++layer) {
    const std::string p = absl::StrCat("h.", layer, ".");
    // Conv1D: y = x W + b with W stored [in, out].
    torch::Tensor x = layer_norm(h, p + "ln_1");
    torch::Tensor qkv = x.mm(W(p + "attn.c_attn.weight")) + W(p + "attn.c_attn.bias");
    torch::Tensor heads_out = torch::zeros({seq, d}, torch::kDouble);
    for (int64_t head = 0; head < n_head; ++head) {
      if (zero_head == std::make_pair(layer, head)) continue;
      torch::Tensor q = qkv.slice(1, head * d_head, (head + 1) * d_head);
      torch::Tensor k = qkv.slice(1, d + head * d_head, d + (head + 1) * d_head);
      torch::Tensor v = qkv.slice(1, 2 * d + head * d_head, 2 * d + (head + 1) * d_head);
      for (int64_t i = 0; i < seq; ++i) {
        // Keys 0..i only: the causal mask.
        std::vector<double> scores(i + 1);
        double max_score = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          scores[j] = (q[i] * k[j]).sum().item<double>() / std::sqrt(static_cast<double>(d_head));
          max_score = std::max(max_score, scores[j]);
        }
        double total = 0;
        for (double& s : scores) total += (s = std::exp(s - max_score));
        torch::Tensor out = torch::zeros({d_head}, torch::kDouble);
        for (int64_t j = 0; j <= i; ++j) out += (scores[j] / total) * v[j];
        heads_out[i].slice(0, head * d_head, (head + 1) * d_head) = out;
      }
    }
    h = h + heads_out.mm(W(p + "attn.c_proj.weight")) + W(p + "attn.c_proj.bias");
    x = layer_norm(h, p + "ln_2");
    torch::Tensor m = gelu(x.mm(W(p + "mlp.c_fc.weight")) + W(p + "mlp.c_fc.bias"));
    h = h + m.mm(W(p + "mlp.c_proj.weight")) + W(p + "mlp.c_proj.bias");
  }
  return layer_norm(h, "ln_f").mm(wte.t());  // tied unembedding
}

std::vector<int64_t> Row(const torch::Tensor& tokens, int64_t b) {
  torch::Tensor row = tokens[b].contiguous();
  return std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
}

// ---- Forward vs the reference -------------------------------------------

TEST(Gpt2ModelTest, ForwardOfSavedAndReloadedModelEqualsIndependentReference) {
  Gpt2Model model = SavedAndLoadedTinyModel("reference_check");
  // The reference reads the tensors from the file the model was saved to.
  absl::StatusOr<SafetensorsContents> file =
      ReadSafetensors(TempDir() + "/reference_check/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();

  torch::NoGradGuard no_grad;
  torch::Tensor tokens = RandomTokens(3, 16, /*seed=*/5);
  absl::StatusOr<torch::Tensor> logits = model.Forward(tokens);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->sizes(), (std::vector<int64_t>{3, 16, 50}));
  for (int64_t b = 0; b < 3; ++b) {
    torch::Tensor expected = ReferenceForward(file->tensors, Row(tokens, b), 2, 4, 1e-5);
    // The check is meaningful: logits spread over several units.
    EXPECT_GT(expected.std().item<double>(), 1.0);
    const double max_diff = ((*logits)[b].to(torch::kDouble) - expected).abs().max().item<double>();
    EXPECT_LT(max_diff, 1e-5) << "sequence " << b;
  }
}

TEST(Gpt2ModelTest, ShorterSequenceEqualsReferenceToo) {
  Gpt2Model model = SavedAndLoadedTinyModel("reference_short", /*seed=*/2);
  absl::StatusOr<SafetensorsContents> file =
      ReadSafetensors(TempDir() + "/reference_short/model.safetensors");
  ASSERT_TRUE(file.ok());
  torch::Tensor tokens = RandomTokens(1, 5, /*seed=*/6);
  absl::StatusOr<torch::Tensor> logits = model.Forward(tokens);
  ASSERT_TRUE(logits.ok()) << logits.status();
  torch::Tensor expected = ReferenceForward(file->tensors, Row(tokens, 0), 2, 4, 1e-5);
  EXPECT_LT(((*logits)[0].to(torch::kDouble) - expected).abs().max().item<double>(), 1e-5);
}

// ---- Checkpoint layout ---------------------------------------------------

TEST(Gpt2ModelTest, SavedDirectoryHasTheTransformersLayout) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 3);
  ASSERT_TRUE(model.ok());
  const std::string dir = TempDir() + "/layout";
  ASSERT_TRUE(model->SaveHfDirectory(dir).ok());

  absl::StatusOr<SafetensorsContents> file = ReadSafetensors(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata.at("format"), "pt");  // transformers refuses files without it
  std::set<std::string> names;
  for (const auto& [name, tensor] : file->tensors) {
    names.insert(name);
    EXPECT_EQ(tensor.scalar_type(), torch::kFloat) << name;
  }
  std::set<std::string> expected;
  for (const auto& [name, shape] : TinyCheckpointShapes()) {
    expected.insert(name);
    ASSERT_EQ(file->tensors.count(name), 1u) << name;
    EXPECT_EQ(file->tensors.at(name).sizes().vec(), shape) << name;
  }
  EXPECT_EQ(names, expected);

  absl::StatusOr<std::string> config_text = ReadFile(dir + "/config.json");
  ASSERT_TRUE(config_text.ok());
  nlohmann::json config = nlohmann::json::parse(*config_text);
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["n_layer"], 2);
  EXPECT_EQ(config["n_head"], 4);
  EXPECT_EQ(config["n_embd"], 32);
  EXPECT_EQ(config["n_positions"], 16);
  EXPECT_EQ(config["vocab_size"], 50);
  EXPECT_EQ(config["activation_function"], "gelu_new");

  absl::StatusOr<Gpt2Model> back = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  TensorMap a = model->NamedTensors(), b = back->NamedTensors();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
}

TEST(Gpt2ModelTest, AWeightFileThatDisagreesWithSha256SumsIsRefused) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 3);
  ASSERT_TRUE(model.ok());
  const std::string dir = TempDir() + "/summed";
  ASSERT_TRUE(model->SaveHfDirectory(dir).ok());
  ASSERT_TRUE(WriteSha256Sums(dir, {"config.json", "model.safetensors"}).ok());
  ASSERT_TRUE(Gpt2Model::LoadHfDirectory(dir).ok());
  // A well-formed file (its own data checksum is right) with one weight
  // changed: only the directory's list can tell.
  TensorMap tensors = model->NamedTensors();
  tensors["wpe.weight"] = tensors["wpe.weight"].clone();
  tensors["wpe.weight"][0][0] = 1e9f;
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}).ok());
  absl::StatusOr<Gpt2Model> refused = Gpt2Model::LoadHfDirectory(dir);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr(dir + "/model.safetensors"), HasSubstr("SHA256SUMS")));
}

TEST(Gpt2ModelTest, TransformersStateDictWithPrefixBuffersAndTiedHeadLoadsTheSameModel) {
  // What GPT2LMHeadModel.state_dict() holds: the trunk under "transformer.",
  // the causal-mask buffers, and lm_head.weight equal to wte; here in float64.
  TensorMap weights = RandomTinyWeights(4);
  TensorMap state_dict;
  for (const auto& [name, tensor] : weights) {
    state_dict["transformer." + name] = tensor.to(torch::kDouble);
  }
  for (int layer = 0; layer < 2; ++layer) {
    state_dict[absl::StrCat("transformer.h.", layer, ".attn.bias")] =
        torch::ones({1, 1, 16, 16}).tril().to(torch::kBool);
    state_dict[absl::StrCat("transformer.h.", layer, ".attn.masked_bias")] = torch::tensor(-1e4);
  }
  state_dict["lm_head.weight"] = weights.at("wte.weight");
  const std::string dir = TempDir() + "/prefixed";
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", state_dict).ok());
  ASSERT_TRUE(WriteGpt2Config(dir + "/config.json", TinyConfig()).ok());

  absl::StatusOr<Gpt2Model> loaded = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<Gpt2Model> direct = Gpt2Model::FromTensors(TinyConfig(), weights, "weights");
  ASSERT_TRUE(direct.ok());
  torch::Tensor tokens = RandomTokens(2, 9, 7);
  absl::StatusOr<torch::Tensor> a = loaded->Forward(tokens), b = direct->Forward(tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::equal(*a, *b));
}

TEST(Gpt2ModelTest, RandomInitIsGpt2sInitAndSeeded) {
  Gpt2Config config = TinyConfig();
  config.n_embd = 128;
  config.n_head = 4;
  config.vocab_size = 500;
  absl::StatusOr<Gpt2Model> a = Gpt2Model::RandomInit(config, 11);
  absl::StatusOr<Gpt2Model> b = Gpt2Model::RandomInit(config, 11);
  absl::StatusOr<Gpt2Model> c = Gpt2Model::RandomInit(config, 12);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  TensorMap ta = a->NamedTensors(), tb = b->NamedTensors(), tc = c->NamedTensors();
  for (const auto& [name, tensor] : ta) {
    EXPECT_TRUE(torch::equal(tensor, tb.at(name))) << name;
    const bool is_ln_or_bias = absl::EndsWith(name, ".bias") || absl::StrContains(name, "ln_");
    if (!is_ln_or_bias) {
      EXPECT_FALSE(torch::equal(tensor, tc.at(name))) << name;
    }
  }
  // std 0.02, and 0.02 / sqrt(2 n_layer) = 0.01 for the residual projections.
  EXPECT_NEAR(ta.at("wte.weight").std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(ta.at("h.0.attn.c_attn.weight").std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(ta.at("h.1.mlp.c_fc.weight").std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(ta.at("h.0.attn.c_proj.weight").std().item<double>(), 0.01, 0.0007);
  EXPECT_NEAR(ta.at("h.1.mlp.c_proj.weight").std().item<double>(), 0.01, 0.0005);
  EXPECT_TRUE(torch::equal(ta.at("h.0.ln_1.weight"), torch::ones({128})));
  EXPECT_TRUE(torch::equal(ta.at("h.0.mlp.c_fc.bias"), torch::zeros({512})));
}

// ---- Hooks -----------------------------------------------------------------

TEST(Gpt2ModelTest, SplicingTheIdentityAtEveryHookChangesNothingBitwise) {
  Gpt2Model model = SavedAndLoadedTinyModel("identity_splice");
  torch::Tensor tokens = RandomTokens(2, 12, 8);
  absl::StatusOr<torch::Tensor> plain = model.Forward(tokens);
  ASSERT_TRUE(plain.ok());
  HookSet hooks;
  int calls = 0;
  for (const std::string& name : model.HookNames()) {
    // A replacement: a new tensor holding the same values.
    hooks.hooks[name] = [&calls](const torch::Tensor& x) {
      ++calls;
      return x.clone();
    };
  }
  absl::StatusOr<torch::Tensor> spliced = model.Forward(tokens, hooks);
  ASSERT_TRUE(spliced.ok()) << spliced.status();
  EXPECT_EQ(calls, 12);
  EXPECT_TRUE(torch::equal(*plain, *spliced));
}

TEST(Gpt2ModelTest, ClampAlongAUnitDirectionChangesExactlyThatDirectionAndTheLogits) {
  Gpt2Model model = SavedAndLoadedTinyModel("clamp");
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = RandomTokens(2, 10, 9);
  torch::manual_seed(10);
  torch::Tensor u = torch::randn({32});
  u = u / u.norm();
  const double clamp_value = 5.0;

  absl::StatusOr<torch::Tensor> clean = model.Forward(tokens);
  ASSERT_TRUE(clean.ok());
  torch::Tensor before, after;
  HookSet hooks;
  // Clamp the component along u to clamp_value, keep everything orthogonal.
  hooks.hooks["blocks.0.hook_resid_post"] = [&](const torch::Tensor& x) {
    before = x;
    torch::Tensor along = torch::matmul(x, u).unsqueeze(-1);  // [batch, seq, 1]
    return x + (clamp_value - along) * u;
  };
  // The next hook point sees the edited stream.
  hooks.hooks["blocks.1.hook_resid_pre"] = CaptureInto(&after);
  absl::StatusOr<torch::Tensor> steered = model.Forward(tokens, hooks);
  ASSERT_TRUE(steered.ok()) << steered.status();

  torch::Tensor delta = (after - before).to(torch::kDouble);
  torch::Tensor ud = u.to(torch::kDouble);
  torch::Tensor orthogonal = delta - torch::matmul(delta, ud).unsqueeze(-1) * ud;
  EXPECT_LT(orthogonal.abs().max().item<double>(), 1e-5);
  EXPECT_GT(delta.abs().max().item<double>(), 0.5);
  EXPECT_LT((torch::matmul(after, u) - clamp_value).abs().max().item<double>(), 1e-5);
  EXPECT_GT((*steered - *clean).abs().max().item<double>(), 1e-2);
}

TEST(Gpt2ModelTest, AddingADirectionAtResidPostChangesOnlyDownstream) {
  Gpt2Model model = SavedAndLoadedTinyModel("add");
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = RandomTokens(1, 8, 12);
  torch::Tensor u = torch::zeros({32});
  u[3] = 1.0;
  torch::Tensor clean_pre0, steered_pre0, before, after;
  HookSet clean_hooks, hooks;
  clean_hooks.hooks["blocks.0.hook_resid_pre"] = CaptureInto(&clean_pre0);
  hooks.hooks["blocks.0.hook_resid_pre"] = CaptureInto(&steered_pre0);
  hooks.hooks["blocks.1.hook_resid_post"] = [&](const torch::Tensor& x) {
    before = x;
    return x + 3.0 * u;
  };
  absl::StatusOr<torch::Tensor> clean = model.Forward(tokens, clean_hooks);
  absl::StatusOr<torch::Tensor> steered = model.Forward(tokens, hooks);
  ASSERT_TRUE(clean.ok() && steered.ok());
  EXPECT_TRUE(torch::equal(clean_pre0, steered_pre0));
  EXPECT_GT((*steered - *clean).abs().max().item<double>(), 1e-2);
}

TEST(Gpt2ModelTest, StopAtHookCapturesWhatTheFullForwardCapturesAndComputesNothingLater) {
  Gpt2Model model = SavedAndLoadedTinyModel("stop_at");
  torch::Tensor tokens = RandomTokens(3, 16, 13);
  for (const char* stop : {"blocks.0.hook_mlp_out", "blocks.1.hook_resid_pre",
                                  "blocks.1.hook_attn_out", "blocks.1.hook_resid_post"}) {
    torch::Tensor full_capture, early_capture;
    HookSet full_hooks;
    full_hooks.hooks[stop] = CaptureInto(&full_capture);
    absl::StatusOr<torch::Tensor> full = model.Forward(tokens, full_hooks);
    ASSERT_TRUE(full.ok());
    ASSERT_TRUE(full->defined());

    bool later_hook_ran = false;
    HookSet early_hooks;
    early_hooks.hooks[stop] = CaptureInto(&early_capture);
    absl::StatusOr<HookLocation> location = ParseHookName(stop, 2);
    ASSERT_TRUE(location.ok());
    const std::vector<std::string> names = model.HookNames();
    for (size_t i = location->index() + 1; i < names.size(); ++i) {
      early_hooks.hooks[names[i]] = [&](const torch::Tensor& x) {
        later_hook_ran = true;
        return x;
      };
    }
    ForwardOptions options;
    options.stop_at = *location;
    absl::StatusOr<torch::Tensor> early = model.Forward(tokens, early_hooks, options);
    ASSERT_TRUE(early.ok()) << early.status();
    EXPECT_FALSE(early->defined()) << stop;
    EXPECT_FALSE(later_hook_ran) << stop;
    ASSERT_TRUE(early_capture.defined());
    EXPECT_EQ(early_capture.sizes(), (std::vector<int64_t>{3, 16, 32}));
    EXPECT_TRUE(torch::equal(full_capture, early_capture)) << stop;
  }
}

TEST(Gpt2ModelTest, MlpInIsLayerNorm2OfResidMidAndWhatTheMlpMapsToMlpOut) {
  Gpt2Model model = SavedAndLoadedTinyModel("mlp_in");
  absl::StatusOr<SafetensorsContents> file = ReadSafetensors(TempDir() + "/mlp_in/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  auto W = [&](const std::string& name) { return file->tensors.at(name).to(torch::kDouble); };
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = RandomTokens(2, 9, 21);
  torch::Tensor resid_mid, mlp_in, mlp_out;
  HookSet hooks;
  hooks.hooks["blocks.1.hook_resid_mid"] = CaptureInto(&resid_mid);
  hooks.hooks["blocks.1.hook_mlp_in"] = CaptureInto(&mlp_in);
  hooks.hooks["blocks.1.hook_mlp_out"] = CaptureInto(&mlp_out);
  ASSERT_TRUE(model.Forward(tokens, hooks).ok());
  // By hand in float64: LayerNorm 2, then the MLP.
  torch::Tensor h = resid_mid.to(torch::kDouble);
  torch::Tensor mean = h.mean(-1, true), var = (h - mean).pow(2).mean(-1, true);
  torch::Tensor normalized =
      (h - mean) / torch::sqrt(var + 1e-5) * W("h.1.ln_2.weight") + W("h.1.ln_2.bias");
  EXPECT_LT((mlp_in.to(torch::kDouble) - normalized).abs().max().item<double>(), 1e-5);
  auto mlp = [&](const torch::Tensor& x) {
    torch::Tensor a = x.matmul(W("h.1.mlp.c_fc.weight")) + W("h.1.mlp.c_fc.bias");
    a = 0.5 * a * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (a + 0.044715 * a.pow(3))));
    return a.matmul(W("h.1.mlp.c_proj.weight")) + W("h.1.mlp.c_proj.bias");
  };
  EXPECT_LT((mlp_out.to(torch::kDouble) - mlp(mlp_in.to(torch::kDouble))).abs().max().item<double>(),
            1e-5);
  // A replacing hook at mlp_in feeds the MLP: zeros give MLP(0) at every position.
  torch::Tensor replaced_out;
  HookSet replace;
  replace.hooks["blocks.1.hook_mlp_in"] = [](const torch::Tensor& x) { return torch::zeros_like(x); };
  replace.hooks["blocks.1.hook_mlp_out"] = CaptureInto(&replaced_out);
  ASSERT_TRUE(model.Forward(tokens, replace).ok());
  torch::Tensor mlp_of_zero = mlp(torch::zeros({1, 1, mlp_in.size(2)}, torch::kDouble));
  EXPECT_LT((replaced_out.to(torch::kDouble) - mlp_of_zero).abs().max().item<double>(), 1e-5);
}

TEST(Gpt2ModelTest, ZeroingOneHeadAtHookZEqualsTheReferenceWithoutThatHead) {
  Gpt2Model model = SavedAndLoadedTinyModel("hook_z");
  absl::StatusOr<SafetensorsContents> file = ReadSafetensors(TempDir() + "/hook_z/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = RandomTokens(2, 9, 22);
  const int64_t n_head = model.config().n_head;
  const int64_t layer = 1, head = n_head - 1;
  HookSet hooks;
  hooks.hooks[HeadOutputsHookName(layer)] = [&](const torch::Tensor& z) {
    EXPECT_EQ(z.sizes(), (std::vector<int64_t>{2, 9, n_head, model.config().d_head()}));
    torch::Tensor out = z.clone();
    out.select(2, head).zero_();
    return out;
  };
  absl::StatusOr<torch::Tensor> logits = model.Forward(tokens, hooks);
  ASSERT_TRUE(logits.ok()) << logits.status();
  for (int64_t b = 0; b < 2; ++b) {
    torch::Tensor expected = ReferenceForward(file->tensors, Row(tokens, b), model.config().n_layer,
                                              n_head, 1e-5, {layer, head});
    EXPECT_LT(((*logits)[b].to(torch::kDouble) - expected).abs().max().item<double>(), 1e-4);
    // And the ablation matters: the intact reference is farther away.
    torch::Tensor intact =
        ReferenceForward(file->tensors, Row(tokens, b), model.config().n_layer, n_head, 1e-5);
    EXPECT_GT(((*logits)[b].to(torch::kDouble) - intact).abs().max().item<double>(), 1e-3);
  }
  // Reading hook_z and projecting it by c_proj gives hook_attn_out.
  torch::Tensor z, attn_out;
  HookSet read;
  read.hooks[HeadOutputsHookName(0)] = CaptureInto(&z);
  read.hooks["blocks.0.hook_attn_out"] = CaptureInto(&attn_out);
  ASSERT_TRUE(model.Forward(tokens, read).ok());
  auto W = [&](const std::string& name) { return file->tensors.at(name).to(torch::kDouble); };
  torch::Tensor projected = z.to(torch::kDouble).reshape({2, 9, -1}).matmul(W("h.0.attn.c_proj.weight")) +
                            W("h.0.attn.c_proj.bias");
  EXPECT_LT((attn_out.to(torch::kDouble) - projected).abs().max().item<double>(), 1e-5);
  // A hook_z name past the last block is refused by name.
  HookSet bad;
  bad.hooks[HeadOutputsHookName(model.config().n_layer)] = CaptureInto(&z);
  absl::StatusOr<torch::Tensor> refused = model.Forward(tokens, bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("attn.hook_z"));
}

TEST(Gpt2ModelTest, RunWithCacheReturnsTheFullForwardsActivations) {
  Gpt2Model model = SavedAndLoadedTinyModel("run_with_cache");
  torch::Tensor tokens = RandomTokens(2, 7, 14);
  torch::Tensor a, b;
  HookSet hooks;
  hooks.hooks["blocks.0.hook_attn_out"] = CaptureInto(&a);
  hooks.hooks["blocks.1.hook_resid_mid"] = CaptureInto(&b);
  ASSERT_TRUE(model.Forward(tokens, hooks).ok());
  auto cache = model.RunWithCache(tokens, {"blocks.1.hook_resid_mid", "blocks.0.hook_attn_out"});
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_TRUE(torch::equal(cache->at("blocks.0.hook_attn_out"), a));
  EXPECT_TRUE(torch::equal(cache->at("blocks.1.hook_resid_mid"), b));
}

TEST(Gpt2ModelTest, RunToHookReturnsWhatTheFullForwardCaptures) {
  Gpt2Model model = SavedAndLoadedTinyModel("run_to_hook");
  torch::Tensor tokens = RandomTokens(2, 7, 15);
  for (HookLocation location : {HookLocation{0, HookPoint::kResidPre},
                                HookLocation{1, HookPoint::kMlpOut},
                                HookLocation{1, HookPoint::kResidPost}}) {
    torch::Tensor captured;
    HookSet hooks;
    hooks.hooks[HookName(location)] = CaptureInto(&captured);
    ASSERT_TRUE(model.Forward(tokens, hooks).ok());
    absl::StatusOr<torch::Tensor> activation = model.RunToHook(tokens, location);
    ASSERT_TRUE(activation.ok()) << activation.status();
    EXPECT_TRUE(torch::equal(*activation, captured)) << HookName(location);
  }
}

// ---- Padding ---------------------------------------------------------------

TEST(Gpt2ModelTest, PaddedBatchGivesTheUnpaddedLogitsOnRealPositions) {
  Gpt2Model model = SavedAndLoadedTinyModel("padding");
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> lengths = {5, 16, 9, 1};
  const int64_t batch = 4, seq = 16;
  torch::Tensor all = RandomTokens(batch, seq, 15);
  for (bool left : {false, true}) {
    // Pads hold arbitrary ids (here 49): the mask alone must neutralise them.
    torch::Tensor tokens = torch::full({batch, seq}, 49, torch::kLong);
    torch::Tensor mask = torch::zeros({batch, seq}, torch::kLong);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t start = left ? seq - lengths[b] : 0;
      tokens[b].slice(0, start, start + lengths[b]) = all[b].slice(0, 0, lengths[b]);
      mask[b].slice(0, start, start + lengths[b]) = 1;
    }
    ForwardOptions options;
    options.attention_mask = mask;
    absl::StatusOr<torch::Tensor> padded = model.Forward(tokens, {}, options);
    ASSERT_TRUE(padded.ok()) << padded.status();
    EXPECT_FALSE(padded->isnan().any().item<bool>());
    for (int64_t b = 0; b < batch; ++b) {
      absl::StatusOr<torch::Tensor> single =
          model.Forward(all[b].slice(0, 0, lengths[b]).unsqueeze(0));
      ASSERT_TRUE(single.ok());
      const int64_t start = left ? seq - lengths[b] : 0;
      torch::Tensor real = (*padded)[b].slice(0, start, start + lengths[b]);
      EXPECT_LT((real - (*single)[0]).abs().max().item<double>(), 1e-5)
          << (left ? "left" : "right") << " padding, row " << b;
    }
  }
}

TEST(Gpt2ModelTest, AllOnesMaskEqualsNoMask) {
  Gpt2Model model = SavedAndLoadedTinyModel("all_ones_mask");
  torch::Tensor tokens = RandomTokens(2, 11, 16);
  ForwardOptions options;
  options.attention_mask = torch::ones({2, 11}, torch::kBool);
  absl::StatusOr<torch::Tensor> masked = model.Forward(tokens, {}, options);
  absl::StatusOr<torch::Tensor> plain = model.Forward(tokens);
  ASSERT_TRUE(masked.ok() && plain.ok());
  EXPECT_TRUE(torch::equal(*masked, *plain));
}

// ---- Generation ------------------------------------------------------------

// The last position's logits of a full (cache-free) forward over `ids`.
torch::Tensor FullLastLogits(const Gpt2Model& model, const std::vector<int64_t>& ids,
                             const HookSet& hooks = {}) {
  absl::StatusOr<torch::Tensor> logits =
      model.Forward(torch::tensor(ids, torch::kLong).unsqueeze(0), hooks);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return (*logits)[0][static_cast<int64_t>(ids.size()) - 1];
}

TEST(Gpt2ModelTest, GreedyKvCacheGenerationEqualsFullRecomputationAtEveryStep) {
  Gpt2Model model = SavedAndLoadedTinyModel("greedy");
  const std::vector<int64_t> prompt = {3, 17, 42, 8};
  GenerateOptions options;
  options.max_new_tokens = 12;  // fills the context of 16
  options.temperature = 0;
  absl::StatusOr<GenerateResult> out = model.Generate(prompt, options);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->tokens.size(), 12u);
  ASSERT_EQ(out->logits.sizes(), (std::vector<int64_t>{12, 50}));
  std::vector<int64_t> ids = prompt;
  for (size_t step = 0; step < out->tokens.size(); ++step) {
    torch::Tensor full = FullLastLogits(model, ids);
    EXPECT_EQ(out->tokens[step], full.argmax().item<int64_t>()) << "step " << step;
    EXPECT_LT((out->logits[step] - full).abs().max().item<double>(), 1e-5) << "step " << step;
    ids.push_back(out->tokens[step]);
  }
}

TEST(Gpt2ModelTest, HooksApplyDuringKvCacheGenerationAsInTheFullForward) {
  Gpt2Model model = SavedAndLoadedTinyModel("generate_hooks");
  torch::Tensor u = torch::zeros({32});
  u[7] = 1.0;
  HookSet hooks;
  int64_t positions_hooked = 0;
  hooks.hooks["blocks.0.hook_mlp_out"] = [&](const torch::Tensor& x) {
    positions_hooked += x.size(1);
    return x + 4.0 * u;
  };
  const std::vector<int64_t> prompt = {1, 2, 3};
  GenerateOptions options;
  options.max_new_tokens = 10;
  options.temperature = 0;
  absl::StatusOr<GenerateResult> steered = model.Generate(prompt, options, hooks);
  absl::StatusOr<GenerateResult> clean = model.Generate(prompt, options);
  ASSERT_TRUE(steered.ok() && clean.ok());
  // The prompt once, then each fed-back token once (the last is never fed).
  EXPECT_EQ(positions_hooked, 3 + 9);
  EXPECT_GT((steered->logits - clean->logits).abs().max().item<double>(), 1e-2);
  std::vector<int64_t> ids = prompt;
  for (size_t step = 0; step < steered->tokens.size(); ++step) {
    torch::Tensor full = FullLastLogits(model, ids, hooks);
    EXPECT_LT((steered->logits[step] - full).abs().max().item<double>(), 1e-5) << step;
    ids.push_back(steered->tokens[step]);
  }
}

TEST(Gpt2ModelTest, SeededSamplingIsReproducibleAndSeedsDiffer) {
  Gpt2Model model = SavedAndLoadedTinyModel("sampling");
  GenerateOptions options;
  options.max_new_tokens = 12;
  options.temperature = 1.5;
  options.seed = 7;
  absl::StatusOr<GenerateResult> a = model.Generate({5, 6}, options);
  absl::StatusOr<GenerateResult> b = model.Generate({5, 6}, options);
  options.seed = 8;
  absl::StatusOr<GenerateResult> c = model.Generate({5, 6}, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Gpt2ModelTest, TopKOfOneAndTinyTopPSampleTheGreedyTokens) {
  Gpt2Model model = SavedAndLoadedTinyModel("degenerate_sampling");
  GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  greedy.temperature = 0;
  absl::StatusOr<GenerateResult> expected = model.Generate({9, 10, 11}, greedy);
  ASSERT_TRUE(expected.ok());
  GenerateOptions top_k = greedy;
  top_k.temperature = 2.0;
  top_k.top_k = 1;
  GenerateOptions top_p = greedy;
  top_p.temperature = 2.0;
  top_p.top_p = 1e-6;
  for (const GenerateOptions& options : {top_k, top_p}) {
    absl::StatusOr<GenerateResult> out = model.Generate({9, 10, 11}, options);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->tokens, expected->tokens);
  }
}

TEST(Gpt2ModelTest, TopKAndTopPSampleOnlyAllowedTokens) {
  Gpt2Model model = SavedAndLoadedTinyModel("filtered_sampling");
  GenerateOptions options;
  options.max_new_tokens = 13;
  options.temperature = 3.0;  // flat: unfiltered samples would stray widely
  options.top_k = 3;
  options.seed = 1;
  absl::StatusOr<GenerateResult> out = model.Generate({4, 4, 4}, options);
  ASSERT_TRUE(out.ok());
  for (size_t i = 0; i < out->tokens.size(); ++i) {
    torch::Tensor top3 = std::get<1>(out->logits[i].topk(3));
    EXPECT_TRUE((top3 == out->tokens[i]).any().item<bool>()) << i;
  }
  options.top_k = 0;
  options.top_p = 0.5;
  out = model.Generate({4, 4, 4}, options);
  ASSERT_TRUE(out.ok());
  for (size_t i = 0; i < out->tokens.size(); ++i) {
    // The nucleus at temperature 3: tokens more likely than the sampled one
    // must hold less than 0.5 of the mass.
    torch::Tensor probs = (out->logits[i].to(torch::kDouble) / 3.0).softmax(0);
    const double p = probs[out->tokens[i]].item<double>();
    EXPECT_LT(probs.masked_select(probs > p).sum().item<double>(), 0.5) << i;
  }
}

TEST(Gpt2ModelTest, StopTokenEndsGenerationAndIsIncluded) {
  Gpt2Model model = SavedAndLoadedTinyModel("stop_token");
  GenerateOptions options;
  options.max_new_tokens = 10;
  options.temperature = 0;
  absl::StatusOr<GenerateResult> full = model.Generate({2, 3}, options);
  ASSERT_TRUE(full.ok());
  options.stop_token = full->tokens[3];
  absl::StatusOr<GenerateResult> stopped = model.Generate({2, 3}, options);
  ASSERT_TRUE(stopped.ok());
  ASSERT_LE(stopped->tokens.size(), 4u);
  EXPECT_EQ(stopped->tokens.back(), full->tokens[3]);
  EXPECT_EQ(stopped->logits.size(0), static_cast<int64_t>(stopped->tokens.size()));
}

// ---- Bad input ---------------------------------------------------------------

// A tiny model directory `name` written by SaveHfDirectory.
std::string SavedTinyDir(const std::string& name) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 1);
  EXPECT_TRUE(model.ok());
  const std::string dir = TempDir() + "/" + name;
  EXPECT_TRUE(model->SaveHfDirectory(dir).ok());
  return dir;
}

TEST(Gpt2ModelBadInputTest, MissingModelSafetensorsIsNotFoundNamingTheFile) {
  const std::string dir = SavedTinyDir("missing_weights");
  ASSERT_EQ(std::remove((dir + "/model.safetensors").c_str()), 0);
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr(dir + "/model.safetensors"));
}

TEST(Gpt2ModelBadInputTest, OnlyPytorchModelBinIsNotFoundWithAHint) {
  const std::string dir = SavedTinyDir("only_bin");
  ASSERT_EQ(std::rename((dir + "/model.safetensors").c_str(), (dir + "/pytorch_model.bin").c_str()),
            0);
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr("model.safetensors"), HasSubstr("pytorch_model.bin")));
}

TEST(Gpt2ModelBadInputTest, TruncatedModelSafetensorsIsDataLossNamingTheFile) {
  const std::string dir = SavedTinyDir("truncated");
  const std::string path = dir + "/model.safetensors";
  absl::StatusOr<std::string> bytes = ReadFile(path);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(AtomicWriteFile(path, bytes->substr(0, bytes->size() - 100)).ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(model.status().message(), HasSubstr(path));
}

TEST(Gpt2ModelBadInputTest, TensorWithTheWrongShapeIsAnErrorNamingFileAndTensor) {
  const std::string dir = SavedTinyDir("wrong_shape");
  TensorMap weights = RandomTinyWeights(1);
  weights["h.1.mlp.c_fc.weight"] = torch::zeros({128, 32});  // transposed ([out, in])
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", weights).ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr(dir + "/model.safetensors"), HasSubstr("'h.1.mlp.c_fc.weight'"),
                    HasSubstr("[128, 32]"), HasSubstr("[32, 128]")));
}

TEST(Gpt2ModelBadInputTest, MissingTensorIsNotFoundNamingFileAndTensor) {
  const std::string dir = SavedTinyDir("missing_tensor");
  TensorMap weights = RandomTinyWeights(1);
  weights.erase("h.0.ln_2.bias");
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", weights).ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr(dir + "/model.safetensors"), HasSubstr("'h.0.ln_2.bias'")));
}

TEST(Gpt2ModelBadInputTest, ExtraLayerOrUntiedHeadIsAnErrorNamingTheTensor) {
  const std::string dir = SavedTinyDir("extra_tensor");
  TensorMap weights = RandomTinyWeights(1);
  weights["h.2.ln_1.weight"] = torch::ones({32});
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", weights).ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr("model.safetensors"), HasSubstr("h.2.ln_1.weight"),
                    HasSubstr("n_layer = 2")));

  weights.erase("h.2.ln_1.weight");
  weights["lm_head.weight"] = torch::randn({50, 32});
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", weights).ok());
  model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), AllOf(HasSubstr("model.safetensors"),
                                              HasSubstr("'lm_head.weight'"), HasSubstr("tie")));
}

TEST(Gpt2ModelBadInputTest, NLayerBeyondWhatTheFileHoldsIsAnErrorNotAnAllocation) {
  // fuzz/crashes/hf_config/: 100 million layers beside a tiny file
  // allocated ~10 GB of empty blocks before any tensor was checked.
  const std::string dir = SavedTinyDir("n_layer_huge");
  ASSERT_TRUE(AtomicWriteFile(dir + "/config.json",
                              R"({"model_type": "gpt2", "n_layer": 100000000, "n_head": 4,
                                  "n_embd": 32, "n_positions": 16, "vocab_size": 50})")
                  .ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr(dir + "/model.safetensors"), HasSubstr("no tensor of layer 2"),
                    HasSubstr("n_layer = 100000000"), HasSubstr("config.json")));

  // A file with a tensor of the last layer only is no way around it.
  ASSERT_TRUE(AtomicWriteFile(dir + "/config.json",
                              R"({"model_type": "gpt2", "n_layer": 2147483647, "n_head": 4,
                                  "n_embd": 32, "n_positions": 16, "vocab_size": 50})")
                  .ok());
  TensorMap weights = RandomTinyWeights(1);
  weights["h.2147483646.ln_1.weight"] = torch::ones({32});
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", weights).ok());
  model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr("no tensor of layer 2"), HasSubstr("n_layer = 2147483647")));
}

TEST(Gpt2ModelBadInputTest, ConfigMissingNLayerIsAnErrorNamingConfigJsonAndKey) {
  const std::string dir = SavedTinyDir("config_missing_n_layer");
  ASSERT_TRUE(AtomicWriteFile(dir + "/config.json",
                              R"({"model_type": "gpt2", "n_head": 4, "n_embd": 32,
                                  "n_positions": 16, "vocab_size": 50})")
                  .ok());
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              AllOf(HasSubstr(dir + "/config.json"), HasSubstr("'n_layer'")));
}

TEST(Gpt2ModelBadInputTest, UnknownHookNameIsAnErrorListingTheValidNames) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 1);
  ASSERT_TRUE(model.ok());
  HookSet hooks;
  hooks.hooks["blocks.0.hook_resid"] = [](const torch::Tensor& x) { return x; };
  absl::StatusOr<torch::Tensor> logits = model->Forward(RandomTokens(1, 4, 1), hooks);
  ASSERT_FALSE(logits.ok());
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(logits.status().message(),
              AllOf(HasSubstr("'blocks.0.hook_resid'"), HasSubstr("blocks.L.hook_resid_pre"),
                    HasSubstr("blocks.L.hook_resid_post"), HasSubstr("L in 0..1")));

  ForwardOptions options;
  options.stop_at = HookLocation{2, HookPoint::kResidPost};
  logits = model->Forward(RandomTokens(1, 4, 1), {}, options);
  ASSERT_FALSE(logits.ok());
  EXPECT_THAT(logits.status().message(),
              AllOf(HasSubstr("stop_at"), HasSubstr("blocks.2.hook_resid_post")));
  absl::StatusOr<torch::Tensor> rows =
      model->RunToHook(RandomTokens(1, 4, 1), HookLocation{2, HookPoint::kResidPost});
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rows.status().message(), HasSubstr("blocks.2.hook_resid_post"));

  GenerateOptions options_short;
  options_short.max_new_tokens = 2;
  absl::StatusOr<GenerateResult> generated = model->Generate({1}, options_short, hooks);
  ASSERT_FALSE(generated.ok());
  EXPECT_THAT(generated.status().message(), HasSubstr("'blocks.0.hook_resid'"));
}

TEST(Gpt2ModelBadInputTest, HookReturningTheWrongShapeIsAnErrorNamingTheHook) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 1);
  ASSERT_TRUE(model.ok());
  HookSet hooks;
  hooks.hooks["blocks.1.hook_attn_out"] = [](const torch::Tensor& x) { return x.sum(-1); };
  absl::StatusOr<torch::Tensor> logits = model->Forward(RandomTokens(2, 4, 1), hooks);
  ASSERT_FALSE(logits.ok());
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(logits.status().message(),
              AllOf(HasSubstr("'blocks.1.hook_attn_out'"), HasSubstr("[2, 4]"),
                    HasSubstr("[2, 4, 32]")));

  hooks.hooks["blocks.1.hook_attn_out"] = [](const torch::Tensor&) { return torch::Tensor(); };
  logits = model->Forward(RandomTokens(2, 4, 1), hooks);
  ASSERT_FALSE(logits.ok());
  EXPECT_THAT(logits.status().message(), HasSubstr("undefined"));

  hooks.hooks["blocks.1.hook_attn_out"] = [](const torch::Tensor& x) {
    return x.matmul(torch::ones({3, 3}));  // throws: shapes do not match
  };
  logits = model->Forward(RandomTokens(2, 4, 1), hooks);
  ASSERT_FALSE(logits.ok());
  EXPECT_THAT(logits.status().message(), HasSubstr("'blocks.1.hook_attn_out' threw"));
}

TEST(Gpt2ModelBadInputTest, BadTokensMaskAndGenerateOptionsAreErrors) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(TinyConfig(), 1);
  ASSERT_TRUE(model.ok());
  auto forward_error = [&](const torch::Tensor& tokens, const torch::Tensor& mask = {}) {
    ForwardOptions options;
    options.attention_mask = mask;
    absl::StatusOr<torch::Tensor> logits = model->Forward(tokens, {}, options);
    EXPECT_FALSE(logits.ok());
    return logits.ok() ? std::string() : std::string(logits.status().message());
  };
  EXPECT_THAT(forward_error(torch::full({1, 3}, 50, torch::kLong)), HasSubstr("vocab_size = 50"));
  EXPECT_THAT(forward_error(torch::full({1, 3}, -1, torch::kLong)), HasSubstr("-1"));
  EXPECT_THAT(forward_error(torch::zeros({1, 17}, torch::kLong)), HasSubstr("n_positions = 16"));
  EXPECT_THAT(forward_error(torch::zeros({3}, torch::kLong)), HasSubstr("[batch, seq]"));
  EXPECT_THAT(forward_error(torch::zeros({1, 3}, torch::kFloat)), HasSubstr("int64"));
  EXPECT_THAT(forward_error(torch::zeros({1, 3}, torch::kLong), torch::ones({1, 4})),
              HasSubstr("attention_mask"));
  EXPECT_THAT(forward_error(torch::zeros({1, 3}, torch::kLong), torch::full({1, 3}, 2)),
              HasSubstr("0 (padding) and 1"));

  GenerateOptions options_short;
  options_short.max_new_tokens = 2;
  GenerateOptions too_long;
  too_long.max_new_tokens = 14;
  absl::StatusOr<GenerateResult> out = model->Generate({1, 2, 3}, too_long);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("n_positions = 16"));
  EXPECT_FALSE(model->Generate({}, options_short).ok());
  EXPECT_FALSE(model->Generate({50}, options_short).ok());
  GenerateOptions bad;
  bad.max_new_tokens = 2;
  bad.top_p = 0;
  EXPECT_FALSE(model->Generate({1}, bad).ok());
  bad.top_p = 1;
  bad.temperature = -1;
  EXPECT_FALSE(model->Generate({1}, bad).ok());
}

}  // namespace
}  // namespace saelab
