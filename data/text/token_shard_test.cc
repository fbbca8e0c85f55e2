#include "data/text/token_shard.h"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "absl/strings/match.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

std::string TestPath(const std::string& name) {
  return ::testing::TempDir() + name;
}

// Random documents with lengths 0..max_len (empty documents included).
std::vector<std::vector<int32_t>> RandomDocuments(int n, int max_len, int64_t vocab,
                                                  uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> docs(n);
  for (auto& doc : docs) {
    const int len = static_cast<int>(rng() % (max_len + 1));
    for (int i = 0; i < len; ++i) doc.push_back(static_cast<int32_t>(rng() % vocab));
  }
  return docs;
}

TokenShardKey Key(const std::string& split = "train") { return {"tok-hash", "corpus-hash", split}; }

TEST(TokenShardTest, RoundTripKeepsEveryTokenAndDocument) {
  const std::string path = TestPath("roundtrip.tokens");
  const auto docs = RandomDocuments(50, 40, 1000, 1);
  ASSERT_TRUE(WriteTokenShard(path, Key(), 1000, docs).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->key(), Key());
  EXPECT_EQ(shard->vocab_size(), 1000);
  EXPECT_EQ(shard->num_documents(), 50);
  int64_t i = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(shard->Document(static_cast<int64_t>(d)), docs[d]) << "document " << d;
    for (int32_t id : docs[d]) EXPECT_EQ(shard->token(i++), id);
  }
  EXPECT_EQ(shard->num_tokens(), i);
  EXPECT_EQ(shard->sha256().size(), 64u);
}

TEST(TokenShardTest, MovedShardStaysValid) {
  const std::string path = TestPath("move.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 10, {{1, 2, 3}}).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok());
  TokenShard moved = std::move(*shard);
  TokenShard assigned = std::move(moved);
  EXPECT_EQ(assigned.Document(0), (std::vector<int32_t>{1, 2, 3}));
}

TEST(TokenShardTest, LargeVocabularyUsesUint32) {
  const std::string path = TestPath("u32.tokens");
  const std::vector<std::vector<int32_t>> docs = {{0, 65535, 65536, 99999}, {70000}};
  ASSERT_TRUE(WriteTokenShard(path, Key(), 100000, docs).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->Document(0), docs[0]);
  EXPECT_EQ(shard->Document(1), docs[1]);
  // Header 512 + offsets 3 x 8 + 5 tokens x 4 bytes.
  EXPECT_EQ(ReadFile(path)->size(), 512u + 24u + 20u);
  // And a vocabulary of exactly 65536 still fits uint16.
  ASSERT_TRUE(WriteTokenShard(path, Key(), 65536, {{65535}}).ok());
  EXPECT_EQ(ReadFile(path)->size(), 512u + 16u + 2u);
  EXPECT_EQ(TokenShard::Open(path)->token(0), 65535);
}

TEST(TokenShardTest, WriteRejectsIdOutsideVocabulary) {
  absl::Status status = WriteTokenShard(TestPath("bad.tokens"), Key(), 10, {{1}, {2, 10}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "document 1 position 1")) << status;
}

TEST(TokenShardTest, TruncatedFileIsAnErrorNamingThePath) {
  const std::string path = TestPath("truncated.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 1000, RandomDocuments(10, 20, 1000, 2)).ok());
  std::string bytes = *ReadFile(path);
  for (size_t keep : {bytes.size() - 1, size_t{600}, size_t{100}, size_t{0}}) {
    ASSERT_TRUE(AtomicWriteFile(path, bytes.substr(0, keep)).ok());
    absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
    ASSERT_FALSE(shard.ok()) << keep;
    EXPECT_TRUE(absl::StrContains(shard.status().message(), path)) << shard.status();
    EXPECT_TRUE(absl::StrContains(shard.status().message(), "truncated")) << shard.status();
  }
}

TEST(TokenShardTest, FlippedPayloadByteFailsTheChecksum) {
  const std::string path = TestPath("flipped.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 1000, RandomDocuments(10, 20, 1000, 3)).ok());
  std::string bytes = *ReadFile(path);
  bytes[bytes.size() - 3] ^= 0x01;
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(shard.status().message(), path)) << shard.status();
  EXPECT_TRUE(absl::StrContains(shard.status().message(), "checksum")) << shard.status();
}

TEST(TokenShardTest, FlippedHeaderByteFailsTheHeaderChecksum) {
  const std::string path = TestPath("flipped_header.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 1000, {{1, 2}}).ok());
  std::string bytes = *ReadFile(path);
  bytes[282] ^= 0x01;  // inside the split name (header text field 2)
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_TRUE(absl::StrContains(shard.status().message(), "header_sha256")) << shard.status();
}

TEST(TokenShardTest, BadMagicIsAnErrorNamingTheField) {
  const std::string path = TestPath("magic.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 1000, {{1, 2}}).ok());
  std::string bytes = *ReadFile(path);
  bytes[0] = 'X';
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_TRUE(absl::StrContains(shard.status().message(), path)) << shard.status();
  EXPECT_TRUE(absl::StrContains(shard.status().message(), "magic")) << shard.status();
}

TEST(TokenShardTest, MissingFileIsNotFound) {
  EXPECT_EQ(TokenShard::Open(TestPath("nope.tokens")).status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenShardTest, OpenOrBuildReusesAMatchingKeyAndRebuildsOtherwise) {
  const std::string path = TestPath("cache.tokens");
  int builds = 0;
  std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {4}};
  auto build = [&]() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
    ++builds;
    return docs;
  };
  ASSERT_TRUE(OpenOrBuildTokenShard(path, Key(), 10, build).ok());
  EXPECT_EQ(builds, 1);  // missing
  ASSERT_TRUE(OpenOrBuildTokenShard(path, Key(), 10, build).ok());
  EXPECT_EQ(builds, 1);  // reused

  docs = {{5, 6}};
  absl::StatusOr<TokenShard> val = OpenOrBuildTokenShard(path, Key("val"), 10, build);
  ASSERT_TRUE(val.ok());
  EXPECT_EQ(builds, 2);  // different key
  EXPECT_EQ(val->key(), Key("val"));
  EXPECT_EQ(val->Document(0), (std::vector<int32_t>{5, 6}));

  ASSERT_TRUE(OpenOrBuildTokenShard(path, Key("val"), 20, build).ok());
  EXPECT_EQ(builds, 3);  // different vocabulary size

  std::string bytes = *ReadFile(path);
  bytes.back() ^= 0x01;
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
  ASSERT_TRUE(OpenOrBuildTokenShard(path, Key("val"), 20, build).ok());
  EXPECT_EQ(builds, 4);  // corrupt
  EXPECT_TRUE(TokenShard::Open(path).ok());
}

TEST(TokenShardTest, OpenOrBuildPassesOnBuildErrors) {
  auto build = []() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
    return absl::UnavailableError("corpus offline");
  };
  EXPECT_EQ(OpenOrBuildTokenShard(TestPath("err.tokens"), Key(), 10, build).status().code(),
            absl::StatusCode::kUnavailable);
}

// The packing by a different route: build the whole stream, then slice.
TEST(TokenShardTest, PackContextsMatchesASimpleLoop) {
  const std::string path = TestPath("pack.tokens");
  const auto docs = RandomDocuments(40, 30, 500, 4);
  ASSERT_TRUE(WriteTokenShard(path, Key(), 500, docs).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok());
  const int32_t bos = 498, eos = 499;
  std::vector<int64_t> stream;
  for (const auto& doc : docs) {
    stream.insert(stream.end(), doc.begin(), doc.end());
    stream.push_back(eos);
  }
  for (int64_t length : {2, 7, 16}) {
    absl::StatusOr<torch::Tensor> packed = PackContexts(*shard, length, bos, eos);
    ASSERT_TRUE(packed.ok()) << packed.status();
    const int64_t expected_n = static_cast<int64_t>(stream.size()) / (length - 1);
    ASSERT_EQ(packed->sizes(), (std::vector<int64_t>{expected_n, length}));
    for (int64_t c = 0; c < expected_n; ++c) {
      EXPECT_EQ(packed->index({c, 0}).item<int64_t>(), bos);
      for (int64_t j = 1; j < length; ++j) {
        ASSERT_EQ(packed->index({c, j}).item<int64_t>(), stream[c * (length - 1) + j - 1])
            << "context " << c << " position " << j << " length " << length;
      }
    }
    absl::StatusOr<torch::Tensor> capped = PackContexts(*shard, length, bos, eos, 3);
    ASSERT_TRUE(capped.ok());
    EXPECT_TRUE(torch::equal(*capped, packed->slice(0, 0, 3)));
  }
  EXPECT_FALSE(PackContexts(*shard, 1, bos, eos).ok());
}

TEST(TokenShardTest, EmptyShardPacksToNoContexts) {
  const std::string path = TestPath("empty.tokens");
  ASSERT_TRUE(WriteTokenShard(path, Key(), 10, {}).ok());
  absl::StatusOr<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  absl::StatusOr<torch::Tensor> packed = PackContexts(*shard, 4, 0, 0);
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(packed->size(0), 0);
}

}  // namespace
}  // namespace saelab
