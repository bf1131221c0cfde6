#include "controller/credential_broadcast.h"

#include <algorithm>
#include <vector>

namespace mcos::controller {

void CredentialBroadcast::Publish(uint64_t revision) {
  absl::MutexLock lock(&mu_);
  revision_ = std::max(revision_, revision);
  changed_.SignalAll();
}

uint64_t CredentialBroadcast::revision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

uint64_t CredentialBroadcast::Watch(const std::string& watcher, uint64_t known, absl::Duration wait,
                                    const std::function<bool()>& cancelled) {
  const absl::Time deadline = absl::Now() + std::min(wait, absl::Seconds(30));
  absl::MutexLock lock(&mu_);
  Watcher& w = watchers_[watcher];
  w.acknowledged = std::max(w.acknowledged, known);
  // A long poll counts as contact for as long as it is parked.
  w.last_seen = deadline;
  changed_.SignalAll();
  while (known != 0 && revision_ <= known && absl::Now() < deadline &&
         !(cancelled && cancelled())) {
    changed_.WaitWithDeadline(&mu_, std::min(deadline, absl::Now() + absl::Milliseconds(100)));
  }
  watchers_[watcher].last_seen = absl::Now();
  return revision_;
}

std::vector<std::string> CredentialBroadcast::AwaitAcknowledged(uint64_t revision,
                                                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    const absl::Time now = absl::Now();
    std::vector<std::string> behind;
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      if (it->second.last_seen + forget_after_ < now) {
        watchers_.erase(it++);
        continue;
      }
      if (it->second.acknowledged < revision) behind.push_back(it->first);
      ++it;
    }
    if (behind.empty() || now >= deadline) return behind;
    changed_.WaitWithDeadline(&mu_, std::min(deadline, now + absl::Milliseconds(50)));
  }
}

}  // namespace mcos::controller
