#include "storage/space_guard.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace mcos::storage {
namespace {

// Two halves: the first is given back when a write hits ENOSPC while the node runs, the second
// only when the node starts on a disk under the floor, so that a full disk that got full again
// after the first was used still leaves room to start.
constexpr const char* kReserveFiles[] = {"space-reserve", "space-reserve-start"};

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

}  // namespace

namespace {

// `blocks(st)` blocks of the filesystem holding `dir`, in bytes; `what` names them in errors.
template <typename Blocks>
absl::StatusOr<uint64_t> StatvfsBytes(const std::string& dir, absl::string_view what,
                                      Blocks blocks) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the ", what, " of the storage disk: ", std::strerror(errno)));
  }
  return static_cast<uint64_t>(blocks(st)) * static_cast<uint64_t>(st.f_frsize);
}

}  // namespace

absl::StatusOr<uint64_t> StatvfsFreeBytes(const std::string& dir) {
  return StatvfsBytes(dir, "free space", [](const struct statvfs& st) { return st.f_bavail; });
}

absl::StatusOr<uint64_t> StatvfsTotalBytes(const std::string& dir) {
  return StatvfsBytes(dir, "size", [](const struct statvfs& st) { return st.f_blocks; });
}

SpaceGuard::SpaceGuard(SpaceOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SpaceGuard>> SpaceGuard::Open(SpaceOptions options) {
  if (!options.free_bytes) options.free_bytes = StatvfsFreeBytes;
  if (!options.total_bytes) options.total_bytes = StatvfsTotalBytes;
  auto total = options.total_bytes(options.dir);
  if (!total.ok()) return total.status();
  if (options.min_free_percent > 0) {
    // A floor above a small disk's size would refuse every write: on such a disk the floor (and
    // the reserve) are a share of it instead, as Ceph's full ratios are.
    const uint64_t share = *total / 100 * options.min_free_percent;
    options.min_free_bytes = std::min(options.min_free_bytes, share);
    options.reserve_bytes = std::min(options.reserve_bytes, share);
  }
  std::unique_ptr<SpaceGuard> guard(new SpaceGuard(std::move(options)));
  guard->total_bytes_ = *total;
  auto free = guard->FreeBytes();
  if (!free.ok()) return free.status();
  {
    absl::MutexLock lock(&guard->mu_);
    for (int i = 0; i < 2; ++i) {
      std::error_code ec;
      guard->reserve_present_[i] = std::filesystem::exists(guard->ReservePath(i), ec);
    }
  }
  if (*free < guard->options_.min_free_bytes) {
    const bool first = guard->Release(0);
    const bool second = guard->Release(1);
    if (first || second) {
      common::LogWarning("the storage disk has only ", Mib(*free), " free, under the floor of ",
                         Mib(guard->options_.min_free_bytes),
                         ": deleted the space reserve so that the node can start; new data is "
                         "refused until objects are deleted or the disk grows");
    }
  }
  guard->RunOnce();
  return guard;
}

std::string SpaceGuard::ReservePath(int i) const {
  return (std::filesystem::path(options_.dir) / kReserveFiles[i]).string();
}

absl::StatusOr<uint64_t> SpaceGuard::FreeBytes() {
  auto free = options_.free_bytes(options_.dir);
  if (free.ok()) last_free_.store(*free, std::memory_order_relaxed);
  return free;
}

uint64_t SpaceGuard::Floor() const {
  // Once refusing, keep refusing until a quarter of the floor more is free, so that the space an
  // aborted upload gives back does not flip the node between full and not full.
  return writable() ? options_.min_free_bytes
                    : options_.min_free_bytes + options_.min_free_bytes / 4;
}

absl::Status SpaceGuard::CheckWrite(uint64_t incoming) {
  auto free = FreeBytes();
  if (!free.ok()) return absl::OkStatus();  // cannot tell: let the write find out
  const uint64_t floor = Floor();
  if (*free >= floor && *free - floor >= incoming) return absl::OkStatus();
  if (*free < floor) {
    if (writable_.exchange(false)) {
      common::LogWarning("storage disk is out of space (", Mib(*free), " free, floor ",
                         Mib(options_.min_free_bytes),
                         "): new data is refused; reads and deletes go on");
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("the cluster is out of space: its storage disk has ", Mib(*free),
                     " free and keeps ", Mib(options_.min_free_bytes),
                     " for deletes and recovery; delete objects or add capacity, then retry"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the cluster is out of space for this object: ", Mib(incoming), " do not fit in the ",
      Mib(*free - floor), " its storage disk can still take; delete objects or add capacity"));
}

bool SpaceGuard::ReleaseReserve() { return Release(0); }

bool SpaceGuard::Release(int i) {
  absl::MutexLock lock(&mu_);
  if (!reserve_present_[i]) return false;
  std::error_code ec;
  std::filesystem::remove(ReservePath(i), ec);
  if (ec) {
    common::LogWarning("cannot delete the space reserve ", ReservePath(i), ": ", ec.message());
    return false;
  }
  reserve_present_[i] = false;
  common::LogWarning("deleted the ", Mib(options_.reserve_bytes / 2), " space reserve ",
                     kReserveFiles[i], ": the storage disk is full");
  return true;
}

bool SpaceGuard::RunOnce() {
  auto free = FreeBytes();
  if (!free.ok()) return writable();
  const bool now_writable = *free >= Floor();
  if (writable_.exchange(now_writable) != now_writable) {
    if (now_writable) {
      common::LogInfo("storage disk has ", Mib(*free), " free again: new data is accepted");
    } else {
      common::LogWarning("storage disk is out of space (", Mib(*free), " free, floor ",
                         Mib(options_.min_free_bytes),
                         "): new data is refused; reads and deletes go on");
    }
  }
  absl::MutexLock lock(&mu_);
  MaybeMakeReserve(*free);
  return now_writable;
}

void SpaceGuard::MaybeMakeReserve(uint64_t free) {
  const uint64_t half = options_.reserve_bytes / 2;
  for (int i = 0; i < 2; ++i) {
    if (reserve_present_[i] || half == 0) continue;
    if (free < options_.min_free_bytes + half) return;
    if (!MakeReserveFile(ReservePath(i), half)) return;
    reserve_present_[i] = true;
    free -= half;
  }
}

bool SpaceGuard::MakeReserveFile(const std::string& path, uint64_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    common::LogWarning("cannot make the space reserve ", path, ": ", std::strerror(errno));
    return false;
  }
  int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == EOPNOTSUPP || rc == EINVAL) {  // a filesystem without fallocate: write zeros
    const std::string zeros(size_t{1} << 20, '\0');
    rc = 0;
    for (uint64_t done = 0; done < bytes && rc == 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes - done));
      const ssize_t w = ::write(fd, zeros.data(), n);
      if (w <= 0) rc = errno;
      done += static_cast<uint64_t>(w > 0 ? w : 0);
    }
  }
  if (rc == 0 && ::fsync(fd) != 0) rc = errno;
  ::close(fd);
  if (rc != 0) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    common::LogWarning("cannot make the space reserve ", path, ": ", std::strerror(rc));
    return false;
  }
  return true;
}

}  // namespace mcos::storage
