#include "harness/sealed_file.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

// Header integers are stored little-endian and read with memcpy.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "sealed files assume a little-endian host");

namespace saelab {
namespace {

constexpr size_t kMagicSize = 8;
constexpr size_t kOffVersion = 8, kOffPayloadSize = 16, kOffPayloadSha = 24, kOffInts = 88;
constexpr size_t kOffTexts = kOffInts + 8 * SealedFields::kInts;
constexpr size_t kOffHeaderSha = 448;
constexpr size_t kShaSize = 64;
static_assert(kOffTexts + SealedFields::kTexts * SealedFields::kTextSize <= kOffHeaderSha,
              "the field area overlaps the header checksum");
static_assert(kOffHeaderSha + kShaSize == kSealedHeaderSize, "the header is 512 bytes");

template <typename T>
T Get(const unsigned char* data, size_t offset) {
  T value;
  std::memcpy(&value, data + offset, sizeof(T));
  return value;
}

template <typename T>
void Put(std::string& out, size_t offset, T value) {
  std::memcpy(&out[offset], &value, sizeof(T));
}

absl::string_view Chars(const unsigned char* data, size_t offset, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data) + offset, size);
}

}  // namespace

SealedFileWriter::SealedFileWriter(const SealedFormat& format, size_t payload_size)
    : format_(format),
      payload_size_(payload_size),
      bytes_(kSealedHeaderSize + payload_size, '\0') {}

unsigned char* SealedFileWriter::payload() {
  return reinterpret_cast<unsigned char*>(&bytes_[kSealedHeaderSize]);
}

absl::StatusOr<std::string> SealedFileWriter::Write(const std::string& path) {
  for (int i = 0; i < SealedFields::kTexts; ++i) {
    const std::string& text = fields_.texts[i];
    if (text.size() > SealedFields::kTextSize || text.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(format_.what, " ", path, ": header text field ", i, " must be at most ",
                       SealedFields::kTextSize, " bytes without NUL, got \"", text, "\""));
    }
  }
  const std::string payload_sha =
      Sha256Hex(absl::string_view(bytes_.data() + kSealedHeaderSize, payload_size_));
  std::memset(&bytes_[0], 0, kSealedHeaderSize);
  std::memcpy(&bytes_[0], format_.magic, kMagicSize);
  Put<uint32_t>(bytes_, kOffVersion, format_.version);
  Put<uint64_t>(bytes_, kOffPayloadSize, payload_size_);
  std::memcpy(&bytes_[kOffPayloadSha], payload_sha.data(), kShaSize);
  for (int i = 0; i < SealedFields::kInts; ++i) {
    Put<int64_t>(bytes_, kOffInts + 8 * i, fields_.ints[i]);
  }
  for (int i = 0; i < SealedFields::kTexts; ++i) {
    std::memcpy(&bytes_[kOffTexts + SealedFields::kTextSize * i], fields_.texts[i].data(),
                fields_.texts[i].size());
  }
  const std::string header_sha = Sha256Hex(absl::string_view(bytes_.data(), kOffHeaderSha));
  std::memcpy(&bytes_[kOffHeaderSha], header_sha.data(), kShaSize);
  RETURN_IF_ERROR(AtomicWriteFile(path, bytes_));
  return payload_sha;
}

absl::Status SealedFile::Error(absl::string_view field, absl::string_view problem) const {
  return absl::DataLossError(absl::StrCat(what_, " ", file_.path(), ": ", field, ": ", problem));
}

absl::StatusOr<SealedFile> SealedFile::Open(const std::string& path, const SealedFormat& format,
                                            bool verify_payload) {
  SealedFile file;
  file.what_ = format.what;
  ASSIGN_OR_RETURN(file.file_, MappedFile::Open(path, format.what));
  const size_t size = file.file_.size();
  if (size < kSealedHeaderSize) {
    return file.Error("header", absl::StrCat("file truncated: ", size,
                                             " bytes, the header alone is ", kSealedHeaderSize));
  }
  const unsigned char* data = file.file_.data();
  if (std::memcmp(data, format.magic, kMagicSize) != 0) {
    return file.Error("magic", absl::StrCat("not a ", format.what, " (expected \"",
                                            absl::string_view(format.magic, kMagicSize), "\")"));
  }
  if (Sha256Hex(Chars(data, 0, kOffHeaderSha)) != Chars(data, kOffHeaderSha, kShaSize)) {
    return file.Error("header_sha256", "header checksum mismatch (the header is corrupt)");
  }
  const uint32_t version = Get<uint32_t>(data, kOffVersion);
  if (version != format.version) {
    return file.Error("version", absl::StrCat("unsupported format version ", version,
                                              " (this code reads ", format.version, ")"));
  }
  const uint64_t payload_size = Get<uint64_t>(data, kOffPayloadSize);
  if (payload_size > size - kSealedHeaderSize) {
    return file.Error("payload", absl::StrCat("file truncated: ", size, " bytes, header promises ",
                                              kSealedHeaderSize + payload_size));
  }
  if (payload_size < size - kSealedHeaderSize) {
    return file.Error("payload", absl::StrCat("trailing bytes: ", size, " bytes, header promises ",
                                              kSealedHeaderSize + payload_size));
  }
  file.payload_size_ = static_cast<size_t>(payload_size);
  file.payload_ = payload_size > 0 ? data + kSealedHeaderSize : nullptr;
  file.payload_sha256_ = std::string(Chars(data, kOffPayloadSha, kShaSize));
  if (verify_payload) {
    const std::string sha = Sha256Hex(Chars(data, kSealedHeaderSize, file.payload_size_));
    if (sha != file.payload_sha256_) {
      return file.Error("payload_sha256", absl::StrCat("checksum mismatch: header says ",
                                                       file.payload_sha256_,
                                                       ", payload hashes to ", sha));
    }
  }
  for (int i = 0; i < SealedFields::kInts; ++i) {
    file.fields_.ints[i] = Get<int64_t>(data, kOffInts + 8 * i);
  }
  for (int i = 0; i < SealedFields::kTexts; ++i) {
    const char* text = reinterpret_cast<const char*>(data) + kOffTexts + SealedFields::kTextSize * i;
    file.fields_.texts[i] = std::string(text, strnlen(text, SealedFields::kTextSize));
  }
  return file;
}

void SealedFile::WillNeed(size_t offset, size_t length) const {
  if (offset >= payload_size_) return;
  file_.WillNeed(kSealedHeaderSize + offset, std::min(length, payload_size_ - offset));
}

}  // namespace saelab
