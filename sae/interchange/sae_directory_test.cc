// Each layout's directory loads through the loader of that layout: the
// SAE's latents on the fixture's inputs equal those of the direct loader.
#include "sae/interchange/sae_directory.h"

#include <torch/types.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "harness/safetensors.h"
#include "sae/checkpoint.h"
#include "sae/interchange/saelens.h"
#include "sae/interchange/sparsify.h"

namespace saelab {
namespace {

constexpr char kSaeLensTopK[] = "sae/interchange/testdata/saelens_fixture/topk";
constexpr char kSparsify[] = "sae/interchange/testdata/sparsify_fixture";

torch::Tensor Inputs(const std::string& fixture) {
  absl::StatusOr<SafetensorsContents> expected = ReadSafetensors(fixture + "/expected.safetensors");
  EXPECT_TRUE(expected.ok()) << expected.status();
  return expected->tensors.at("x");
}

TEST(SaeDirectoryTest, EachLayoutIsReadByItsOwnLoader) {
  absl::StatusOr<LoadedSae> lens = LoadSaeDirectory(kSaeLensTopK);
  ASSERT_TRUE(lens.ok()) << lens.status();
  EXPECT_EQ(lens->layout, SaeLayout::kSaeLens);
  absl::StatusOr<std::unique_ptr<Sae>> direct_lens = ImportSaeLens(kSaeLensTopK);
  ASSERT_TRUE(direct_lens.ok());
  const torch::Tensor x = Inputs(kSaeLensTopK);
  EXPECT_TRUE(torch::equal(lens->sae->Encode(x), (*direct_lens)->Encode(x)));

  absl::StatusOr<LoadedSae> sparsify = LoadSaeDirectory(kSparsify);
  ASSERT_TRUE(sparsify.ok()) << sparsify.status();
  EXPECT_EQ(sparsify->layout, SaeLayout::kSparsify);
  EXPECT_EQ(sparsify->config.topk().k(), 3);
  absl::StatusOr<std::unique_ptr<Sae>> direct_sparsify = ImportSparsify(kSparsify);
  ASSERT_TRUE(direct_sparsify.ok());
  const torch::Tensor xs = Inputs(kSparsify);
  EXPECT_TRUE(torch::equal(sparsify->sae->Encode(xs), (*direct_sparsify)->Encode(xs)));

  // saelab's own files win over a cfg.json beside them.
  const std::string dir = ::testing::TempDir() + "/both";
  ASSERT_TRUE(SaveSae(dir, *lens->sae, lens->config).ok());
  std::filesystem::copy_file(std::string(kSaeLensTopK) + "/cfg.json", dir + "/cfg.json");
  absl::StatusOr<LoadedSae> own = LoadSaeDirectory(dir);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->layout, SaeLayout::kSaelab);
  EXPECT_EQ(std::string(SaeLayoutName(own->layout)), "saelab");
  EXPECT_TRUE(torch::equal(own->sae->Encode(x), lens->sae->Encode(x)));
}

TEST(SaeDirectoryTest, ADirectoryOfNoLayoutIsRefusedNamingWhatEachNeeds) {
  const std::string dir = ::testing::TempDir() + "/empty";
  std::filesystem::create_directories(dir);
  absl::Status status = LoadSaeDirectory(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find(dir + ": not an SAE directory: saelab's holds "
                                        "sae_config.textproto + sae.safetensors"),
            std::string::npos)
      << status;
  EXPECT_NE(LoadSaeDirectory(dir + "/absent").status().message().find("does not exist"),
            std::string::npos);
}

}  // namespace
}  // namespace saelab
