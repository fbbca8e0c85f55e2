// A sealed file: a fixed 512-byte header with the caller's typed fields and
// two checksums, then a payload read in place through a memory map. Token
// shards and activation store chunks are sealed files, so the integrity
// checks (magic, version, header checksum, size, payload checksum) are
// written once, here.
//
//   constexpr SealedFormat kFormat{"SAELTOKS", 2, "token shard"};
//   SealedFileWriter writer(kFormat, payload_size);
//   writer.fields().ints[0] = vocab_size;
//   writer.fields().texts[0] = tokenizer_sha256;
//   std::memcpy(writer.payload(), bytes, payload_size);
//   ASSIGN_OR_RETURN(std::string payload_sha256, writer.Write(path));
//
//   ASSIGN_OR_RETURN(SealedFile file, SealedFile::Open(path, kFormat));
//   int64_t vocab_size = file.fields().ints[0];
//   const unsigned char* payload = file.payload();  // file.payload_size() bytes
//
// Layout (little-endian):
//   0    magic                                8 bytes, the format's
//   8    version                              u32, the format's
//   12   zero                                 u32
//   16   payload size in bytes                u64
//   24   payload sha256                       64 lowercase hex chars
//   88   ints[0..7]                           8 x i64
//   152  texts[0..3]                          4 x 64 bytes, NUL-padded
//   408  zeros up to 448
//   448  header sha256 (of bytes [0, 448))    64 lowercase hex chars
//   512  payload                              payload size bytes, then nothing
// The file is written atomically (harness/file_io.h), so a kill never leaves
// a half-written one. The header checksum is checked before any field is
// believed; the payload checksum costs a read of the whole payload, so it
// is optional when opening.
#ifndef SAELAB_HARNESS_SEALED_FILE_H_
#define SAELAB_HARNESS_SEALED_FILE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "harness/mapped_file.h"

namespace saelab {

// What kind of sealed file: its magic, its version, and its name in errors.
struct SealedFormat {
  // Exactly 8 bytes, e.g. "SAELTOKS".
  const char* magic;
  // Bump it whenever the payload or the use of the fields changes: a file of
  // another version is refused ("version"), never misread.
  uint32_t version;
  // Names the kind of file in errors: "token shard" -> "token shard /x: magic: ...".
  const char* what;
};

// The caller's header fields. Which slot means what is the caller's format.
struct SealedFields {
  static constexpr int kInts = 8;
  static constexpr int kTexts = 4;
  // At most this many bytes, no NUL (a sha256 in hex fits exactly).
  static constexpr size_t kTextSize = 64;

  std::array<int64_t, kInts> ints{};
  std::array<std::string, kTexts> texts;
};

// Builds a sealed file in memory (header and payload in one buffer, so the
// payload is filled in place and written without another copy).
class SealedFileWriter {
 public:
  SealedFileWriter(const SealedFormat& format, size_t payload_size);

  SealedFields& fields() { return fields_; }
  // payload_size bytes, zero-initialised, to be filled by the caller.
  unsigned char* payload();
  size_t payload_size() const { return payload_size_; }

  // Seals the header and writes the file to `path` atomically (the parent
  // folder must exist). Returns the payload's sha256 (lowercase hex).
  // InvalidArgument naming the format, path and slot for a text field over
  // 64 bytes or holding a NUL; I/O errors name the path.
  absl::StatusOr<std::string> Write(const std::string& path);

 private:
  SealedFormat format_;
  SealedFields fields_;
  size_t payload_size_;
  std::string bytes_;  // header + payload
};

// An open sealed file, mapped read-only. Movable, not copyable; unmaps on
// destruction. Const methods are thread-safe.
class SealedFile {
 public:
  // Maps `path` and checks, in this order: the header is all there, the
  // magic, the header checksum, the version, the file size against the
  // header's payload size, and, with verify_payload, the payload checksum.
  // Every error names format.what, the path and the problem: NotFound if the
  // file does not exist; DataLoss "...: header: file truncated", "magic",
  // "header_sha256: header checksum mismatch", "version: unsupported format
  // version", "payload: file truncated", "payload: trailing bytes",
  // "payload_sha256: checksum mismatch"; Internal if it cannot be mapped.
  static absl::StatusOr<SealedFile> Open(const std::string& path, const SealedFormat& format,
                                         bool verify_payload = true);

  SealedFile() = default;

  const std::string& path() const { return file_.path(); }
  const SealedFields& fields() const { return fields_; }
  // The payload's first byte (nullptr for an empty payload); read in place.
  const unsigned char* payload() const { return payload_; }
  size_t payload_size() const { return payload_size_; }
  // The payload sha256 the header records (lowercase hex); with
  // verify_payload, also what the payload hashes to.
  const std::string& payload_sha256() const { return payload_sha256_; }
  // Read-ahead hint for payload bytes [offset, offset + length); clamped.
  void WillNeed(size_t offset, size_t length) const;

  // DataLoss "<what> <path>: <field>: <problem>", for the caller's own
  // checks of its fields and payload.
  absl::Status Error(absl::string_view field, absl::string_view problem) const;

 private:
  MappedFile file_;
  std::string what_;
  SealedFields fields_;
  const unsigned char* payload_ = nullptr;
  size_t payload_size_ = 0;
  std::string payload_sha256_;
};

// The header size: the payload starts at this byte offset.
inline constexpr size_t kSealedHeaderSize = 512;

}  // namespace saelab

#endif  // SAELAB_HARNESS_SEALED_FILE_H_
