#include "harness/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace saelab {

// POSIX mmap by hand: none of the installed libraries (Abseil, LibTorch's
// public API, the standard library) offers a read-only file mapping.
absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path, absl::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = absl::StrCat("cannot open ", what, " ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    return absl::InternalError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(
        absl::StrCat("cannot stat ", what, " ", path, ": ", std::strerror(err)));
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  if (file.size_ > 0) {
    // MAP_PRIVATE: the mapping is read-only, so no write could ever reach
    // the file; the pages are still the page cache's, shared.
    void* map = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file open
    if (map == MAP_FAILED) {
      file.size_ = 0;
      return absl::InternalError(
          absl::StrCat("cannot mmap ", what, " ", path, ": ", std::strerror(err)));
    }
    file.map_ = map;
  } else {
    ::close(fd);  // mmap of length 0 fails (EINVAL): an empty file has no mapping
  }
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::exchange(other.path_, std::string())),
      map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this == &other) return *this;
  Unmap();
  path_ = std::exchange(other.path_, std::string());
  map_ = std::exchange(other.map_, nullptr);
  size_ = std::exchange(other.size_, 0);
  return *this;
}

MappedFile::~MappedFile() { Unmap(); }

void MappedFile::Unmap() {
  if (map_ != nullptr) ::munmap(map_, size_);
  map_ = nullptr;
  size_ = 0;
}

void MappedFile::WillNeed(size_t offset, size_t length) const {
  if (map_ == nullptr || offset >= size_) return;
  const size_t end = length > size_ - offset ? size_ : offset + length;
  // madvise wants a page-aligned start; the map itself starts page-aligned.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t aligned = offset / page * page;
  ::madvise(static_cast<char*>(map_) + aligned, end - aligned, MADV_WILLNEED);
}

}  // namespace saelab
