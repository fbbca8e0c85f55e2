#include "harness/sha256.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

// Reference digests: FIPS 180-2 appendix B test vectors (also what
// `printf abc | sha256sum` prints).
TEST(Sha256Test, MatchesFipsTestVectors) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  Sha256 hash;
  hash.Update("abcdbcdecdefdefgefgh");
  hash.Update("");
  hash.Update("fghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(hash.HexDigest(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

class Sha256SumsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/sums_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(MakeDirs(dir_).ok());
    ASSERT_TRUE(AtomicWriteFile(dir_ + "/abc.txt", "abc").ok());
  }
  std::string dir_;
};

TEST_F(Sha256SumsTest, WritesWhatSha256sumWritesAndVerifiesIt) {
  ASSERT_TRUE(WriteSha256Sums(dir_, {"abc.txt"}).ok());
  // `printf abc > abc.txt; sha256sum abc.txt`
  EXPECT_EQ(*ReadFile(dir_ + "/SHA256SUMS"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  abc.txt\n");
  auto bytes = ReadVerifiedFile(dir_, "abc.txt");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "abc");
}

TEST_F(Sha256SumsTest, AChangedFileIsDataLossNamingIt) {
  ASSERT_TRUE(WriteSha256Sums(dir_, {"abc.txt"}).ok());
  ASSERT_TRUE(AtomicWriteFile(dir_ + "/abc.txt", "abd").ok());
  auto bytes = ReadVerifiedFile(dir_, "abc.txt");
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bytes.status().message().find("abc.txt"), std::string::npos);
  EXPECT_NE(bytes.status().message().find("SHA256SUMS"), std::string::npos);
}

TEST_F(Sha256SumsTest, UnlistedFilesAndDirectoriesWithoutAListReadUnchecked) {
  EXPECT_EQ(*ReadVerifiedFile(dir_, "abc.txt"), "abc");
  ASSERT_TRUE(AtomicWriteFile(dir_ + "/SHA256SUMS",
                        std::string(64, '0') + " *other.bin\n").ok());
  EXPECT_EQ(*ReadVerifiedFile(dir_, "abc.txt"), "abc");
}

TEST_F(Sha256SumsTest, AMalformedListNamesItsLine) {
  ASSERT_TRUE(AtomicWriteFile(dir_ + "/SHA256SUMS",
                        std::string(64, 'a') + "  ok.bin\nnot a checksum line\n").ok());
  auto bytes = ReadVerifiedFile(dir_, "abc.txt");
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bytes.status().message().find("SHA256SUMS: line 2"), std::string::npos);
}

TEST(Sha256Test, MissingFileIsAnErrorNamingIt) {
  auto digest = Sha256File("/nonexistent/weights.safetensors");
  ASSERT_FALSE(digest.ok());
  EXPECT_NE(digest.status().message().find("weights.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace saelab
