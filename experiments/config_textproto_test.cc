#include "harness/textproto.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "sae/sae_config.pb.h"
#include "experiments/experiment_config.pb.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::TempDir;

TEST(TextprotoTest, ParsesAValidConfig) {
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProto(R"pb(
    name: "demo" seed: 7
    synthetic_recovery { data { d: 16 } sweeps { base { topk { k: 4 } } sparsity: 2 sparsity: 4 } }
  )pb", "demo.textproto", &config).ok());
  EXPECT_EQ(config.name(), "demo");
  EXPECT_EQ(config.seed(), 7u);
  EXPECT_EQ(config.synthetic_recovery().sweeps(0).sparsity_size(), 2);
}

TEST(TextprotoTest, UnknownFieldIsAnErrorNamingFileLineAndField) {
  std::string path = TempDir() + "/unknown_field.textproto";
  ASSERT_TRUE(AtomicWriteFile(path, "name: \"x\"\nsynthetic_recovery {\n  data { dd: 3 }\n}\n").ok());
  ExperimentConfig config;
  absl::Status status = ParseTextProtoFile(path, &config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::string message(status.message());
  EXPECT_NE(message.find(path + ":3:"), std::string::npos) << message;
  EXPECT_NE(message.find("\"dd\""), std::string::npos) << message;
}

TEST(TextprotoTest, MalformedTextIsAnErrorNamingFileAndLine) {
  std::string path = TempDir() + "/malformed.textproto";
  ASSERT_TRUE(AtomicWriteFile(path, "name: \"x\"\nseed: 1\nsynthetic_recovery {\n").ok());
  ExperimentConfig config;
  absl::Status status = ParseTextProtoFile(path, &config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(std::string(status.message()).find(path + ":"), std::string::npos) << status;
}

TEST(TextprotoTest, WrongValueTypeIsAnError) {
  ExperimentConfig config;
  absl::Status status = ParseTextProto("seed: \"seven\"", "typed.textproto", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(std::string(status.message()).find("typed.textproto:1:"), std::string::npos) << status;
}

TEST(TextprotoTest, MissingFileIsAnErrorNamingIt) {
  ExperimentConfig config;
  absl::Status status = ParseTextProtoFile("/no/such/config.textproto", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(status.message()).find("/no/such/config.textproto"), std::string::npos);
}

TEST(TextprotoTest, FillDefaultsSetsExplicitDefaultsOnlyAndRespectsOneofs) {
  SaeConfig sae;
  sae.mutable_topk();  // chosen architecture, nothing set inside
  FillDefaults(&sae);
  // Explicit [default = ...] values appear as set fields (from config.proto).
  EXPECT_TRUE(sae.has_n_latents());
  EXPECT_EQ(sae.n_latents(), 4096);
  EXPECT_TRUE(sae.topk().has_k());
  EXPECT_EQ(sae.topk().k(), 32);
  EXPECT_DOUBLE_EQ(sae.topk().auxk_coefficient(), 1.0 / 32.0);
  // The trainer sub-message is created with its defaults.
  EXPECT_TRUE(sae.has_trainer());
  EXPECT_EQ(sae.trainer().batch_size(), 4096);
  // Fields whose default is "derived by the code" stay unset.
  EXPECT_FALSE(sae.trainer().has_lr());
  EXPECT_FALSE(sae.topk().has_k_aux());
  // The other member of the oneof is not created.
  EXPECT_FALSE(sae.has_relu_l1());
}

TEST(TextprotoTest, FillDefaultsKeepsValuesThatWereSet) {
  SaeConfig sae;
  sae.mutable_relu_l1()->set_l1_coefficient(2.5);
  sae.set_n_latents(64);
  FillDefaults(&sae);
  EXPECT_DOUBLE_EQ(sae.relu_l1().l1_coefficient(), 2.5);
  EXPECT_EQ(sae.n_latents(), 64);
  EXPECT_DOUBLE_EQ(sae.relu_l1().l1_warmup_fraction(), 0.05);
}

TEST(TextprotoTest, HashIgnoresFormattingAndSeesValues) {
  ExperimentConfig a, b, c;
  ASSERT_TRUE(ParseTextProto("name: 'x' seed: 3", "a", &a).ok());
  ASSERT_TRUE(ParseTextProto("seed:3\n\n  name :\"x\"  # comment", "b", &b).ok());
  ASSERT_TRUE(ParseTextProto("name: 'x' seed: 4", "c", &c).ok());
  EXPECT_EQ(ProtoSha256(a), ProtoSha256(b));
  EXPECT_NE(ProtoSha256(a), ProtoSha256(c));
  EXPECT_EQ(ProtoSha256(a).size(), 64u);
}

TEST(TextprotoTest, TextAndBinaryFilesRoundTrip) {
  ExperimentConfig config;
  config.set_name("round");
  config.mutable_synthetic_recovery()->mutable_data()->set_d(12);
  FillDefaults(&config);
  std::string text_path = TempDir() + "/rt.textproto";
  std::string binary_path = TempDir() + "/rt.pb";
  ASSERT_TRUE(WriteTextProtoFile(text_path, config).ok());
  ASSERT_TRUE(WriteBinaryProtoFile(binary_path, config).ok());
  ExperimentConfig from_text, from_binary;
  ASSERT_TRUE(ParseTextProtoFile(text_path, &from_text).ok());
  ASSERT_TRUE(ReadBinaryProtoFile(binary_path, &from_binary).ok());
  EXPECT_EQ(ProtoSha256(from_text), ProtoSha256(config));
  EXPECT_EQ(ProtoSha256(from_binary), ProtoSha256(config));
}

TEST(TextprotoTest, CorruptBinaryProtoIsDataLossNamingTheFile) {
  std::string path = TempDir() + "/corrupt.pb";
  ASSERT_TRUE(AtomicWriteFile(path, std::string("\x0a\xff\xff\xff", 4)).ok());
  ExperimentConfig config;
  absl::Status status = ReadBinaryProtoFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(status.message()).find("corrupt.pb"), std::string::npos);
}

// An evaluation runs when its field is present; the as-run config must not
// switch on the ones the user left out.
TEST(TextprotoTest, FillDefaultsLeavesEvaluationSwitchesAlone) {
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProto(R"pb(
    name: "evals"
    subject_sae { probe_eval { sparse_k: 1 } }
  )pb", "evals.textproto", &config).ok());
  FillDefaults(&config);
  const SubjectSaeConfig& subject = config.subject_sae();
  EXPECT_TRUE(subject.has_probe_eval());
  EXPECT_TRUE(subject.probe_eval().has_train_examples_per_class());  // filled
  EXPECT_FALSE(subject.has_ablation_eval());
  EXPECT_FALSE(subject.has_absorption_eval());
  EXPECT_FALSE(subject.has_steering_eval());
  EXPECT_FALSE(subject.has_classification_eval());
  EXPECT_FALSE(subject.has_dashboard());
  // Core metrics run by default: their config is filled in.
  EXPECT_TRUE(subject.has_downstream_eval());
}

// Every shipped experiment config parses.
TEST(TextprotoTest, ShippedConfigsParse) {
  for (const char* path :
       {"experiments/quickstart.textproto", "experiments/subject_sae.textproto",
        "experiments/synthetic_recovery.textproto",
        "experiments/synthetic_recovery_matched_l0.textproto",
        "experiments/synthetic_absorption.textproto",
        "experiments/train_subject_lm.textproto"}) {
    ExperimentConfig config;
    const absl::Status status = ParseTextProtoFile(path, &config);
    EXPECT_TRUE(status.ok()) << status;
  }
}

}  // namespace
}  // namespace saelab
