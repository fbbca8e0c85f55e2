#include "sae/checkpoint.h"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <torch/utils.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/safetensors.h"
#include "harness/sha256.h"
#include "sae/factory.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kDIn = 16;
constexpr int64_t kNLatents = 48;

using ::testing::TempDir;

SaeConfig TopKConfigFor(const std::string& name) {
  SaeConfig config;
  config.set_name(name);
  config.set_n_latents(kNLatents);
  config.mutable_topk()->set_k(5);
  EXPECT_TRUE(ResolveSaeConfig(kDIn, &config).ok());
  return config;
}

SaeConfig ReluL1ConfigFor(const std::string& name) {
  SaeConfig config;
  config.set_name(name);
  config.set_n_latents(kNLatents);
  config.mutable_relu_l1()->set_l1_coefficient(2.0);
  EXPECT_TRUE(ResolveSaeConfig(kDIn, &config).ok());
  return config;
}

// A freshly created SAE whose every tensor is then moved off its init
// (random perturbation, non-1 input scale), so that a loader that ignored
// a tensor, or re-initialised from a seed, could not pass.
std::unique_ptr<Sae> TrainedLooking(const SaeConfig& config, uint64_t seed) {
  std::unique_ptr<Sae> sae = *CreateSae(config, kDIn, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& [name, tensor] : sae->NamedTensors()) {
    if (name != "input_scale") tensor.add_(0.1 * torch::randn(tensor.sizes()));
  }
  sae->set_input_scale(2.75);
  return sae;
}

// Saves a TopK SAE into a fresh directory `name` under TEST_TMPDIR.
std::string SaveTopK(const std::string& name) {
  std::string dir = TempDir() + "/" + name;
  SaeConfig config = TopKConfigFor(name);
  std::unique_ptr<Sae> sae = TrainedLooking(config, 11);
  absl::Status saved = SaveSae(dir, *sae, config);
  EXPECT_TRUE(saved.ok()) << saved;
  return dir;
}

void ExpectRoundTrip(const SaeConfig& config, const std::string& dir) {
  std::unique_ptr<Sae> sae = TrainedLooking(config, 5);
  EXPECT_FALSE(HasSavedSae(dir));
  absl::Status saved = SaveSae(dir, *sae, config);
  ASSERT_TRUE(saved.ok()) << saved;
  EXPECT_TRUE(HasSavedSae(dir));

  SaeConfig loaded_config;
  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir, &loaded_config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Sae& back = **loaded;
  EXPECT_EQ(back.architecture(), sae->architecture());
  EXPECT_EQ(loaded_config.DebugString(), config.DebugString());
  EXPECT_DOUBLE_EQ(back.input_scale(), 2.75);

  auto original = sae->NamedTensors();
  auto restored = back.NamedTensors();
  ASSERT_EQ(restored.size(), original.size());
  for (const auto& [name, tensor] : original) {
    ASSERT_EQ(restored.count(name), 1u) << name;
    EXPECT_EQ(restored.at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(restored.at(name), tensor)) << name;
  }

  torch::NoGradGuard no_grad;
  torch::manual_seed(99);
  torch::Tensor x = 3.0 * torch::randn({32, kDIn});
  torch::Tensor f = sae->Encode(x);
  EXPECT_GT(f.ne(0).sum().item<int64_t>(), 0);  // the comparison is not vacuous
  EXPECT_TRUE(torch::equal(back.Encode(x), f));
  EXPECT_TRUE(torch::equal(back.Decode(f), sae->Decode(f)));
}

TEST(CheckpointTest, TopKRoundTripIsBitwise) {
  ExpectRoundTrip(TopKConfigFor("roundtrip_topk"), TempDir() + "/roundtrip_topk");
}

TEST(CheckpointTest, ReluL1RoundTripIsBitwise) {
  ExpectRoundTrip(ReluL1ConfigFor("roundtrip_relu"), TempDir() + "/roundtrip_relu");
}

TEST(CheckpointTest, HasSavedSaeIsFalseForAnEmptyOrMissingDirectory) {
  std::string dir = TempDir() + "/empty_dir";
  EXPECT_FALSE(HasSavedSae(dir));
  ASSERT_TRUE(MakeDirs(dir).ok());
  EXPECT_FALSE(HasSavedSae(dir));
}

TEST(CheckpointTest, WrongShapeWDecIsAnErrorNamingTheFileAndTensor) {
  std::string dir = SaveTopK("wrong_shape");
  std::string path = dir + "/sae.safetensors";
  absl::StatusOr<SafetensorsContents> contents = ReadSafetensors(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  // The transposed shape [d_in, n_latents], a plausible layout mistake.
  contents->tensors["W_dec"] = torch::zeros({kDIn, kNLatents});
  ASSERT_TRUE(WriteSafetensors(path, contents->tensors, contents->metadata).ok());

  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), AllOf(HasSubstr(path), HasSubstr("W_dec")));
}

TEST(CheckpointTest, MissingTensorIsAnErrorNamingTheFileAndTensor) {
  std::string dir = SaveTopK("missing_tensor");
  std::string path = dir + "/sae.safetensors";
  absl::StatusOr<SafetensorsContents> contents = ReadSafetensors(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  contents->tensors.erase("b_enc");
  ASSERT_TRUE(WriteSafetensors(path, contents->tensors, contents->metadata).ok());

  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), AllOf(HasSubstr(path), HasSubstr("b_enc")));
}

TEST(CheckpointTest, TruncatedWeightsFileIsAnErrorNamingTheFile) {
  std::string dir = SaveTopK("truncated");
  std::string path = dir + "/sae.safetensors";
  absl::StatusOr<std::string> bytes = ReadFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(AtomicWriteFile(path, bytes->substr(0, bytes->size() / 2)).ok());

  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(path));
}

TEST(CheckpointTest, MalformedConfigIsAnErrorNamingTheFileAndLine) {
  std::string dir = SaveTopK("malformed_config");
  std::string path = dir + "/sae_config.textproto";
  // Line 3 names a field TopKConfig does not have.
  ASSERT_TRUE(AtomicWriteFile(path,
                              "name: \"malformed_config\"\n"
                              "n_latents: 48\n"
                              "topk { kk: 5 }\n")
                  .ok());

  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), AllOf(HasSubstr(path + ":3:"), HasSubstr("kk")));
}

TEST(CheckpointTest, AnEditedConfigIsRefusedByTheHashTheWeightsRecord) {
  std::string dir = SaveTopK("arch_mismatch");
  std::string config_path = dir + "/sae_config.textproto";
  ASSERT_TRUE(AtomicWriteFile(config_path,
                              "name: \"arch_mismatch\"\n"
                              "n_latents: 48\n"
                              "relu_l1 { }\n")
                  .ok());

  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(loaded.status().message()),
              AllOf(HasSubstr(config_path), HasSubstr("checksum"),
                    HasSubstr(Sha256Hex(*ReadFile(config_path)))));
}

TEST(CheckpointTest, AFlippedWeightBitIsRefusedNamingTheFile) {
  std::string dir = SaveTopK("flipped");
  std::string path = dir + "/sae.safetensors";
  std::string bytes = *ReadFile(path);
  bytes[bytes.size() - 3] ^= 0x10;
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(loaded.status().message()), AllOf(HasSubstr(path), HasSubstr("checksum")));
}

}  // namespace
}  // namespace saelab
