// The replication queue's sender over clusters whose storage is storage::MemoryEngine (through
// replication::EngineReplica), with the controller's queue answered here: what it sends, drops and
// retries, and what it reports.
#include "repair/queue_sender.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "storage/memory_engine.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos::repair {
namespace {

using testing::Key;

mcos::v1::Version V(uint64_t hlc) {
  mcos::v1::Version v;
  v.set_hlc(hlc);
  v.set_cluster("a");
  return v;
}

class QueueSenderTest : public ::testing::Test {
 protected:
  QueueSenderTest() {
    for (const char* c : {"a", "b", "c"}) {
      engines_[c] = std::make_unique<storage::MemoryEngine>();
      replicas_[c] = replication::EngineReplica(c, *engines_[c]);
    }
  }

  std::unique_ptr<QueueSender> Make() {
    QueueSenderOptions options;
    options.cluster = "a";
    return std::make_unique<QueueSender>(
        options,
        [this](const mcos::v1::ClaimReplicationsRequest& r)
            -> absl::StatusOr<mcos::v1::ClaimReplicationsResponse> {
          claims_.push_back(r);
          mcos::v1::ClaimReplicationsResponse response;
          for (auto& t : due_) *response.add_tasks() = std::move(t);
          due_.clear();
          return response;
        },
        [this](const mcos::v1::FinishReplicationsRequest& r) {
          for (const auto& result : r.results()) {
            results_[result.task().key().object() + ">" + result.task().target()] = result;
          }
          return absl::OkStatus();
        },
        [this](const std::string& c) -> std::shared_ptr<replication::Replica> {
          return down_.count(c) > 0 ? nullptr : replicas_[c];
        });
  }

  void Queue(const std::string& object, uint64_t hlc, const std::string& target,
             bool tombstone = false, uint32_t attempts = 0) {
    mcos::v1::ClaimedReplication& c = due_.emplace_back();
    *c.mutable_task()->mutable_key() = Key(object);
    *c.mutable_task()->mutable_version() = V(hlc);
    c.mutable_task()->set_target(target);
    c.mutable_task()->set_tombstone(tombstone);
    c.set_attempts(attempts);
  }

  void Put(const std::string& cluster, const std::string& object, uint64_t hlc) {
    mcos::v1::StoragePutHeader h;
    *h.mutable_key() = Key(object);
    *h.mutable_version() = V(hlc);
    auto stream = engines_[cluster]->BeginPut(h);
    MCOS_ASSERT_OK(stream);
    MCOS_ASSERT_OK((*stream)->Append(object + "@" + std::to_string(hlc)));
    MCOS_ASSERT_OK((*stream)->Commit({}));
  }

  // "<hlc>" or "<hlc> tombstone" of what `cluster` holds; "nothing".
  std::string Held(const std::string& cluster, const std::string& object) {
    auto r = engines_[cluster]->Stat(Key(object), /*include_tombstone=*/true);
    if (!r.ok()) return "nothing";
    return std::to_string(r->version().hlc()) + (r->tombstone() ? " tombstone" : "");
  }

  std::map<std::string, std::unique_ptr<storage::MemoryEngine>> engines_;
  std::map<std::string, std::shared_ptr<replication::Replica>> replicas_;
  std::set<std::string> down_;
  std::vector<mcos::v1::ClaimedReplication> due_;
  std::vector<mcos::v1::ClaimReplicationsRequest> claims_;
  std::map<std::string, mcos::v1::FinishedReplication> results_;  // by "object>target"
};

TEST_F(QueueSenderTest, SendsTheNewestHeldDropsWhatIsGoneAndRetriesAClusterThatIsDown) {
  Put("a", "x", 10);
  Put("a", "newer", 7);  // queued at 5, held at 7: 7 goes
  Queue("x", 10, "b");
  Queue("newer", 5, "b");
  Queue("gone", 10, "b");  // nothing held here any more
  Queue("deleted", 12, "b", /*tombstone=*/true);
  Queue("x", 10, "c", false, /*attempts=*/3);
  Queue("newer", 5, "c");
  down_ = {"c"};
  auto sender = Make();
  common::NoPause pacer;
  MCOS_ASSERT_OK(sender->RunOnce(pacer));

  EXPECT_EQ(Held("b", "x"), "10");
  EXPECT_EQ(Held("b", "newer"), "7");
  EXPECT_EQ(Held("b", "deleted"), "12 tombstone");
  EXPECT_EQ(Held("b", "gone"), "nothing");
  EXPECT_TRUE(results_["gone>b"].done());
  EXPECT_NE(results_["gone>b"].error().find("no longer holds"), std::string::npos);
  for (const char* done : {"x>b", "newer>b", "deleted>b"}) {
    EXPECT_TRUE(results_[done].done()) << done;
    EXPECT_TRUE(results_[done].error().empty()) << done;
  }
  // The tasks for c: the first failed (backoff 0.25 s doubled per attempt), the second skipped.
  EXPECT_EQ(Held("c", "x"), "nothing");
  EXPECT_FALSE(results_["x>c"].done());
  EXPECT_EQ(results_["x>c"].retry_after_ms(), 2000u);
  EXPECT_FALSE(results_["newer>c"].done());
  EXPECT_EQ(results_["newer>c"].retry_after_ms(), 250u);
  const QueueSenderStatus status = sender->Status();
  EXPECT_EQ(status.delivered, 3u);
  EXPECT_EQ(status.dropped, 1u);
  EXPECT_EQ(status.failures, 2u);
  // It claimed again after tasks went out, and stopped when none was due.
  EXPECT_EQ(claims_.size(), 2u);
  EXPECT_EQ(claims_[0].lease_ms(), 60000u);
}

TEST_F(QueueSenderTest, AStoppedPassLeavesTheRestLeasedAndUnreported) {
  Put("a", "x", 10);
  Put("a", "y", 10);
  Queue("x", 10, "b");
  Queue("y", 10, "b");
  struct StopAfterOne final : common::Pacer {
    int calls = 0;
    bool Pause(absl::Duration) override { return ++calls <= 1; }
  } pacer;
  auto sender = Make();
  MCOS_ASSERT_OK(sender->RunOnce(pacer));
  EXPECT_EQ(results_.size(), 1u);  // "y" is claimed again once its lease ends
  EXPECT_EQ(Held("b", "x"), "10");
  EXPECT_EQ(Held("b", "y"), "nothing");
  EXPECT_EQ(claims_.size(), 1u);
}

}  // namespace
}  // namespace mcos::repair
