#include "harness/file_io.h"

#include <dirent.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

using ::testing::TempDir;

TEST(FileIoTest, AtomicWriteThenReadRoundTripsBinaryBytes) {
  std::string path = TempDir() + "/roundtrip.bin";
  std::string bytes("a\0b\xff", 4);
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

TEST(FileIoTest, ReadsFilesOfManyBuffersAndFilesThatStateNoSize) {
  // Over several of ReadFile's 64 KB reads, ending mid-buffer.
  std::string bytes(3 * 65536 + 17, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131) % 251);
  const std::string path = TempDir() + "/large.bin";
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  // /proc files report size 0 and still have contents: read to the end,
  // not to the stated size.
  absl::StatusOr<std::string> status = ReadFile("/proc/self/status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_NE(status->find("Name:"), std::string::npos);
}

TEST(FileIoTest, AtomicWriteReplacesAndLeavesNoTemporaryBehind) {
  std::string dir = TempDir() + "/replace";
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/f", "old").ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/f", "new contents").ok());
  EXPECT_EQ(*ReadFile(dir + "/f"), "new contents");
  int entries = 0;
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++entries;
  }
  closedir(d);
  EXPECT_EQ(entries, 1);
}

TEST(FileIoTest, MissingFileIsNotFoundNamingThePath) {
  absl::StatusOr<std::string> read = ReadFile(TempDir() + "/no/such/file.txt");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("no/such/file.txt"), std::string::npos);
}

TEST(FileIoTest, MakeDirsCreatesNestedDirectoriesIdempotently) {
  std::string dir = TempDir() + "/a/b/c";
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(MakeDirs(dir).ok());
  EXPECT_TRUE(PathExists(dir));
}

TEST(FileIoTest, WriteIntoMissingDirectoryIsAnErrorNamingIt) {
  absl::Status status = AtomicWriteFile(TempDir() + "/missing_dir/x", "y");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("missing_dir"), std::string::npos);
}

TEST(FileIoTest, TempDirectoryIsTmpdirWhenItIsADirectoryElseTmp) {
  const char* saved = std::getenv("TMPDIR");
  const std::string saved_value = saved != nullptr ? saved : "";
  const std::string dir = ::testing::TempDir() + "/tmpdir_here";
  ASSERT_TRUE(MakeDirs(dir).ok());
  setenv("TMPDIR", dir.c_str(), 1);
  EXPECT_EQ(TempDirectory(), dir);
  setenv("TMPDIR", (dir + "/missing").c_str(), 1);
  EXPECT_EQ(TempDirectory(), "/tmp");
  if (saved != nullptr) {
    setenv("TMPDIR", saved_value.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
}

}  // namespace
}  // namespace saelab
