#include "common/allocator.h"

// tcmalloc's C API, bound weakly: null when the binary is not linked with tcmalloc.
extern "C" {
int MallocExtension_GetNumericProperty(const char* property, size_t* value) __attribute__((weak));
void MallocExtension_ReleaseToSystem(size_t num_bytes) __attribute__((weak));
}

namespace mcos::common {

size_t ReleaseAllocatorMemory(size_t keep_bytes) {
  if (MallocExtension_GetNumericProperty == nullptr || MallocExtension_ReleaseToSystem == nullptr) {
    return 0;
  }
  size_t free_bytes = 0;
  if (!MallocExtension_GetNumericProperty("tcmalloc.pageheap_free_bytes", &free_bytes) ||
      free_bytes <= keep_bytes) {
    return 0;
  }
  MallocExtension_ReleaseToSystem(free_bytes - keep_bytes);
  return free_bytes - keep_bytes;
}

AllocatorTrimmer::AllocatorTrimmer(size_t keep_bytes, absl::Duration period) {
  if (MallocExtension_ReleaseToSystem == nullptr) return;
  daemon_ = std::make_unique<Daemon>("allocator trimmer", period, [keep_bytes](Pacer&) {
    ReleaseAllocatorMemory(keep_bytes);
    return absl::OkStatus();
  });
  daemon_->Start();
}

AllocatorTrimmer::~AllocatorTrimmer() {
  if (daemon_ != nullptr) daemon_->Stop();
}

}  // namespace mcos::common
