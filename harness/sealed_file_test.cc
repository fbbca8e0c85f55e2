#include "harness/sealed_file.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/sha256.h"

namespace saelab {
namespace {

using ::testing::TempDir;

constexpr SealedFormat kFormat{"TESTSEAL", 3, "test file"};

// A sealed file with every field slot used and a 1000-byte payload.
std::string WriteExample(const std::string& name, std::string* payload_sha256 = nullptr) {
  const std::string path = TempDir() + "/" + name;
  SealedFileWriter writer(kFormat, 1000);
  for (int i = 0; i < SealedFields::kInts; ++i) writer.fields().ints[i] = -7 + 1000000007LL * i;
  writer.fields().texts = {"alpha", std::string(64, 'x'), "", "delta"};
  for (size_t i = 0; i < writer.payload_size(); ++i) writer.payload()[i] = (i * 31) & 0xff;
  absl::StatusOr<std::string> sha = writer.Write(path);
  EXPECT_TRUE(sha.ok()) << sha.status();
  if (payload_sha256 != nullptr) *payload_sha256 = *sha;
  return path;
}

void Corrupt(const std::string& path, size_t offset) {
  std::string bytes = *ReadFile(path);
  bytes[offset] ^= 0x01;
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
}

// The refusal must be DataLoss and name the kind of file, the path and `what`.
void ExpectDataLoss(const std::string& path, absl::string_view what, bool verify = true) {
  absl::StatusOr<SealedFile> file = SealedFile::Open(path, kFormat, verify);
  ASSERT_FALSE(file.ok()) << what;
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
  EXPECT_TRUE(absl::StrContains(file.status().message(), "test file " + path)) << file.status();
  EXPECT_TRUE(absl::StrContains(file.status().message(), what)) << file.status();
}

TEST(SealedFileTest, RoundTripKeepsFieldsAndPayload) {
  std::string sha;
  const std::string path = WriteExample("roundtrip.bin", &sha);
  const std::string bytes = *ReadFile(path);
  ASSERT_EQ(bytes.size(), 512u + 1000u);
  // The payload checksum is the sha256 of the bytes after the header,
  // computed here by another route (the whole file's tail).
  EXPECT_EQ(sha, Sha256Hex(bytes.substr(512)));
  absl::StatusOr<SealedFile> file = SealedFile::Open(path, kFormat);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->payload_sha256(), sha);
  ASSERT_EQ(file->payload_size(), 1000u);
  EXPECT_EQ(std::memcmp(file->payload(), bytes.data() + 512, 1000), 0);
  for (int i = 0; i < SealedFields::kInts; ++i) EXPECT_EQ(file->fields().ints[i], -7 + 1000000007LL * i);
  EXPECT_EQ(file->fields().texts[0], "alpha");
  EXPECT_EQ(file->fields().texts[1], std::string(64, 'x'));
  EXPECT_EQ(file->fields().texts[2], "");
  EXPECT_EQ(file->fields().texts[3], "delta");
  // The magic and version are where the layout says.
  EXPECT_EQ(bytes.substr(0, 8), "TESTSEAL");
  EXPECT_EQ(bytes[8], 3);
  file->WillNeed(900, 1 << 20);  // a hint past the end is clamped
  // A moved file keeps its payload mapped.
  SealedFile moved = *std::move(file);
  EXPECT_EQ(moved.payload()[999], (999 * 31) & 0xff);
}

TEST(SealedFileTest, EmptyPayloadIsValid) {
  const std::string path = TempDir() + "/empty.bin";
  SealedFileWriter writer(kFormat, 0);
  ASSERT_TRUE(writer.Write(path).ok());
  absl::StatusOr<SealedFile> file = SealedFile::Open(path, kFormat);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->payload_size(), 0u);
  EXPECT_EQ(file->payload_sha256(), Sha256Hex(""));
}

TEST(SealedFileTest, TruncatedFileIsDataLossNamingThePath) {
  const std::string path = WriteExample("truncated.bin");
  const std::string bytes = *ReadFile(path);
  for (size_t keep : {bytes.size() - 1, size_t{513}, size_t{512}, size_t{511}, size_t{0}}) {
    ASSERT_TRUE(AtomicWriteFile(path, bytes.substr(0, keep)).ok());
    for (bool verify : {true, false}) ExpectDataLoss(path, "truncated", verify);
  }
}

TEST(SealedFileTest, TrailingBytesAreDataLoss) {
  const std::string path = WriteExample("trailing.bin");
  ASSERT_TRUE(AtomicWriteFile(path, *ReadFile(path) + "x").ok());
  for (bool verify : {true, false}) ExpectDataLoss(path, "payload: trailing bytes", verify);
}

TEST(SealedFileTest, FlippedPayloadByteFailsThePayloadChecksumOnlyWhenVerified) {
  const std::string path = WriteExample("payload.bin");
  Corrupt(path, 512 + 500);
  ExpectDataLoss(path, "payload_sha256: checksum mismatch");
  EXPECT_TRUE(SealedFile::Open(path, kFormat, /*verify_payload=*/false).ok());
}

TEST(SealedFileTest, FlippedHeaderByteFailsTheHeaderChecksum) {
  // Every header byte below the checksum is covered: a field, a text, the
  // payload checksum, the padding, the checksum itself.
  for (size_t offset : {size_t{9}, size_t{16}, size_t{30}, size_t{100}, size_t{160}, size_t{420},
                        size_t{450}}) {
    const std::string path = WriteExample("header.bin");
    Corrupt(path, offset);
    ExpectDataLoss(path, "header_sha256", /*verify=*/false);
  }
}

TEST(SealedFileTest, BadMagicIsDataLossNamingTheMagic) {
  const std::string path = WriteExample("magic.bin");
  Corrupt(path, 0);
  ExpectDataLoss(path, "magic");
  // Another format's file is refused by its magic, not misread.
  constexpr SealedFormat kOther{"OTHERFMT", 3, "test file"};
  absl::StatusOr<SealedFile> other = SealedFile::Open(WriteExample("other.bin"), kOther);
  EXPECT_TRUE(absl::StrContains(other.status().message(), "magic")) << other.status();
}

TEST(SealedFileTest, OtherVersionIsRefused) {
  const std::string path = WriteExample("version.bin");
  constexpr SealedFormat kNewer{"TESTSEAL", 4, "test file"};
  absl::StatusOr<SealedFile> file = SealedFile::Open(path, kNewer);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(file.status().message(), path)) << file.status();
  EXPECT_TRUE(absl::StrContains(file.status().message(), "unsupported format version 3"))
      << file.status();
}

TEST(SealedFileTest, MissingFileIsNotFound) {
  const std::string path = TempDir() + "/nope.bin";
  absl::StatusOr<SealedFile> file = SealedFile::Open(path, kFormat);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(file.status().message(), path)) << file.status();
}

TEST(SealedFileTest, OverlongTextFieldIsRefusedOnWrite) {
  SealedFileWriter writer(kFormat, 0);
  writer.fields().texts[2] = std::string(65, 'y');
  absl::StatusOr<std::string> sha = writer.Write(TempDir() + "/long.bin");
  EXPECT_EQ(sha.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(sha.status().message(), "text field 2")) << sha.status();
  EXPECT_FALSE(PathExists(TempDir() + "/long.bin"));
}

TEST(SealedFileTest, CallerErrorsNameTheFileAndField) {
  absl::StatusOr<SealedFile> file = SealedFile::Open(WriteExample("caller.bin"), kFormat);
  ASSERT_TRUE(file.ok());
  absl::Status status = file->Error("rows", "is 3, expected 4");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), "test file " + file->path() + ": rows: is 3, expected 4");
}

}  // namespace
}  // namespace saelab
