#include "storage/data_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace mcos::storage {
namespace {

size_t RoundUp(size_t n) {
  return (n + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
}

// Calls `io(done, max - done)` (a pread or pwrite of the rest) until at least `need` bytes moved,
// again on EINTR; stops early when it moves nothing (the end of the file). The bytes moved, or the
// errno of a failed call.
template <typename Io>
std::pair<size_t, int> Transfer(size_t need, size_t max, Io io) {
  size_t done = 0;
  while (done < need) {
    const ssize_t n = io(done, max - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {done, errno};
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return {done, 0};
}

}  // namespace

AlignedBuffer::AlignedBuffer(size_t capacity) : capacity_(RoundUp(capacity)) {}

void AlignedBuffer::Free::operator()(char* p) const { std::free(p); }

void AlignedBuffer::Reserve(size_t n) {
  const size_t wanted = RoundUp(std::min(n, capacity_));
  if (wanted <= allocated_) return;
  // At least double, so that filling a chunk in small pieces copies it about once.
  const size_t grown = std::min(capacity_, std::max(wanted, 2 * allocated_));
  std::unique_ptr<char, Free> bigger(
      static_cast<char*>(std::aligned_alloc(kDirectIoAlignment, grown)));
  if (bigger == nullptr) throw std::bad_alloc();
  if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  allocated_ = grown;
}

size_t AlignedBuffer::Append(absl::string_view in) {
  const size_t n = std::min(in.size(), capacity_ - size_);
  if (n == 0) return 0;
  Reserve(size_ + n);
  std::memcpy(data_.get() + size_, in.data(), n);
  size_ += n;
  return n;
}

absl::Status FileError(int error, absl::string_view what, const std::string& path) {
  common::LogWarning(what, " ", path, ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what,
        ": the cluster is out of space (its storage disk is full); delete objects or add "
        "capacity, then retry"));
  }
  if (error == ENOENT) {
    return absl::NotFoundError(
        absl::StrCat(what, ": a data file of the storage node is missing (see its log)"));
  }
  return absl::UnavailableError(
      absl::StrCat(what, ": the storage node had an I/O error (see its log); retry"));
}

absl::StatusOr<DataFile> DataFile::Create(const std::string& path) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = ::open(path.c_str(), kFlags | O_DIRECT, 0600);
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), kFlags, 0600);  // no direct I/O here
  if (fd < 0) return FileError(errno, "create a data file", path);
  return DataFile(fd, 0);
}

absl::StatusOr<DataFile> DataFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // no direct I/O
  if (fd < 0) return FileError(errno, "open a data file", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return FileError(error, "stat a data file", path);
  }
  return DataFile(fd, static_cast<uint64_t>(st.st_size));
}

DataFile& DataFile::operator=(DataFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

DataFile::~DataFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status DataFile::Append(AlignedBuffer& buffer) {
  const size_t length = RoundUp(buffer.size());  // within buffer.allocated()
  std::memset(buffer.data() + buffer.size(), 0, length - buffer.size());
  const auto [done, error] = Transfer(length, length, [&](size_t at, size_t rest) {
    return ::pwrite(fd_, buffer.data() + at, rest, static_cast<off_t>(size_ + at));
  });
  if (error != 0) return FileError(error, "write a data file", absl::StrCat("fd ", fd_));
  if (done < length) return FileError(EIO, "write a data file", absl::StrCat("fd ", fd_));
  size_ += length;
  return absl::OkStatus();
}

absl::Status DataFile::Sync() {
  if (::fdatasync(fd_) != 0) return FileError(errno, "sync a data file", absl::StrCat("fd ", fd_));
  return absl::OkStatus();
}

absl::Status DataFile::ReadAt(uint64_t offset, size_t n, AlignedBuffer& into) const {
  const size_t length = RoundUp(n);
  into.Reserve(length);
  if (length > into.allocated()) {
    return absl::InternalError("a data file read larger than its buffer");
  }
  const auto [done, error] = Transfer(n, length, [&](size_t at, size_t rest) {
    return ::pread(fd_, into.data() + at, rest, static_cast<off_t>(offset + at));
  });
  if (error != 0) return FileError(error, "read a data file", absl::StrCat("fd ", fd_));
  if (done < n) {
    return absl::DataLossError("a data file of the storage node is shorter than its record says");
  }
  into.resize(n);
  return absl::OkStatus();
}

absl::Status DataFile::SyncDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open a data directory", path);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return FileError(error, "sync a data directory", path);
  return absl::OkStatus();
}

}  // namespace mcos::storage
