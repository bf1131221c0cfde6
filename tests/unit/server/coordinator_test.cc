// The coordinator over in-memory replicas: write concern, failing and slow replicas, late older
// versions, read quorums and merged listings, without sockets.
#include "server/coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "tests/support/status_matchers.h"

namespace mcos::server {
namespace {

using replication::ObjectReader;
using replication::Replica;
using replication::WriteAck;

mcos::v1::ObjectKey Key(const std::string& object) {
  mcos::v1::ObjectKey k;
  k.set_user("u");
  k.set_container("c");
  k.set_object(object);
  return k;
}

mcos::v1::ObjectRecord Record(uint64_t hlc, const std::string& data, bool tombstone = false) {
  mcos::v1::ObjectRecord r;
  r.mutable_version()->set_hlc(hlc);
  r.mutable_version()->set_cluster("a");
  r.set_size(data.size());
  r.set_tombstone(tombstone);
  return r;
}

// One cluster's copy in memory. Writes apply only when newer; modes make it fail.
class MemoryReplica final : public Replica {
 public:
  enum class Mode { kOk, kDown, kFailMidStream, kHang };
  explicit MemoryReplica(std::string cluster) : cluster_(std::move(cluster)) {}

  const std::string& cluster() const override { return cluster_; }
  void set_mode(Mode m) { mode_ = m; }
  // Releases calls hanging in kHang mode.
  void Release() { release_.Notify(); }
  int puts() const { return puts_; }

  void Store(const std::string& object, const mcos::v1::ObjectRecord& r, std::string data) {
    std::lock_guard<std::mutex> lock(mu_);
    objects_[object] = {r, std::move(data)};
  }
  std::optional<std::pair<mcos::v1::ObjectRecord, std::string>> Held(const std::string& object) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(object);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }

  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    auto held = Held(key.object());
    if (!held) return absl::NotFoundError("nothing");
    return held->first;
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key, uint64_t,
                                                     uint64_t, const mcos::v1::Version* version,
                                                     absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    auto held = Held(key.object());
    if (!held || held->first.tombstone()) return absl::NotFoundError("nothing");
    if (version != nullptr && common::CompareVersions(*version, held->first.version()) != 0) {
      return absl::FailedPreconditionError("another version");
    }
    return std::unique_ptr<ObjectReader>(new Reader(held->first, held->second));
  }

  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                               ObjectReader& source, absl::Time deadline) override {
    ++puts_;
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    std::string data, chunk;
    while (source.Next(&chunk)) {
      if (mode_ == Mode::kFailMidStream) return absl::UnavailableError("broke mid-stream");
      data += chunk;
    }
    MCOS_RETURN_IF_ERROR(source.Finish());
    if (data.size() != record.size()) return absl::InvalidArgumentError("short");
    return Apply(key.object(), record, std::move(data));
  }

  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                  uint32_t, absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    mcos::v1::ObjectRecord r;
    *r.mutable_version() = version;
    r.set_tombstone(true);
    return Apply(key.object(), r, "");
  }

  absl::StatusOr<mcos::v1::StorageListResponse> List(const mcos::v1::StorageListRequest& request,
                                                     absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    std::lock_guard<std::mutex> lock(mu_);
    mcos::v1::StorageListResponse out;
    const uint32_t limit = request.limit() == 0 ? 1000 : request.limit();
    for (auto it = objects_.upper_bound(request.marker()); it != objects_.end(); ++it) {
      if (!request.include_tombstones() && it->second.first.tombstone()) continue;
      if (static_cast<uint32_t>(out.entries_size()) == limit) {
        out.set_next_marker(out.entries(out.entries_size() - 1).object());
        break;
      }
      auto* e = out.add_entries();
      e->set_object(it->first);
      *e->mutable_record() = it->second.first;
    }
    return out;
  }

 private:
  class Reader final : public ObjectReader {
   public:
    Reader(mcos::v1::ObjectRecord r, std::string d) : r_(std::move(r)), d_(std::move(d)) {}
    const mcos::v1::ObjectRecord& record() const override { return r_; }
    bool Next(std::string* data) override {
      if (pos_ >= d_.size()) return false;
      *data = d_.substr(pos_, 3);  // small chunks: a stream of several messages
      pos_ += data->size();
      return true;
    }
    absl::Status Finish() override { return absl::OkStatus(); }
    void Cancel() override {}

   private:
    mcos::v1::ObjectRecord r_;
    std::string d_;
    size_t pos_ = 0;
  };

  absl::Status Enter(absl::Time deadline) {
    if (mode_ == Mode::kDown) return absl::UnavailableError("cluster down");
    if (mode_ == Mode::kHang) {
      release_.WaitForNotificationWithDeadline(deadline);
      return absl::DeadlineExceededError("no answer");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<WriteAck> Apply(const std::string& object, const mcos::v1::ObjectRecord& r,
                                 std::string data) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(object);
    if (it != objects_.end() && !common::IsNewer(r.version(), it->second.first.version())) {
      return WriteAck{false, it->second.first.version()};
    }
    objects_[object] = {r, std::move(data)};
    return WriteAck{true, r.version()};
  }

  const std::string cluster_;
  std::atomic<Mode> mode_{Mode::kOk};
  std::atomic<int> puts_{0};
  absl::Notification release_;
  std::mutex mu_;
  std::map<std::string, std::pair<mcos::v1::ObjectRecord, std::string>> objects_;
};

mcos::v1::Placement ThreeOf(uint32_t w, bool degraded = false) {
  mcos::v1::Placement p;
  for (const char* c : {"a", "b", "c"}) {
    p.add_replicas(c);
    p.add_ring_members(c);
  }
  p.set_write_concern(w);
  p.set_degraded(degraded);
  return p;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    for (const char* c : {"a", "b", "c"}) {
      auto r = std::make_shared<MemoryReplica>(c);
      replicas_[c] = r;
      mem_[c] = r.get();
    }
  }
  std::unique_ptr<Coordinator> Make(absl::Duration timeout = absl::Seconds(5)) {
    CoordinatorOptions o;
    o.replica_timeout = timeout;
    o.read_grace = absl::Milliseconds(50);
    return std::make_unique<Coordinator>(
        o, [this](const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord&,
                  const std::string& target, const std::string&) {
          std::lock_guard<std::mutex> lock(mu_);
          queued_.emplace_back(target, key.object());
        });
  }
  // Stores `data` at a (the coordinator's own copy) and replicates it.
  absl::StatusOr<std::vector<std::string>> Write(Coordinator& c, const std::string& object,
                                                 uint64_t hlc, const std::string& data,
                                                 const mcos::v1::Placement& p) {
    const auto r = Record(hlc, data);
    mem_["a"]->Store(object, r, data);
    return c.ReplicateAndWait(Key(object), r, p, replicas_["a"], replicas_);
  }
  std::vector<std::pair<std::string, std::string>> Queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_;
  }

  ReplicaMap replicas_;
  std::map<std::string, MemoryReplica*> mem_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> queued_;
};

TEST_F(CoordinatorTest, AnswersOnceWriteConcernHoldsAndEveryReplicaGetsIt) {
  auto c = Make();
  auto holders = Write(*c, "o", 10, "hello world", ThreeOf(2));
  MCOS_ASSERT_OK(holders);
  EXPECT_GE(holders->size(), 2u);
  EXPECT_EQ(holders->front(), "a");  // placement order, the local copy first here
  c.reset();                         // waits for the copies still running
  for (const char* r : {"b", "c"}) {
    auto held = mem_[r]->Held("o");
    ASSERT_TRUE(held.has_value()) << r;
    EXPECT_EQ(held->second, "hello world");
  }
  EXPECT_TRUE(Queued().empty());
}

TEST_F(CoordinatorTest, AReplicaFailingMidStreamIsQueuedAndHoldsNothing) {
  mem_["c"]->set_mode(MemoryReplica::Mode::kFailMidStream);
  auto c = Make();
  auto holders = Write(*c, "o", 10, "a longer body of several chunks", ThreeOf(2));
  MCOS_ASSERT_OK(holders);
  EXPECT_EQ(*holders, (std::vector<std::string>{"a", "b"}));
  c.reset();
  EXPECT_FALSE(mem_["c"]->Held("o").has_value());
  EXPECT_EQ(Queued(), (std::vector<std::pair<std::string, std::string>>{{"c", "o"}}));
}

TEST_F(CoordinatorTest, AHangingReplicaDoesNotHoldTheAnswerBack) {
  mem_["c"]->set_mode(MemoryReplica::Mode::kHang);
  auto c = Make(absl::Seconds(30));
  auto holders = Write(*c, "o", 10, "x", ThreeOf(2));
  MCOS_ASSERT_OK(holders);
  EXPECT_EQ(*holders, (std::vector<std::string>{"a", "b"}));
  // Answered while c's call still hangs: it is queued only once it gives up.
  EXPECT_TRUE(Queued().empty());
  mem_["c"]->Release();
  for (int i = 0; i < 1000 && Queued().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(Queued(), (std::vector<std::pair<std::string, std::string>>{{"c", "o"}}));
  // Known unreachable now: the next write queues c at once, without calling it.
  const int calls = mem_["c"]->puts();
  MCOS_ASSERT_OK(Write(*c, "p", 11, "y", ThreeOf(2)));
  EXPECT_EQ(mem_["c"]->puts(), calls);
  EXPECT_EQ(Queued().back(), (std::pair<std::string, std::string>{"c", "p"}));
}

TEST_F(CoordinatorTest, ConsistentRefusesShortOfTheConcernDegradedAccepts) {
  mem_["b"]->set_mode(MemoryReplica::Mode::kDown);
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  auto c = Make();
  auto refused = Write(*c, "o", 10, "x", ThreeOf(2));
  MCOS_EXPECT_CODE(refused, kUnavailable);
  EXPECT_TRUE(
      absl::StrContains(refused.status().message(), "1 of 3 replica clusters answered, 2 needed"))
      << refused.status();
  auto accepted = Write(*c, "p", 11, "y", ThreeOf(2, /*degraded=*/true));
  MCOS_ASSERT_OK(accepted);
  EXPECT_EQ(*accepted, std::vector<std::string>{"a"});
  c.reset();
  EXPECT_EQ(Queued().size(), 4u);  // b and c, for both writes
}

TEST_F(CoordinatorTest, AnOlderVersionArrivingLateChangesNothing) {
  auto c = Make();
  MCOS_ASSERT_OK(Write(*c, "o", 20, "new", ThreeOf(3)));
  // A retry of an older write (e.g. from a queue) reaches b after the newer one.
  const auto old = Record(10, "old");
  MemoryReplica source("a");
  source.Store("o", old, "old");
  auto ack = replication::Copy(source, *mem_["b"], Key("o"), old, absl::Now() + absl::Seconds(1));
  MCOS_ASSERT_OK(ack);
  EXPECT_FALSE(ack->applied);
  EXPECT_EQ(mem_["b"]->Held("o")->second, "new");
  auto newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 20u);
}

TEST_F(CoordinatorTest, ReadsPickTheNewestAndNameItsHolders) {
  mem_["a"]->Store("o", Record(5, "stale"), "stale");
  mem_["b"]->Store("o", Record(9, "fresh"), "fresh");
  mem_["c"]->Store("o", Record(9, "fresh"), "fresh");
  auto c = Make();
  auto newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 9u);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"b", "c"}));
  // A tombstone newer than every copy wins too; nothing anywhere is an empty answer.
  mem_["c"]->Store("o", Record(12, "", /*tombstone=*/true), "");
  newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_TRUE(newest->record->tombstone());
  newest = c->Read(Key("missing"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_FALSE(newest->record.has_value());
  // Too few answers: UNAVAILABLE.
  mem_["b"]->set_mode(MemoryReplica::Mode::kDown);
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  MCOS_EXPECT_CODE(c->Read(Key("o"), ThreeOf(2), replicas_), kUnavailable);
}

TEST_F(CoordinatorTest, ListingsMergeNewestWinsTombstonesHideMarkersPage) {
  // a: o1 o2 o3(old); b: o3(new) o4, o2 deleted; c: o5.
  mem_["a"]->Store("o1", Record(1, "x"), "x");
  mem_["a"]->Store("o2", Record(1, "x"), "x");
  mem_["a"]->Store("o3", Record(1, "x"), "x");
  mem_["b"]->Store("o2", Record(2, "", true), "");
  mem_["b"]->Store("o3", Record(3, "xyz"), "xyz");
  mem_["b"]->Store("o4", Record(1, "x"), "x");
  mem_["c"]->Store("o5", Record(1, "x"), "x");
  auto c = Make();
  const std::vector<std::string> members = {"a", "b", "c"};
  mcos::v1::StorageListRequest req;
  auto all = c->List(req, members, 2, replicas_);
  MCOS_ASSERT_OK(all);
  std::vector<std::string> names;
  for (const auto& e : all->page.entries()) names.push_back(e.object());
  EXPECT_EQ(names, (std::vector<std::string>{"o1", "o3", "o4", "o5"}));
  EXPECT_EQ(all->page.entries(1).record().size(), 3u);  // o3: b's newer version
  EXPECT_EQ(all->holders[1], std::vector<std::string>{"b"});
  EXPECT_TRUE(all->page.next_marker().empty());
  // Pages of two, following the markers, see the same names once each.
  std::vector<std::string> paged;
  req.set_limit(2);
  for (int i = 0; i < 10; ++i) {
    auto page = c->List(req, members, 2, replicas_);
    MCOS_ASSERT_OK(page);
    for (const auto& e : page->page.entries()) paged.push_back(e.object());
    if (page->page.next_marker().empty()) break;
    req.set_marker(page->page.next_marker());
  }
  EXPECT_EQ(paged, names);
}

}  // namespace
}  // namespace mcos::server
