#include "common/stream_watchdog.h"

#include <vector>

namespace mcos::common {

StreamWatchdog::StreamWatchdog(absl::Duration idle_timeout) : idle_timeout_(idle_timeout) {}

StreamWatchdog::~StreamWatchdog() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void StreamWatchdog::Add(const std::shared_ptr<Stream>& stream) {
  if (idle_timeout_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  streams_.emplace(stream.get(), stream);
}

void StreamWatchdog::Remove(const Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

int StreamWatchdog::RunOnce(absl::Time now) {
  std::vector<std::pair<std::shared_ptr<Stream>, absl::Duration>> idle;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = streams_.begin(); it != streams_.end();) {
      const absl::Duration d = it->second->IdleFor(now);
      if (d >= idle_timeout_) {
        idle.emplace_back(std::move(it->second), d);
        streams_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& [stream, d] : idle) stream->OnIdle(d);
  return static_cast<int>(idle.size());
}

void StreamWatchdog::Start() {
  if (idle_timeout_ <= absl::ZeroDuration() || thread_.joinable()) return;
  const absl::Duration period = std::max(idle_timeout_ / 10, absl::Milliseconds(100));
  thread_ = std::thread([this, period] {
    while (!stop_.WaitForNotificationWithTimeout(period)) RunOnce(absl::Now());
  });
}

}  // namespace mcos::common
