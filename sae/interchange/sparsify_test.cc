#include "sae/interchange/sparsify.h"

#include <cstdint>
#include <memory>
#include <string>
#include <torch/utils.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/safetensors.h"
#include "nlohmann/json.hpp"
#include "sae/interchange/internal/testing.h"

namespace saelab {
namespace {

using ::saelab::interchange_internal::ExpectClose;
using ::saelab::interchange_internal::ReadJson;
using ::testing::TempDir;
using ::saelab::interchange_internal::WriteJson;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// Files written by sae/interchange/testdata/make_saelens_fixture.py (numpy, by
// the sparsify formulas), found from the test's runfiles directory.
constexpr char kSparsifyFixture[] = "sae/interchange/testdata/sparsify_fixture";

TEST(SparsifyTest, ImportEncodesAndReconstructsLikeSparsify) {
  SaeConfig config;
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSparsify(kSparsifyFixture, &config);
  ASSERT_TRUE(sae.ok()) << sae.status();
  EXPECT_EQ((*sae)->architecture(), "topk");
  EXPECT_EQ((*sae)->d_in(), 6);
  EXPECT_EQ(config.n_latents(), 12);  // d_in * expansion_factor (num_latents 0)
  EXPECT_EQ(config.topk().k(), 3);
  EXPECT_EQ(config.name(), "sparsify_fixture");

  SafetensorsContents weights =
      *ReadSafetensors(std::string(kSparsifyFixture) + "/sae.safetensors");
  EXPECT_TRUE(torch::equal((*sae)->W_enc.detach(), weights.tensors.at("encoder.weight").t()));

  SafetensorsContents expected =
      *ReadSafetensors(std::string(kSparsifyFixture) + "/expected.safetensors");
  const torch::Tensor& x = expected.tensors.at("x");
  torch::NoGradGuard no_grad;
  ExpectClose((*sae)->Encode(x), expected.tensors.at("feature_acts"), 1e-5, "latents");
  ExpectClose((*sae)->Reconstruct(x), expected.tensors.at("sae_out"), 1e-5, "reconstruction");
  EXPECT_EQ((*sae)->Encode(x).ne(0).sum(1).max().item<int64_t>(), 3);
}

constexpr char kSkipTranscoderFixture[] =
    "sae/interchange/testdata/sparsify_skip_transcoder_fixture";

TEST(SparsifyTest, SkipTranscoderImportsAndMapsLikeSparsify) {
  SaeConfig config;
  absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSparsify(kSkipTranscoderFixture, &config);
  ASSERT_TRUE(sae.ok()) << sae.status();
  EXPECT_TRUE((*sae)->is_transcoder());
  EXPECT_TRUE(config.has_transcoder());
  EXPECT_TRUE(config.transcoder().skip_connection());
  EXPECT_EQ(config.n_latents(), 12);  // num_latents, not d_in * expansion_factor
  SafetensorsContents expected =
      *ReadSafetensors(std::string(kSkipTranscoderFixture) + "/expected.safetensors");
  const torch::Tensor& x = expected.tensors.at("x");
  torch::NoGradGuard no_grad;
  ExpectClose((*sae)->Encode(x), expected.tensors.at("feature_acts"), 1e-5, "latents");
  ExpectClose((*sae)->Reconstruct(x), expected.tensors.at("sae_out"), 1e-5, "transcoder output");
}

TEST(SparsifyTest, MissingConfigIsNotFoundNamingTheFile) {
  const std::string dir = TempDir() + "/no_config";
  ASSERT_TRUE(MakeDirs(dir).ok());
  absl::StatusOr<std::unique_ptr<Sae>> sparsify = ImportSparsify(dir);
  EXPECT_EQ(sparsify.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sparsify.status().message(), HasSubstr(dir + "/cfg.json"));
}

TEST(SparsifyTest, VariantsSaelabCannotRunAreRefusedByKey) {
  const std::string dir = TempDir() + "/sparsify_variants";
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/sae.safetensors",
                              *ReadFile(std::string(kSparsifyFixture) + "/sae.safetensors"))
                  .ok());
  const Json original = ReadJson(std::string(kSparsifyFixture) + "/cfg.json");
  struct Case {
    std::string key;
    Json value;
  };
  const Case cases[] = {{"activation", "groupmax"},
                        {"signed", true},
                        // A skip connection with b_dec subtracted.
                        {"skip_connection", true},
                        {"k", 0},
                        {"d_in", 7},
                        // d_in * expansion_factor overflowed int64
                        // (fuzz/crashes/sparsify/; num_latents is 0).
                        {"expansion_factor", int64_t{1} << 62}};
  for (const Case& c : cases) {
    Json cfg = original;
    cfg[c.key] = c.value;
    WriteJson(dir + "/cfg.json", cfg);
    absl::StatusOr<std::unique_ptr<Sae>> sae = ImportSparsify(dir);
    EXPECT_FALSE(sae.ok()) << c.key;
    // d_in 7 disagrees with the tensors: the error names the tensor file.
    std::string file = c.key == "d_in" ? "sae.safetensors" : "cfg.json";
    EXPECT_THAT(sae.status().message(), HasSubstr(dir + "/" + file)) << c.key;
    if (c.key != "d_in") {
      EXPECT_THAT(sae.status().message(), HasSubstr("'" + c.key + "'"));
    }
  }
}

}  // namespace
}  // namespace saelab
