// Keeps a storage node serviceable when its disk fills up.
//
// * A free-space floor: below `min_free_bytes` the node refuses new data (RESOURCE_EXHAUSTED,
//   "out of space") before the disk is truly full, so that deletes, RocksDB's flushes and
//   compactions, and a restart still find room. Reads and deletes are never refused. Once
//   refusing, it accepts data again only above the floor plus a quarter (hysteresis).
// * A reserve: two files of `reserve_bytes`/2 kept in the data directory while there is room.
//   When a write hits ENOSPC anyway (another program filled the disk) the first is deleted to give
//   RocksDB room to recover and delete; when the node starts on a disk below the floor both are,
//   so that it can open even after the first was used up. They are made again once the disk has
//   room for them above the floor.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mcos::storage {

struct SpaceOptions {
  // A directory on the filesystem to watch; the reserve file is made in it.
  std::string dir;
  uint64_t min_free_bytes = uint64_t{256} << 20;
  uint64_t reserve_bytes = uint64_t{64} << 20;
  // When not 0, the floor and the reserve are at most this percentage of the disk's size, so that
  // a small disk (smaller than the floor) is still writable.
  uint32_t min_free_percent = 0;
  // Free bytes of the filesystem of `dir` (statvfs by default; tests inject their own).
  std::function<absl::StatusOr<uint64_t>(const std::string& dir)> free_bytes;
  // Size of that filesystem (statvfs by default).
  std::function<absl::StatusOr<uint64_t>(const std::string& dir)> total_bytes;
};

class SpaceGuard {
 public:
  // Deletes the reserve if the disk is below the floor (so that what opens next has room), and
  // makes it if there is room for it.
  static absl::StatusOr<std::unique_ptr<SpaceGuard>> Open(SpaceOptions options);

  // OK if `incoming` more bytes may be written now; RESOURCE_EXHAUSTED (saying the cluster is out
  // of space) if that would take the disk below the floor.
  absl::Status CheckWrite(uint64_t incoming);
  // After a write failed for lack of space: deletes the first half of the reserve. True if it
  // freed anything.
  bool ReleaseReserve();
  // Re-reads the free space, re-makes the reserve when there is room; returns whether writes are
  // accepted. Called periodically by the storage app.
  bool RunOnce();

  // Whether new data is accepted (as of the last check).
  bool writable() const { return writable_.load(std::memory_order_relaxed); }
  uint64_t last_free_bytes() const { return last_free_.load(std::memory_order_relaxed); }
  // The floor in force (min_free_bytes, or less on a small disk).
  uint64_t min_free_bytes() const { return options_.min_free_bytes; }
  uint64_t total_bytes() const { return total_bytes_; }
  uint64_t reserve_bytes() const { return options_.reserve_bytes; }

 private:
  explicit SpaceGuard(SpaceOptions options);
  absl::StatusOr<uint64_t> FreeBytes();
  // The free space needed to accept writes now (more while refusing: hysteresis).
  uint64_t Floor() const;
  // Makes the reserve files that are missing while the disk has room for them above the floor.
  void MaybeMakeReserve(uint64_t free) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static bool MakeReserveFile(const std::string& path, uint64_t bytes);
  std::string ReservePath(int i) const;
  // Deletes reserve file `i`; true if it was there.
  bool Release(int i);

  const SpaceOptions options_;
  uint64_t total_bytes_ = 0;
  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> last_free_{0};
  absl::Mutex mu_;
  bool reserve_present_[2] ABSL_GUARDED_BY(mu_) = {false, false};
};

// The free bytes (for unprivileged users) of the filesystem holding `dir`.
absl::StatusOr<uint64_t> StatvfsFreeBytes(const std::string& dir);
// The size of the filesystem holding `dir`.
absl::StatusOr<uint64_t> StatvfsTotalBytes(const std::string& dir);

}  // namespace mcos::storage
