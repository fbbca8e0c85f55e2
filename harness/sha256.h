// SHA-256 digests (OpenSSL EVP) as lowercase hex, for config, data, model
// and checkpoint hashes in provenance and in cache keys.
//
//   std::string h = Sha256Hex(bytes);                 // 64 hex chars
//   ASSIGN_OR_RETURN(std::string f, Sha256File(path));
#ifndef SAELAB_HARNESS_SHA256_H_
#define SAELAB_HARNESS_SHA256_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// Incremental SHA-256 over several pieces (equal to Sha256Hex of their
// concatenation), for data that is not in one buffer.
//
//   Sha256 hash;
//   for (absl::string_view piece : pieces) hash.Update(piece);
//   std::string hex = hash.HexDigest();
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // The digest of everything passed to Update; call once.
  std::string HexDigest();

 private:
  struct Context;
  Context* context_;
};

// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

// Lowercase hex SHA-256 of a file's contents; errors name the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// A directory's checksum list, in `sha256sum`'s format: one line per file,
// "<64 hex>  <name>" (or "<64 hex> *<name>"), so `sha256sum -c SHA256SUMS`
// checks it too. Model directories carry one.
//
//   RETURN_IF_ERROR(WriteSha256Sums(dir, {"config.json", "model.safetensors"}));
//   ASSIGN_OR_RETURN(std::string bytes, ReadVerifiedFile(dir, "model.safetensors"));
inline constexpr char kSha256SumsFile[] = "SHA256SUMS";

// Hashes dir/<name> for each name and writes dir/SHA256SUMS atomically.
absl::Status WriteSha256Sums(const std::string& dir, const std::vector<std::string>& names);

// Reads dir/<name>; when dir/SHA256SUMS exists and lists `name`, its digest
// must match: else DataLoss naming the file and both digests. A malformed
// SHA256SUMS is InvalidArgument naming its line. A directory without the
// list, or a file it does not list, is read unchecked (a Hugging Face
// download has no such list).
absl::StatusOr<std::string> ReadVerifiedFile(const std::string& dir, const std::string& name);

}  // namespace saelab

#endif  // SAELAB_HARNESS_SHA256_H_
