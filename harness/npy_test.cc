// The reader against files NumPy wrote (harness/testdata/npy/README.md says
// how), and the writer against NumPy's bytes.
#include "harness/npy.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

std::string Golden(const std::string& name) { return "harness/testdata/npy/" + name; }

// What the README's NumPy expressions compute, computed here.
torch::Tensor Expected5x3() { return torch::arange(15, torch::kFloat).reshape({5, 3}) / 7; }

TEST(NpyTest, ReadsNumpysFloat32FileInVersions1And2) {
  for (const char* name : {"f32_5x3.npy", "f32_5x3_v2.npy"}) {
    absl::StatusOr<NpyArray> array = OpenNpy(Golden(name));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->shape(), (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(array->dtype(), torch::kFloat);
    EXPECT_TRUE(torch::equal(array->Rows(), Expected5x3())) << name;
  }
}

TEST(NpyTest, ReadsFloat16AndFlattensLeadingDimensions) {
  absl::StatusOr<NpyArray> half = OpenNpy(Golden("f16_4x2.npy"));
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->dtype(), torch::kHalf);
  EXPECT_TRUE(torch::equal(half->Rows().to(torch::kFloat),
                           torch::arange(8, torch::kFloat).reshape({4, 2}) * 0.25 - 1));

  absl::StatusOr<NpyArray> cube = OpenNpy(Golden("f32_2x3x4.npy"));
  ASSERT_TRUE(cube.ok()) << cube.status();
  EXPECT_EQ(cube->shape(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(cube->rows(), 6);
  EXPECT_EQ(cube->cols(), 4);
  EXPECT_TRUE(torch::equal(cube->Rows(), torch::arange(24, torch::kFloat).reshape({6, 4}) - 11.5));
}

TEST(NpyTest, TheTensorKeepsTheMappingAlive) {
  torch::Tensor rows;
  {
    absl::StatusOr<NpyArray> array = OpenNpy(Golden("f32_5x3.npy"));
    ASSERT_TRUE(array.ok()) << array.status();
    rows = array->Rows();
  }
  EXPECT_TRUE(torch::equal(rows, Expected5x3()));
}

TEST(NpyTest, SerializesTheBytesNumpyWrites) {
  for (const auto& [name, tensor] :
       {std::pair<std::string, torch::Tensor>{"f32_5x3.npy", Expected5x3()},
        {"f16_4x2.npy", (torch::arange(8, torch::kFloat).reshape({4, 2}) * 0.25 - 1).to(torch::kHalf)},
        {"f32_1d_4.npy", torch::arange(4, torch::kFloat)},
        {"i32_7.npy", torch::tensor({50256, 464, 2068, 0, 1, 13, 50255}, torch::kInt)},
        {"i64_2x3.npy", torch::arange(6, torch::kLong).reshape({2, 3}) * 1000 - 2000}}) {
    absl::StatusOr<std::string> bytes = SerializeNpy(tensor);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<std::string> golden = ReadFile(Golden(name));
    ASSERT_TRUE(golden.ok()) << golden.status();
    EXPECT_EQ(*bytes, *golden) << name;
  }
  EXPECT_FALSE(SerializeNpy(torch::zeros({2, 2}, torch::kDouble)).ok());
}

// Each refused file gets an error naming the file and the problem.
TEST(NpyTest, ReadsIntegerArraysWithTheirShapeAndAnyShapeOfFloats) {
  absl::StatusOr<torch::Tensor> ids = ReadNpyTensor(Golden("i32_7.npy"));
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_TRUE(torch::equal(*ids, torch::tensor({50256, 464, 2068, 0, 1, 13, 50255}, torch::kInt)));
  absl::StatusOr<torch::Tensor> wide = ReadNpyTensor(Golden("i64_2x3.npy"));
  ASSERT_TRUE(wide.ok()) << wide.status();
  EXPECT_TRUE(torch::equal(*wide, torch::arange(6, torch::kLong).reshape({2, 3}) * 1000 - 2000));
  absl::StatusOr<torch::Tensor> cube = ReadNpyTensor(Golden("f32_2x3x4.npy"));
  ASSERT_TRUE(cube.ok()) << cube.status();
  EXPECT_EQ(cube->sizes(), (std::vector<int64_t>{2, 3, 4}));
  absl::StatusOr<torch::Tensor> empty = ReadNpyTensor(Golden("f32_0x3.npy"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->numel(), 0);
  // Integers are not activations, and doubles are read by neither.
  EXPECT_NE(OpenNpy(Golden("i32_7.npy")).status().message().find("must be little-endian float32"),
            std::string::npos);
  EXPECT_NE(ReadNpyTensor(Golden("f64_3x2.npy")).status().message().find("dtype '<f8'"),
            std::string::npos);
}

TEST(NpyTest, RefusesWhatItCannotReadNamingTheFileAndTheFix) {
  const struct {
    const char* name;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {"f64_3x2.npy", absl::StatusCode::kInvalidArgument, "dtype '<f8'"},
      {"f32_big_endian_3x2.npy", absl::StatusCode::kInvalidArgument, "dtype '>f4'"},
      {"f32_fortran_3x2.npy", absl::StatusCode::kInvalidArgument, "Fortran order"},
      {"f32_1d_4.npy", absl::StatusCode::kInvalidArgument, "fewer than 2 dimensions"},
      {"f32_0x3.npy", absl::StatusCode::kInvalidArgument, "holds no activations"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<NpyArray> array = OpenNpy(Golden(c.name));
    ASSERT_FALSE(array.ok()) << c.name;
    EXPECT_EQ(array.status().code(), c.code) << array.status();
    EXPECT_NE(array.status().message().find(Golden(c.name)), std::string::npos) << array.status();
    EXPECT_NE(array.status().message().find(c.message), std::string::npos) << array.status();
  }
  EXPECT_EQ(OpenNpy("harness/testdata/npy/absent.npy").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(NpyTest, RefusesTruncatedPaddedAndForeignFiles) {
  absl::StatusOr<std::string> golden = ReadFile(Golden("f32_5x3.npy"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  const std::string dir = std::getenv("TEST_TMPDIR");
  const struct {
    std::string bytes;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {golden->substr(0, golden->size() - 4), absl::StatusCode::kDataLoss, "(truncated)"},
      {*golden + "junk", absl::StatusCode::kDataLoss, "needs 60"},
      {golden->substr(0, 40), absl::StatusCode::kDataLoss, "runs past the end"},
      {"PK\x03\x04 a zip, not an array", absl::StatusCode::kInvalidArgument, "magic string"},
      {absl::StrCat(golden->substr(0, 10), std::string(118, ' ')), absl::StatusCode::kInvalidArgument,
       "not a NumPy array header"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string path = absl::StrCat(dir, "/case", i++, ".npy");
    ASSERT_TRUE(AtomicWriteFile(path, c.bytes).ok());
    absl::StatusOr<NpyArray> array = OpenNpy(path);
    ASSERT_FALSE(array.ok()) << path;
    EXPECT_EQ(array.status().code(), c.code) << array.status();
    EXPECT_NE(array.status().message().find(path), std::string::npos) << array.status();
    EXPECT_NE(array.status().message().find(c.message), std::string::npos) << array.status();
  }
}

}  // namespace
}  // namespace saelab
