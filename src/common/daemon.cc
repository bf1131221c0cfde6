#include "common/daemon.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"

namespace mcos::common {

absl::Duration RateBudget::Spend(double units) {
  if (rate_ <= 0 || units <= 0) return absl::ZeroDuration();
  const absl::Time now = clock_.Now();
  // Unused budget accrues for at most a second.
  free_at_ = std::max(free_at_, now - absl::Seconds(1));
  free_at_ += absl::Seconds(units / rate_);
  return std::max(free_at_ - now, absl::ZeroDuration());
}

ForegroundYield::ForegroundYield(std::function<uint64_t()> calls, double share,
                                 common::Clock& clock, absl::Duration window,
                                 absl::Duration longest)
    : calls_(std::move(calls)),
      share_(share),
      clock_(clock),
      window_(window),
      longest_(longest),
      budget_(share, clock) {
  if (calls_) seen_ = calls_();
}

bool ForegroundYield::BusyLocked(absl::Time now) {
  if (!calls_) return false;
  const uint64_t calls = calls_();
  if (calls != seen_) {
    seen_ = calls;
    busy_until_ = now + window_;
  }
  return now < busy_until_;
}

bool ForegroundYield::Busy() {
  absl::MutexLock lock(&mu_);
  return BusyLocked(clock_.Now());
}

absl::Duration ForegroundYield::After(absl::Duration took) {
  if (share_ >= 1 || share_ <= 0 || !calls_) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  // Work done while the foreground is idle spends nothing.
  if (!BusyLocked(clock_.Now())) return absl::ZeroDuration();
  return budget_.Spend(absl::ToDoubleSeconds(std::clamp(took, absl::ZeroDuration(), longest_)));
}

Daemon::Daemon(std::string name, absl::Duration period, Pass pass, common::Clock& clock)
    : name_(std::move(name)), period_(period), pass_(std::move(pass)), clock_(clock) {
  status_.name = name_;
}

Daemon::~Daemon() { Stop(); }

void Daemon::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Daemon::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Daemon::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

bool Daemon::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  if (d > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

absl::Status Daemon::RunOnce() {
  const absl::Time started = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    status_.last_pass_started = started;
  }
  absl::Status s = pass_(*this);
  absl::MutexLock lock(&mu_);
  ++status_.passes;
  status_.last_pass_ended = clock_.Now();
  if (s.ok()) {
    status_.last_error.clear();
  } else {
    ++status_.failed_passes;
    status_.last_error = std::string(s.message());
  }
  return s;
}

DaemonStatus Daemon::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void Daemon::Loop() {
  std::string last_logged;
  while (true) {
    absl::Status s = RunOnce();
    // One line per new error, not one per pass.
    if (!s.ok() && s.ToString() != last_logged) {
      common::LogWarning(name_, ": ", s.ToString());
      last_logged = s.ToString();
    } else if (s.ok()) {
      last_logged.clear();
    }
    absl::MutexLock lock(&mu_);
    auto due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
    mu_.AwaitWithTimeout(absl::Condition(&due), period_);
    if (stopping_) return;
    woken_ = false;
  }
}

}  // namespace mcos::common
