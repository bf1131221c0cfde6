// One shape for the background loops of every process (shared/STYLE.md §3, Swift's
// common/daemon.py): a pass (`RunOnce`) that does one round of work, repeated by a thread the
// daemon owns every `period`, sooner when woken; tests call the pass directly with a Pacer that
// never waits. A failed pass is logged once per new error and counted in the status. Runs the
// repair daemons (anti-entropy, the scrubber, tombstone reaping, the replication queue's sender),
// the event publisher, the replica prober, discovery, the controller's health checks and
// federation reconciler, the storage node's maintenance and the allocator trimmer; the rebalancer
// is to follow.
// (Long polls that a Stop cancels, like the resolver's ring watch, keep their own thread.)
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace mcos::common {

// What a pass may ask of whatever runs it.
class Pacer {
 public:
  virtual ~Pacer() = default;
  // Waits `d` (a rate limit); false when the pass should end at once (the daemon is stopping).
  virtual bool Pause(absl::Duration d) = 0;
};

// A Pacer that never waits (tests, and passes run by hand).
class NoPause final : public Pacer {
 public:
  bool Pause(absl::Duration) override { return true; }
};

// Spends a budget of `rate` units per second: Spend(n) answers how long to pause so that the
// units spent so far stay within the rate (at most one second of them may go at once).
// Thread-compatible (one pass uses it).
class RateBudget {
 public:
  RateBudget(double rate, common::Clock& clock) : rate_(rate), clock_(clock) {}
  // Zero when the rate is not positive (no limit).
  absl::Duration Spend(double units);
  // From now on (an operator changed it).
  void SetRate(double rate) { rate_ = rate; }
  double rate() const { return rate_; }

 private:
  double rate_;
  common::Clock& clock_;
  absl::Time free_at_ = absl::InfinitePast();
};

// Background work that gives way to a foreground (user calls): while the foreground is busy (its
// count of calls moved within the last `window`), the work of all threads together may occupy at
// most `share` of the time (after each stretch of work a thread asks After() how long to pause),
// so that a move does not take the CPU and disk from the foreground's calls (docs/placement.md,
// "Moving data"); it goes at its full rate when nobody is served. A stretch counts at most
// `longest` (one longer waited on something stopped rather than worked), so a stall of every
// thread costs at most threads x longest / share of pauses. A share of 1 or more, or no count,
// never pauses. Thread-safe.
class ForegroundYield {
 public:
  ForegroundYield(std::function<uint64_t()> calls, double share, common::Clock& clock,
                  absl::Duration window = absl::Milliseconds(500),
                  absl::Duration longest = absl::Milliseconds(100));
  // The pause after a stretch of work that took `took` (zero while the foreground is idle).
  absl::Duration After(absl::Duration took);
  // Whether the foreground was busy within the window.
  bool Busy();
  double share() const { return share_; }

 private:
  bool BusyLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::function<uint64_t()> calls_;
  const double share_;
  common::Clock& clock_;
  const absl::Duration window_;
  const absl::Duration longest_;
  absl::Mutex mu_;
  uint64_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time busy_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Seconds of work at `share_` per second of wall time, as a budget.
  RateBudget budget_ ABSL_GUARDED_BY(mu_);
};

struct DaemonStatus {
  std::string name;
  uint64_t passes = 0;
  uint64_t failed_passes = 0;
  absl::Time last_pass_started = absl::InfinitePast();
  absl::Time last_pass_ended = absl::InfinitePast();
  // The last failed pass's error (empty once a pass succeeds).
  std::string last_error;
};

class Daemon final : public Pacer {
 public:
  using Pass = std::function<absl::Status(Pacer&)>;
  // `pass` runs every `period` once started; `clock` must outlive the daemon.
  Daemon(std::string name, absl::Duration period, Pass pass,
         common::Clock& clock = common::SystemClock::Get());
  ~Daemon() override;  // Stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts the thread (the first pass runs at once). Idempotent.
  void Start();
  // Ends the pass under way at its next Pause and joins the thread. Idempotent.
  void Stop();
  // Runs the next pass now (when a pass is under way, right after it).
  void Wake();
  // Runs one pass on the caller's thread and records its outcome.
  absl::Status RunOnce();
  DaemonStatus status() const;

  bool Pause(absl::Duration d) override;

 private:
  void Loop();

  const std::string name_;
  const absl::Duration period_;
  const Pass pass_;
  common::Clock& clock_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  DaemonStatus status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace mcos::common
