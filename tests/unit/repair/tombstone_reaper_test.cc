// Tombstone reaping over three replica clusters whose storage is storage::MemoryEngine (through
// replication::EngineReplica) and a fourth cluster that holds no replica: what is reaped, what is
// kept and for whom. Each cluster's answers are made here the way ServerApp makes them (its
// storage's newest record, its queue).
#include "repair/tombstone_reaper.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "placement/placement.h"
#include "storage/memory_engine.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos::repair {
namespace {

using mcos::v1::ObjectKey;

using testing::Key;

constexpr uint32_t kPower = 3;
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class TombstoneReaperTest : public ::testing::Test {
 protected:
  TombstoneReaperTest() {
    for (const char* c : {"a", "b", "c"}) {
      engines_[c] = std::make_unique<storage::MemoryEngine>();
      replicas_[c] = replication::EngineReplica(c, *engines_[c]);
    }
  }

  // The cluster that reaps `object`'s partition.
  static std::string ReaperFor(const std::string& object) {
    return ReaperOf({"a", "b", "c"},
                    placement::PartitionOf(placement::ObjectHash("u", "c", object), kPower));
  }

  // Every partition of option "gold" is held by a, b and c; d is in the federation only.
  TombstoneReaper::Topology Topology(const std::string& self) {
    SyncSet set;
    set.option = "gold";
    set.partition_power = kPower;
    set.peers.resize(1u << kPower);
    set.held.assign(1u << kPower, true);
    for (auto& peers : set.peers) {
      for (const char* c : {"a", "b", "c"}) {
        if (c != self) peers.push_back(c);
      }
    }
    return {{set}, {"a", "b", "c", "d"}};
  }

  absl::StatusOr<mcos::v1::CheckTombstonesResponse> Check(
      const std::string& cluster, const mcos::v1::CheckTombstonesRequest& request) {
    ++checks_[cluster];
    if (down_.count(cluster) > 0) return absl::UnavailableError(cluster + " is down");
    mcos::v1::CheckTombstonesResponse response;
    for (const auto& t : request.tombstones()) {
      auto& check = *response.add_checks();
      check.set_queued(queued_[cluster].count(t.key().object()) > 0);
      check.set_young(kNow - behind_[cluster] - common::HlcTime(t.version().hlc()) <
                      absl::Hours(1));
      auto engine = engines_.find(cluster);
      if (engine == engines_.end()) continue;
      auto held = engine->second->Stat(t.key(), /*include_tombstone=*/true);
      check.set_held(held.ok() && common::CompareVersions(held->version(), t.version()) >= 0);
    }
    return response;
  }

  absl::StatusOr<mcos::v1::PurgeTombstonesResponse> Purge(
      const std::string& cluster, const mcos::v1::PurgeTombstonesRequest& request) {
    if (down_.count(cluster) > 0) return absl::UnavailableError(cluster + " is down");
    mcos::v1::PurgeTombstonesResponse response;
    for (const auto& t : request.tombstones()) {
      auto purged = replicas_[cluster]->Purge(t.key(), t.version(), absl::InfiniteFuture());
      if (purged.ok() && purged->applied) response.set_purged(response.purged() + 1);
    }
    return response;
  }

  std::unique_ptr<TombstoneReaper> Make(const std::string& self) {
    TombstoneReaperOptions options;
    options.cluster = self;
    options.min_age = absl::Hours(1);
    options.records_per_second = 0;
    return std::make_unique<TombstoneReaper>(
        options,
        [this, self]() -> absl::StatusOr<TombstoneReaper::Topology> {
          ++topology_calls_;
          if (lone_until_call_ >= topology_calls_) {  // as before the cluster was federated
            TombstoneReaper::Topology lone = Topology(self);
            for (auto& peers : lone.sets[0].peers) peers.clear();
            lone.clusters = {self};
            return lone;
          }
          return Topology(self);
        },
        [this, self] { return replicas_[self]; },
        [this](const std::string& c, const mcos::v1::CheckTombstonesRequest& r, absl::Time) {
          return Check(c, r);
        },
        [this](const std::string& c, const mcos::v1::PurgeTombstonesRequest& r, absl::Time) {
          return Purge(c, r);
        },
        clock_);
  }

  // A version written `age` before now.
  static mcos::v1::Version Written(absl::Duration age) {
    mcos::v1::Version v;
    v.set_hlc(common::MakeHlc(kNow - age));
    v.set_cluster("a");
    return v;
  }

  void Put(const std::string& cluster, const std::string& object, absl::Duration age) {
    mcos::v1::StoragePutHeader h;
    *h.mutable_key() = Key(object);
    *h.mutable_version() = Written(age);
    h.set_option("gold");
    auto stream = engines_[cluster]->BeginPut(h);
    MCOS_ASSERT_OK(stream);
    MCOS_ASSERT_OK((*stream)->Append(object));
    MCOS_ASSERT_OK((*stream)->Commit({}));
  }

  void Delete(const std::string& cluster, const std::string& object, absl::Duration age) {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = Key(object);
    *r.mutable_version() = Written(age);
    r.set_option("gold");
    MCOS_ASSERT_OK(engines_[cluster]->Delete(r));
  }

  // "tombstone", "live" or "nothing": what `cluster` holds of `object`.
  std::string Held(const std::string& cluster, const std::string& object) {
    auto r = engines_[cluster]->Stat(Key(object), /*include_tombstone=*/true);
    if (!r.ok()) return "nothing";
    return r->tombstone() ? "tombstone" : "live";
  }

  struct FixedClock final : common::Clock {
    absl::Time Now() override { return kNow; }
  } clock_;
  std::map<std::string, std::unique_ptr<storage::MemoryEngine>> engines_;
  std::map<std::string, std::shared_ptr<replication::Replica>> replicas_;
  std::set<std::string> down_;
  std::map<std::string, std::set<std::string>> queued_;  // cluster -> objects with a task
  std::map<std::string, absl::Duration> behind_;         // how far a cluster's clock is behind
  int topology_calls_ = 0;
  int lone_until_call_ = 0;  // the first this many topologies have this cluster alone
  std::map<std::string, int> checks_;
};

TEST_F(TombstoneReaperTest, ReapsOnlyWhatEveryReplicaHoldsAndNoClusterHasQueued) {
  for (const char* c : {"a", "b", "c"}) {
    Delete(c, "everywhere", absl::Hours(2));
    Delete(c, "young", absl::Minutes(10));
    Delete(c, "queued", absl::Hours(2));
  }
  for (const char* c : {"a", "b"}) {
    Delete(c, "missed", absl::Hours(2));
    Delete(c, "superseded", absl::Hours(2));
  }
  Put("c", "missed", absl::Hours(3));      // c missed the delete: holds an older live version
  Put("c", "superseded", absl::Hours(1));  // c holds a newer live version than the delete
  queued_["d"].insert("queued");           // a cluster with no replica still has a write of it

  common::NoPause pacer;
  ReaperStatus total;  // of the three reapers (each reaps its share of the partitions)
  for (const char* self : {"a", "b", "c"}) {
    auto reaper = Make(self);
    MCOS_ASSERT_OK(reaper->RunOnce(pacer));
    const ReaperStatus status = reaper->Status();
    total.reaped += status.reaped;
    total.waiting += status.waiting;
    total.waiting_on.insert(status.waiting_on.begin(), status.waiting_on.end());
    EXPECT_TRUE(status.last_error.empty()) << status.last_error;
  }
  for (const char* c : {"a", "b", "c"}) {
    EXPECT_EQ(Held(c, "everywhere"), "nothing") << c;
    EXPECT_EQ(Held(c, "young"), "tombstone") << c;
    EXPECT_EQ(Held(c, "queued"), "tombstone") << c;
  }
  for (const char* c : {"a", "b"}) {
    EXPECT_EQ(Held(c, "missed"), "tombstone") << c;  // c could bring "missed" back
    EXPECT_EQ(Held(c, "superseded"), "nothing") << c;
  }
  EXPECT_EQ(Held("c", "missed"), "live");
  EXPECT_EQ(Held("c", "superseded"), "live");  // newer than the tombstone: kept
  EXPECT_EQ(total.reaped, 2u);                 // "everywhere" and "superseded"
  EXPECT_EQ(total.waiting, 2u);                // "missed" and "queued" ("young" is not old enough)
  EXPECT_EQ(total.waiting_on, (std::set<std::string>{"c", "d"}));
}

// A reaper's clock may run ahead: a tombstone it finds old enough is kept while another cluster's
// clock says it is younger than the minimum age (a write older than it could still be on its way).
TEST_F(TombstoneReaperTest, ATombstoneIsKeptWhileAnyClusterFindsItYoungByItsClock) {
  ASSERT_EQ(ReaperFor("gone"), "a");
  for (const char* c : {"a", "b", "c"}) Delete(c, "gone", absl::Minutes(90));
  common::NoPause pacer;
  auto reaper = Make("a");
  behind_["d"] = absl::Minutes(45);  // by d's clock the delete is 45 minutes old
  MCOS_ASSERT_OK(reaper->RunOnce(pacer));
  for (const char* c : {"a", "b", "c"}) EXPECT_EQ(Held(c, "gone"), "tombstone") << c;
  EXPECT_EQ(reaper->Status().waiting, 1u);
  EXPECT_EQ(reaper->Status().waiting_on, (std::set<std::string>{"d"}));
  behind_["d"] = absl::Minutes(15);  // now d finds it old enough too
  MCOS_ASSERT_OK(reaper->RunOnce(pacer));
  for (const char* c : {"a", "b", "c"}) EXPECT_EQ(Held(c, "gone"), "nothing") << c;
  EXPECT_EQ(reaper->Status().reaped, 1u);
}

// A pass outlasts the federation's forming: it began when this cluster was alone (its own
// default ring, no peers), and the rings and clusters changed before it reached a batch. It must
// not reap with the view it began with (it did: under ASan the e2e saw a cluster purge
// tombstones while a replica that lacked them was down); the next pass asks everyone.
TEST_F(TombstoneReaperTest, APassWhoseViewChangedReapsNothingAndTheNextOneAsksEveryone) {
  ASSERT_EQ(ReaperFor("gone"), "a");
  Delete("a", "gone", absl::Hours(2));
  Delete("b", "gone", absl::Hours(2));
  Put("c", "gone", absl::Hours(3));  // c missed the delete
  common::NoPause pacer;
  auto reaper = Make("a");
  lone_until_call_ = 1;
  MCOS_ASSERT_OK(reaper->RunOnce(pacer));
  EXPECT_EQ(Held("a", "gone"), "tombstone");
  EXPECT_EQ(reaper->Status().reaped, 0u);
  EXPECT_EQ(checks_["a"], 0);  // nobody was even asked with the old view
  MCOS_ASSERT_OK(reaper->RunOnce(pacer));
  for (const char* c : {"a", "b"}) EXPECT_EQ(Held(c, "gone"), "tombstone") << c;
  EXPECT_EQ(Held("c", "gone"), "live");
  EXPECT_EQ(reaper->Status().waiting_on, (std::set<std::string>{"c"}));
}

TEST_F(TombstoneReaperTest, AClusterThatCannotBeAskedKeepsTheTombstonesUntilItConfirms) {
  ASSERT_EQ(ReaperFor("gone"), "a");
  for (const char* c : {"a", "b", "c"}) Delete(c, "gone", absl::Hours(2));
  common::NoPause pacer;
  auto reaper = Make("a");
  for (const std::string down : {"c", "d"}) {  // a replica, then a cluster with no replica
    down_ = {down};
    MCOS_ASSERT_OK(reaper->RunOnce(pacer));
    for (const char* c : {"a", "b", "c"}) EXPECT_EQ(Held(c, "gone"), "tombstone") << c;
    EXPECT_EQ(reaper->Status().waiting, 1u);
    EXPECT_EQ(reaper->Status().waiting_on, std::set<std::string>{down});
  }
  down_.clear();
  MCOS_ASSERT_OK(reaper->RunOnce(pacer));
  for (const char* c : {"a", "b", "c"}) EXPECT_EQ(Held(c, "gone"), "nothing") << c;
  EXPECT_EQ(reaper->Status().reaped, 1u);
  EXPECT_EQ(reaper->Status().waiting, 0u);
  EXPECT_TRUE(reaper->Status().waiting_on.empty());
}

TEST_F(TombstoneReaperTest, APurgeThatFailsAtAReplicaIsTriedAgainNextPass) {
  ASSERT_EQ(ReaperFor("gone"), "a");
  for (const char* c : {"a", "b", "c"}) Delete(c, "gone", absl::Hours(2));
  common::NoPause pacer;
  // c confirms, then cannot be reached for the purge (after b's, before a's: the peers go first,
  // this cluster last).
  int calls = 0;
  auto flaky = std::make_unique<TombstoneReaper>(
      TombstoneReaperOptions{"a", absl::Hours(1), 256, 0, absl::Seconds(1)},
      [this]() -> absl::StatusOr<TombstoneReaper::Topology> { return Topology("a"); },
      [this] { return replicas_["a"]; },
      [this](const std::string& c, const mcos::v1::CheckTombstonesRequest& r, absl::Time) {
        return Check(c, r);
      },
      [&](const std::string& c, const mcos::v1::PurgeTombstonesRequest& r,
          absl::Time) -> absl::StatusOr<mcos::v1::PurgeTombstonesResponse> {
        if (c == "c" && calls++ == 0) return absl::UnavailableError("c went away");
        return Purge(c, r);
      },
      clock_);
  MCOS_ASSERT_OK(flaky->RunOnce(pacer));
  EXPECT_EQ(Held("a", "gone"), "tombstone");
  EXPECT_EQ(Held("b", "gone"), "nothing");
  EXPECT_EQ(Held("c", "gone"), "tombstone");
  EXPECT_NE(flaky->Status().last_error.find("c went away"), std::string::npos);
  EXPECT_EQ(flaky->Status().reaped, 0u);
  // b holds nothing now, which is not holding the tombstone: kept until anti-entropy gives b the
  // tombstone again (from a or c), then reaped.
  MCOS_ASSERT_OK(flaky->RunOnce(pacer));
  EXPECT_EQ(Held("a", "gone"), "tombstone");
  EXPECT_EQ(flaky->Status().waiting_on, std::set<std::string>{"b"});
  Delete("b", "gone", absl::Hours(2));
  MCOS_ASSERT_OK(flaky->RunOnce(pacer));
  for (const char* c : {"a", "b", "c"}) EXPECT_EQ(Held(c, "gone"), "nothing") << c;
  EXPECT_EQ(flaky->Status().reaped, 1u);
  EXPECT_TRUE(flaky->Status().last_error.empty());
}

TEST_F(TombstoneReaperTest, EachPartitionIsReapedByOneClusterOfItsReplicaSet) {
  // One tombstone in each of the 8 partitions (found by name).
  std::map<uint32_t, std::string> by_partition;
  for (int i = 0; by_partition.size() < (1u << kPower); ++i) {
    const std::string name = absl::StrCat("o", i);
    by_partition.emplace(placement::PartitionOf(placement::ObjectHash("u", "c", name), kPower),
                         name);
  }
  for (const auto& [p, name] : by_partition) {
    for (const char* c : {"a", "b", "c"}) Delete(c, name, absl::Hours(2));
  }
  common::NoPause pacer;
  for (const char* self : {"a", "b", "c"}) {
    MCOS_ASSERT_OK(Make(self)->RunOnce(pacer));
    for (const auto& [p, name] : by_partition) {
      const bool reaped = ReaperOf({"a", "b", "c"}, p) <= std::string(self);
      EXPECT_EQ(Held("a", name), reaped ? "nothing" : "tombstone") << self << " " << p;
    }
  }
  // Dealt round the three: each reaped some.
  std::set<std::string> reapers;
  for (const auto& [p, name] : by_partition) reapers.insert(ReaperOf({"a", "b", "c"}, p));
  EXPECT_EQ(reapers, (std::set<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace mcos::repair
