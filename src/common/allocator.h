// Gives the allocator's free memory back to the kernel. The long-running binaries are linked with
// tcmalloc (cmake/Allocator.cmake), which keeps freed pages for reuse: after a burst of transfers
// the process would stay at its peak RSS. The trimmer keeps a warm cache and returns the rest every
// second. Without tcmalloc (sanitizer builds, tests) it does nothing. Thread-safe.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/time/time.h"
#include "common/daemon.h"

namespace mcos::common {

// Returns free allocator memory beyond `keep_bytes` to the kernel; returns how much it released.
size_t ReleaseAllocatorMemory(size_t keep_bytes);

class AllocatorTrimmer {
 public:
  explicit AllocatorTrimmer(size_t keep_bytes = size_t{32} << 20,
                            absl::Duration period = absl::Seconds(1));
  ~AllocatorTrimmer();
  AllocatorTrimmer(const AllocatorTrimmer&) = delete;
  AllocatorTrimmer& operator=(const AllocatorTrimmer&) = delete;

 private:
  std::unique_ptr<Daemon> daemon_;  // null without tcmalloc
};

}  // namespace mcos::common
