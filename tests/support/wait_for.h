// Polling for a condition that becomes true in the background (a replica catching up, a file
// that RocksDB deletes after a compaction): the tests say how long they give it, never how fast.
#pragma once

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mcos::testing {

// Polls `done` every 20 ms for up to `timeout`; returns how long it took, or the timeout.
inline absl::Duration WaitFor(const std::function<bool()>& done,
                              absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time start = absl::Now();
  while (!done()) {
    if (absl::Now() - start > timeout) return timeout;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::Now() - start;
}

}  // namespace mcos::testing
