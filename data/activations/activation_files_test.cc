// The three formats against each other (the same rows written as .npy,
// .safetensors and a store read back equal), the row slices against
// Python's slice semantics, and every refusal naming the file.
#include "data/activations/activation_files.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <string>

#include "data/activations/internal/test_store.h"
#include "data/activations/tensor_source.h"
#include "harness/file_io.h"
#include "harness/npy.h"
#include "harness/safetensors.h"

namespace saelab {
namespace {

using store_testing::HarvestForTest;

// A fresh scratch directory.
std::string TestDir(const std::string& name) {
  const std::string dir = store_testing::TestDir(name);
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

torch::Tensor Activations() {
  return torch::arange(5 * 2 * 3, torch::kFloat).reshape({5, 2, 3}) / 4 - 2;
}

std::string WriteNpy(const std::string& name, const torch::Tensor& t) {
  const std::string path = TestDir("files") + "/" + name;
  absl::StatusOr<std::string> bytes = SerializeNpy(t.contiguous());
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(AtomicWriteFile(path, *bytes).ok());
  return path;
}

TEST(ActivationFilesTest, NpyAndSafetensorsGiveTheSameRowsWithLeadingDimensionsFlattened) {
  const std::string npy = WriteNpy("acts.npy", Activations());
  const std::string st = TestDir("files") + "/acts.safetensors";
  ASSERT_TRUE(WriteSafetensors(st, {{"blocks.0.hook_resid_post", Activations().to(torch::kHalf)},
                                    {"other", torch::zeros({4, 3})}})
                  .ok());
  absl::StatusOr<ActivationFiles> from_npy = ActivationFiles::Open(npy);
  ASSERT_TRUE(from_npy.ok()) << from_npy.status();
  absl::StatusOr<ActivationFiles> from_st = ActivationFiles::Open(st, "blocks.0.hook_resid_post");
  ASSERT_TRUE(from_st.ok()) << from_st.status();
  for (const ActivationFiles* files : {&*from_npy, &*from_st}) {
    EXPECT_EQ(files->rows(), 10);
    EXPECT_EQ(files->d(), 3);
    absl::StatusOr<torch::Tensor> rows = files->Rows({2, 7});
    ASSERT_TRUE(rows.ok()) << rows.status();
    // The values are multiples of 1/4, exact in float16.
    EXPECT_TRUE(torch::equal(*rows, Activations().reshape({10, 3}).slice(0, 2, 7)));
  }
  EXPECT_NE(from_st->Describe().find("10 rows x 3, Half"), std::string::npos)
      << from_st->Describe();
}

TEST(ActivationFilesTest, RowSlicesFollowPython) {
  absl::StatusOr<ActivationFiles> files = ActivationFiles::Open(WriteNpy("s.npy", Activations()));
  ASSERT_TRUE(files.ok()) << files.status();
  // What Python's list(range(10))[slice] selects, as [begin, end).
  const struct {
    const char* slice;
    int64_t begin, end;
  } cases[] = {{"", 0, 10},   {"2:5", 2, 5},  {"-3:", 7, 10}, {":-3", 0, 7},
               {"4:", 4, 10}, {":20", 0, 10}, {"-20:2", 0, 2}};
  for (const auto& c : cases) {
    absl::StatusOr<RowRange> range = files->Range(c.slice);
    ASSERT_TRUE(range.ok()) << c.slice << ": " << range.status();
    EXPECT_EQ(range->begin, c.begin) << c.slice;
    EXPECT_EQ(range->end, c.end) << c.slice;
  }
  for (const char* bad : {"5:5", "7:2", "a:b", "3", "1:2:3"}) {
    EXPECT_EQ(files->Range(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ActivationFilesTest, TheSourceIsTheTensorSourceOverTheRange) {
  absl::StatusOr<ActivationFiles> files = ActivationFiles::Open(WriteNpy("src.npy", Activations()));
  ASSERT_TRUE(files.ok()) << files.status();
  std::unique_ptr<ActivationSource> source = files->Source(/*seed=*/5, 1, 8);
  TensorActivationSource reference(Activations().reshape({10, 3}), 5, 1, 8);
  for (int64_t step : {0, 3, 11}) {
    absl::StatusOr<torch::Tensor> got = source->TrainBatch(step, 4);
    absl::StatusOr<torch::Tensor> want = reference.TrainBatch(step, 4);
    ASSERT_TRUE(got.ok() && want.ok());
    EXPECT_TRUE(torch::equal(*got, *want)) << step;
  }
}

TEST(ActivationFilesTest, AStoreDirectoryIsReadThroughItsManifest) {
  const std::string dir = TestDir("store");
  ActivationStore store = HarvestForTest(dir);
  absl::StatusOr<ActivationFiles> files = ActivationFiles::Open(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->rows(), store.num_rows());
  EXPECT_EQ(files->d(), store.d());
  absl::StatusOr<torch::Tensor> rows = files->Rows({3, 9});
  ASSERT_TRUE(rows.ok()) << rows.status();
  absl::StatusOr<torch::Tensor> want = store.Rows(3, 9);
  ASSERT_TRUE(want.ok());
  EXPECT_TRUE(torch::equal(*rows, *want));
  EXPECT_EQ(ActivationFiles::Open(dir, "x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ActivationFilesTest, RefusalsNameTheFileAndTheProblem) {
  const std::string dir = TestDir("refusals");
  const std::string st = dir + "/two.safetensors";
  ASSERT_TRUE(WriteSafetensors(st, {{"a", torch::zeros({4, 3})},
                                    {"ids", torch::zeros({4, 3}, torch::kLong)},
                                    {"flat", torch::zeros({4})}})
                  .ok());
  const struct {
    std::string path, tensor;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {st, "", absl::StatusCode::kInvalidArgument, "holds 3 tensors (a, flat, ids)"},
      {st, "b", absl::StatusCode::kNotFound, "no tensor 'b'; the file holds: a, flat, ids"},
      {st, "ids", absl::StatusCode::kInvalidArgument, "must be float32, float16 or bfloat16"},
      {st, "flat", absl::StatusCode::kInvalidArgument, "has shape [4]"},
      {dir + "/acts.csv", "", absl::StatusCode::kInvalidArgument, "not a .npy file"},
      {dir + "/absent.npy", "", absl::StatusCode::kNotFound, "absent.npy"},
      {WriteNpy("ids.npy", torch::zeros({4, 2}, torch::kInt)), "", absl::StatusCode::kInvalidArgument,
       "dtype '<i4'"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ActivationFiles> files = ActivationFiles::Open(c.path, c.tensor);
    ASSERT_FALSE(files.ok()) << c.path << " " << c.tensor;
    EXPECT_EQ(files.status().code(), c.code) << files.status();
    EXPECT_NE(files.status().message().find(c.path), std::string::npos) << files.status();
    EXPECT_NE(files.status().message().find(c.message), std::string::npos) << files.status();
  }
}

TEST(ActivationFilesTest, ATruncatedSafetensorsFileIsDataLoss) {
  const std::string dir = TestDir("truncated");
  const std::string path = dir + "/acts.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"x", Activations()}}).ok());
  const std::string bytes = *ReadFile(path);
  ASSERT_TRUE(AtomicWriteFile(path, bytes.substr(0, bytes.size() - 8)).ok());
  absl::Status status = ActivationFiles::Open(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find(path + ": tensor 'x' ends at byte 120 of a data buffer of 112"),
            std::string::npos)
      << status;
}

TEST(ActivationFilesTest, TheFirstNonFiniteRowIsNamed) {
  torch::Tensor x = Activations().reshape({10, 3}).clone();
  x[6][1] = std::numeric_limits<float>::quiet_NaN();
  x[8][0] = std::numeric_limits<float>::infinity();
  const std::string path = WriteNpy("nan.npy", x);
  absl::StatusOr<ActivationFiles> files = ActivationFiles::Open(path);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(files->Rows({0, 6}).ok());
  absl::Status status = files->Rows({2, 10}).status();
  EXPECT_NE(status.message().find(path + ": row 6 holds a NaN or an infinity (2 of rows [2, 10)"),
            std::string::npos)
      << status;
}

}  // namespace
}  // namespace saelab
