// A whole file mapped read-only into memory, for formats that are written
// once and then read in place many times (token shards, activation store
// chunks): no copy into the heap, and the OS page cache shares the pages
// between every process that maps the same file.
//
//   ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path, "token shard"));
//   if (file.size() < kHeaderSize) return ...;  // an empty file maps fine
//   const unsigned char* header = file.data();
//   file.WillNeed(offset, length);  // optional read-ahead hint
//
// The bytes stay valid while the MappedFile (or the one it was moved into)
// lives. The file's contents must not be truncated while mapped (reading a
// page past the new end raises SIGBUS); saelab writes every file atomically
// (temp file + rename), which replaces it rather than changing it in place.
#ifndef SAELAB_HARNESS_MAPPED_FILE_H_
#define SAELAB_HARNESS_MAPPED_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// A read-only memory mapping of a whole file. Movable, not copyable; unmaps
// on destruction. Const methods are thread-safe.
class MappedFile {
 public:
  // Maps all of `path` read-only. `what` names the kind of file for error
  // messages ("token shard" -> "cannot open token shard /x: No such file or
  // directory"). NotFound if the file does not exist (ENOENT); Internal,
  // naming `what` and the path, if it cannot be opened, stat'ed or mapped.
  // An empty file succeeds with size() 0.
  static absl::StatusOr<MappedFile> Open(const std::string& path, absl::string_view what);

  // An empty mapping: no path, size() 0. What a moved-from MappedFile is.
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // The path given to Open (empty for an empty MappedFile).
  const std::string& path() const { return path_; }
  // The file's size in bytes when it was mapped.
  size_t size() const { return size_; }
  // The first byte, page-aligned; nullptr when size() is 0.
  const unsigned char* data() const { return static_cast<const unsigned char*>(map_); }
  // All the bytes; empty when size() is 0.
  absl::string_view bytes() const {
    return absl::string_view(static_cast<const char*>(map_), size_);
  }

  // Asks the OS to read bytes [offset, offset + length) into the page cache
  // ahead of use (madvise WILLNEED). A hint: clamped to the file, no error.
  void WillNeed(size_t offset, size_t length) const;

 private:
  void Unmap();

  std::string path_;
  void* map_ = nullptr;  // nullptr when size_ is 0 (mmap refuses length 0)
  size_t size_ = 0;
};

}  // namespace saelab

#endif  // SAELAB_HARNESS_MAPPED_FILE_H_
