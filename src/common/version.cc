#include "common/version.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcos::common {

SystemClock& SystemClock::Get() {
  static auto* clock = new SystemClock();
  return *clock;
}

uint64_t MakeHlc(absl::Time t, uint16_t logical) {
  const int64_t ms = std::max<int64_t>(0, absl::ToUnixMillis(t));
  return (static_cast<uint64_t>(ms) << kHlcLogicalBits) | logical;
}

absl::Time HlcTime(uint64_t hlc) {
  return absl::FromUnixMillis(static_cast<int64_t>(hlc >> kHlcLogicalBits));
}

uint64_t HybridLogicalClock::PhysicalNow() { return MakeHlc(clock_.Now()); }

uint64_t HybridLogicalClock::Now() {
  const uint64_t pt = PhysicalNow();
  absl::MutexLock lock(&mu_);
  last_ = std::max(pt, last_ + 1);
  return last_;
}

uint64_t HybridLogicalClock::Observe(uint64_t remote) {
  const uint64_t pt = PhysicalNow();
  absl::MutexLock lock(&mu_);
  last_ = std::max(pt, std::max(last_, remote) + 1);
  return last_;
}

int CompareVersions(const mcos::v1::Version& a, const mcos::v1::Version& b) {
  if (a.hlc() != b.hlc()) return a.hlc() < b.hlc() ? -1 : 1;
  const int c = a.cluster().compare(b.cluster());
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

mcos::v1::Version RestampAbove(const mcos::v1::Version& newer, const mcos::v1::Version& mine) {
  mcos::v1::Version v;
  v.set_hlc(std::max(mine.hlc(), newer.hlc() + 1));
  v.set_cluster(mine.cluster());
  return v;
}

std::string VersionToString(const mcos::v1::Version& v) {
  return absl::StrFormat("%016x-%s", v.hlc(), v.cluster());
}

absl::StatusOr<mcos::v1::Version> ParseVersion(absl::string_view text) {
  if (text.size() < 17 || text[16] != '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("version '", text, "' is not of the form <16 hex digits>-<cluster>"));
  }
  uint64_t hlc = 0;
  for (char c : text.substr(0, 16)) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("version '", text, "' has a non-hex character in its clock part"));
    }
    hlc = (hlc << 4) | static_cast<uint64_t>(d);
  }
  mcos::v1::Version v;
  v.set_hlc(hlc);
  v.set_cluster(std::string(text.substr(17)));
  return v;
}

}  // namespace mcos::common
