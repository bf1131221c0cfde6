// The coordinator over replicas backed by in-memory storage engines (storage::MemoryEngine, the
// RocksDB engine's twin): write concern, failing and slow replicas, late older versions, read
// quorums and merged listings, without sockets.
#include "server/coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <optional>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "storage/memory_engine.h"
#include "tests/support/fake_clock.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos::server {
namespace {

using replication::ObjectReader;
using replication::Replica;
using replication::WriteAck;

using testing::Key;

mcos::v1::ObjectRecord Record(uint64_t hlc, const std::string& data, bool tombstone = false,
                              const std::string& cluster = "a") {
  mcos::v1::ObjectRecord r;
  r.mutable_version()->set_hlc(hlc);
  r.mutable_version()->set_cluster(cluster);
  r.set_size(data.size());
  r.set_tombstone(tombstone);
  return r;
}

// Record() with the digests of `data`, as a commit describes it (what a streamed write finishes).
mcos::v1::ObjectRecord RecordOf(uint64_t hlc, const std::string& data) {
  auto r = Record(hlc, data);
  r.set_etag(testing::Md5Hex(data));
  r.set_checksum("sha256:" + testing::Sha256Hex(data));
  return r;
}

// One cluster's copy: a replica over an in-memory storage engine, with modes that make it fail.
class MemoryReplica final : public Replica {
 public:
  enum class Mode { kOk, kDown, kFailMidStream, kHang };
  explicit MemoryReplica(std::string cluster)
      : cluster_(std::move(cluster)), inner_(replication::EngineReplica(cluster_, engine_)) {}

  const std::string& cluster() const override { return cluster_; }
  ~MemoryReplica() override {
    for (auto& t : async_) t.join();
  }
  // As this cluster's own storage is: called on the caller's thread.
  bool in_process() const override { return in_process_; }
  // As a peer cluster is: stats, and writes of content in memory, started without blocking and
  // answered on a thread of their own.
  void set_async(bool async) { async_stats_ = async; }
  bool stats_async() const override { return async_stats_; }
  bool writes_async() const override { return async_stats_; }
  void PutAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                std::shared_ptr<const std::string> data, absl::Time deadline,
                std::function<void(absl::StatusOr<WriteAck>)> done) override {
    ++async_writes_;
    Later([this, key, record, data = std::move(data), deadline, done = std::move(done)] {
      auto reader = replication::MemoryReader(record, data);
      done(Put(key, record, *reader, deadline));
    });
  }
  void DeleteAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone,
                   absl::Time deadline,
                   std::function<void(absl::StatusOr<WriteAck>)> done) override {
    ++async_writes_;
    Later([this, key, tombstone, deadline, done = std::move(done)] {
      done(Delete(key, tombstone, deadline));
    });
  }
  int async_writes() const { return async_writes_; }
  void StatAsync(const mcos::v1::ObjectKey& key, absl::Time deadline,
                 std::function<void(absl::StatusOr<mcos::v1::ObjectRecord>)> done) override {
    if (!async_stats_) {
      done(Stat(key, deadline));
      return;
    }
    Later([this, key, deadline, done = std::move(done)] { done(Stat(key, deadline)); });
  }
  // Runs `f` on a thread of its own.
  void Later(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(async_mu_);
    async_.emplace_back(std::move(f));
  }
  void set_in_process(bool in_process) { in_process_ = in_process; }
  void set_mode(Mode m) { mode_ = m; }
  // Releases calls hanging in kHang mode.
  void Release() { release_.Notify(); }
  int puts() const { return puts_; }
  int stats() const { return stats_; }
  int releases() const { return releases_; }
  // Listings asked with whole records, and with versions only.
  int lists() const { return lists_; }
  int version_lists() const { return version_lists_; }

  // Stores `r` (a tombstone, or a version with content `data`) as a replica write would.
  void Store(const std::string& object, const mcos::v1::ObjectRecord& r, const std::string& data) {
    auto source = replication::InlineReplica("source", r, data);
    auto ack = replication::Copy(*source, *inner_, Key(object), r, absl::InfiniteFuture());
    ASSERT_TRUE(ack.ok()) << ack.status();
  }
  // The version held and its content; nullopt if nothing.
  std::optional<std::pair<mcos::v1::ObjectRecord, std::string>> Held(const std::string& object) {
    auto record = engine_.Stat(Key(object), /*include_tombstone=*/true);
    if (!record.ok()) return std::nullopt;
    std::string data;
    if (!record->tombstone()) {
      auto reader = inner_->Open(Key(object), 0, 0, nullptr, absl::InfiniteFuture());
      if (!reader.ok()) return std::nullopt;
      std::string chunk;
      while ((*reader)->Next(&chunk)) data += chunk;
      if (!(*reader)->Finish().ok()) return std::nullopt;
    }
    return std::make_pair(*record, data);
  }

  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              absl::Time deadline) override {
    ++stats_;
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->Stat(key, deadline);
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key,
                                                     uint64_t offset, uint64_t length,
                                                     const mcos::v1::Version* version,
                                                     absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->Open(key, offset, length, version, deadline);
  }

  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                               ObjectReader& source, absl::Time deadline) override {
    ++puts_;
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    if (mode_ == Mode::kFailMidStream) {
      BreakingReader broken(source);
      return inner_->Put(key, record, broken, deadline);
    }
    return inner_->Put(key, record, source, deadline);
  }

  absl::StatusOr<std::unique_ptr<replication::ReplicaWriter>> OpenWrite(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& header, absl::Time deadline,
      const std::function<void()>& on_drained) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->OpenWrite(key, header, deadline, on_drained);
  }

  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& tombstone,
                                  absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->Delete(key, tombstone, deadline);
  }

  absl::Status List(const mcos::v1::StorageListRequest& request, absl::Time deadline,
                    mcos::v1::StorageListResponse* out) override {
    ++(request.versions_only() ? version_lists_ : lists_);
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->List(request, deadline, out);
  }

  void ReleaseKept(const mcos::v1::ObjectKey&, const mcos::v1::Version&) override { ++releases_; }

  absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                  const std::vector<std::string>& holders,
                                  absl::Time deadline) override {
    MCOS_RETURN_IF_ERROR(Enter(deadline));
    return inner_->AddHolders(key, version, holders, deadline);
  }
  // The holders recorded with what is held (none if nothing).
  std::vector<std::string> Holders(const std::string& object) {
    auto record = engine_.Stat(Key(object), /*include_tombstone=*/true);
    if (!record.ok()) return {};
    return {record->holders().begin(), record->holders().end()};
  }

 private:
  // Passes the first chunk of `source` on, then breaks as a dropped connection would.
  class BreakingReader final : public ObjectReader {
   public:
    explicit BreakingReader(ObjectReader& source) : source_(source) {}
    const mcos::v1::ObjectRecord& record() const override { return source_.record(); }
    bool Next(std::string* data) override { return chunks_++ == 0 && source_.Next(data); }
    absl::Status Finish() override {
      source_.Cancel();
      source_.Finish().IgnoreError();
      return absl::UnavailableError("broke mid-stream");
    }
    void Cancel() override { source_.Cancel(); }

   private:
    ObjectReader& source_;
    int chunks_ = 0;
  };

  absl::Status Enter(absl::Time deadline) {
    if (mode_ == Mode::kDown) return absl::UnavailableError("cluster down");
    if (mode_ == Mode::kHang) {
      release_.WaitForNotificationWithDeadline(deadline);
      return absl::DeadlineExceededError("no answer");
    }
    return absl::OkStatus();
  }

  const std::string cluster_;
  storage::MemoryEngine engine_;
  const std::unique_ptr<Replica> inner_;
  std::atomic<Mode> mode_{Mode::kOk};
  std::atomic<bool> in_process_{false};
  std::atomic<bool> async_stats_{false};
  std::mutex async_mu_;
  std::vector<std::thread> async_;
  std::atomic<int> puts_{0};
  std::atomic<int> async_writes_{0};
  std::atomic<int> stats_{0};
  std::atomic<int> releases_{0};
  std::atomic<int> lists_{0};
  std::atomic<int> version_lists_{0};
  absl::Notification release_;
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
  std::unique_ptr<Coordinator> Make(absl::Duration timeout = absl::Seconds(5),
                                    CoordinatorOptions o = {}) {
    o.replica_timeout = timeout;
    o.read_grace = absl::Milliseconds(50);
    o.start_prober = false;  // the tests probe with ProbeOnce
    o.clock = &clock_;
    return std::make_unique<Coordinator>(
        o,
        [this](const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord&,
               const std::string& target, const std::string&) {
          std::lock_guard<std::mutex> lock(mu_);
          queued_.emplace_back(target, key.object());
        },
        hlc_);
  }
  // Stores `data` at a (the coordinator's own copy) and replicates it; the holders.
  absl::StatusOr<std::vector<std::string>> Write(Coordinator& c, const std::string& object,
                                                 uint64_t hlc, const std::string& data,
                                                 const mcos::v1::Placement& p) {
    auto replicated = WriteVersion(c, object, hlc, data, p);
    if (!replicated.ok()) return replicated.status();
    return replicated->holders;
  }
  absl::StatusOr<Replicated> WriteVersion(Coordinator& c, const std::string& object, uint64_t hlc,
                                          const std::string& data, const mcos::v1::Placement& p) {
    const auto r = Record(hlc, data);
    mem_["a"]->Store(object, r, data);
    return c.ReplicateAndWait(Key(object), r, p, replicas_["a"], replicas_);
  }
  // A quorum read of "o" (version 9 at all three) while `frozen` hangs, with a hedge delay of
  // 20 ms, stats `async` or not; it must answer well before the frozen call's 30 s. The
  // coordinator is left in `c`.
  absl::StatusOr<Newest> FrozenQuorumRead(const std::string& frozen, bool async,
                                          std::unique_ptr<Coordinator>& c) {
    for (const char* name : {"a", "b", "c"}) {
      mem_[name]->Store("o", Record(9, "v"), "v");
      mem_[name]->set_async(async);
    }
    mem_[frozen]->set_mode(MemoryReplica::Mode::kHang);
    CoordinatorOptions o;
    o.hedge_after = absl::Milliseconds(20);
    c = Make(absl::Seconds(30), o);
    const absl::Time start = absl::Now();
    auto newest = c->Read(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kQuorum);
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    return newest;
  }
  std::vector<std::pair<std::string, std::string>> Queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_;
  }

  testing::FakeClock clock_;
  common::HybridLogicalClock hlc_{common::SystemClock::Get()};
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
  // Once every copy was sent, the source's kept copy is released, once.
  EXPECT_EQ(mem_["a"]->releases(), 1);
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

// An upload streamed to the other replica clusters while it arrived: the first round finishes
// those writes with the version this cluster committed (the stream's own was provisional)
// instead of copying from this cluster's copy.
TEST_F(CoordinatorTest, AStreamedWriteIsFinishedWithTheCommittedVersionNotCopied) {
  auto c = Make();
  const std::string data = "streamed to b and c while it arrived at a, in pieces";
  const auto r = RecordOf(10, data);
  auto provisional = r;
  provisional.mutable_version()->set_hlc(5);  // a's commit restamped it above what a held
  Streams streams;
  for (const char* peer : {"b", "c"}) {
    auto writer =
        replicas_[peer]->OpenWrite(Key("o"), provisional, absl::InfiniteFuture(), nullptr);
    MCOS_ASSERT_OK(writer);
    for (size_t pos = 0; pos < data.size(); pos += 7) {
      MCOS_ASSERT_OK((*writer)->Append(data.substr(pos, 7)));
    }
    streams[peer] = *std::move(writer);
  }
  mem_["a"]->Store("o", r, data);
  auto replicated =
      c->ReplicateAndWait(Key("o"), r, ThreeOf(2), replicas_["a"], replicas_, std::move(streams));
  MCOS_ASSERT_OK(replicated);
  EXPECT_GE(replicated->holders.size(), 2u);
  c.reset();
  for (const char* peer : {"b", "c"}) {
    EXPECT_EQ(mem_[peer]->puts(), 0) << peer;  // nothing was copied
    auto held = mem_[peer]->Held("o");
    ASSERT_TRUE(held.has_value()) << peer;
    EXPECT_EQ(held->first.version().hlc(), 10u) << peer;
    EXPECT_EQ(held->first.etag(), r.etag()) << peer;
    EXPECT_EQ(held->second, data) << peer;
  }
  EXPECT_TRUE(Queued().empty());
}

// A stream that broke (here: content that does not match what the commit says) fails its finish
// and is queued; a stream to a cluster the breaker keeps out is aborted and queued; neither
// stores anything.
TEST_F(CoordinatorTest, ABrokenStreamAndAStreamToAClusterKeptOutAreQueuedAndStoreNothing) {
  auto c = Make();
  const std::string data = "what a committed";
  const auto r = RecordOf(10, data);
  Streams streams;
  for (const char* peer : {"b", "c"}) {
    auto writer = replicas_[peer]->OpenWrite(Key("o"), r, absl::InfiniteFuture(), nullptr);
    MCOS_ASSERT_OK(writer);
    MCOS_ASSERT_OK((*writer)->Append(peer == std::string("b") ? "cut" : data));
    streams[peer] = *std::move(writer);
  }
  c->Report("c", absl::UnavailableError("c failed a call"));
  mem_["a"]->Store("o", r, data);
  auto replicated =
      c->ReplicateAndWait(Key("o"), r, ThreeOf(1), replicas_["a"], replicas_, std::move(streams));
  MCOS_ASSERT_OK(replicated);
  EXPECT_EQ(replicated->holders, (std::vector<std::string>{"a"}));
  c.reset();
  EXPECT_FALSE(mem_["b"]->Held("o").has_value());
  EXPECT_FALSE(mem_["c"]->Held("o").has_value());
  auto queued = Queued();
  std::sort(queued.begin(), queued.end());
  EXPECT_EQ(queued, (std::vector<std::pair<std::string, std::string>>{{"b", "o"}, {"c", "o"}}));
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
  // Stored at a, then short of W: in doubt, and said so.
  auto refused = Write(*c, "o", 10, "x", ThreeOf(2));
  MCOS_EXPECT_CODE(refused, kUnavailable);
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "1 of 3 replica clusters took the write, 2 needed: the write is in "
                                "doubt: it is stored at a"))
      << refused.status();
  EXPECT_FALSE(absl::StrContains(refused.status().message(), "nothing was stored"));
  // b and c are known down now: the next write is refused before anything is stored.
  auto writable = c->CheckWritable(ThreeOf(2), "a", replicas_);
  MCOS_EXPECT_CODE(writable, kUnavailable);
  EXPECT_TRUE(absl::StrContains(writable.message(),
                                "only 1 of 3 replica clusters can be reached now, 2 needed (b, c "
                                "do not answer); nothing was stored"))
      << writable;
  MCOS_EXPECT_OK(c->CheckWritable(ThreeOf(2, /*degraded=*/true), "a", replicas_));
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

TEST_F(CoordinatorTest, AQuorumReadAsksOnlyEnoughReplicasAndReplacesAFailedOne) {
  // R = 3, W = 2: two answers overlap every acknowledged write. a is stale, b and c hold v9.
  mem_["a"]->Store("o", Record(5, "stale"), "stale");
  mem_["b"]->Store("o", Record(9, "fresh"), "fresh");
  mem_["c"]->Store("o", Record(9, "fresh"), "fresh");
  auto c = Make();
  auto newest = c->Read(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kQuorum);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 9u);
  EXPECT_EQ(mem_["a"]->stats() + mem_["b"]->stats() + mem_["c"]->stats(), 2);
  // One of the two asked is down: the third is asked instead.
  mem_["b"]->set_mode(MemoryReplica::Mode::kDown);
  const int before = mem_["a"]->stats() + mem_["b"]->stats() + mem_["c"]->stats();
  newest = c->Read(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kQuorum);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 9u);
  EXPECT_EQ(mem_["a"]->stats() + mem_["b"]->stats() + mem_["c"]->stats() - before, 3);
  // Two down: one answer is too few.
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  MCOS_EXPECT_CODE(c->Read(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kQuorum),
                   kUnavailable);
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
  req.set_user("u");
  req.set_container("c");
  auto all = c->List(req, members, 2, replicas_);
  MCOS_ASSERT_OK(all);
  std::vector<std::string> names;
  for (const auto& e : all->page->entries()) names.push_back(e.object());
  EXPECT_EQ(names, (std::vector<std::string>{"o1", "o3", "o4", "o5"}));
  EXPECT_EQ(all->page->entries(1).record().size(), 3u);  // o3: b's newer version
  EXPECT_EQ(all->holders[1], std::vector<std::string>{"b"});
  // a's page came whole, b's and c's with versions only; their newer versions (o3, o4, o5) are
  // in no whole page, so every page was asked again whole.
  EXPECT_EQ(mem_["a"]->lists(), 2);
  EXPECT_EQ(mem_["a"]->version_lists(), 0);
  EXPECT_EQ(mem_["b"]->version_lists(), 1);
  EXPECT_EQ(mem_["b"]->lists(), 1);
  EXPECT_TRUE(all->page->next_marker().empty());
  // Pages of two, following the markers, see the same names once each.
  std::vector<std::string> paged;
  req.set_limit(2);
  for (int i = 0; i < 10; ++i) {
    auto page = c->List(req, members, 2, replicas_);
    MCOS_ASSERT_OK(page);
    for (const auto& e : page->page->entries()) paged.push_back(e.object());
    if (page->page->next_marker().empty()) break;
    req.set_marker(page->page->next_marker());
  }
  EXPECT_EQ(paged, names);
}

TEST_F(CoordinatorTest, ListingPagesThatAgreeWithTheWholeOneAreAskedWithVersionsOnly) {
  // Every copy holds the same versions (o2 deleted everywhere); b's copy is in this process.
  for (const char* m : {"a", "b", "c"}) {
    mem_[m]->Store("o1", RecordOf(1, "x"), "x");
    mem_[m]->Store("o2", Record(2, "", true), "");
    mem_[m]->Store("o3", RecordOf(3, "xyz"), "xyz");
  }
  mem_["b"]->set_in_process(true);
  auto c = Make();
  mcos::v1::StorageListRequest req;
  req.set_user("u");
  req.set_container("c");
  auto listing = c->List(req, {"a", "b", "c"}, 2, replicas_, Coordinator::ReadScope::kQuorum);
  MCOS_ASSERT_OK(listing);
  ASSERT_EQ(listing->page->entries_size(), 2);
  // Whole records (b's), with every holder that answered.
  const auto& o3 = listing->page->entries(1);
  EXPECT_EQ(o3.object(), "o3");
  EXPECT_EQ(o3.record().size(), 3u);
  EXPECT_EQ(o3.record().etag(), testing::Md5Hex("xyz"));
  EXPECT_EQ(o3.record().checksum(), "sha256:" + testing::Sha256Hex("xyz"));
  EXPECT_EQ(listing->holders[1].size(), 2u);
  // One listing each of the two asked: b's whole, the other's versions only.
  EXPECT_EQ(mem_["b"]->lists(), 1);
  EXPECT_EQ(mem_["b"]->version_lists(), 0);
  EXPECT_EQ(mem_["a"]->version_lists() + mem_["c"]->version_lists(), 1);
  EXPECT_EQ(mem_["a"]->lists() + mem_["c"]->lists(), 0);
  // A copy with a newer version than this process's: asked again whole, the newer one listed.
  mem_["a"]->Store("o3", RecordOf(4, "abcd"), "abcd");
  mem_["c"]->Store("o3", RecordOf(4, "abcd"), "abcd");
  listing = c->List(req, {"a", "b", "c"}, 2, replicas_, Coordinator::ReadScope::kQuorum);
  MCOS_ASSERT_OK(listing);
  ASSERT_EQ(listing->page->entries_size(), 2);
  EXPECT_EQ(listing->page->entries(1).record().size(), 4u);
  EXPECT_EQ(listing->page->entries(1).record().etag(), testing::Md5Hex("abcd"));
  EXPECT_EQ(mem_["b"]->lists(), 3);
}

TEST_F(CoordinatorTest, AClusterThatFailedIsCalledAgainOnceAProbeSucceeds) {
  CoordinatorOptions o;
  o.probe_period = absl::Seconds(1);
  auto c = Make(absl::Seconds(5), o);
  // Quorum reads ask only two of three (c is never asked), whatever was in flight.
  for (int i = 0; i < 5; ++i) {
    MCOS_ASSERT_OK(c->Read(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kQuorum));
  }
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  MCOS_ASSERT_OK(Write(*c, "o", 10, "x", ThreeOf(2)));
  // (Answered once a and b hold it; c's call reports its failure, then queues it.)
  for (int i = 0; i < 1000 && Queued().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(Queued(), (std::vector<std::pair<std::string, std::string>>{{"c", "o"}}));
  EXPECT_FALSE(c->IsAdmitted("c"));
  // Still down: a probe fails and it stays out; the next write queues it without calling it.
  const int stats = mem_["c"]->stats();
  clock_.Advance(absl::Seconds(2));
  c->ProbeOnce();
  for (int i = 0; i < 500 && mem_["c"]->stats() == stats; ++i)
    absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(mem_["c"]->stats(), stats + 1);
  EXPECT_FALSE(c->IsAdmitted("c"));
  const int calls = mem_["c"]->puts();
  MCOS_ASSERT_OK(Write(*c, "q", 12, "z", ThreeOf(2)));
  EXPECT_EQ(mem_["c"]->puts(), calls);
  // Back: the next probe admits it, and writes reach it again.
  mem_["c"]->set_mode(MemoryReplica::Mode::kOk);
  clock_.Advance(absl::Seconds(2));
  c->ProbeOnce();
  for (int i = 0; i < 500 && !c->IsAdmitted("c"); ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_TRUE(c->IsAdmitted("c"));
  auto holders = Write(*c, "r", 13, "w", ThreeOf(3));
  MCOS_ASSERT_OK(holders);
  EXPECT_EQ(*holders, (std::vector<std::string>{"a", "b", "c"}));
}

// A cluster restarted at another address: calls still running through the replica of its old
// address fail, and must not keep out the cluster that its new replica reaches.
TEST_F(CoordinatorTest, FailuresThroughAReplicaNoLongerUsedDoNotKeepTheClusterOut) {
  auto c = Make();
  const std::shared_ptr<Replica> old_address = replicas_["b"];  // any other replica object
  ASSERT_TRUE(c->Admit("c", replicas_["c"]));
  c->Report("c", absl::UnavailableError("connection reset"), old_address.get());
  EXPECT_TRUE(c->IsAdmitted("c"));
  c->Report("c", absl::DeadlineExceededError("no answer"), old_address.get());
  EXPECT_TRUE(c->IsAdmitted("c"));
  // Through the replica it is called by now, or with no replica named, a failure counts.
  c->Report("c", absl::UnavailableError("connection refused"), replicas_["c"].get());
  EXPECT_FALSE(c->IsAdmitted("c"));
  c->Report("c", absl::OkStatus(), old_address.get());  // any answer admits it again
  EXPECT_TRUE(c->IsAdmitted("c"));
  c->Report("c", absl::UnavailableError("stalled"));
  EXPECT_FALSE(c->IsAdmitted("c"));
}

TEST_F(CoordinatorTest, AWriteReplacedByALaterOneOfTheSameClusterCountsAsTaken) {
  // b and c already hold version 100 of cluster a: a later write a coordinated (racing this one).
  mem_["b"]->Store("o", Record(100, "later"), "later");
  mem_["c"]->Store("o", Record(100, "later"), "later");
  auto c = Make();
  auto written = WriteVersion(*c, "o", 50, "earlier", ThreeOf(3));
  MCOS_ASSERT_OK(written);
  EXPECT_EQ(written->record.version().hlc(), 50u);  // not stamped again
  EXPECT_EQ(written->holders, std::vector<std::string>{"a"});
  c.reset();
  EXPECT_EQ(mem_["b"]->Held("o")->second, "later");
}

TEST_F(CoordinatorTest, AClusterNoRequestUsesIsForgottenAndNotProbed) {
  auto c = Make();
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  mem_["a"]->Store("o", Record(9, "v"), "v");
  mem_["b"]->Store("o", Record(9, "v"), "v");
  // a and b hold it and name no other holder: c is asked too, and fails.
  MCOS_ASSERT_OK(c->Read(Key("o"), ThreeOf(2), replicas_));
  EXPECT_FALSE(c->IsAdmitted("c"));
  // Removed from the federation, say: no request names it for 10 minutes.
  clock_.Advance(absl::Minutes(11));
  const int stats = mem_["c"]->stats();
  c->ProbeOnce();
  c.reset();  // (waits for probes on the clusters' threads)
  EXPECT_EQ(mem_["c"]->stats(), stats);
}

// Item 2 of "One object path": the coordinating cluster's copy records who took a write once
// every replica answered; a read then asks R-W+1 replicas, not R, and still names every holder.
TEST_F(CoordinatorTest, AWriteRecordsItsHoldersAndReadsThenAskOnlyTheQuorum) {
  auto c = Make();
  MCOS_ASSERT_OK(Write(*c, "o", 10, "v", ThreeOf(2)));
  for (int i = 0; i < 1000 && mem_["a"]->Holders("o").size() < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_THAT(mem_["a"]->Holders("o"), ::testing::IsSupersetOf({"a", "b", "c"}));
  // b and c stored it from a: each names a and itself.
  EXPECT_THAT(mem_["b"]->Holders("o"), ::testing::IsSupersetOf({"a", "b"}));
  EXPECT_THAT(mem_["c"]->Holders("o"), ::testing::IsSupersetOf({"a", "c"}));
  const int stats_c = mem_["c"]->stats();
  auto newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(mem_["a"]->stats() + mem_["b"]->stats(), 2);  // the quorum, a first
  EXPECT_EQ(mem_["c"]->stats(), stats_c);                 // a's record vouches for c
}

TEST_F(CoordinatorTest, AReadAsksTheHoldersNoRecordNamesAndThisClusterRecordsThem) {
  // Stored by repair, say: each copy names only itself and where it came from.
  for (const char* c : {"a", "b", "c"}) mem_[c]->Store("o", Record(9, "v"), "v");
  mem_["a"]->set_in_process(true);  // this cluster's copy
  auto c = Make();
  auto newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(mem_["c"]->stats(), 1);  // named by no answer: asked
  EXPECT_THAT(mem_["a"]->Holders("o"), ::testing::IsSupersetOf({"a", "b", "c"}));
  // The next read need not ask c; it is read from one that answered.
  newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(newest->answered, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(mem_["c"]->stats(), 1);
  // A holder that does not answer now is not named, though a record vouches for it.
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  c->Report("c", absl::UnavailableError("down"));
  newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b"}));
  // Nor is one that holds an older version: b holds a newer one than a's record knows of.
  mem_["c"]->set_mode(MemoryReplica::Mode::kOk);
  c->Report("c", absl::OkStatus());
  mem_["b"]->Store("o", Record(12, "newer"), "newer");
  newest = c->Read(Key("o"), ThreeOf(2), replicas_);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 12u);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"b"}));
}

// The same through ReadAsync, which no thread waits for: the holders the quorum's answers vouch
// for are named without asking them; when none vouches for a candidate, Read asks it.
TEST_F(CoordinatorTest, AReadNoThreadWaitsForNamesTheHoldersAndAsksOnlyThoseNoRecordNames) {
  for (const char* c : {"a", "b", "c"}) mem_[c]->Store("o", Record(9, "v"), "v");
  mem_["a"]->set_in_process(true);  // this cluster's copy
  auto c = Make();
  auto read = [&] {
    std::promise<absl::StatusOr<Newest>> answer;
    c->ReadAsync(Key("o"), ThreeOf(2), replicas_, Coordinator::ReadScope::kEveryHolder,
                 [&](absl::StatusOr<Newest> newest) { answer.set_value(std::move(newest)); });
    return answer.get_future().get();
  };
  auto newest = read();
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(mem_["c"]->stats(), 1);  // named by no answer: asked
  EXPECT_THAT(mem_["a"]->Holders("o"), ::testing::IsSupersetOf({"a", "b", "c"}));
  const int stats_a = mem_["a"]->stats();
  const int stats_b = mem_["b"]->stats();
  newest = read();
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(newest->answered, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(mem_["a"]->stats() - stats_a + mem_["b"]->stats() - stats_b, 2);  // the quorum only
  EXPECT_EQ(mem_["c"]->stats(), 1);
  // A holder that does not answer now is not named, though a record vouches for it.
  mem_["c"]->set_mode(MemoryReplica::Mode::kDown);
  c->Report("c", absl::UnavailableError("down"));
  newest = read();
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"a", "b"}));
  // A newer version b alone holds: named by b only, and c (not vouched for) is asked.
  mem_["c"]->set_mode(MemoryReplica::Mode::kOk);
  c->Report("c", absl::OkStatus());
  mem_["b"]->Store("o", Record(12, "newer"), "newer");
  newest = read();
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 12u);
  EXPECT_EQ(newest->holders, (std::vector<std::string>{"b"}));
}

TEST_F(CoordinatorTest, StatsStartedWithoutBlockingAreHedgedAndWaitedForAtShutdown) {
  std::unique_ptr<Coordinator> c;
  // a hangs: c is asked after the hedge delay, from this thread, instead of a's 30 s.
  auto newest = FrozenQuorumRead("a", /*async=*/true, c);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 9u);
  EXPECT_EQ(newest->answered, (std::vector<std::string>{"b", "c"}));
  // The coordinator goes only once a's call ended (here: released).
  std::thread release([&] {
    absl::SleepFor(absl::Milliseconds(50));
    mem_["a"]->Release();
  });
  c.reset();
  release.join();
}

// Content held in memory (a small upload) and tombstones go to replicas that take writes without
// blocking from the replicating thread (CopyAsync); a hanging one does not hold the answer back,
// is queued once its deadline passes, and the coordinator goes only once its call ended.
TEST_F(CoordinatorTest, WritesOfContentInMemoryAreStartedWithoutBlockingAndWaitedForAtShutdown) {
  for (const char* name : {"b", "c"}) mem_[name]->set_async(true);
  mem_["c"]->set_mode(MemoryReplica::Mode::kHang);
  auto c = Make(absl::Seconds(1));
  const auto r = Record(10, "small");
  mem_["a"]->Store("o", r, "small");
  const absl::Time start = absl::Now();
  auto replicated = c->ReplicateAndWait(Key("o"), r, ThreeOf(2),
                                        replication::InlineReplica("a", r, "small"), replicas_);
  MCOS_ASSERT_OK(replicated);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900)) << "waited for the hanging replica";
  EXPECT_EQ(replicated->holders, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(mem_["b"]->async_writes(), 1);
  EXPECT_EQ(mem_["c"]->async_writes(), 1);
  auto held = mem_["b"]->Held("o");
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->second, "small");
  // The source names itself as a holder of what it sends.
  EXPECT_EQ(std::vector<std::string>(held->first.holders().begin(), held->first.holders().end()),
            (std::vector<std::string>{"a", "b"}));
  // A tombstone goes the same way.
  const auto tombstone = Record(20, "", /*tombstone=*/true);
  mem_["a"]->Store("o", tombstone, "");
  MCOS_ASSERT_OK(c->ReplicateAndWait(Key("o"), tombstone, ThreeOf(2), replicas_["a"], replicas_));
  c.reset();  // waits for every call still in flight
  auto gone = mem_["b"]->Held("o");
  ASSERT_TRUE(gone.has_value());
  EXPECT_TRUE(gone->first.tombstone());
  EXPECT_EQ(mem_["b"]->async_writes(), 2);
  EXPECT_FALSE(mem_["c"]->Held("o").has_value());
  // c's writes timed out (DEADLINE_EXCEEDED; the tombstone's too, unless c was kept out by then):
  // queued, from the coordinator's threads.
  const auto queued = Queued();
  EXPECT_FALSE(queued.empty());
  for (const auto& q : queued) {
    EXPECT_EQ(q, (std::pair<std::string, std::string>{"c", "o"}));
  }
}

TEST_F(CoordinatorTest, AFrozenClusterIsNotWaitedForByAQuorumRead) {
  std::unique_ptr<Coordinator> c;
  // a answers, b hangs: c is asked after the hedge delay instead of b's 30 s.
  auto newest = FrozenQuorumRead("b", /*async=*/false, c);
  MCOS_ASSERT_OK(newest);
  EXPECT_EQ(newest->record->version().hlc(), 9u);
  EXPECT_EQ(mem_["c"]->stats(), 1);
  mem_["b"]->Release();
}

TEST_F(CoordinatorTest, AWriteOlderThanWhatReplicasHoldIsStampedAgainAboveIt) {
  // b and c hold version 100 written by cluster b, whose clock is ahead; a's clock stamped 50.
  const auto theirs = Record(100, "theirs", false, "b");
  mem_["b"]->Store("o", theirs, "theirs");
  mem_["c"]->Store("o", theirs, "theirs");
  auto c = Make();
  // (Sent from a copy in memory, as a small upload is: a's own copy is replaced by the new stamp
  // while the others are sent theirs.)
  const auto mine = Record(50, "mine, acknowledged last");
  mem_["a"]->Store("o", mine, "mine, acknowledged last");
  auto written = c->ReplicateAndWait(
      Key("o"), mine, ThreeOf(2), replication::InlineReplica("a", mine, "mine, acknowledged last"),
      replicas_);
  MCOS_ASSERT_OK(written);
  EXPECT_GT(written->record.version().hlc(), 100u);
  EXPECT_GE(written->holders.size(), 2u);
  c.reset();
  for (const char* r : {"a", "b", "c"}) {
    auto held = mem_[r]->Held("o");
    ASSERT_TRUE(held.has_value()) << r;
    EXPECT_EQ(held->second, "mine, acknowledged last") << r;
    EXPECT_EQ(held->first.version().hlc(), written->record.version().hlc()) << r;
  }
  // The same for a delete.
  c = Make();
  mem_["b"]->Store("d", Record(200, "x", false, "b"), "x");
  mem_["c"]->Store("d", Record(200, "x", false, "b"), "x");
  const auto tombstone = Record(60, "", /*tombstone=*/true);
  mem_["a"]->Store("d", tombstone, "");
  auto deleted = c->ReplicateAndWait(Key("d"), tombstone, ThreeOf(2), replicas_["a"], replicas_);
  MCOS_ASSERT_OK(deleted);
  EXPECT_GT(deleted->record.version().hlc(), 200u);
  c.reset();
  for (const char* r : {"a", "b", "c"}) EXPECT_TRUE(mem_[r]->Held("d")->first.tombstone()) << r;
}

}  // namespace
}  // namespace mcos::server
