// One large object's data file: its chunks past the first few, back to back, written once in order
// with direct I/O and read at any offset. The RocksDB engine keeps them out of RocksDB, whose blob
// files would copy every byte through a memtable and a flush and checksum it in software
// (rocksdb_engine.h says where each chunk lives and where its checksum is).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcos::storage {

// Alignment of direct I/O: buffer addresses, file offsets and lengths.
inline constexpr size_t kDirectIoAlignment = 4096;

// A buffer of at most `capacity` bytes at an aligned address, for direct I/O. Memory is taken as
// it fills (a small object's upload takes a page, not a chunk), always a multiple of
// kDirectIoAlignment, so that the padding of a last write fits.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t capacity);
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  // Bytes allocated (at least size(), rounded up to kDirectIoAlignment).
  size_t allocated() const { return allocated_; }
  bool empty() const { return size_ == 0; }
  // Appends at most capacity() - size() bytes of `in`; returns how many.
  size_t Append(absl::string_view in);
  void clear() { size_ = 0; }
  // Makes room for `n` bytes (at most capacity(), rounded up to kDirectIoAlignment); keeps the
  // contents.
  void Reserve(size_t n);
  // Sets the size (at most allocated()).
  void resize(size_t n) { size_ = std::min(n, allocated_); }
  absl::string_view view() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  size_t capacity_;
  size_t allocated_ = 0;
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
};

class DataFile {
 public:
  // Creates `path` (which must not exist), for writing: with direct I/O where the filesystem has
  // it (the data bypasses the page cache, as a large object is rarely read back at once; a VM pays
  // dearly for every fresh page-cache page), buffered where it does not (tmpfs).
  static absl::StatusOr<DataFile> Create(const std::string& path);
  // Opens `path` for reading, with direct I/O where the filesystem has it (a large object read
  // from disk comes at twice the rate it does through the page cache here). NOT_FOUND if it is
  // missing.
  static absl::StatusOr<DataFile> Open(const std::string& path);

  DataFile(DataFile&& other) noexcept : fd_(other.fd_), size_(other.size_) { other.fd_ = -1; }
  DataFile& operator=(DataFile&& other) noexcept;
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;
  ~DataFile();

  // Appends the contents of `buffer`, whose size must be a multiple of kDirectIoAlignment unless
  // it is the last append (it is then padded with zeros to one: the file may end past the data).
  absl::Status Append(AlignedBuffer& buffer);
  // Makes everything appended durable (fdatasync).
  absl::Status Sync();
  // Reads `n` bytes at `offset` (a multiple of kDirectIoAlignment) into `into` (resized to `n`;
  // its capacity must hold `n` rounded up to kDirectIoAlignment). DATA_LOSS if the file is shorter.
  absl::Status ReadAt(uint64_t offset, size_t n, AlignedBuffer& into) const;
  uint64_t size() const { return size_; }

  // fsyncs the directory `path` (after files were created or removed in it).
  static absl::Status SyncDirectory(const std::string& path);

 private:
  DataFile(int fd, uint64_t size) : fd_(fd), size_(size) {}

  int fd_ = -1;
  uint64_t size_ = 0;
};

// The status of a failed file operation: ENOSPC is RESOURCE_EXHAUSTED (the disk is full), a missing
// file NOT_FOUND, anything else UNAVAILABLE (an I/O error). Logs the path; the message does not
// name it (callers are remote).
absl::Status FileError(int error, absl::string_view what, const std::string& path);

}  // namespace mcos::storage
