// Limits password guessing without letting an attacker lock anyone out, and bounds the memory
// that password hashing takes.
// - Each client address has a bucket of failures (`address_burst`, one more every
//   `address_refill`): an address that ran out is refused (RESOURCE_EXHAUSTED) before any hash,
//   except for names that logged in from it before (people behind one NAT).
// - Each user name has a bucket too, shared by all addresses (`name_burst`, `name_refill`): once
//   it ran out, the name can still be logged in to from addresses that have no failures left
//   over (a clean bucket) and from addresses that logged in to it before, so that guessing from
//   elsewhere never stops its owner.
// - At most `max_concurrent_hashes` argon2 hashes run at once (each takes its memory cost, 64 MiB
//   by default); up to `max_waiting_hashes` more wait up to `hash_wait`, the rest are refused.
// Thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mcos::controller {

struct LoginLimits {
  int address_burst = 10;
  absl::Duration address_refill = absl::Seconds(6);
  int name_burst = 30;
  absl::Duration name_refill = absl::Seconds(2);
  int max_concurrent_hashes = 4;
  int max_waiting_hashes = 64;
  absl::Duration hash_wait = absl::Seconds(10);
};

class LoginLimiter {
 public:
  explicit LoginLimiter(LoginLimits limits) : limits_(limits) {}

  // Before checking a password: takes an attempt from `address`'s and `name`'s buckets, or
  // answers RESOURCE_EXHAUSTED (saying when to retry) if `address`, or `name` for this address,
  // has none left at `now`. Taking before the check bounds parallel guesses too.
  absl::Status Admit(const std::string& name, const std::string& address, absl::Time now);
  // The password was right: the attempt is given back, and `address` is known good for `name`.
  void Succeeded(const std::string& name, const std::string& address, absl::Time now);

  // Holds one of the concurrent hash slots while alive.
  class HashSlot {
   public:
    explicit HashSlot(LoginLimiter* owner) : owner_(owner) {}
    HashSlot(HashSlot&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    HashSlot& operator=(HashSlot&&) = delete;
    ~HashSlot();

   private:
    LoginLimiter* owner_;
  };
  // A hash slot, waiting for one if needed; RESOURCE_EXHAUSTED when too many wait or the wait
  // is over.
  absl::StatusOr<HashSlot> AcquireHash();

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  // Tokens of `b` at `now` (a missing bucket is full).
  static double Level(const Bucket* b, int burst, absl::Duration refill, absl::Time now);
  // Adds `delta` attempts to `key`'s bucket (within 0..burst).
  static void Add(absl::flat_hash_map<std::string, Bucket>& map, const std::string& key,
                  double delta, int burst, absl::Duration refill, absl::Time now);

  const LoginLimits limits_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> addresses_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Bucket> names_ ABSL_GUARDED_BY(mu_);
  // name + '\n' + address of successful logins (bounded).
  absl::flat_hash_set<std::string> known_good_ ABSL_GUARDED_BY(mu_);
  int hashing_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mcos::controller
