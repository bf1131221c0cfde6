// A few process-wide side threads for work that splits in two independent halves (the MD5 and the
// SHA-256 of an upload's bytes). There are at most kSideThreads of them, however many calls wait on
// clients: a stalled upload holds none.
#pragma once

#include "absl/functional/function_ref.h"

namespace mcos::common {

inline constexpr int kSideThreads = 4;

// Runs `there` on an idle side thread and `here` on the calling thread, and returns when both
// returned (so both may use the caller's stack). When every side thread is busy, runs `here` then
// `there` on the calling thread.
void RunBeside(absl::FunctionRef<void()> there, absl::FunctionRef<void()> here);

}  // namespace mcos::common
