// Anti-entropy over three clusters whose storage is storage::MemoryEngine (replicas through
// replication::EngineReplica): what it copies, what it never copies, and what it reports.
#include "repair/anti_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "placement/layout.h"
#include "repair/releaser.h"
#include "storage/memory_engine.h"
#include "tests/support/fake_clock.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos::repair {
namespace {

using mcos::v1::ObjectKey;
using mcos::v1::ObjectRecord;

using testing::Key;

mcos::v1::Version V(uint64_t hlc, const std::string& cluster = "b") {
  mcos::v1::Version v;
  v.set_hlc(hlc);
  v.set_cluster(cluster);
  return v;
}

constexpr uint32_t kPower = 4;

class AntiEntropyTest : public ::testing::Test {
 protected:
  AntiEntropyTest() {
    for (const char* c : {"a", "b", "c"}) {
      engines_[c] = std::make_unique<storage::MemoryEngine>();
      replicas_[c] = replication::EngineReplica(c, *engines_[c]);
    }
  }

  // Every partition of option "gold" is held by all three clusters.
  std::vector<SyncSet> Topology(const std::string& self) {
    SyncSet set;
    set.option = "gold";
    set.partition_power = power_;
    set.peers.resize(1u << power_);
    set.held.assign(1u << power_, true);
    for (auto& peers : set.peers) {
      for (const char* c : {"a", "b", "c"}) {
        if (c != self) peers.push_back(c);
      }
    }
    return {set};
  }

  std::unique_ptr<AntiEntropy> Make(const std::string& self, AntiEntropyOptions options = {}) {
    options.cluster = self;
    options.records_per_second = 0;
    options.bytes_per_second = 0;
    return std::make_unique<AntiEntropy>(
        options, [this, self]() -> absl::StatusOr<std::vector<SyncSet>> { return Topology(self); },
        [this](const std::string& c) -> std::shared_ptr<replication::Replica> {
          if (down_.count(c) > 0) return nullptr;
          auto it = replicas_.find(c);
          return it == replicas_.end() ? nullptr : it->second;
        },
        clock_,
        [this](const mcos::v1::Version& v) {
          // Called by several copying threads at once.
          std::lock_guard<std::mutex> lock(observed_mu_);
          observed_.push_back(v);
        });
  }

  void Put(const std::string& cluster, const std::string& object, uint64_t hlc,
           const std::string& writer = "b") {
    mcos::v1::StoragePutHeader h;
    *h.mutable_key() = Key(object);
    *h.mutable_version() = V(hlc, writer);
    h.set_option("gold");
    auto stream = engines_[cluster]->BeginPut(h);
    MCOS_ASSERT_OK(stream);
    MCOS_ASSERT_OK((*stream)->Append(absl::StrCat(object, "@", hlc)));
    MCOS_ASSERT_OK((*stream)->Commit({}));
  }

  void Delete(const std::string& cluster, const std::string& object, uint64_t hlc) {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = Key(object);
    *r.mutable_version() = V(hlc);
    r.set_option("gold");
    MCOS_ASSERT_OK(engines_[cluster]->Delete(r));
  }

  // (hlc, tombstone) of what `cluster` holds; (0, false) for nothing.
  std::pair<uint64_t, bool> Held(const std::string& cluster, const std::string& object) {
    auto r = engines_[cluster]->Stat(Key(object), /*include_tombstone=*/true);
    if (!r.ok()) return {0, false};
    return {r->version().hlc(), r->tombstone()};
  }

  std::string Read(const std::string& cluster, const std::string& object) {
    mcos::v1::StorageGetRequest r;
    *r.mutable_key() = Key(object);
    auto reader = engines_[cluster]->OpenReader(r);
    if (!reader.ok()) return "";
    std::string out, piece;
    while (true) {
      auto more = (*reader)->Next(&piece);
      if (!more.ok() || !*more) return out;
      out += piece;
    }
  }

  mcos::v1::PartitionDigestsResponse Digests(const std::string& cluster) {
    mcos::v1::PartitionDigestsRequest r;
    r.set_option("gold");
    r.set_partition_power(power_);
    return *engines_[cluster]->PartitionDigests(r);
  }

  struct FixedClock final : common::Clock {
    absl::Time Now() override { return absl::FromUnixSeconds(1000); }
  } clock_;
  std::map<std::string, std::unique_ptr<storage::MemoryEngine>> engines_;
  std::map<std::string, std::shared_ptr<replication::Replica>> replicas_;
  std::set<std::string> down_;
  uint32_t power_ = kPower;
  std::mutex observed_mu_;
  std::vector<mcos::v1::Version> observed_;
};

TEST_F(AntiEntropyTest, PullsNewerVersionsAndTombstonesAndNeverOlderOverNewer) {
  for (int i = 0; i < 40; ++i) {
    Put("a", absl::StrCat("o", i), 10);
    Put("b", absl::StrCat("o", i), 10);
  }
  for (int i = 0; i < 10; ++i) Put("b", absl::StrCat("o", i), 20);        // updates a missed
  for (int i = 10; i < 15; ++i) Delete("b", absl::StrCat("o", i), 20);    // deletes a missed
  for (int i = 0; i < 5; ++i) Put("b", absl::StrCat("new", i), 15);       // creates a missed
  for (int i = 15; i < 20; ++i) Put("a", absl::StrCat("o", i), 30, "a");  // a holds newer
  Delete("a", "o20", 30);                                                 // and a newer delete

  common::NoPause pacer;
  MCOS_ASSERT_OK(Make("a")->RunOnce(pacer));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Held("a", absl::StrCat("o", i)), std::make_pair(uint64_t{20}, false));
    EXPECT_EQ(Read("a", absl::StrCat("o", i)), absl::StrCat("o", i, "@20"));
  }
  for (int i = 10; i < 15; ++i) {
    EXPECT_EQ(Held("a", absl::StrCat("o", i)), std::make_pair(uint64_t{20}, true));
  }
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(Read("a", absl::StrCat("new", i)), absl::StrCat("new", i, "@15"));
  for (int i = 15; i < 20; ++i) {
    EXPECT_EQ(Held("a", absl::StrCat("o", i)), std::make_pair(uint64_t{30}, false));
  }
  EXPECT_EQ(Held("a", "o20"), std::make_pair(uint64_t{30}, true));
  EXPECT_EQ(observed_.size(), 20u);  // every copied version, for the server's clock

  // b pulls what a holds newer; then all agree (c, empty, pulls everything).
  MCOS_ASSERT_OK(Make("b")->RunOnce(pacer));
  auto c = Make("c");
  MCOS_ASSERT_OK(c->RunOnce(pacer));
  EXPECT_EQ(Digests("a").SerializeAsString(), Digests("b").SerializeAsString());
  EXPECT_EQ(Digests("a").SerializeAsString(), Digests("c").SerializeAsString());
  const auto status = c->Status();
  ASSERT_EQ(status.count("a"), 1u);
  EXPECT_EQ(status.at("a").partitions_compared, 1u << kPower);
  EXPECT_GT(status.at("a").partitions_out_of_sync, 0u);
  EXPECT_EQ(status.at("a").records_repaired, 45u);  // o0..o39 and new0..new4
  EXPECT_EQ(status.at("a").repair_failures, 0u);
  EXPECT_NE(status.at("a").last_full_pass, absl::InfinitePast());
  // From b, c then found nothing newer: a's copy came first.
  EXPECT_EQ(status.at("b").records_repaired, 0u);

  // In sync: a pass compares and copies nothing, and exchanges only the digests.
  const uint64_t exchanged = c->Status().at("a").bytes_exchanged;
  MCOS_ASSERT_OK(c->RunOnce(pacer));
  EXPECT_EQ(c->Status().at("a").partitions_out_of_sync, 0u);
  EXPECT_GT(c->Status().at("a").bytes_exchanged, exchanged);
  EXPECT_LT(c->Status().at("a").bytes_exchanged - exchanged, 2000u);
  EXPECT_EQ(c->Status().at("a").records_repaired, 45u);
}

TEST_F(AntiEntropyTest, DrillsDownToSmallRangesOfLargePartitions) {
  for (int i = 0; i < 2000; ++i) {
    Put("a", absl::StrCat("o", i), 10);
    Put("b", absl::StrCat("o", i), 10);
  }
  for (int i = 0; i < 2000; i += 250) Put("b", absl::StrCat("o", i), 20);
  AntiEntropyOptions options;
  options.leaf_records = 8;
  common::NoPause pacer;
  auto a = Make("a", options);
  MCOS_ASSERT_OK(a->RunOnce(pacer));
  for (int i = 0; i < 2000; i += 250) {
    EXPECT_EQ(Held("a", absl::StrCat("o", i)).first, 20u) << i;
  }
  EXPECT_EQ(a->Status().at("b").records_repaired, 8u);
  EXPECT_EQ(Digests("a").SerializeAsString(), Digests("b").SerializeAsString());
}

TEST_F(AntiEntropyTest, ARingOfManyPartitionsIsComparedInCoarseRangesFirst) {
  power_ = 10;  // 1024 partitions: 64 coarse ranges first
  for (int i = 0; i < 3000; ++i) {
    Put("a", absl::StrCat("o", i), 10);
    Put("b", absl::StrCat("o", i), 10);
  }
  common::NoPause pacer;
  auto a = Make("a");
  MCOS_ASSERT_OK(a->RunOnce(pacer));
  const uint64_t in_sync = a->Status().at("b").bytes_exchanged;
  EXPECT_EQ(a->Status().at("b").partitions_compared, 1024u);
  EXPECT_EQ(a->Status().at("b").partitions_out_of_sync, 0u);
  EXPECT_LT(in_sync, 1500u);  // 64 coarse digests, not 1024
  for (int i = 0; i < 3000; i += 600) Put("b", absl::StrCat("o", i), 20);
  Delete("b", "o7", 20);
  MCOS_ASSERT_OK(a->RunOnce(pacer));
  EXPECT_EQ(a->Status().at("b").partitions_out_of_sync, 6u);
  EXPECT_EQ(a->Status().at("b").records_repaired, 6u);
  for (int i = 0; i < 3000; i += 600) EXPECT_EQ(Held("a", absl::StrCat("o", i)).first, 20u);
  EXPECT_EQ(Held("a", "o7"), std::make_pair(uint64_t{20}, true));
  EXPECT_EQ(Digests("a").SerializeAsString(), Digests("b").SerializeAsString());
}

TEST_F(AntiEntropyTest, APeerThatCannotBeReachedIsReportedAndTheOthersStillSync) {
  Put("b", "x", 10);
  Put("c", "y", 10);
  down_.insert("c");
  common::NoPause pacer;
  auto a = Make("a");
  MCOS_ASSERT_OK(a->RunOnce(pacer));
  EXPECT_EQ(Held("a", "x").first, 10u);
  EXPECT_EQ(Held("a", "y").first, 0u);
  auto status = a->Status();
  EXPECT_NE(status.at("c").last_error, "");
  EXPECT_EQ(status.at("c").last_full_pass, absl::InfinitePast());
  EXPECT_EQ(status.at("b").last_error, "");
  down_.clear();
  MCOS_ASSERT_OK(a->RunOnce(pacer));
  EXPECT_EQ(Held("a", "y").first, 10u);
  EXPECT_EQ(a->Status().at("c").last_error, "");
}

TEST_F(AntiEntropyTest, APassEndsWhenItsPacerSaysStop) {
  for (int i = 0; i < 50; ++i) Put("b", absl::StrCat("o", i), 10);
  struct Stop final : common::Pacer {
    bool Pause(absl::Duration) override { return false; }
  } stop;
  AntiEntropyOptions options;
  auto a = Make("a", options);
  MCOS_ASSERT_OK(a->RunOnce(stop));
  int held = 0;
  for (int i = 0; i < 50; ++i) held += Held("a", absl::StrCat("o", i)).first > 0 ? 1 : 0;
  EXPECT_LT(held, 50);  // it stopped after the first page or copy
}

// A cluster that no longer holds an option's partitions drops its copies once both current holders
// hold that version or a newer one; what a holder lacks is handed to it first and released on the
// next pass; nothing is released while the option's data still moves.
TEST_F(AntiEntropyTest, TheReleaserDropsOnlyWhatTheHoldersConfirmed) {
  mcos::v1::Ring ring;
  ring.set_id("r");
  ring.set_partition_power(kPower);
  ring.set_replicas(2);
  for (const char* c : {"b", "c"}) {
    auto* m = ring.add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  SyncSet set;
  set.option = "gold";
  set.partition_power = kPower;
  set.held.assign(1u << kPower, false);
  set.peers.resize(1u << kPower);
  set.current =
      std::make_shared<const placement::CompiledRing>(*placement::CompiledRing::Make(ring));
  for (int i = 0; i < 10; ++i) {
    for (const char* c : {"a", "b", "c"}) Put(c, absl::StrCat("same", i), 10);
  }
  for (int i = 0; i < 5; ++i) {
    Put("a", absl::StrCat("newer", i), 10);
    Put("b", absl::StrCat("newer", i), 20);
    Put("c", absl::StrCat("newer", i), 10);
    Put("a", absl::StrCat("lacking", i), 10);
    Put("b", absl::StrCat("lacking", i), 10);
  }
  for (const char* c : {"a", "b", "c"}) {
    Put(c, "gone", 10);
    Delete(c, "gone", 20);
  }
  int checks = 0;
  testing::FakeClock clock;  // never advanced: nothing here waits
  ReleaserOptions options;
  options.cluster = "a";
  options.records_per_second = 0;
  Releaser releaser(
      options, [&]() -> absl::StatusOr<std::vector<SyncSet>> { return std::vector<SyncSet>{set}; },
      [this](const std::string& c) -> std::shared_ptr<replication::Replica> {
        return replicas_[c];
      },
      [&](const std::string& c, const mcos::v1::CheckTombstonesRequest& request,
          absl::Time) -> absl::StatusOr<mcos::v1::CheckTombstonesResponse> {
        ++checks;
        mcos::v1::CheckTombstonesResponse response;
        for (const auto& t : request.tombstones()) {
          auto held = engines_[c]->Stat(t.key(), /*include_tombstone=*/true);
          response.add_checks()->set_held(
              held.ok() && common::CompareVersions(held->version(), t.version()) >= 0);
        }
        return response;
      },
      clock);
  common::NoPause pacer;
  // While the option's data moves, nothing is released.
  set.former = {"1-x"};
  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  EXPECT_EQ(checks, 0);
  EXPECT_EQ(Held("a", "same0").first, 10u);
  set.former.clear();

  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Held("a", absl::StrCat("same", i)).first, 0u) << i;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Held("a", absl::StrCat("newer", i)).first, 0u) << i;
    EXPECT_EQ(Held("b", absl::StrCat("newer", i)).first, 20u);  // never touched
    // c lacked it: it got a's copy, which a keeps until the next pass.
    EXPECT_EQ(Held("c", absl::StrCat("lacking", i)).first, 10u) << i;
    EXPECT_EQ(Read("c", absl::StrCat("lacking", i)), absl::StrCat("lacking", i, "@10"));
    EXPECT_EQ(Held("a", absl::StrCat("lacking", i)).first, 10u) << i;
  }
  EXPECT_EQ(Held("a", "gone").first, 0u);
  EXPECT_EQ(Held("b", "gone"), std::make_pair(uint64_t{20}, true));
  auto status = releaser.Status();
  EXPECT_EQ(status.released, 16u);
  EXPECT_EQ(status.handed_over, 5u);
  EXPECT_EQ(status.kept, 5u);

  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Held("a", absl::StrCat("lacking", i)).first, 0u) << i;
  status = releaser.Status();
  EXPECT_EQ(status.released, 21u);
  EXPECT_EQ(status.kept, 0u);
  // Nothing left here: a pass asks nobody.
  const int before = checks;
  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  EXPECT_EQ(checks, before);
  // A write that reached a former holder late is handed to the holders, then released.
  Put("a", "late", 30);
  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  EXPECT_EQ(Held("c", "late").first, 30u);
  EXPECT_EQ(Held("b", "late").first, 30u);
  MCOS_ASSERT_OK(releaser.RunOnce(pacer));
  EXPECT_EQ(Held("a", "late").first, 0u);
}

TEST(SyncSetsOfTest, NamesThePeersOfEachPartitionThisClusterHolds) {
  mcos::v1::MetadataSnapshot snapshot;
  auto* ring = snapshot.add_rings();
  ring->set_id("r");
  ring->set_partition_power(5);
  ring->set_replicas(2);
  for (const char* c : {"a", "b", "c"}) {
    auto* m = ring->add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  auto* option = snapshot.add_options();
  option->set_name("gold");
  option->set_ring("r");
  snapshot.add_options()->set_name("orphan");  // its ring is unknown: no set
  auto* other = snapshot.add_options();        // a set too, though it moves nothing
  other->set_name("silver");
  other->set_ring("r");
  auto sets = SyncSetsOf(snapshot, "a");
  MCOS_ASSERT_OK(sets);
  ASSERT_EQ(sets->size(), 2u);
  EXPECT_EQ((*sets)[1].option, "silver");
  const SyncSet& set = (*sets)[0];
  EXPECT_EQ(set.option, "gold");
  EXPECT_TRUE(set.former.empty());
  EXPECT_EQ(set.partition_power, 5u);
  auto compiled = placement::CompiledRing::Make(*ring);
  MCOS_ASSERT_OK(compiled);
  int held = 0;
  for (uint32_t p = 0; p < 32; ++p) {
    std::vector<std::string> replicas;
    for (uint16_t i : compiled->Replicas(p)) replicas.push_back(compiled->clusters()[i]);
    const bool holds = std::find(replicas.begin(), replicas.end(), "a") != replicas.end();
    held += holds ? 1 : 0;
    EXPECT_EQ(set.held[p], holds) << p;
    if (!holds) {
      EXPECT_TRUE(set.peers[p].empty()) << p;
    } else {
      ASSERT_EQ(set.peers[p].size(), 1u) << p;
      EXPECT_NE(set.peers[p][0], "a");
    }
  }
  EXPECT_GT(held, 0);
  EXPECT_LT(held, 32);
  EXPECT_EQ(set.current_partitions, static_cast<uint64_t>(held));
}

// While an option's data moves, a partition's set is the union of its sets under every live
// layout (at the finest power), and a former layout is settled everywhere once every cluster of
// the federation reports it settled.
TEST(SyncSetsOfTest, AMovingOptionSyncsWithItsFormerHolders) {
  mcos::v1::MetadataSnapshot snapshot;
  auto* ring = snapshot.add_rings();
  ring->set_id("r");
  ring->set_version(2);
  ring->set_partition_power(4);
  ring->set_replicas(1);
  for (const char* c : {"b", "c"}) {
    auto* m = ring->add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  auto* option = snapshot.add_options();
  option->set_name("gold");
  option->set_ring("r");
  auto* former = snapshot.add_former_layouts();
  former->set_option("gold");
  former->set_id("7-a");
  mcos::v1::Ring& old = *former->mutable_ring();
  old.set_id("r");
  old.set_version(1);
  old.set_partition_power(5);
  old.set_replicas(1);
  for (const char* c : {"a", "b"}) {
    auto* m = old.add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  for (const char* c : {"a", "b", "c"}) snapshot.add_clusters()->set_id(c);
  for (const char* c : {"b", "c"}) {  // a has not settled it yet
    auto* report = snapshot.add_move_reports();
    report->set_option("gold");
    report->set_cluster(c);
    report->add_settled("7-a");
  }
  const auto now = *placement::CompiledRing::Make(*ring);
  const auto before = *placement::CompiledRing::Make(old);
  for (const std::string cluster : {"a", "c"}) {
    auto sets = SyncSetsOf(snapshot, cluster);
    MCOS_ASSERT_OK(sets);
    ASSERT_EQ(sets->size(), 1u);
    const SyncSet& set = (*sets)[0];
    EXPECT_EQ(set.partition_power, 5u);
    EXPECT_EQ(set.ring, "r");
    EXPECT_EQ(set.ring_version, 2u);
    EXPECT_EQ(set.former, std::vector<std::string>{"7-a"});
    EXPECT_TRUE(set.settled_everywhere.empty());
    uint64_t current = 0;
    for (uint32_t p = 0; p < 32; ++p) {
      const std::string holder_now = now.clusters()[now.Replicas(p >> 1)[0]];
      const std::string holder_before = before.clusters()[before.Replicas(p)[0]];
      const bool holds = holder_now == cluster || holder_before == cluster;
      EXPECT_EQ(set.held[p], holds) << cluster << " " << p;
      if (!holds) continue;
      std::set<std::string> want = {holder_now, holder_before};
      want.erase(cluster);
      EXPECT_EQ(std::set<std::string>(set.peers[p].begin(), set.peers[p].end()), want);
    }
    for (uint32_t p = 0; p < 16; ++p) current += now.clusters()[now.Replicas(p)[0]] == cluster;
    EXPECT_EQ(set.current_partitions, current) << cluster;
  }
  auto* report = snapshot.add_move_reports();
  report->set_option("gold");
  report->set_cluster("a");
  report->add_settled("7-a");
  auto sets = SyncSetsOf(snapshot, "a");
  MCOS_ASSERT_OK(sets);
  EXPECT_EQ((*sets)[0].settled_everywhere, std::vector<std::string>{"7-a"});
}

}  // namespace
}  // namespace mcos::repair
