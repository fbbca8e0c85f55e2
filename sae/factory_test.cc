#include "sae/factory.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "harness/textproto.h"
#include "sae/architecture.h"
#include "sae/sae.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

SaeConfig TopK(int64_t n_latents, int64_t k) {
  SaeConfig config;
  config.set_name("my_topk");
  config.set_n_latents(n_latents);
  config.mutable_topk()->set_k(k);
  return config;
}

SaeConfig ReluL1(int64_t n_latents) {
  SaeConfig config;
  config.set_name("my_relu");
  config.set_n_latents(n_latents);
  config.mutable_relu_l1();
  return config;
}

// Resolves and expects success; returns the resolved config.
SaeConfig Resolved(SaeConfig config, int64_t d_in) {
  absl::Status status = ResolveSaeConfig(d_in, &config);
  EXPECT_TRUE(status.ok()) << status;
  return config;
}

// Expects InvalidArgument whose message names the SAE and `field`.
void ExpectInvalid(SaeConfig config, int64_t d_in, const std::string& field) {
  const std::string name = config.name();
  absl::Status status = ResolveSaeConfig(d_in, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), AllOf(HasSubstr("'" + name + "'"), HasSubstr(field)));
}

TEST(FactoryTest, UnsafeNamesAndOutOfRangeKnobsAreRefused) {
  auto resolve = [](const std::string& text) {
    SaeConfig config;
    EXPECT_TRUE(ParseTextProto(text, "sae.textproto", &config).ok()) << text;
    return ResolveSaeConfig(16, &config);
  };
  // The name is a directory under the run directory.
  for (const char* name : {"../../../x", "a/b", ".hidden", "bad\\xff"}) {
    const absl::Status status =
        resolve(absl::StrCat("name: \"", name, "\" n_latents: 32 topk { k: 4 }"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(status.message().find("may use only letters, digits"), std::string::npos)
        << status;
  }
  EXPECT_TRUE(resolve("name: \"topk_k4.v2-a\" n_latents: 32 topk { k: 4 }").ok());
  const absl::Status negative = resolve(
      "name: \"t\" n_latents: 32 topk { k: 4 } trainer { checkpoint_every_steps: -5 }");
  EXPECT_NE(negative.message().find("trainer.checkpoint_every_steps must be >= 0, got -5"),
            std::string::npos)
      << negative;
  const absl::Status infinite =
      resolve("name: \"t\" n_latents: 32 topk { k: 4 } trainer { lr: inf }");
  EXPECT_NE(infinite.message().find("trainer.lr must be finite and > 0, got inf"),
            std::string::npos)
      << infinite;
}

TEST(FactoryTest, TopKLearningRateIs2e4OverSqrtOfLatentsOver2To14) {
  // 2e-4 / sqrt(16384 / 16384) = 2e-4; / sqrt(4) = 1e-4; / sqrt(1/4) = 4e-4.
  EXPECT_DOUBLE_EQ(Resolved(TopK(16384, 32), 64).trainer().lr(), 2e-4);
  EXPECT_DOUBLE_EQ(Resolved(TopK(65536, 32), 64).trainer().lr(), 1e-4);
  EXPECT_DOUBLE_EQ(Resolved(TopK(4096, 32), 64).trainer().lr(), 4e-4);
}

TEST(FactoryTest, TopKAdamEpsIs6p25eMinus10) {
  EXPECT_DOUBLE_EQ(Resolved(TopK(4096, 32), 64).trainer().adam_eps(), 6.25e-10);
}

TEST(FactoryTest, TopKAuxKIsPowerOfTwoNearestHalfDIn) {
  // d = 64: 32 is a power of two -> 32.
  EXPECT_EQ(Resolved(TopK(4096, 32), 64).topk().k_aux(), 32);
  // d = 100: 50 lies between 32 (18 away) and 64 (14 away) -> 64.
  EXPECT_EQ(Resolved(TopK(4096, 32), 100).topk().k_aux(), 64);
  // d = 80: 40 lies between 32 (8 away) and 64 (24 away) -> 32.
  EXPECT_EQ(Resolved(TopK(4096, 32), 80).topk().k_aux(), 32);
  // d = 768: 384 lies 128 from both 256 and 512; ties go up -> 512.
  EXPECT_EQ(Resolved(TopK(4096, 32), 768).topk().k_aux(), 512);
}

TEST(FactoryTest, TopKAuxKIsCappedAtNLatents) {
  // d = 768 would give 512, but there are only 300 latents.
  EXPECT_EQ(Resolved(TopK(300, 32), 768).topk().k_aux(), 300);
}

TEST(FactoryTest, ReluL1LearningRateIs5eMinus5AndAdamEps1eMinus8) {
  SaeConfig config = Resolved(ReluL1(4096), 64);
  EXPECT_DOUBLE_EQ(config.trainer().lr(), 5e-5);
  EXPECT_DOUBLE_EQ(config.trainer().adam_eps(), 1e-8);
  // Explicit proto defaults are filled in too.
  EXPECT_DOUBLE_EQ(config.relu_l1().l1_coefficient(), 5.0);
  EXPECT_TRUE(config.relu_l1().has_l1_coefficient());
  EXPECT_TRUE(config.trainer().has_batch_size());
}

TEST(FactoryTest, ExplicitlySetValuesAreKept) {
  SaeConfig topk = TopK(16384, 32);
  topk.mutable_trainer()->set_lr(3e-3);
  topk.mutable_trainer()->set_adam_eps(1e-6);
  topk.mutable_topk()->set_k_aux(7);
  topk = Resolved(topk, 64);
  EXPECT_DOUBLE_EQ(topk.trainer().lr(), 3e-3);
  EXPECT_DOUBLE_EQ(topk.trainer().adam_eps(), 1e-6);
  EXPECT_EQ(topk.topk().k_aux(), 7);
  EXPECT_EQ(topk.topk().k(), 32);

  SaeConfig relu = ReluL1(4096);
  relu.mutable_trainer()->set_lr(1e-3);
  relu.mutable_trainer()->set_adam_eps(1e-5);
  relu.mutable_relu_l1()->set_l1_coefficient(0.5);
  relu = Resolved(relu, 64);
  EXPECT_DOUBLE_EQ(relu.trainer().lr(), 1e-3);
  EXPECT_DOUBLE_EQ(relu.trainer().adam_eps(), 1e-5);
  EXPECT_DOUBLE_EQ(relu.relu_l1().l1_coefficient(), 0.5);
}

TEST(FactoryTest, NoArchitectureIsAnErrorNamingTheSae) {
  SaeConfig config;
  config.set_name("nameless_arch");
  ExpectInvalid(config, 64, "architecture");
}

TEST(FactoryTest, ZeroLatentsIsAnErrorNamingTheField) {
  ExpectInvalid(TopK(0, 1), 64, "n_latents");
  ExpectInvalid(ReluL1(0), 64, "n_latents");
}

TEST(FactoryTest, KOutsideOneToNLatentsIsAnErrorNamingTheField) {
  ExpectInvalid(TopK(128, 0), 64, "topk.k");
  ExpectInvalid(TopK(128, 129), 64, "topk.k");
  // k = n_latents is allowed.
  EXPECT_EQ(Resolved(TopK(128, 128), 64).topk().k(), 128);
}

TEST(FactoryTest, ExplicitKAuxAboveNLatentsIsAnErrorNamingTheField) {
  SaeConfig config = TopK(128, 8);
  config.mutable_topk()->set_k_aux(129);
  ExpectInvalid(config, 64, "topk.k_aux");
}

TEST(FactoryTest, TotalTokensBelowOneBatchIsAnErrorNamingTheField) {
  SaeConfig config = ReluL1(128);
  config.mutable_trainer()->set_batch_size(4096);
  config.mutable_trainer()->set_total_tokens(4095);
  ExpectInvalid(config, 64, "trainer.total_tokens");
  // Exactly one batch is enough.
  config.mutable_trainer()->set_total_tokens(4096);
  Resolved(config, 64);
}

TEST(FactoryTest, OutOfRangeOptimiserSettingsAreErrorsNamingTheField) {
  SaeConfig config = TopK(64, 4);
  config.mutable_trainer()->set_adam_eps(-1);
  ExpectInvalid(config, 16, "adam_eps");
  config = TopK(64, 4);
  config.mutable_trainer()->set_adam_beta2(1.0);
  ExpectInvalid(config, 16, "adam_beta2");
  config = TopK(64, 4);
  config.mutable_trainer()->set_grad_clip_norm(-1);
  ExpectInvalid(config, 16, "grad_clip_norm");
  config = TopK(64, 4);
  config.mutable_topk()->set_auxk_coefficient(-0.5);
  ExpectInvalid(config, 16, "auxk_coefficient");
}

TEST(FactoryTest, ArchitectureNameIsTheOneofCase) {
  EXPECT_EQ(ArchitectureName(TopK(8, 1)), "topk");
  EXPECT_EQ(ArchitectureName(ReluL1(8)), "relu_l1");
  EXPECT_EQ(ArchitectureName(SaeConfig()), "");
}

void ExpectShapes(const Sae& sae, int64_t d, int64_t n) {
  EXPECT_EQ(sae.d_in(), d);
  EXPECT_EQ(sae.n_latents(), n);
  EXPECT_EQ(sae.W_enc.sizes(), (std::vector<int64_t>{d, n}));
  EXPECT_EQ(sae.W_dec.sizes(), (std::vector<int64_t>{n, d}));
  EXPECT_EQ(sae.b_enc.sizes(), (std::vector<int64_t>{n}));
  EXPECT_EQ(sae.b_dec.sizes(), (std::vector<int64_t>{d}));
}

TEST(FactoryTest, CreateSaeBuildsTheConfiguredArchitectureWithSaeLensShapes) {
  const int64_t d = 24, n = 96;
  absl::StatusOr<std::unique_ptr<Sae>> topk = CreateSae(Resolved(TopK(n, 4), d), d, 1);
  ASSERT_TRUE(topk.ok()) << topk.status();
  EXPECT_EQ((*topk)->architecture(), "topk");
  ExpectShapes(**topk, d, n);

  absl::StatusOr<std::unique_ptr<Sae>> relu = CreateSae(Resolved(ReluL1(n), d), d, 1);
  ASSERT_TRUE(relu.ok()) << relu.status();
  EXPECT_EQ((*relu)->architecture(), "relu_l1");
  ExpectShapes(**relu, d, n);
}

TEST(FactoryTest, CreateSaeWithoutArchitectureIsAnError) {
  SaeConfig config;
  config.set_name("no_arch");
  absl::StatusOr<std::unique_ptr<Sae>> sae = CreateSae(config, 8, 0);
  EXPECT_EQ(sae.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sae.status().message()), HasSubstr("no_arch"));
}

TEST(FactoryTest, EveryArchitectureOneofFieldHasOneRowOfItsName) {
  const google::protobuf::OneofDescriptor* oneof =
      SaeConfig::descriptor()->FindOneofByName("architecture");
  ASSERT_NE(oneof, nullptr);
  ASSERT_EQ(SaeArchitectures().size(), static_cast<size_t>(oneof->field_count()));
  for (int i = 0; i < oneof->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = oneof->field(i);
    const SaeArchitecture* row =
        FindArchitecture(static_cast<SaeConfig::ArchitectureCase>(field->number()));
    ASSERT_NE(row, nullptr) << field->name();
    EXPECT_EQ(row->name, field->name());
    EXPECT_EQ(FindArchitecture(field->name()), row);
    EXPECT_EQ(SaeArchitectures()[i], row) << "rows follow the proto's order";
  }
  EXPECT_EQ(FindArchitecture(SaeConfig::ARCHITECTURE_NOT_SET), nullptr);
  EXPECT_EQ(FindArchitecture("standard"), nullptr);
}

TEST(FactoryTest, EveryRowBuildsItsArchitectureFromTheConfigDefaults) {
  const int64_t d = 16, n = 48;
  for (const SaeArchitecture* row : SaeArchitectures()) {
    SaeConfig config;
    config.set_name("row_" + row->name);
    config.set_n_latents(n);
    SelectArchitecture(*row, &config);
    EXPECT_EQ(ArchitectureName(config), row->name);
    config = Resolved(config, d);
    EXPECT_GT(config.trainer().lr(), 0) << row->name;
    EXPECT_GT(config.trainer().adam_eps(), 0) << row->name;
    absl::StatusOr<std::unique_ptr<Sae>> sae = CreateSae(config, d, 1);
    ASSERT_TRUE(sae.ok()) << sae.status();
    EXPECT_EQ((*sae)->architecture(), row->name);
    ExpectShapes(**sae, d, n);
  }
}

TEST(FactoryTest, SparsityKnobIsKForTopKArchitecturesAndLambdaOtherwise) {
  const std::map<std::string, bool> is_k = {{"relu_l1", false}, {"topk", true},
                                            {"batch_topk", true}, {"jumprelu", false},
                                            {"gated", false}, {"matryoshka_batch_topk", true}};
  for (const SaeArchitecture* row : SaeArchitectures()) {
    SaeConfig config;
    SelectArchitecture(*row, &config);
    EXPECT_EQ(SparsityKnobIsK(config), is_k.at(row->name)) << row->name;
    // Set and read back; k rounds to the nearest integer.
    SetSparsityKnob(&config, 6.4);
    EXPECT_DOUBLE_EQ(SparsityKnob(config), is_k.at(row->name) ? 6.0 : 6.4) << row->name;
  }
  EXPECT_EQ(SparsityKnob(SaeConfig()), 0.0);
  EXPECT_FALSE(SparsityKnobIsK(SaeConfig()));
}

// In target mode JumpReLU's knob is the target L0, so sweeps and the
// matched-L0 search set the target and leave lambda alone.
TEST(FactoryTest, JumpReluTargetModeKnobIsTheTargetL0) {
  SaeConfig config;
  config.mutable_jumprelu()->set_sparsity_coefficient(3);
  config.mutable_jumprelu()->mutable_target()->set_l0(5);
  EXPECT_TRUE(SparsityKnobIsK(config));
  EXPECT_TRUE(SparsityKnobIsTargetL0(config));
  EXPECT_DOUBLE_EQ(SparsityKnob(config), 5.0);
  SetSparsityKnob(&config, 12.5);
  EXPECT_DOUBLE_EQ(config.jumprelu().target().l0(), 12.5);
  EXPECT_DOUBLE_EQ(config.jumprelu().sparsity_coefficient(), 3.0);
  config.mutable_jumprelu()->clear_target();
  EXPECT_FALSE(SparsityKnobIsK(config));
  EXPECT_FALSE(SparsityKnobIsTargetL0(config));
  EXPECT_DOUBLE_EQ(SparsityKnob(config), 3.0);
}

// True if every named tensor of a and b is bitwise equal.
bool AllTensorsEqual(Sae& a, Sae& b) {
  auto ta = a.NamedTensors(), tb = b.NamedTensors();
  if (ta.size() != tb.size()) return false;
  for (const auto& [name, tensor] : ta) {
    if (!tb.count(name) || !torch::equal(tensor, tb.at(name))) return false;
  }
  return true;
}

TEST(FactoryTest, SameSeedGivesBitwiseEqualInitAndDifferentSeedDiffers) {
  const int64_t d = 16, n = 64;
  for (const SaeConfig& raw : {TopK(n, 4), ReluL1(n)}) {
    SaeConfig config = Resolved(raw, d);
    std::unique_ptr<Sae> a = *CreateSae(config, d, 42);
    std::unique_ptr<Sae> b = *CreateSae(config, d, 42);
    std::unique_ptr<Sae> c = *CreateSae(config, d, 43);
    EXPECT_TRUE(AllTensorsEqual(*a, *b)) << ArchitectureName(config);
    EXPECT_FALSE(torch::equal(a->W_dec, c->W_dec)) << ArchitectureName(config);
    EXPECT_FALSE(torch::equal(a->W_enc, c->W_enc)) << ArchitectureName(config);
  }
}

// Gao et al. 2024 initialise the encoder as the decoder's transpose; the
// untied init keeps the decoder (same seed) and each encoder column's norm,
// with directions unrelated to the decoder's.
TEST(FactoryTest, RandomEncoderInitKeepsTheDecoderAndNormsButNotTheDirections) {
  for (SaeConfig config : {TopK(256, 8), ReluL1(256)}) {
    SaeConfig tied = Resolved(config, 64);
    config.set_encoder_init(SaeConfig::RANDOM);
    SaeConfig untied = Resolved(config, 64);
    auto a = CreateSae(tied, 64, /*seed=*/7);
    auto b = CreateSae(untied, 64, /*seed=*/7);
    ASSERT_TRUE(a.ok() && b.ok());
    const torch::Tensor dec = (*a)->W_dec, enc_tied = (*a)->W_enc, enc = (*b)->W_enc;
    EXPECT_TRUE(torch::equal(dec, (*b)->W_dec)) << config.name();
    EXPECT_TRUE(torch::equal(enc_tied, dec.t())) << config.name();
    EXPECT_TRUE(torch::allclose(enc.norm(2, {0}), dec.norm(2, {1}), 1e-5, 1e-7)) << config.name();
    // Independent directions in 64 dimensions: |cos| averages sqrt(2/(pi*64)) = 0.1.
    const torch::Tensor cos = (enc.t() * dec).sum(1) / (enc.norm(2, {0}) * dec.norm(2, {1}));
    EXPECT_LT(cos.abs().mean().item<double>(), 0.15) << config.name();
    EXPECT_GT(cos.abs().mean().item<double>(), 0.05) << config.name();
  }
}

}  // namespace
}  // namespace saelab
