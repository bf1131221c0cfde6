// Gives the allocator's free memory back to the kernel. The long-running binaries are linked with
// tcmalloc (cmake/Allocator.cmake), which keeps freed pages for reuse: after a burst of transfers
// the process would stay at its peak RSS. The trimmer keeps a warm cache and returns the rest every
// second. Without tcmalloc (sanitizer builds, tests) it does nothing. Thread-safe.
#pragma once

#include <cstddef>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

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
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace mcos::common
