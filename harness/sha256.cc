#include "harness/sha256.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"

namespace saelab {

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, ReadFile(path));
  return Sha256Hex(contents);
}

}  // namespace saelab
