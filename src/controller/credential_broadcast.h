// Tells the cluster's servers about credential changes (users added or removed, passwords
// changed) and lets the change wait until they have applied it, so that a removed user's token is
// refused by every server once the admin's call returns. Servers long-poll with the revision they
// hold (ControllerService.WatchCredentials); the next poll after a change acknowledges it. A
// watcher that has not polled for `forget_after` is forgotten (a stopped server). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mcos::controller {

class CredentialBroadcast {
 public:
  explicit CredentialBroadcast(absl::Duration forget_after = absl::Seconds(40))
      : forget_after_(forget_after) {}

  // A change stored at `revision` (revisions only grow).
  void Publish(uint64_t revision);
  uint64_t revision();

  // Called by a watcher that holds `known`: records the acknowledgement, then waits up to `wait`
  // (at most 30 s) for a newer revision, or until `cancelled`. Returns the current revision.
  uint64_t Watch(const std::string& watcher, uint64_t known, absl::Duration wait,
                 const std::function<bool()>& cancelled);

  // Waits until every live watcher acknowledged `revision`, at most `timeout`. Returns the
  // watchers that did not (empty: all did).
  std::vector<std::string> AwaitAcknowledged(uint64_t revision, absl::Duration timeout);

 private:
  struct Watcher {
    uint64_t acknowledged = 0;
    absl::Time last_seen;
  };
  const absl::Duration forget_after_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::controller
