#include "sae/interchange/saelens.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <torch/utils.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/safetensors.h"
#include "nlohmann/json.hpp"
#include "sae/architecture.h"
#include "sae/factory.h"
#include "sae/interchange/internal/testing.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::saelab::interchange_internal::ExpectClose;
using ::saelab::interchange_internal::ReadJson;
using ::testing::TempDir;
using ::saelab::interchange_internal::WriteJson;
using Json = nlohmann::json;

constexpr int64_t kDIn = 8;
constexpr int64_t kNLatents = 16;
constexpr int64_t kK = 4;

// Files written by sae/interchange/testdata/make_saelens_fixture.py (numpy, by the
// SAELens formulas), found from the test's runfiles directory.
constexpr char kSaeLensFixture[] = "sae/interchange/testdata/saelens_fixture";

const char* const kArchitectures[] = {"relu_l1",  "topk",  "batch_topk",
                                      "jumprelu", "gated", "matryoshka_batch_topk"};

SaeConfig ConfigFor(const std::string& architecture) {
  SaeConfig config;
  config.set_name("interchange_" + architecture);
  config.set_n_latents(kNLatents);
  if (architecture == "relu_l1") config.mutable_relu_l1()->set_l1_coefficient(3.0);
  if (architecture == "topk") config.mutable_topk()->set_k(kK);
  if (architecture == "batch_topk") config.mutable_batch_topk()->set_k(kK);
  if (architecture == "matryoshka_batch_topk") {
    config.mutable_matryoshka_batch_topk()->mutable_batch_topk()->set_k(kK);
  }
  if (architecture == "jumprelu") config.mutable_jumprelu()->set_bandwidth(0.002);
  if (architecture == "gated") config.mutable_gated()->set_l1_coefficient(2.0);
  absl::Status resolved = ResolveSaeConfig(kDIn, &config);
  EXPECT_TRUE(resolved.ok()) << resolved;
  return config;
}

// A freshly created SAE moved off its init: random biases and weights,
// JumpReLU thresholds spread over [0.05, 0.5], a BatchTopK threshold of
// 0.15, so that an exporter that dropped or misplaced any tensor fails.
std::unique_ptr<Sae> TrainedLooking(const SaeConfig& config, uint64_t seed, double input_scale) {
  std::unique_ptr<Sae> sae = *CreateSae(config, kDIn, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& [name, tensor] : sae->NamedTensors()) {
    if (name == "input_scale") continue;
    if (name == "log_threshold") {
      tensor.copy_(torch::empty(tensor.sizes()).uniform_(std::log(0.05), std::log(0.5)));
    } else if (name == "threshold") {
      tensor.fill_(0.15);
    } else {
      tensor.add_(0.2 * torch::randn(tensor.sizes()));
    }
  }
  sae->set_input_scale(input_scale);
  return sae;
}

std::unique_ptr<Sae> Import(const std::string& dir, SaeConfig* config = nullptr) {
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir, config);
  EXPECT_TRUE(sae.ok()) << sae.status();
  return sae.ok() ? std::move(*sae) : nullptr;
}

// Rewrites dir/cfg.json through `edit`.
void EditConfig(const std::string& dir, const std::function<void(Json&)>& edit) {
  Json cfg = ReadJson(dir + "/cfg.json");
  edit(cfg);
  WriteJson(dir + "/cfg.json", cfg);
}

// Rewrites dir/sae_weights.safetensors through `edit`.
void EditWeights(const std::string& dir, const std::function<void(TensorMap&)>& edit) {
  std::string path = dir + "/sae_weights.safetensors";
  SafetensorsContents contents = *ReadSafetensors(path);
  edit(contents.tensors);
  ASSERT_TRUE(WriteSafetensors(path, contents.tensors).ok());
}

// Exports a TrainedLooking SAE of `architecture` into a fresh dir.
std::string ExportFresh(const std::string& architecture, const std::string& name,
                        double input_scale = 1.0) {
  std::string dir = TempDir() + "/" + name;
  std::unique_ptr<Sae> sae = TrainedLooking(ConfigFor(architecture), 3, input_scale);
  absl::Status exported = ExportSaeLens(*sae, ConfigFor(architecture), dir);
  EXPECT_TRUE(exported.ok()) << exported;
  return dir;
}

// Non-zero entries are neither none nor all, so comparing latents tests the
// sparsity pattern too.
void ExpectSomeButNotAllFire(const torch::Tensor& f, const std::string& what) {
  int64_t active = f.ne(0).sum().item<int64_t>();
  EXPECT_GT(active, 0) << what;
  EXPECT_LT(active, f.numel()) << what;
}

// SAELens's "topk" encoder with apply_b_dec_to_input false, on the file's
// tensors: f = ReLU of the top k of x W_enc + b_enc, 0 elsewhere.
torch::Tensor SaeLensTopKLatents(const TensorMap& w, const torch::Tensor& x) {
  torch::Tensor z = torch::addmm(w.at("b_enc"), x, w.at("W_enc"));
  auto [values, indices] = z.topk(kK, 1);
  return torch::zeros_like(z).scatter(1, indices, torch::relu(values));
}

class SaeLensArchitectureTest : public ::testing::TestWithParam<const char*> {};

INSTANTIATE_TEST_SUITE_P(AllArchitectures, SaeLensArchitectureTest,
                         ::testing::ValuesIn(kArchitectures),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST_P(SaeLensArchitectureTest, ExportThenImportIsBitwiseAtUnitInputScale) {
  const std::string architecture = GetParam();
  const SaeConfig config = ConfigFor(architecture);
  std::unique_ptr<Sae> sae = TrainedLooking(config, 7, 1.0);
  const std::string dir = TempDir() + "/bitwise_" + architecture;
  absl::Status exported = ExportSaeLens(*sae, config, dir);
  ASSERT_TRUE(exported.ok()) << exported;

  SaeConfig imported_config;
  std::unique_ptr<Sae> back = Import(dir, &imported_config);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->architecture(), architecture);
  EXPECT_EQ(imported_config.DebugString(), config.DebugString());
  EXPECT_EQ(back->input_scale(), 1.0);

  torch::NoGradGuard no_grad;
  torch::manual_seed(99);
  torch::Tensor x = torch::randn({64, kDIn});
  torch::Tensor f = sae->Encode(x);
  ExpectSomeButNotAllFire(f, architecture);
  EXPECT_TRUE(torch::equal(back->Encode(x), f));
  EXPECT_TRUE(torch::equal(back->Reconstruct(x), sae->Reconstruct(x)));
}

TEST_P(SaeLensArchitectureTest, ExportWritesExactlySaeLensStateDictAndConfig) {
  const std::string architecture = GetParam();
  const SaeConfig config = ConfigFor(architecture);
  std::unique_ptr<Sae> sae = TrainedLooking(config, 5, 1.0);
  const std::string dir = TempDir() + "/layout_" + architecture;
  ASSERT_TRUE(ExportSaeLens(*sae, config, dir).ok());

  // Expected per SAELens's inference classes (sae_lens/saes/*.py).
  struct Expected {
    std::string saelens_architecture;
    bool apply_b_dec_to_input;
    std::set<std::string> tensors;
  };
  const std::set<std::string> base = {"W_enc", "b_enc", "W_dec", "b_dec"};
  std::set<std::string> with_threshold = base;
  with_threshold.insert("threshold");
  const std::map<std::string, Expected> expected = {
      {"relu_l1", {"standard", false, base}},
      {"topk", {"topk", true, base}},
      {"batch_topk", {"jumprelu", true, with_threshold}},
      {"jumprelu", {"jumprelu", false, with_threshold}},
      {"gated", {"gated", true, {"W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec"}}},
      // SAELens saves its MatryoshkaBatchTopKTrainingSAE as BatchTopK's
      // inference form.
      {"matryoshka_batch_topk", {"jumprelu", true, with_threshold}},
  };
  const Expected& want = expected.at(architecture);

  Json cfg = ReadJson(dir + "/cfg.json");
  EXPECT_EQ(cfg["architecture"], want.saelens_architecture);
  EXPECT_EQ(cfg["d_in"], kDIn);
  EXPECT_EQ(cfg["d_sae"], kNLatents);
  EXPECT_EQ(cfg["dtype"], "float32");
  EXPECT_EQ(cfg["apply_b_dec_to_input"], want.apply_b_dec_to_input);
  EXPECT_EQ(cfg["normalize_activations"], "none");
  EXPECT_EQ(cfg["metadata"]["sae_lens_version"], "6.0.0");
  EXPECT_EQ(cfg["saelab"]["architecture"], architecture);
  if (architecture == "topk") {
    EXPECT_EQ(cfg["k"], kK);
  }

  SafetensorsContents weights = *ReadSafetensors(dir + "/sae_weights.safetensors");
  std::set<std::string> names;
  for (const auto& [name, tensor] : weights.tensors) {
    names.insert(name);
    EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
  }
  EXPECT_EQ(names, want.tensors);
  EXPECT_EQ(weights.tensors.at("W_enc").sizes(), c10::IntArrayRef({kDIn, kNLatents}));
  EXPECT_EQ(weights.tensors.at("W_dec").sizes(), c10::IntArrayRef({kNLatents, kDIn}));
  EXPECT_EQ(weights.tensors.at("b_dec").sizes(), c10::IntArrayRef({kDIn}));
  if (architecture == "batch_topk" || architecture == "matryoshka_batch_topk") {
    EXPECT_TRUE(torch::equal(weights.tensors.at("threshold"), torch::full({kNLatents}, 0.15f)));
  }
  if (architecture == "jumprelu") {
    torch::Tensor theta = sae->NamedTensors().at("log_threshold").detach().exp();
    EXPECT_TRUE(torch::equal(weights.tensors.at("threshold"), theta));
  }
  if (architecture == "gated") {
    EXPECT_TRUE(torch::equal(weights.tensors.at("b_gate"), sae->b_enc.detach()));
  }
}

TEST_P(SaeLensArchitectureTest, FoldedInputScaleMatchesAndFoldsOnlyOnce) {
  const std::string architecture = GetParam();
  const SaeConfig config = ConfigFor(architecture);
  // 2.5 is not a power of two: folding it into the weights rounds.
  std::unique_ptr<Sae> sae = TrainedLooking(config, 11, 2.5);
  const std::string dir = TempDir() + "/scaled_" + architecture;
  ASSERT_TRUE(ExportSaeLens(*sae, config, dir).ok());
  EXPECT_EQ(ReadJson(dir + "/cfg.json")["saelab"]["input_scale_folded"], 2.5);

  SaeConfig first_config;
  std::unique_ptr<Sae> first = Import(dir, &first_config);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->input_scale(), 1.0);
  EXPECT_EQ(first_config.DebugString(), config.DebugString());

  torch::NoGradGuard no_grad;
  torch::manual_seed(12);
  torch::Tensor x = torch::randn({64, kDIn}) / 2.5;  // model units: scaled inputs ~ N(0, 1)
  torch::Tensor f = sae->Encode(x);
  ExpectSomeButNotAllFire(f, architecture);
  ExpectClose(first->Encode(x), f, 1e-5, architecture + " latents");
  ExpectClose(first->Reconstruct(x), sae->Reconstruct(x), 1e-5, architecture + " reconstruction");

  // Re-exporting the imported SAE (input_scale 1) and importing again
  // changes nothing: the scale was folded once.
  const std::string again = TempDir() + "/scaled_again_" + architecture;
  ASSERT_TRUE(ExportSaeLens(*first, first_config, again).ok());
  SaeConfig second_config;
  std::unique_ptr<Sae> second = Import(again, &second_config);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second_config.DebugString(), first_config.DebugString());
  auto first_tensors = first->NamedTensors();
  auto second_tensors = second->NamedTensors();
  ASSERT_EQ(first_tensors.size(), second_tensors.size());
  for (const auto& [name, tensor] : first_tensors) {
    EXPECT_TRUE(torch::equal(second_tensors.at(name), tensor)) << name;
  }
  EXPECT_TRUE(torch::equal(second->Encode(x), first->Encode(x)));
}

// ---- Independent fixtures (numpy) ----------------------------------------

class SaeLensFixtureTest : public ::testing::TestWithParam<const char*> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, SaeLensFixtureTest,
                         ::testing::Values("standard", "topk", "jumprelu", "gated"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST_P(SaeLensFixtureTest, ImportEncodesAndReconstructsLikeSaeLensFormulas) {
  const std::string name = GetParam();
  const std::string dir = std::string(kSaeLensFixture) + "/" + name;
  SaeConfig config;
  std::unique_ptr<Sae> sae = Import(dir, &config);
  ASSERT_NE(sae, nullptr);
  const std::map<std::string, std::string> saelab_architecture = {
      {"standard", "relu_l1"}, {"topk", "topk"}, {"jumprelu", "jumprelu"}, {"gated", "gated"}};
  EXPECT_EQ(sae->architecture(), saelab_architecture.at(name));
  EXPECT_EQ(config.name(), name);
  EXPECT_EQ(config.n_latents(), 12);
  EXPECT_FALSE(config.normalize_input());
  if (name == "topk") {
    EXPECT_EQ(config.topk().k(), 3);
  }

  absl::StatusOr<SafetensorsContents> expected = ReadSafetensors(dir + "/expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  const torch::Tensor& x = expected->tensors.at("x");
  const torch::Tensor& feature_acts = expected->tensors.at("feature_acts");
  ExpectSomeButNotAllFire(feature_acts, name);
  torch::NoGradGuard no_grad;
  ExpectClose(sae->Encode(x), feature_acts, 1e-5, name + " latents");
  ExpectClose(sae->Reconstruct(x), expected->tensors.at("sae_out"), 1e-5, name + " reconstruction");
  // The sparsity pattern itself is exact (the fixture keeps decisions 1e-3
  // away from flipping).
  EXPECT_TRUE(torch::equal(sae->Encode(x).ne(0), feature_acts.ne(0)));
}

// exp(log_threshold) of the imported SAE is the file's threshold bit for bit
// wherever a float32 log_threshold can reach it, so the thresholds of a file
// saelab wrote survive import exactly (a plain float32 log misses a few per
// thousand by one ulp after exp).
TEST(SaeLensTest, ImportedJumpReluThetaIsTheFileThresholdExactly) {
  constexpr int64_t kMany = 4096;
  SaeConfig config = ConfigFor("jumprelu");
  config.set_n_latents(kMany);
  ASSERT_TRUE(ResolveSaeConfig(kDIn, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, kDIn, 1);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(8);
    sae->NamedTensors().at("log_threshold").uniform_(std::log(1e-4), std::log(10.0));
  }
  const std::string dir = TempDir() + "/many_thresholds";
  ASSERT_TRUE(ExportSaeLens(*sae, config, dir).ok());
  // A threshold SAELens wrote itself need not be exp of any float32.
  EditWeights(dir, [](TensorMap& tensors) {
    tensors["threshold"] = torch::empty({kMany}).uniform_(1e-4, 10.0);
  });
  std::unique_ptr<Sae> back = Import(dir);
  ASSERT_NE(back, nullptr);
  torch::Tensor file = ReadSafetensors(dir + "/sae_weights.safetensors")->tensors.at("threshold");
  torch::Tensor theta = back->NamedTensors().at("log_threshold").detach().exp();
  // Where no float32 log_threshold reaches a value exactly, the nearest
  // reachable one: never further than exp(float32(log(threshold))).
  torch::Tensor plain = file.to(torch::kFloat64).log().to(torch::kFloat32).exp();
  EXPECT_TRUE(torch::all((theta - file).abs() <= (plain - file).abs()).item<bool>());
  EXPECT_GT(torch::eq(theta, file).sum().item<int64_t>(),
            torch::eq(plain, file).sum().item<int64_t>());

  // And for thresholds saelab wrote (exp of a float32), always exactly.
  ASSERT_TRUE(ExportSaeLens(*sae, config, dir).ok());
  back = Import(dir);
  ASSERT_NE(back, nullptr);
  EXPECT_TRUE(torch::equal(back->NamedTensors().at("log_threshold").detach().exp(),
                           sae->NamedTensors().at("log_threshold").detach().exp()));
}

// ---- apply_b_dec_to_input the other way round ----------------------------

// A SAELens topk SAE that does not subtract b_dec: z = x W_enc + b_enc. The
// import folds b_dec W_enc into b_enc; checked against the formula applied
// to the file's own tensors.
TEST(SaeLensTest, TopKWithoutBDecSubtractionIsFoldedIntoTheEncoderBias) {
  const std::string dir = ExportFresh("topk", "topk_no_b_dec");
  EditConfig(dir, [](Json& cfg) {
    cfg["apply_b_dec_to_input"] = false;
    cfg.erase("saelab");
  });
  std::unique_ptr<Sae> sae = Import(dir);
  ASSERT_NE(sae, nullptr);
  TensorMap w = ReadSafetensors(dir + "/sae_weights.safetensors")->tensors;
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({64, kDIn});
  torch::Tensor f = SaeLensTopKLatents(w, x);
  ExpectClose(sae->Encode(x), f, 1e-5, "latents");
  ExpectClose(sae->Reconstruct(x), torch::addmm(w.at("b_dec"), f, w.at("W_dec")), 1e-5,
              "reconstruction");
}

TEST(SaeLensTest, TopKTranscoderExportsAsTopKWithoutBDecSubtractionAndComesBack) {
  SaeConfig config = ConfigFor("topk");
  config.set_name("interchange_transcoder");
  config.mutable_transcoder();
  std::unique_ptr<Sae> sae = TrainedLooking(config, 3, 2.5);
  ASSERT_TRUE(sae->is_transcoder());
  const std::string dir = TempDir() + "/transcoder";
  ASSERT_TRUE(ExportSaeLens(*sae, config, dir).ok());
  Json cfg = ReadJson(dir + "/cfg.json");
  EXPECT_EQ(cfg["architecture"], "topk");
  EXPECT_EQ(cfg["apply_b_dec_to_input"], false);
  // SAELens's formula on the exported files (raw units: the scale is folded).
  TensorMap w = ReadSafetensors(dir + "/sae_weights.safetensors")->tensors;
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({64, kDIn});
  torch::Tensor f = SaeLensTopKLatents(w, x);
  ExpectClose(sae->Reconstruct(x), torch::addmm(w.at("b_dec"), f, w.at("W_dec")), 1e-5,
              "SAELens's map of the exported transcoder");
  // The saelab object brings the transcoder back, with no bias folding.
  SaeConfig imported_config;
  std::unique_ptr<Sae> imported = Import(dir, &imported_config);
  ASSERT_NE(imported, nullptr);
  EXPECT_TRUE(imported->is_transcoder());
  EXPECT_TRUE(imported_config.has_transcoder());
  ExpectClose(imported->Reconstruct(x), sae->Reconstruct(x), 1e-5, "round trip");

  // A skip transcoder has no SAELens form.
  config.mutable_transcoder()->set_skip_connection(true);
  std::unique_ptr<Sae> skip = TrainedLooking(config, 3, 1.0);
  absl::Status refused = ExportSaeLens(*skip, config, TempDir() + "/skip_transcoder");
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("skip transcoder"));
}

TEST(SaeLensTest, GatedWithoutBDecSubtractionIsFoldedIntoBothBiases) {
  const std::string dir = ExportFresh("gated", "gated_no_b_dec");
  EditConfig(dir, [](Json& cfg) {
    cfg["apply_b_dec_to_input"] = false;
    cfg.erase("saelab");
  });
  std::unique_ptr<Sae> sae = Import(dir);
  ASSERT_NE(sae, nullptr);
  TensorMap w = ReadSafetensors(dir + "/sae_weights.safetensors")->tensors;
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({64, kDIn});
  torch::Tensor gate = torch::addmm(w.at("b_gate"), x, w.at("W_enc"));
  torch::Tensor mag = torch::addmm(w.at("b_mag"), x, w.at("W_enc") * w.at("r_mag").exp());
  torch::Tensor f = (gate > 0).to(torch::kFloat32) * torch::relu(mag);
  ExpectSomeButNotAllFire(f, "gated");
  ExpectClose(sae->Encode(x), f, 1e-5, "latents");
}

// ---- The architecture table's SAELens forms -------------------------------

TEST(SaeLensTest, EachSaeLensArchitectureImportsAsExactlyOneSaelabArchitecture) {
  std::map<std::string, int> importers;
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    importers[architecture->saelens.architecture] +=
        architecture->saelens.imports_foreign_files ? 1 : 0;
  }
  EXPECT_EQ(importers.size(), 4u);  // standard, topk, jumprelu, gated
  for (const auto& [saelens, count] : importers) EXPECT_EQ(count, 1) << saelens;
}

// ImportSaeLens checks a file against the row of the architecture it
// becomes, so rows written as one SAELens architecture must agree on what
// that architecture's files hold.
TEST(SaeLensTest, ArchitecturesWrittenAsOneSaeLensArchitectureAgreeOnItsFiles) {
  std::map<std::string, std::string> layout;
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    const SaeLensForm& form = architecture->saelens;
    std::string tensors = form.b_enc_name;
    for (const SaeLensTensor& extra : form.extra_tensors) tensors += "," + extra.saelens_name;
    const std::string described = tensors + (form.k_in_config ? " k " : " ") + form.activation_fn;
    auto it = layout.emplace(form.architecture, described).first;
    EXPECT_EQ(it->second, described) << architecture->name << " as " << form.architecture;
  }
}

// ---- Bad input: errors name the file and the key or tensor ---------------

TEST(SaeLensTest, MissingConfigIsNotFoundNamingTheFile) {
  const std::string dir = TempDir() + "/no_config";
  ASSERT_TRUE(MakeDirs(dir).ok());
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sae.status().message(), HasSubstr(dir + "/cfg.json"));
}

TEST(SaeLensTest, UnknownArchitectureIsAnErrorNamingFileKeyAndValue) {
  const std::string dir = ExportFresh("relu_l1", "unknown_architecture");
  EditConfig(dir, [](Json& cfg) {
    cfg["architecture"] = "matryoshka_batchtopk";
    cfg.erase("saelab");
  });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(), AllOf(HasSubstr(dir + "/cfg.json"), HasSubstr("architecture"),
                                            HasSubstr("matryoshka_batchtopk")));
}

TEST(SaeLensTest, TensorShapeDisagreeingWithDInIsAnErrorNamingFileAndTensor) {
  const std::string dir = ExportFresh("relu_l1", "bad_shape");
  EditWeights(dir, [](TensorMap& tensors) { tensors["b_dec"] = torch::zeros({kDIn + 1}); });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr(dir + "/sae_weights.safetensors"), HasSubstr("'b_dec'"),
                    HasSubstr("[9]"), HasSubstr("expected [8]"), HasSubstr("d_in = 8")));
}

TEST(SaeLensTest, DSaeDisagreeingWithTensorsIsAnErrorNamingTheTensor) {
  const std::string dir = ExportFresh("topk", "bad_d_sae");
  EditConfig(dir, [](Json& cfg) {
    cfg["d_sae"] = kNLatents + 1;
    cfg.erase("saelab");
  });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr("sae_weights.safetensors"), HasSubstr("'W_enc'"),
                    HasSubstr("[8, 16]"), HasSubstr("expected [8, 17]")));
}

TEST(SaeLensTest, JumpReluWithoutThresholdIsNotFoundNamingTheTensor) {
  const std::string dir = ExportFresh("jumprelu", "no_threshold");
  EditWeights(dir, [](TensorMap& tensors) { tensors.erase("threshold"); });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr(dir + "/sae_weights.safetensors"), HasSubstr("'threshold'")));
}

TEST(SaeLensTest, UnsupportedNormalizeActivationsNamesTheSupportedValue) {
  const std::string dir = ExportFresh("relu_l1", "layer_norm");
  EditConfig(dir, [](Json& cfg) { cfg["normalize_activations"] = "layer_norm"; });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr(dir + "/cfg.json"), HasSubstr("normalize_activations"),
                    HasSubstr("'layer_norm'"), HasSubstr("only 'none'")));

  // The pre-6 bool form of "expected_average_only_in", with advice to fold.
  EditConfig(dir, [](Json& cfg) { cfg["normalize_activations"] = true; });
  sae = ImportSaeLens(dir);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr("expected_average_only_in"), HasSubstr("fold")));
}

TEST(SaeLensTest, UnexpectedTensorIsAnErrorNamingIt) {
  const std::string dir = ExportFresh("topk", "extra_tensor");
  EditWeights(dir, [](TensorMap& tensors) { tensors["W_skip"] = torch::zeros({kDIn, kDIn}); });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(),
              AllOf(HasSubstr("sae_weights.safetensors"), HasSubstr("W_skip")));
}

TEST(SaeLensTest, FeaturesSaelabCannotRunAreRefusedByKey) {
  const std::string dir = ExportFresh("topk", "refused_keys");
  const std::string path = dir + "/cfg.json";
  const Json original = ReadJson(path);
  struct Case {
    std::string key;
    Json value;
  };
  const Case cases[] = {
      {"rescale_acts_by_decoder_norm", true},
      {"finetuning_scaling_factor", true},
      {"dtype", "int8"},
      {"apply_b_dec_to_input", "yes"},
      {"k", 17},
      {"d_in", 0},
  };
  for (const Case& c : cases) {
    Json cfg = original;
    cfg[c.key] = c.value;
    WriteJson(path, cfg);
    absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
    EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument) << c.key;
    EXPECT_THAT(sae.status().message(), AllOf(HasSubstr(path), HasSubstr("'" + c.key + "'")));
  }
  ASSERT_TRUE(AtomicWriteFile(path, "{\"architecture\": ").ok());
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(), AllOf(HasSubstr(path), HasSubstr("not valid JSON")));
  // Nested 100,000 deep: an error, not a crash.
  ASSERT_TRUE(AtomicWriteFile(path, "{\"architecture\": " + std::string(100000, '[') + "}").ok());
  sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(), AllOf(HasSubstr(path), HasSubstr("nested deeper than")));
}

TEST(SaeLensTest, BatchTopKTrainingFormIsRefusedWithAHint) {
  const std::string dir = ExportFresh("relu_l1", "batchtopk_training");
  EditConfig(dir, [](Json& cfg) {
    cfg["architecture"] = "batchtopk";
    cfg.erase("saelab");
  });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_THAT(sae.status().message(), AllOf(HasSubstr("'batchtopk'"), HasSubstr("'jumprelu'")));
}

TEST(SaeLensTest, NonUniformThresholdIsNotABatchTopKSae) {
  const std::string dir = ExportFresh("batch_topk", "nonuniform_threshold");
  EditWeights(dir, [](TensorMap& tensors) { tensors["threshold"][0].fill_(0.5); });
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSaeLens(dir);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sae.status().message(), AllOf(HasSubstr("'threshold'"), HasSubstr("batch_topk")));
}

}  // namespace
}  // namespace saelab
