// The daemon base every background loop runs on: passes at once and then every period, sooner when
// woken, a stop that ends a pass at its next pause, the status of failed passes, and the rate
// budget the repair daemons pace themselves with.
#include "common/daemon.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "tests/support/fake_clock.h"

namespace mcos::common {
namespace {

using testing::FakeClock;

// Waits (real time, up to 10 s) until `done`; false if it never was.
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

TEST(DaemonTest, RunsAPassAtOnceThenWhenWokenAndCountsFailures) {
  std::atomic<int> passes{0};
  FakeClock clock;
  Daemon daemon(
      "test", absl::Hours(1),
      [&](Pacer&) {
        const int n = ++passes;
        return n == 2 ? absl::UnavailableError("peer away") : absl::OkStatus();
      },
      clock);
  daemon.Start();
  ASSERT_TRUE(Eventually([&] { return passes == 1; }));
  // The period is an hour: only Wake brings the next pass.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(passes, 1);
  daemon.Wake();
  ASSERT_TRUE(Eventually([&] { return daemon.status().failed_passes == 1; }));
  DaemonStatus status = daemon.status();
  EXPECT_EQ(status.name, "test");
  EXPECT_EQ(status.passes, 2u);
  EXPECT_EQ(status.last_error, "peer away");
  EXPECT_EQ(status.last_pass_ended, clock.Now());
  daemon.Wake();
  ASSERT_TRUE(Eventually([&] { return daemon.status().passes == 3; }));
  EXPECT_TRUE(daemon.status().last_error.empty());  // a pass that succeeds clears it
  EXPECT_EQ(daemon.status().failed_passes, 1u);
}

TEST(DaemonTest, RepeatsEveryPeriod) {
  std::atomic<int> passes{0};
  Daemon daemon("test", absl::Milliseconds(10), [&](Pacer&) {
    ++passes;
    return absl::OkStatus();
  });
  daemon.Start();
  EXPECT_TRUE(Eventually([&] { return passes >= 5; }));
}

TEST(DaemonTest, StopEndsAPassAtItsNextPause) {
  absl::Notification in_pass;
  std::atomic<bool> paused_false{false};
  Daemon daemon("test", absl::Hours(1), [&](Pacer& pacer) {
    in_pass.Notify();
    paused_false = !pacer.Pause(absl::Hours(1));  // Stop cuts this short
    return absl::OkStatus();
  });
  daemon.Start();
  in_pass.WaitForNotification();
  const absl::Time before = absl::Now();
  daemon.Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  EXPECT_TRUE(paused_false);
  daemon.Stop();   // idempotent
  daemon.Start();  // a stopped daemon does not start again
  EXPECT_EQ(daemon.status().passes, 1u);
}

TEST(DaemonTest, RunOnceRunsOnTheCallersThreadWithoutStart) {
  int passes = 0;
  Daemon daemon("test", absl::Hours(1), [&](Pacer& pacer) {
    EXPECT_TRUE(pacer.Pause(absl::ZeroDuration()));
    ++passes;
    return absl::InternalError("broken");
  });
  EXPECT_EQ(daemon.RunOnce().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(passes, 1);
  EXPECT_EQ(daemon.status().failed_passes, 1u);
}

TEST(RateBudgetTest, PausesSoThatSpendingStaysWithinTheRate) {
  FakeClock clock;
  RateBudget budget(100, clock);                      // 100 units a second
  EXPECT_EQ(budget.Spend(50), absl::ZeroDuration());  // a second's unused budget may go at once
  EXPECT_EQ(budget.Spend(50), absl::ZeroDuration());
  EXPECT_EQ(budget.Spend(100), absl::Seconds(1));  // past it: wait
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(budget.Spend(100), absl::Seconds(1));
  clock.Advance(absl::Seconds(10));  // idle time accrues at most a second
  EXPECT_EQ(budget.Spend(100), absl::ZeroDuration());
  EXPECT_EQ(budget.Spend(100), absl::Seconds(1));
  RateBudget unlimited(0, clock);
  EXPECT_EQ(unlimited.Spend(1e9), absl::ZeroDuration());
}

// Background work takes a quarter of the time (of all its threads together) while the
// foreground's calls arrive, and runs freely once none has arrived for the window.
TEST(ForegroundYieldTest, PausesOnlyWhileTheForegroundIsBusy) {
  FakeClock clock;
  uint64_t calls = 0;
  ForegroundYield yield([&] { return calls; }, 0.25, clock, absl::Milliseconds(500),
                        absl::Milliseconds(100));
  EXPECT_FALSE(yield.Busy());
  EXPECT_EQ(yield.After(absl::Seconds(1)), absl::ZeroDuration());  // nobody is served
  ++calls;
  EXPECT_TRUE(yield.Busy());
  // The first quarter second of work is what the idle second left; then each stretch of work
  // waits three times its length, and two threads' stretches add up.
  EXPECT_EQ(yield.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_EQ(yield.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_EQ(yield.After(absl::Milliseconds(50)), absl::ZeroDuration());
  EXPECT_EQ(yield.After(absl::Milliseconds(40)), absl::Milliseconds(160));
  EXPECT_EQ(yield.After(absl::Milliseconds(40)), absl::Milliseconds(320));
  clock.Advance(absl::Milliseconds(320));
  EXPECT_TRUE(yield.Busy());  // within the window of the last call
  // A stretch longer than `longest` waited rather than worked: it counts as `longest`.
  EXPECT_EQ(yield.After(absl::Seconds(4)), absl::Milliseconds(400));
  // No call for longer than the window: no pause.
  clock.Advance(absl::Milliseconds(400));
  EXPECT_FALSE(yield.Busy());
  EXPECT_EQ(yield.After(absl::Seconds(5)), absl::ZeroDuration());
  // A share of 1, or no count, never pauses.
  ForegroundYield full([&] { return ++calls; }, 1.0, clock);
  EXPECT_EQ(full.After(absl::Seconds(5)), absl::ZeroDuration());
  ForegroundYield none(nullptr, 0.25, clock);
  EXPECT_FALSE(none.Busy());
  EXPECT_EQ(none.After(absl::Seconds(5)), absl::ZeroDuration());
}

}  // namespace
}  // namespace mcos::common
