#include "harness/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <torch/utils.h>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using ::testing::TempDir;

// A safetensors file assembled by hand, independently of the writer: the
// header length as 8 little-endian bytes, the header, then the data buffer.
std::string HandBuilt(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((uint64_t{header.size()} >> (8 * i)) & 0xff);
  return out + header + data;
}

// Writes `bytes` to a temporary file named `file_name` and reads it back.
// Returns the read status and sets *path to the file's path.
absl::Status ReadBytes(const std::string& file_name, const std::string& bytes, std::string* path) {
  *path = TempDir() + "/" + file_name;
  absl::Status written = AtomicWriteFile(*path, bytes);
  if (!written.ok()) return written;
  return ReadSafetensors(*path).status();
}

// Asserts that reading `bytes` from a file fails with `code` and a message
// that starts with the file's path and contains `detail`.
void ExpectReadError(const std::string& file_name, const std::string& bytes,
                     absl::StatusCode code, const std::string& detail) {
  std::string path;
  absl::Status status = ReadBytes(file_name, bytes, &path);
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), AllOf(::testing::StartsWith(path + ": "),
                                                   HasSubstr(detail)));
}

// A header with one entry for tensor "x".
std::string OneEntry(const std::string& entry) { return absl::StrCat("{\"x\":", entry, "}"); }

TEST(SafetensorsTest, RoundTripPreservesEveryDtypeBitwise) {
  torch::manual_seed(0);
  TensorMap tensors = {
      {"f32", torch::randn({3, 4})},
      {"f64", torch::randn({5}, torch::kDouble)},
      {"f16", torch::randn({2, 3}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"i64", torch::randint(-(int64_t{1} << 40), int64_t{1} << 40, {7}, torch::kLong)},
      {"i32", torch::randint(-1000000, 1000000, {2, 2}, torch::kInt)},
      {"i16", torch::randint(-30000, 30000, {3}, torch::kShort)},
      {"i8", torch::randint(-128, 128, {4}, torch::kChar)},
      {"u8", torch::randint(0, 256, {2, 2, 2}, torch::kByte)},
      {"bool", torch::randint(0, 2, {9}).to(torch::kBool)},
  };
  std::string path = TempDir() + "/dtypes.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  absl::StatusOr<SafetensorsContents> read = ReadSafetensors(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->tensors.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const torch::Tensor& got = read->tensors.at(name);
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(got.device().is_cpu()) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_TRUE(torch::equal(got, tensor)) << name;
  }
  // The only metadata is the data checksum that every saelab writer adds.
  EXPECT_EQ(read->metadata.size(), 1u);
  EXPECT_TRUE(read->data_checksum_verified);
}

TEST(SafetensorsTest, RoundTripHandlesScalarsAndZeroSizeTensors) {
  TensorMap tensors = {
      {"scalar", torch::tensor(3.5f).reshape({})},
      {"empty_rows", torch::zeros({0, 3})},
      {"empty_cols", torch::zeros({4, 0}, torch::kLong)},
      {"after", torch::tensor({1, 2}, torch::kInt)},
  };
  absl::StatusOr<std::string> bytes = SerializeSafetensors(tensors);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(*bytes, "mem");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->tensors.at("scalar").dim(), 0);
  EXPECT_EQ(read->tensors.at("scalar").item<float>(), 3.5f);
  EXPECT_EQ(read->tensors.at("empty_rows").sizes(), c10::IntArrayRef({0, 3}));
  EXPECT_EQ(read->tensors.at("empty_cols").sizes(), c10::IntArrayRef({4, 0}));
  EXPECT_EQ(read->tensors.at("empty_cols").scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(read->tensors.at("after"), tensors.at("after")));
}

TEST(SafetensorsTest, NonContiguousInputIsWrittenInLogicalOrder) {
  torch::Tensor transposed = torch::arange(6, torch::kFloat).view({2, 3}).t();  // [3, 2]
  ASSERT_FALSE(transposed.is_contiguous());
  absl::StatusOr<std::string> bytes = SerializeSafetensors({{"t", transposed}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(*bytes, "mem");
  ASSERT_TRUE(read.ok()) << read.status();
  const torch::Tensor& got = read->tensors.at("t");
  EXPECT_TRUE(torch::equal(got, transposed));
  EXPECT_EQ(got.sizes(), c10::IntArrayRef({3, 2}));
  // Row-major order of the transpose of [[0, 1, 2], [3, 4, 5]].
  const float* p = got.data_ptr<float>();
  EXPECT_EQ(std::vector<float>(p, p + 6), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(SafetensorsTest, MetadataRoundTrips) {
  std::map<std::string, std::string> metadata = {{"k", "32"}, {"hook_point", "resid_post"}};
  std::string path = TempDir() + "/metadata.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"b_dec", torch::zeros({4})}}, metadata).ok());
  absl::StatusOr<SafetensorsContents> read = ReadSafetensors(path);
  ASSERT_TRUE(read.ok()) << read.status();
  std::map<std::string, std::string> expected = metadata;
  expected[kSafetensorsDataSha256Key] = Sha256Hex(std::string(16, '\0'));  // 4 zero floats.
  EXPECT_EQ(read->metadata, expected);
}

TEST(SafetensorsTest, ReadTensorsOwnTheirMemory) {
  std::string bytes = *SerializeSafetensors({{"x", torch::full({4}, 7.0f)}});
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(bytes, "mem");
  ASSERT_TRUE(read.ok()) << read.status();
  std::fill(bytes.begin(), bytes.end(), '\0');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_TRUE(torch::equal(read->tensors.at("x"), torch::full({4}, 7.0f)));
}

TEST(SafetensorsTest, ParsesHandBuiltFileWithKnownValues) {
  // 1.0f = 0x3f800000 and -2.5f = 0xc0200000, stored little-endian.
  const std::string data("\x00\x00\x80\x3f\x00\x00\x20\xc0", 8);
  const std::string bytes =
      HandBuilt(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data);
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(bytes, "hand.safetensors");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->tensors.size(), 1);
  const torch::Tensor& x = read->tensors.at("x");
  EXPECT_EQ(x.scalar_type(), torch::kFloat);
  EXPECT_EQ(x.sizes(), c10::IntArrayRef({2}));
  EXPECT_EQ(x[0].item<float>(), 1.0f);
  EXPECT_EQ(x[1].item<float>(), -2.5f);
}

TEST(SafetensorsTest, WriterMatchesTheReferenceImplementationByteForByte) {
  // The reference Python implementation's save({"test": int32 [[0, 0], [0, 1]]},
  // metadata={"saelab_data_sha256": <sha256 of the 16 data bytes>}): the
  // metadata first, a 165-byte header padded with 3 spaces to 168 (0xa8),
  // then the data.
  const std::string data("\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0", 16);
  const std::string json = absl::StrCat(
      R"({"__metadata__":{"saelab_data_sha256":")", Sha256Hex(data),
      R"("},"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})");
  ASSERT_EQ(json.size(), 165u);
  const std::string expected = std::string("\xa8\0\0\0\0\0\0\0", 8) + json + "   " + data;
  torch::Tensor test = torch::zeros({2, 2}, torch::kInt);
  test[1][1] = 1;
  absl::StatusOr<std::string> bytes = SerializeSafetensors({{"test", test}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, expected);
}

TEST(SafetensorsTest, WriterSortsByNameLaysOutContiguouslyAndAlignsTheData) {
  absl::StatusOr<std::string> bytes = SerializeSafetensors(
      {{"b", torch::zeros({3})}, {"c", torch::zeros({1}, torch::kByte)},
       {"a", torch::zeros({2}, torch::kLong)}},
      {{"note", "hi"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t{static_cast<unsigned char>((*bytes)[i])} << (8 * i);
  EXPECT_EQ((8 + header_len) % 8, 0);
  EXPECT_EQ(bytes->size(), 8 + header_len + 16 + 12 + 1);  // a: 2 x I64, b: 3 x F32, c: 1 x U8.
  nlohmann::json header = nlohmann::json::parse(bytes->substr(8, header_len));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({0, 16}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({16, 28}));
  EXPECT_EQ(header["c"]["data_offsets"], nlohmann::json({28, 29}));
  EXPECT_EQ(header["a"]["dtype"], "I64");
  EXPECT_EQ(header["b"]["shape"], nlohmann::json({3}));
  EXPECT_EQ(header["__metadata__"]["note"], "hi");
  EXPECT_EQ(header["__metadata__"][kSafetensorsDataSha256Key],
            Sha256Hex(bytes->substr(8 + header_len)));
}

TEST(SafetensorsTest, AFlippedDataByteIsAChecksumErrorNamingTheFile) {
  std::string bytes = *SerializeSafetensors({{"W_dec", torch::randn({8, 4})}});
  bytes[bytes.size() - 5] ^= 0x01;  // One bit of one weight.
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(bytes, "sae.safetensors");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(read.status().message()),
              AllOf(HasSubstr("sae.safetensors"), HasSubstr("checksum")));
}

TEST(SafetensorsTest, FilesOfOtherToolsReadButSaelabFormatsRequireTheChecksum) {
  const std::string data("\x00\x00\x80\x3f", 4);
  const std::string bytes =
      HandBuilt(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data);
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(bytes, "other.safetensors");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->data_checksum_verified);
  absl::Status required = RequireDataChecksum(*read, "other.safetensors", "SAE checkpoint");
  EXPECT_EQ(required.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(required.message()),
              AllOf(HasSubstr("other.safetensors"), HasSubstr("SAE checkpoint")));
  absl::StatusOr<SafetensorsContents> own = ParseSafetensors(*SerializeSafetensors({{"x", torch::ones({1})}}), "own");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(RequireDataChecksum(*own, "own", "SAE checkpoint").ok());
}

TEST(SafetensorsTest, ACallerSuppliedChecksumIsReplacedByTheDatas) {
  // Metadata read from one file and written with other tensors.
  absl::StatusOr<std::string> bytes =
      SerializeSafetensors({{"x", torch::ones({1})}}, {{kSafetensorsDataSha256Key, "0"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<SafetensorsContents> read = ParseSafetensors(*bytes, "mem");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->data_checksum_verified);
}

TEST(SafetensorsTest, WriterRejectsAnUnsupportedDtypeNamingTheTensor) {
  std::string path = TempDir() + "/complex.safetensors";
  absl::Status status = WriteSafetensors(path, {{"z", torch::zeros({2}, torch::kComplexFloat)}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr(path), HasSubstr("'z'"), HasSubstr("ComplexFloat")));
  EXPECT_FALSE(PathExists(path));
}

TEST(SafetensorsTest, TruncatedFileIsAnErrorNamingTheFile) {
  ExpectReadError("short.safetensors", "\x10\0\0", absl::StatusCode::kDataLoss, "too short");
}

TEST(SafetensorsTest, HeaderLongerThanTheFileIsAnError) {
  std::string bytes = HandBuilt(OneEntry(R"({"dtype":"F32","shape":[],"data_offsets":[0,4]})"),
                                std::string(4, '\0'));
  ExpectReadError("cut_header.safetensors", bytes.substr(0, 20), absl::StatusCode::kDataLoss,
                  "exceeds the 12 bytes after the length field");
}

TEST(SafetensorsTest, HeaderThatIsNotJsonIsAnError) {
  ExpectReadError("not_json.safetensors", HandBuilt("{\"x\": [", ""),
                  absl::StatusCode::kInvalidArgument, "header: not valid JSON");
}

TEST(SafetensorsTest, HeaderThatIsNotAnObjectIsAnError) {
  ExpectReadError("array.safetensors", HandBuilt("[1, 2]", ""), absl::StatusCode::kInvalidArgument,
                  "header is a JSON array, not an object");
}

TEST(SafetensorsTest, EntryMissingAFieldIsAnError) {
  ExpectReadError("no_shape.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F32","data_offsets":[0,0]})"), ""),
                  absl::StatusCode::kInvalidArgument, "tensor 'x' is missing field 'shape'");
}

TEST(SafetensorsTest, EntryWithWrongJsonTypesIsAnError) {
  ExpectReadError("entry_type.safetensors", HandBuilt(OneEntry("[]"), ""),
                  absl::StatusCode::kInvalidArgument, "tensor 'x' entry is a JSON array");
  ExpectReadError("dtype_type.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":4,"shape":[],"data_offsets":[0,4]})"), ""),
                  absl::StatusCode::kInvalidArgument, "field 'dtype' is a JSON number");
  ExpectReadError("shape_type.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), ""),
                  absl::StatusCode::kInvalidArgument,
                  "field 'shape' must be an array of integers, got [1.5]");
  ExpectReadError("offsets_type.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"), ""),
                  absl::StatusCode::kInvalidArgument,
                  "field 'data_offsets' must be [begin, end] of non-negative integers, got [0]");
}

TEST(SafetensorsTest, UnknownDtypeIsAnError) {
  ExpectReadError("f8.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F8","shape":[1],"data_offsets":[0,1]})"), "x"),
                  absl::StatusCode::kInvalidArgument, "tensor 'x' has unknown dtype 'F8'");
}

TEST(SafetensorsTest, NegativeDimensionIsAnError) {
  ExpectReadError("negative.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]})"), ""),
                  absl::StatusCode::kInvalidArgument,
                  "tensor 'x' has negative dimension -1 in shape [2, -1]");
}

TEST(SafetensorsTest, BeginAfterEndIsAnError) {
  ExpectReadError("reversed.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"U8","shape":[0],"data_offsets":[4,0]})"),
                            std::string(4, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 'x' has data_offsets begin 4 > end 0");
}

TEST(SafetensorsTest, SpanNotMatchingShapeAndDtypeIsAnError) {
  ExpectReadError("span.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
                            std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "tensor 'x' has data_offsets [0, 8] spanning 8 bytes, but shape [3] of F32 "
                  "needs 12");
}

TEST(SafetensorsTest, OffsetsBeyondTheDataBufferAreTruncation) {
  ExpectReadError("cut_data.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
                            std::string(10, '\0')),
                  absl::StatusCode::kDataLoss,
                  "tensor 'x' has data_offsets end 16 beyond the 10-byte data buffer");
}

TEST(SafetensorsTest, OverlappingTensorsAreAnError) {
  ExpectReadError("overlap.safetensors",
                  HandBuilt(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                            std::string(6, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "tensor 'b' data_offsets [2, 6] overlap tensor 'a' [0, 4]");
}

TEST(SafetensorsTest, GapInTheDataBufferIsAnError) {
  ExpectReadError("gap.safetensors",
                  HandBuilt(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})",
                            std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "data buffer has a 2-byte gap before tensor 'b' at offset 6");
}

TEST(SafetensorsTest, TrailingBytesAfterTheLastTensorAreAnError) {
  ExpectReadError("trailing.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2]})"),
                            std::string(5, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "data buffer has 3 trailing bytes that belong to no tensor");
}

TEST(SafetensorsTest, NonStringMetadataValueIsAnError) {
  ExpectReadError("metadata.safetensors", HandBuilt(R"({"__metadata__":{"k":32}})", ""),
                  absl::StatusCode::kInvalidArgument,
                  "__metadata__ value for key 'k' is a JSON number, not a string");
}

TEST(SafetensorsTest, BoolByteOtherThanZeroOrOneIsAnError) {
  ExpectReadError("bool.safetensors",
                  HandBuilt(OneEntry(R"({"dtype":"BOOL","shape":[2],"data_offsets":[0,2]})"),
                            std::string("\x01\x02", 2)),
                  absl::StatusCode::kInvalidArgument, "tensor 'x' has BOOL byte 2");
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  absl::StatusOr<SafetensorsContents> read = ReadSafetensors(TempDir() + "/absent.safetensors");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
}

SafetensorsContents SaeContents() {
  SafetensorsContents contents;
  contents.tensors["W_dec"] = torch::zeros({64, 32});
  contents.tensors["b_dec"] = torch::zeros({32});
  return contents;
}

TEST(SafetensorsTest, GetTensorReturnsAMatchingTensor) {
  absl::StatusOr<torch::Tensor> w = GetTensor(SaeContents(), "sae.st", "W_dec", {64, 32}, torch::kFloat);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->sizes(), c10::IntArrayRef({64, 32}));
}

TEST(SafetensorsTest, GetTensorShapeMismatchNamesBothShapes) {
  absl::StatusOr<torch::Tensor> w = GetTensor(SaeContents(), "sae.st", "W_dec", {64, 16}, torch::kFloat);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.status().message(), "sae.st: tensor 'W_dec' has shape [64, 32], expected [64, 16]");
}

TEST(SafetensorsTest, GetTensorDtypeMismatchNamesBothDtypes) {
  absl::StatusOr<torch::Tensor> b = GetTensor(SaeContents(), "sae.st", "b_dec", {32}, torch::kDouble);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "sae.st: tensor 'b_dec' has dtype F32, expected F64");
}

TEST(SafetensorsTest, GetTensorMissingTensorListsThePresentOnes) {
  absl::StatusOr<torch::Tensor> w = GetTensor(SaeContents(), "sae.st", "W_enc", {32, 64}, torch::kFloat);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(w.status().message(), "sae.st: tensor 'W_enc' is missing (file has: W_dec, b_dec)");
}

}  // namespace
}  // namespace saelab
