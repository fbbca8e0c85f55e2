#include "harness/mapped_file.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::TempDir;

TEST(MappedFileTest, MapsTheFilesBytes) {
  const std::string path = TempDir() + "/bytes.bin";
  const std::string bytes("a\0b\xff\n", 5);
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<MappedFile> file = MappedFile::Open(path, "test file");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->size(), bytes.size());
  EXPECT_EQ(file->bytes(), bytes);
  EXPECT_EQ(file->data()[3], 0xff);
  file->WillNeed(0, 1 << 20);  // a hint past the end is clamped, not an error
}

TEST(MappedFileTest, EmptyFileMapsToNoBytes) {
  const std::string path = TempDir() + "/empty.bin";
  ASSERT_TRUE(AtomicWriteFile(path, "").ok());
  absl::StatusOr<MappedFile> file = MappedFile::Open(path, "test file");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->size(), 0u);
  EXPECT_TRUE(file->bytes().empty());
  EXPECT_EQ(file->data(), nullptr);
  file->WillNeed(0, 10);
}

TEST(MappedFileTest, MissingFileIsNotFoundNamingWhatAndThePath) {
  const std::string path = TempDir() + "/no-such-file.bin";
  absl::StatusOr<MappedFile> file = MappedFile::Open(path, "token shard");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(file.status().message(), "cannot open token shard " + path))
      << file.status();
}

TEST(MappedFileTest, DirectoryIsAnErrorNamingThePath) {
  // open() succeeds on a directory, mmap() refuses it (ENODEV).
  absl::StatusOr<MappedFile> file = MappedFile::Open(TempDir(), "test file");
  ASSERT_FALSE(file.ok());
  EXPECT_TRUE(absl::StrContains(file.status().message(), TempDir())) << file.status();
}

TEST(MappedFileTest, MoveLeavesTheSourceEmptyAndTheTargetValid) {
  const std::string path = TempDir() + "/move.bin";
  ASSERT_TRUE(AtomicWriteFile(path, "hello").ok());
  absl::StatusOr<MappedFile> opened = MappedFile::Open(path, "test file");
  ASSERT_TRUE(opened.ok()) << opened.status();
  MappedFile source = std::move(*opened);

  MappedFile constructed(std::move(source));
  EXPECT_EQ(source.size(), 0u);
  EXPECT_TRUE(source.bytes().empty());
  EXPECT_TRUE(source.path().empty());
  EXPECT_EQ(constructed.bytes(), "hello");

  // Assignment over a live mapping unmaps the old one and takes the new.
  const std::string other_path = TempDir() + "/move-other.bin";
  ASSERT_TRUE(AtomicWriteFile(other_path, "other").ok());
  absl::StatusOr<MappedFile> assigned = MappedFile::Open(other_path, "test file");
  ASSERT_TRUE(assigned.ok()) << assigned.status();
  *assigned = std::move(constructed);
  EXPECT_EQ(constructed.size(), 0u);
  EXPECT_TRUE(constructed.path().empty());
  EXPECT_EQ(assigned->path(), path);
  EXPECT_EQ(assigned->bytes(), "hello");
}

}  // namespace
}  // namespace saelab
