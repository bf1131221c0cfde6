#include "controller/login_limiter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace mcos::controller {
namespace {

// Entries kept per map before the full (forgotten-equivalent) buckets are dropped.
constexpr size_t kMaxEntries = 100000;

std::string RetryIn(double tokens, absl::Duration refill) {
  const double seconds = std::max(1.0, std::ceil((1.0 - tokens) * absl::ToDoubleSeconds(refill)));
  return absl::StrCat(static_cast<int64_t>(seconds), " s");
}

}  // namespace

double LoginLimiter::Level(const Bucket* b, int burst, absl::Duration refill, absl::Time now) {
  if (b == nullptr) return burst;
  const double refilled = absl::FDivDuration(now - b->updated, refill);
  return std::min<double>(burst, b->tokens + std::max(0.0, refilled));
}

void LoginLimiter::Add(absl::flat_hash_map<std::string, Bucket>& map, const std::string& key,
                       double delta, int burst, absl::Duration refill, absl::Time now) {
  if (map.size() >= kMaxEntries) {
    absl::erase_if(
        map, [&](const auto& entry) { return Level(&entry.second, burst, refill, now) >= burst; });
  }
  auto it = map.find(key);
  const double level = Level(it == map.end() ? nullptr : &it->second, burst, refill, now);
  map[key] = Bucket{std::clamp(level + delta, 0.0, static_cast<double>(burst)), now};
}

absl::Status LoginLimiter::Admit(const std::string& name, const std::string& address,
                                 absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto a = addresses_.find(address);
  const double address_level = Level(a == addresses_.end() ? nullptr : &a->second,
                                     limits_.address_burst, limits_.address_refill, now);
  const bool known_good = known_good_.contains(absl::StrCat(name, "\n", address));
  if (address_level < 1.0 && !known_good) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many failed logins from ", address, "; retry in ",
                     RetryIn(address_level, limits_.address_refill)));
  }
  auto n = names_.find(name);
  const double name_level =
      Level(n == names_.end() ? nullptr : &n->second, limits_.name_burst, limits_.name_refill, now);
  const bool clean_address = address_level >= limits_.address_burst;
  if (name_level < 1.0 && !clean_address && !known_good) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many failed logins for this user name; retry in ",
                     RetryIn(name_level, limits_.name_refill)));
  }
  Add(addresses_, address, -1, limits_.address_burst, limits_.address_refill, now);
  Add(names_, name, -1, limits_.name_burst, limits_.name_refill, now);
  return absl::OkStatus();
}

void LoginLimiter::Succeeded(const std::string& name, const std::string& address, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Add(addresses_, address, 1, limits_.address_burst, limits_.address_refill, now);
  Add(names_, name, 1, limits_.name_burst, limits_.name_refill, now);
  if (known_good_.size() >= kMaxEntries) known_good_.clear();
  known_good_.insert(absl::StrCat(name, "\n", address));
}

absl::StatusOr<LoginLimiter::HashSlot> LoginLimiter::AcquireHash() {
  absl::MutexLock lock(&mu_);
  if (hashing_ >= limits_.max_concurrent_hashes) {
    if (waiting_ >= limits_.max_waiting_hashes) {
      return absl::ResourceExhaustedError(
          "too many logins at once: the server checks a few passwords at a time; retry in a "
          "moment");
    }
    ++waiting_;
    auto free_slot = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return hashing_ < limits_.max_concurrent_hashes;
    };
    const bool got = mu_.AwaitWithTimeout(absl::Condition(&free_slot), limits_.hash_wait);
    --waiting_;
    if (!got) {
      return absl::ResourceExhaustedError(
          "too many logins at once: no password check was free in time; retry in a moment");
    }
  }
  ++hashing_;
  return HashSlot(this);
}

LoginLimiter::HashSlot::~HashSlot() {
  if (owner_ == nullptr) return;
  absl::MutexLock lock(&owner_->mu_);
  --owner_->hashing_;
}

}  // namespace mcos::controller
