// common::RunBeside: the two halves run at once while a side thread is idle, one after the other
// on the caller's thread when none is, and every call returns only after both halves.
#include "common/side_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace mcos::common {
namespace {

TEST(SideThreadTest, BothHalvesRunAtOnceAndTheCallReturnsAfterBoth) {
  absl::Notification there_started;
  bool there_done = false;
  bool overlapped = false;
  RunBeside(
      [&] {
        there_started.Notify();
        absl::SleepFor(absl::Milliseconds(20));
        there_done = true;
      },
      [&] { overlapped = there_started.WaitForNotificationWithTimeout(absl::Seconds(10)); });
  EXPECT_TRUE(overlapped) << "the side half did not run while this one did";
  EXPECT_TRUE(there_done);
}

TEST(SideThreadTest, MoreCallersThanSideThreadsAllFinishBothHalves) {
  std::atomic<int> halves{0};
  std::vector<std::thread> callers;
  constexpr int kCallers = 3 * kSideThreads;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        std::atomic<int> mine{0};
        RunBeside([&] { ++mine; }, [&] { ++mine; });
        EXPECT_EQ(mine.load(), 2);
        halves += mine.load();
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(halves.load(), kCallers * 50 * 2);
}

}  // namespace
}  // namespace mcos::common
