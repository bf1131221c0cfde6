#include "controller/credential_broadcast.h"

#include <gtest/gtest.h>

#include <thread>

namespace mcos::controller {
namespace {

TEST(CredentialBroadcastTest, AChangeWaitsUntilEveryWatcherPolledAgain) {
  CredentialBroadcast broadcast;
  broadcast.Publish(10);
  // Two servers hold revision 10 and park their long polls.
  std::thread a([&] { EXPECT_EQ(broadcast.Watch("a", 10, absl::Seconds(5), nullptr), 11u); });
  std::thread b([&] { EXPECT_EQ(broadcast.Watch("b", 10, absl::Seconds(5), nullptr), 11u); });
  absl::SleepFor(absl::Milliseconds(50));
  broadcast.Publish(11);
  a.join();
  b.join();
  // Woken with 11; only "a" comes back to acknowledge it in time.
  std::thread again([&] { broadcast.Watch("a", 11, absl::Milliseconds(300), nullptr); });
  const auto behind = broadcast.AwaitAcknowledged(11, absl::Milliseconds(200));
  again.join();
  ASSERT_EQ(behind.size(), 1u);
  EXPECT_EQ(behind[0], "b");
  broadcast.Watch("b", 11, absl::ZeroDuration(), nullptr);
  EXPECT_TRUE(broadcast.AwaitAcknowledged(11, absl::Milliseconds(200)).empty());
}

TEST(CredentialBroadcastTest, ForgetsWatchersThatStoppedPolling) {
  CredentialBroadcast broadcast(/*forget_after=*/absl::Milliseconds(50));
  broadcast.Publish(3);
  broadcast.Watch("gone", 3, absl::ZeroDuration(), nullptr);
  broadcast.Publish(4);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(broadcast.AwaitAcknowledged(4, absl::Seconds(1)).empty());
}

}  // namespace
}  // namespace mcos::controller
