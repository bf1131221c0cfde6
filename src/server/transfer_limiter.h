// Admission control for streaming transfers (uploads or downloads): at most `max_total` at once on
// this server and at most `max_per_user` for one user. A transfer over a limit is refused at once
// with RESOURCE_EXHAUSTED instead of waiting for a thread or holding memory, so a slow or hostile
// client cannot crowd out the others. Thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace mcos::server {

class TransferLimiter {
 public:
  // `what` names the transfers in messages ("uploads"); a limit <= 0 means none.
  TransferLimiter(std::string what, int max_total, int max_per_user);

  // Admits one transfer of `user`: OK (then call Release once it ends), or RESOURCE_EXHAUSTED
  // naming the limit that was hit.
  absl::Status Acquire(const std::string& user);
  void Release(const std::string& user);

 private:
  const std::string what_;
  const int max_total_;
  const int max_per_user_;
  absl::Mutex mu_;
  int total_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> per_user_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::server
