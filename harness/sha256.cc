#include "harness/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"

namespace saelab {

struct Sha256::Context {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
};

Sha256::Sha256() : context_(new Context) {
  EVP_DigestInit_ex(context_->md, EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(context_->md);
  delete context_;
}

void Sha256::Update(absl::string_view bytes) {
  EVP_DigestUpdate(context_->md, bytes.data(), bytes.size());
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_->md, digest, &length);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

namespace {

// name -> digest from dir/SHA256SUMS; empty if the file does not exist.
absl::StatusOr<std::map<std::string, std::string>> ReadSha256Sums(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kSha256SumsFile);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return std::map<std::string, std::string>();
  RETURN_IF_ERROR(text.status());
  std::map<std::string, std::string> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    ++line_number;
    // "<64 hex><space><space or '*'><name>", as sha256sum writes it.
    const bool well_formed = line.size() > 66 && line[64] == ' ' &&
                             (line[65] == ' ' || line[65] == '*') &&
                             std::all_of(line.begin(), line.begin() + 64, [](char c) {
                               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                             });
    if (!well_formed) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": line ", line_number,
          " is not '<64 lowercase hex digits>  <file name>' (the format sha256sum writes)"));
    }
    digests[std::string(line.substr(66))] = std::string(line.substr(0, 64));
  }
  return digests;
}

}  // namespace

absl::Status WriteSha256Sums(const std::string& dir, const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(std::string digest, Sha256File(absl::StrCat(dir, "/", name)));
    absl::StrAppend(&text, digest, "  ", name, "\n");
  }
  return AtomicWriteFile(absl::StrCat(dir, "/", kSha256SumsFile), text);
}

absl::StatusOr<std::string> ReadVerifiedFile(const std::string& dir, const std::string& name) {
  ASSIGN_OR_RETURN(auto digests, ReadSha256Sums(dir));
  const std::string path = absl::StrCat(dir, "/", name);
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  auto listed = digests.find(name);
  if (listed != digests.end()) {
    const std::string actual = Sha256Hex(bytes);
    if (actual != listed->second) {
      return absl::DataLossError(absl::StrCat(
          path, ": checksum: the file hashes to sha256 ", actual, " but ", dir, "/",
          kSha256SumsFile, " lists ", listed->second,
          " (the file is corrupted or was changed after the list was written)"));
    }
  }
  return bytes;
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, ReadFile(path));
  return Sha256Hex(contents);
}

}  // namespace saelab
