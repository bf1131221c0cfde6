// Hybrid logical clock and version stamps. A version is (hlc, cluster): hlc's upper 48 bits are
// milliseconds since the Unix epoch, its lower 16 bits a logical counter. Versions are totally
// ordered by hlc, then cluster id bytewise; their text form "<16 hex digits>-<cluster>" sorts
// bytewise in the same order, so clients may compare the strings.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "mcos/v1/common.pb.h"

namespace mcos::common {

inline constexpr int kHlcLogicalBits = 16;

// Issues strictly increasing HLC readings that never run behind the local clock nor behind any
// reading passed to Observe(). Thread-safe. `clock` must outlive this.
class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(Clock& clock) : clock_(clock) {}

  // A reading greater than every reading returned or observed before.
  uint64_t Now();
  // Moves the clock past a remote reading (e.g. from a peer's version stamp) and returns a new
  // reading greater than both.
  uint64_t Observe(uint64_t remote);

 private:
  uint64_t PhysicalNow();

  Clock& clock_;
  absl::Mutex mu_;
  uint64_t last_ ABSL_GUARDED_BY(mu_) = 0;
};

// Builds an hlc value from a time and a logical counter.
uint64_t MakeHlc(absl::Time t, uint16_t logical = 0);
// The physical part of an hlc value.
absl::Time HlcTime(uint64_t hlc);

// <0, 0, >0 as a is older than, the same as, or newer than b.
int CompareVersions(const mcos::v1::Version& a, const mcos::v1::Version& b);
inline bool IsNewer(const mcos::v1::Version& a, const mcos::v1::Version& b) {
  return CompareVersions(a, b) > 0;
}
// The version a write of cluster `mine.cluster()` takes to be newer than `newer`: the next clock
// value after it (the coordinator's write re-stamped above a version it met).
mcos::v1::Version RestampAbove(const mcos::v1::Version& newer, const mcos::v1::Version& mine);
// A version is set when its hlc is non-zero.
inline bool IsSet(const mcos::v1::Version& v) { return v.hlc() != 0; }

// "0001947a3b2c0000-c1".
std::string VersionToString(const mcos::v1::Version& v);
// Inverse of VersionToString; INVALID_ARGUMENT for anything else.
absl::StatusOr<mcos::v1::Version> ParseVersion(absl::string_view text);

}  // namespace mcos::common
