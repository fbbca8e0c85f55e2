#include "data/activations/store_format.h"

#include <cstdlib>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "absl/strings/match.h"
#include "harness/file_io.h"
#include "harness/sealed_file.h"
#include "harness/sha256.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

std::string TestDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + name;
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

ActivationStoreKey Key() {
  ActivationStoreKey key;
  key.set_model_sha256("model-hash");
  key.set_hook_name("blocks.1.hook_resid_post");
  key.set_shard_sha256("shard-hash");
  key.set_context_begin(2);
  key.set_context_end(6);
  key.set_context_length(5);
  key.set_dtype(ActivationStoreKey::FLOAT32);
  key.set_drop_bos(true);
  return key;
}

ChunkSpec Spec(int64_t index = 1) {
  return ChunkSpec{index, /*rows=*/6, /*d=*/4, ActivationStoreKey::FLOAT32, StoreKeySha256(Key())};
}

torch::Tensor Values() { return torch::arange(24, torch::kFloat).reshape({6, 4}) / 8 - 1; }

std::string WriteTestChunk(const std::string& name) {
  const std::string path = TestDir("chunks") + "/" + name;
  absl::StatusOr<std::string> sha = WriteChunk(path, Values(), Spec());
  EXPECT_TRUE(sha.ok()) << sha.status();
  return path;
}

// DataLoss naming the chunk file and `what`.
void ExpectChunkRefused(const std::string& path, const ChunkSpec& spec, absl::string_view what,
                        bool verify = true) {
  absl::StatusOr<SealedFile> chunk = OpenChunk(path, spec, verify);
  ASSERT_FALSE(chunk.ok()) << what;
  EXPECT_EQ(chunk.status().code(), absl::StatusCode::kDataLoss) << chunk.status();
  EXPECT_TRUE(absl::StrContains(chunk.status().message(), "activation store chunk " + path))
      << chunk.status();
  EXPECT_TRUE(absl::StrContains(chunk.status().message(), what)) << chunk.status();
}

void FlipByte(const std::string& path, size_t offset) {
  std::string bytes = *ReadFile(path);
  bytes[offset] ^= 0x01;
  ASSERT_TRUE(AtomicWriteFile(path, bytes).ok());
}

TEST(StoreFormatTest, ChunkRoundTripKeepsTheValuesAndTheirChecksum) {
  const std::string path = TestDir("chunks") + "/roundtrip.bin";
  absl::StatusOr<std::string> sha = WriteChunk(path, Values(), Spec());
  ASSERT_TRUE(sha.ok()) << sha.status();
  const std::string bytes = *ReadFile(path);
  ASSERT_EQ(bytes.size(), 512u + 6 * 4 * 4);
  EXPECT_EQ(*sha, Sha256Hex(bytes.substr(512)));
  absl::StatusOr<SealedFile> chunk = OpenChunk(path, Spec(), /*verify_payload=*/true);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_EQ(chunk->payload_sha256(), *sha);
  torch::Tensor read = torch::empty({6, 4}, torch::kFloat);
  StoredToFloat(chunk->payload(), ActivationStoreKey::FLOAT32, 24, read.data_ptr<float>());
  EXPECT_TRUE(torch::equal(read, Values()));
}

TEST(StoreFormatTest, HalfPrecisionValuesReadBackAsTorchConvertsThem) {
  for (ActivationStoreKey::Dtype dtype : {ActivationStoreKey::FLOAT16, ActivationStoreKey::BFLOAT16}) {
    const torch::Tensor values = (torch::randn({6, 4}) * 100).to(StoreTorchDtype(dtype));
    ChunkSpec spec = Spec();
    spec.dtype = dtype;
    const std::string path = TestDir("chunks") + "/" + ActivationStoreKey::Dtype_Name(dtype);
    ASSERT_TRUE(WriteChunk(path, values, spec).ok());
    EXPECT_EQ(ReadFile(path)->size(), 512u + 6 * 4 * 2);
    absl::StatusOr<SealedFile> chunk = OpenChunk(path, spec, true);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    torch::Tensor read = torch::empty({6, 4}, torch::kFloat);
    StoredToFloat(chunk->payload(), dtype, 24, read.data_ptr<float>());
    EXPECT_TRUE(torch::equal(read, values.to(torch::kFloat))) << ActivationStoreKey::Dtype_Name(dtype);
  }
}

TEST(StoreFormatTest, WriteRefusesValuesThatDoNotMatchTheSpec) {
  const std::string path = TestDir("chunks") + "/mismatch.bin";
  EXPECT_EQ(WriteChunk(path, Values().slice(0, 0, 5), Spec()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteChunk(path, Values().to(torch::kHalf), Spec()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(path));
}

TEST(StoreFormatTest, TruncatedChunkIsRefusedNamingTheFile) {
  const std::string path = WriteTestChunk("truncated.bin");
  const std::string bytes = *ReadFile(path);
  for (size_t keep : {bytes.size() - 4, size_t{512}, size_t{100}, size_t{0}}) {
    ASSERT_TRUE(AtomicWriteFile(path, bytes.substr(0, keep)).ok());
    for (bool verify : {true, false}) ExpectChunkRefused(path, Spec(), "truncated", verify);
  }
}

TEST(StoreFormatTest, FlippedPayloadByteFailsTheChecksumWhenVerified) {
  const std::string path = WriteTestChunk("payload.bin");
  FlipByte(path, 512 + 50);
  ExpectChunkRefused(path, Spec(), "payload_sha256: checksum mismatch");
  EXPECT_TRUE(OpenChunk(path, Spec(), /*verify_payload=*/false).ok());
}

TEST(StoreFormatTest, FlippedHeaderByteFailsTheHeaderChecksum) {
  const std::string path = WriteTestChunk("header.bin");
  FlipByte(path, 155);  // in the key sha256 text
  for (bool verify : {true, false}) ExpectChunkRefused(path, Spec(), "header_sha256", verify);
}

TEST(StoreFormatTest, BadMagicIsRefused) {
  const std::string path = WriteTestChunk("magic.bin");
  FlipByte(path, 3);
  ExpectChunkRefused(path, Spec(), "magic");
}

TEST(StoreFormatTest, MissingChunkIsNotFound) {
  const std::string path = TestDir("chunks") + "/nope.bin";
  absl::StatusOr<SealedFile> chunk = OpenChunk(path, Spec(), true);
  EXPECT_EQ(chunk.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(chunk.status().message(), path)) << chunk.status();
}

// A chunk of store format 1 (or any other version) is refused, not misread.
TEST(StoreFormatTest, ChunkOfAnotherVersionIsRefused) {
  const std::string path = TestDir("chunks") + "/v1.bin";
  SealedFileWriter writer(SealedFormat{"SAELACTS", 1, "activation store chunk"}, 6 * 4 * 4);
  ASSERT_TRUE(writer.Write(path).ok());
  ExpectChunkRefused(path, Spec(), "version: unsupported format version 1");
}

TEST(StoreFormatTest, ChunkOfAnotherStoreOrPlaceIsRefusedNamingTheField) {
  const std::string path = WriteTestChunk("fields.bin");
  ChunkSpec other_key = Spec();
  other_key.key_sha256 = StoreKeySha256(ActivationStoreKey());
  ExpectChunkRefused(path, other_key, "key_sha256: chunk belongs to store key");
  ExpectChunkRefused(path, Spec(/*index=*/2), "chunk_index: is 1, expected 2");
  ChunkSpec rows = Spec();
  rows.rows = 3;
  ExpectChunkRefused(path, rows, "rows: is 6, expected 3");
  ChunkSpec d = Spec();
  d.d = 8;
  ExpectChunkRefused(path, d, "d: is 4, expected 8");
  ChunkSpec dtype = Spec();
  dtype.dtype = ActivationStoreKey::BFLOAT16;
  ExpectChunkRefused(path, dtype, "dtype: is 0, expected 2");
}

ActivationStoreManifest Manifest() {
  ActivationStoreManifest m;
  m.set_version(kStoreFormatVersion);
  *m.mutable_key() = Key();
  m.set_key_sha256(StoreKeySha256(Key()));
  m.set_d(4);
  m.set_contexts_per_chunk(3);
  m.set_rows_per_context(4);
  m.set_num_rows(16);
  auto* chunk = m.add_chunks();
  chunk->set_file(ChunkFileName(0));
  chunk->set_rows(12);
  chunk->set_sha256("abc");
  m.set_complete(true);
  for (double v : {0.1, -1.0 / 3, 1e-300, 12345.678}) m.mutable_stats()->add_mean(v);
  m.mutable_stats()->set_mean_norm(2.0 / 3);
  return m;
}

TEST(StoreFormatTest, ManifestRoundTripsExactly) {
  const std::string dir = TestDir("manifest_roundtrip");
  ASSERT_TRUE(WriteManifest(dir, Manifest()).ok());
  absl::StatusOr<ActivationStoreManifest> read = ReadManifest(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  // Doubles included: the text form round-trips them.
  ActivationStoreManifest contents = *read;
  contents.clear_manifest_sha256();
  EXPECT_EQ(contents.SerializeAsString(), Manifest().SerializeAsString());
  // The checksum covers everything else, by an independent recomputation.
  EXPECT_EQ(read->manifest_sha256(), ProtoSha256(Manifest()));
  EXPECT_TRUE(absl::StrContains(*ReadFile(ManifestPath(dir)), "hook_name: \"blocks.1.hook_resid_post\""));
}

// DataLoss naming the manifest file and `what`.
void ExpectManifestRefused(const std::string& dir, absl::string_view what) {
  absl::StatusOr<ActivationStoreManifest> read = ReadManifest(dir);
  ASSERT_FALSE(read.ok()) << what;
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_TRUE(absl::StrContains(read.status().message(), ManifestPath(dir))) << read.status();
  EXPECT_TRUE(absl::StrContains(read.status().message(), what)) << read.status();
}

TEST(StoreFormatTest, InconsistentManifestsAreRefusedNamingTheField) {
  const std::string dir = TestDir("manifest_bad");
  struct Case {
    const char* what;
    void (*edit)(ActivationStoreManifest&);
  };
  for (const Case& c : std::initializer_list<Case>{
           {"version: unsupported store format version 1",
            [](ActivationStoreManifest& m) { m.set_version(1); }},
           {"key_sha256: does not match the key",
            [](ActivationStoreManifest& m) { m.mutable_key()->set_context_end(7); }},
           {"d: must be >= 1", [](ActivationStoreManifest& m) { m.set_d(0); }},
           {"contexts_per_chunk: must be >= 1",
            [](ActivationStoreManifest& m) { m.set_contexts_per_chunk(0); }},
           {"rows_per_context", [](ActivationStoreManifest& m) { m.set_rows_per_context(5); }},
           {"num_rows", [](ActivationStoreManifest& m) { m.set_num_rows(17); }},
           {"stats.mean", [](ActivationStoreManifest& m) { m.mutable_stats()->add_mean(0); }},
       }) {
    ActivationStoreManifest m = Manifest();
    c.edit(m);
    ASSERT_TRUE(WriteManifest(dir, m).ok());
    ExpectManifestRefused(dir, c.what);
  }
  ASSERT_TRUE(AtomicWriteFile(ManifestPath(dir), "key { hook_nam: \"x\" }\n").ok());
  ExpectManifestRefused(dir, "hook_nam");
}

TEST(StoreFormatTest, AnEditedStatisticIsRefusedByTheManifestChecksum) {
  const std::string dir = TestDir("manifest_edited");
  ASSERT_TRUE(WriteManifest(dir, Manifest()).ok());
  std::string text = *ReadFile(ManifestPath(dir));
  const size_t at = text.find("mean_norm: 0.6666");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, std::string("mean_norm: 0.6").size(), "mean_norm: 9.6");
  ASSERT_TRUE(AtomicWriteFile(ManifestPath(dir), text).ok());
  ExpectManifestRefused(dir, "manifest_sha256: does not match");
}

TEST(StoreFormatTest, AManifestWithoutAChecksumIsRefusedExceptByTheHarvest) {
  const std::string dir = TestDir("manifest_old");
  ASSERT_TRUE(WriteTextProtoFile(ManifestPath(dir), Manifest()).ok());
  ExpectManifestRefused(dir, "manifest_sha256: missing");
  absl::StatusOr<ActivationStoreManifest> read = ReadManifest(dir, /*allow_missing_checksum=*/true);
  ASSERT_TRUE(read.ok()) << read.status();
}

TEST(StoreFormatTest, KeyValuesThatOverflowAreRefusedNamingTheField) {
  // Each overflowed int64 (undefined behaviour) while the manifest was
  // checked (regression inputs: fuzz/crashes/store_manifest/). key_sha256 is rehashed, so
  // the key's own values are what is refused.
  const std::string dir = TestDir("manifest_overflow");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  struct Case {
    const char* what;
    void (*edit)(ActivationStoreKey&);
  };
  for (const Case& c : std::initializer_list<Case>{
           {"key.context_begin", [](ActivationStoreKey& k) {
              k.set_context_begin(-kMax);
              k.set_context_end(kMax);
            }},
           {"key.context_begin", [](ActivationStoreKey& k) { k.set_context_end(1); }},
           {"key.context_length: must be >= 1",
            [](ActivationStoreKey& k) { k.set_context_length(std::numeric_limits<int64_t>::min()); }},
           {"num_rows", [](ActivationStoreKey& k) { k.set_context_end(kMax); }},
       }) {
    ActivationStoreManifest m = Manifest();
    c.edit(*m.mutable_key());
    m.set_key_sha256(StoreKeySha256(m.key()));
    ASSERT_TRUE(WriteManifest(dir, m).ok());
    ExpectManifestRefused(dir, c.what);
  }
}

TEST(StoreFormatTest, SpecWhoseSizeOverflowsMatchesNoChunk) {
  // rows x d overflowed int64 when the header's rows and d matched such a
  // spec (regression input: fuzz/crashes/store_chunk/). A sealed header that says so.
  const std::string path = TestDir("chunks") + "/overflow.bin";
  ChunkSpec spec = Spec();
  spec.rows = int64_t{1} << 62;
  SealedFileWriter writer(SealedFormat{"SAELACTS", kStoreFormatVersion, "activation store chunk"},
                          0);
  writer.fields().ints = {spec.index, spec.rows, spec.d, spec.dtype};
  writer.fields().texts[0] = spec.key_sha256;
  ASSERT_TRUE(writer.Write(path).ok());
  ExpectChunkRefused(path, spec, "payload: rows 4611686018427387904 x d 4 is not a valid size");
  spec.rows = -1;
  spec.d = 0;
  writer.fields().ints = {spec.index, spec.rows, spec.d, spec.dtype};
  ASSERT_TRUE(writer.Write(path).ok());
  ExpectChunkRefused(path, spec, "payload: rows -1 x d 0 is not a valid size");
}

TEST(StoreFormatTest, JsonManifestOfFormatOneIsRefusedAsSuch) {
  const std::string dir = TestDir("manifest_json");
  ASSERT_TRUE(AtomicWriteFile(ManifestPath(dir),
                              "{\n \"format\": \"saelab activation store\",\n \"version\": 1\n}\n")
                  .ok());
  ExpectManifestRefused(dir, "store format 1 (JSON)");
}

TEST(StoreFormatTest, MissingManifestIsNotFound) {
  EXPECT_EQ(ReadManifest(TestDir("manifest_none")).status().code(), absl::StatusCode::kNotFound);
}

TEST(StoreFormatTest, KeyMismatchNamesTheFieldPathAndBothValues) {
  ActivationStoreKey wanted = Key();
  wanted.set_hook_name("blocks.2.hook_resid_post");
  absl::Status status = CheckStoreKey(Key(), wanted, "activation store /s");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "activation store /s: key field hook_name is \"blocks.1.hook_resid_post\" there, "
            "\"blocks.2.hook_resid_post\" wanted");
  // Several fields, with default values (proto3: unset) on one side.
  wanted.set_drop_bos(false);
  wanted.set_dtype(ActivationStoreKey::BFLOAT16);
  wanted.set_context_begin(0);
  status = CheckStoreKey(Key(), wanted, "ctx");
  EXPECT_EQ(status.message(),
            "ctx: key field hook_name is \"blocks.1.hook_resid_post\" there, "
            "\"blocks.2.hook_resid_post\" wanted; key field context_begin is 2 there, 0 wanted; "
            "key field dtype is FLOAT32 there, BFLOAT16 wanted; key field drop_bos is true "
            "there, false wanted");
  EXPECT_TRUE(CheckStoreKey(Key(), Key(), "ctx").ok());
}

TEST(StoreFormatTest, KeySha256IsTheHashOfTheSerialisedKey) {
  // Built in another order: the same bytes, the same hash.
  ActivationStoreKey reordered;
  reordered.set_drop_bos(true);
  reordered.set_context_length(5);
  reordered.set_context_end(6);
  reordered.set_context_begin(2);
  reordered.set_shard_sha256("shard-hash");
  reordered.set_hook_name("blocks.1.hook_resid_post");
  reordered.set_model_sha256("model-hash");
  EXPECT_EQ(StoreKeySha256(reordered), StoreKeySha256(Key()));
  // No maps, so the plain serialisation is the deterministic one.
  EXPECT_EQ(StoreKeySha256(Key()), Sha256Hex(Key().SerializeAsString()));
  ActivationStoreKey other = Key();
  other.set_context_length(6);
  EXPECT_NE(StoreKeySha256(other), StoreKeySha256(Key()));
  EXPECT_EQ(RowsPerContext(Key()), 4);
  other.set_drop_bos(false);
  EXPECT_EQ(RowsPerContext(other), 6);
}

}  // namespace
}  // namespace saelab
