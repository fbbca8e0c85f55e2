// SHA-256 digests (OpenSSL EVP) as lowercase hex, for config, data, model
// and checkpoint hashes in provenance and in cache keys.
//
//   std::string h = Sha256Hex(bytes);                 // 64 hex chars
//   ASSIGN_OR_RETURN(std::string f, Sha256File(path));
#ifndef SAELAB_HARNESS_SHA256_H_
#define SAELAB_HARNESS_SHA256_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

// Lowercase hex SHA-256 of a file's contents; errors name the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace saelab

#endif  // SAELAB_HARNESS_SHA256_H_
