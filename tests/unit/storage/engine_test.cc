// The storage engine contract, run against both engines: the RocksDB engine (real RocksDB in a
// temp dir) and its in-memory twin. Then what only the RocksDB engine promises: space given back,
// corruption detected, and everything kept across a reopen. No sockets.
#include <gmock/gmock.h>
#include <google/protobuf/arena.h>
#include <gtest/gtest.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "placement/placement.h"
#include "storage/data_file.h"
#include "storage/engine_rules.h"
#include "storage/memory_engine.h"
#include "storage/rocksdb_engine.h"
#include "tests/support/corrupt_chunk.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"
#include "tests/support/wait_for.h"

namespace mcos::storage {
namespace {

using mcos::v1::ObjectKey;

using testing::Key;

mcos::v1::Version V(uint64_t hlc) {
  mcos::v1::Version v;
  v.set_hlc(hlc);
  v.set_cluster("c1");
  return v;
}

class EngineTestBase : public ::testing::Test {
 protected:
  explicit EngineTestBase(bool memory) : memory_(memory) {}
  void SetUp() override { Reopen(); }

  // Reopens the RocksDB engine on its directory (the memory engine stays as it is).
  void Reopen() {
    if (memory_) {
      if (engine_ == nullptr) engine_ = std::make_unique<MemoryEngine>();
      return;
    }
    engine_.reset();
    rocks_ = nullptr;
    RocksDbOptions options;
    options.path = dir_.Sub("db");
    auto e = RocksDbEngine::Open(options);
    ASSERT_TRUE(e.ok()) << e.status();
    rocks_ = e->get();
    engine_ = std::move(*e);
  }

  absl::StatusOr<WriteResult> Put(
      const ObjectKey& key, uint64_t version, const std::string& content, size_t piece = 1 << 20,
      mcos::v1::WritePrecondition pre = mcos::v1::WRITE_PRECONDITION_NONE,
      const std::string& option = "") {
    mcos::v1::StoragePutHeader h;
    h.set_option(option);
    h.set_precondition(pre);
    return PutWith(h, key, version, content, piece);
  }
  // Put with the other fields of `h` (and the finish message `finish`) as given.
  absl::StatusOr<WriteResult> PutWith(mcos::v1::StoragePutHeader h, const ObjectKey& key,
                                      uint64_t version, const std::string& content,
                                      size_t piece = 1 << 20,
                                      const mcos::v1::StoragePutFinish& finish = {}) {
    *h.mutable_key() = key;
    *h.mutable_version() = V(version);
    h.set_content_type("application/octet-stream");
    auto stream = engine_->BeginPut(h);
    if (!stream.ok()) return stream.status();
    for (size_t pos = 0; pos < content.size(); pos += piece) {
      auto s = (*stream)->Append(absl::string_view(content).substr(pos, piece));
      if (!s.ok()) return s;
    }
    return (*stream)->Commit(finish);
  }

  // Put through Engine::CommitAsync: the answer, once `done` ran (on whichever thread).
  std::future<absl::StatusOr<WriteResult>> StartPutAsync(
      const ObjectKey& key, uint64_t version, const std::string& content,
      mcos::v1::WritePrecondition pre = mcos::v1::WRITE_PRECONDITION_NONE,
      std::optional<uint64_t> declared_size = std::nullopt) {
    auto answer = std::make_shared<std::promise<absl::StatusOr<WriteResult>>>();
    auto future = answer->get_future();
    mcos::v1::StoragePutHeader h;
    *h.mutable_key() = key;
    *h.mutable_version() = V(version);
    h.set_precondition(pre);
    if (declared_size) h.set_size(*declared_size);
    auto stream = engine_->BeginPut(h);
    if (!stream.ok()) {
      answer->set_value(stream.status());
      return future;
    }
    if (absl::Status s = (*stream)->Append(content); !s.ok()) {
      answer->set_value(s);
      return future;
    }
    engine_->CommitAsync(*std::move(stream), {}, [answer](absl::StatusOr<WriteResult> result) {
      answer->set_value(std::move(result));
    });
    return future;
  }
  absl::StatusOr<WriteResult> PutAsync(
      const ObjectKey& key, uint64_t version, const std::string& content,
      mcos::v1::WritePrecondition pre = mcos::v1::WRITE_PRECONDITION_NONE,
      std::optional<uint64_t> declared_size = std::nullopt) {
    return StartPutAsync(key, version, content, pre, declared_size).get();
  }
  // Delete through Engine::DeleteAsync.
  std::future<absl::StatusOr<WriteResult>> StartDeleteAsync(const ObjectKey& key,
                                                            uint64_t version) {
    auto answer = std::make_shared<std::promise<absl::StatusOr<WriteResult>>>();
    auto future = answer->get_future();
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = key;
    if (version != 0) *r.mutable_version() = V(version);
    engine_->DeleteAsync(
        r, [answer](absl::StatusOr<WriteResult> result) { answer->set_value(std::move(result)); });
    return future;
  }

  absl::StatusOr<std::string> Read(const ObjectKey& key, uint64_t offset = 0, uint64_t length = 0,
                                   std::optional<uint64_t> version = std::nullopt) {
    mcos::v1::StorageGetRequest r;
    *r.mutable_key() = key;
    r.set_offset(offset);
    r.set_length(length);
    if (version) *r.mutable_version() = V(*version);
    auto reader = engine_->OpenReader(r);
    if (!reader.ok()) return reader.status();
    std::string out, piece;
    while (true) {
      auto more = (*reader)->Next(&piece);
      if (!more.ok()) return more.status();
      if (!*more) break;
      out += piece;
    }
    return out;
  }

  absl::StatusOr<WriteResult> Delete(const ObjectKey& key, uint64_t version,
                                     const std::string& option = "") {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = key;
    *r.mutable_version() = V(version);
    r.set_option(option);
    return engine_->Delete(r);
  }

  // A page of the listing, built on an arena (as the coordinator builds them) and copied out.
  absl::StatusOr<mcos::v1::StorageListResponse> List(const mcos::v1::StorageListRequest& req) {
    google::protobuf::Arena arena;
    auto* page = google::protobuf::Arena::CreateMessage<mcos::v1::StorageListResponse>(&arena);
    MCOS_RETURN_IF_ERROR(engine_->List(req, page));
    return *page;
  }

  // Number of keys in the data column family (RocksDB only).
  int DataKeys() {
    std::unique_ptr<rocksdb::Iterator> it(
        rocks_->db_for_test()->NewIterator(rocksdb::ReadOptions(), rocks_->data_cf_for_test()));
    int n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }

  const bool memory_;
  testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
  RocksDbEngine* rocks_ = nullptr;  // engine_, when it is the RocksDB engine
};

// The contract: every test here runs against both engines.
class EngineContractTest : public EngineTestBase,
                           public ::testing::WithParamInterface<std::string> {
 protected:
  EngineContractTest() : EngineTestBase(GetParam() == "memory") {}
};

INSTANTIATE_TEST_SUITE_P(Engines, EngineContractTest, ::testing::Values("rocksdb", "memory"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// What only the RocksDB engine promises.
class RocksDbEngineTest : public EngineTestBase {
 protected:
  RocksDbEngineTest() : EngineTestBase(/*memory=*/false) {}
};

TEST_P(EngineContractTest, RoundTripsSmallAndMultiChunkObjects) {
  auto r = Put(Key("hello"), 10, "hello");
  MCOS_ASSERT_OK(r);
  EXPECT_TRUE(r->applied);
  EXPECT_EQ(r->record.etag(), "5d41402abc4b2a76b9719d911017c592");
  EXPECT_EQ(r->record.checksum(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(*Read(Key("hello")), "hello");

  const std::string big = testing::RandomBytes(3 * kChunkSize + 12345, 1);
  auto b = Put(Key("big"), 11, big, 300000);  // pieces that straddle chunk boundaries
  MCOS_ASSERT_OK(b);
  EXPECT_EQ(b->record.size(), big.size());
  EXPECT_EQ(b->record.chunk_count(), 4u);
  EXPECT_EQ(b->record.etag(), testing::Md5Hex(big));
  EXPECT_EQ(*Read(Key("big")), big);

  auto empty = Put(Key("empty"), 12, "");
  MCOS_ASSERT_OK(empty);
  EXPECT_EQ(*Read(Key("empty")), "");
  EXPECT_EQ(empty->record.etag(), "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_P(EngineContractTest, PartitionUsageCountsLiveObjectsPerOptionAndPartition) {
  // Expected bytes per partition at power 8 and 18, from the placement functions.
  std::map<uint32_t, uint64_t> want8, want18;
  uint64_t total = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string name = "obj" + std::to_string(i);
    const std::string data(static_cast<size_t>(10 + i), 'x');
    MCOS_ASSERT_OK(Put(Key(name), 10, data, 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
    const uint64_t h = placement::ObjectHash("u", "c", name);
    want8[placement::PartitionOf(h, 8)] += data.size();
    want18[placement::PartitionOf(h, 18)] += data.size();
    total += data.size();
  }
  // Another option's objects, and objects put without an option, are not counted for "gold".
  MCOS_ASSERT_OK(
      Put(Key("other"), 10, "zzz", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "silver"));
  MCOS_ASSERT_OK(Put(Key("plain"), 10, "zzz"));
  // An update replaces the old size; a delete and an ignored older version change nothing more.
  MCOS_ASSERT_OK(Put(Key("obj0"), 20, std::string(1000, 'y'), 1 << 20,
                     mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  const uint64_t h0 = placement::ObjectHash("u", "c", "obj0");
  want8[placement::PartitionOf(h0, 8)] += 1000 - 10;
  want18[placement::PartitionOf(h0, 18)] += 1000 - 10;
  MCOS_ASSERT_OK(Delete(Key("obj1"), 20));
  MCOS_ASSERT_OK(Put(Key("obj1"), 5, "stale", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  const uint64_t h1 = placement::ObjectHash("u", "c", "obj1");
  want8[placement::PartitionOf(h1, 8)] -= 11;
  want18[placement::PartitionOf(h1, 18)] -= 11;
  total += 1000 - 10 - 11;

  auto check = [&](uint32_t power, const std::map<uint32_t, uint64_t>& want) {
    mcos::v1::PartitionUsageRequest r;
    r.set_option("gold");
    r.set_partition_power(power);
    auto usage = engine_->PartitionUsage(r);
    MCOS_ASSERT_OK(usage);
    std::map<uint32_t, uint64_t> got;
    uint64_t sum = 0, objects = 0;
    uint32_t last = 0;
    for (const auto& p : usage->partitions()) {
      EXPECT_TRUE(got.empty() || p.partition() > last) << "partitions must ascend";
      last = p.partition();
      got[p.partition()] = p.bytes_used();
      sum += p.bytes_used();
      objects += p.object_count();
    }
    std::map<uint32_t, uint64_t> nonzero;
    for (const auto& [k, v] : want) {
      if (v != 0) nonzero[k] = v;
    }
    EXPECT_EQ(got, nonzero) << "power " << power;
    EXPECT_EQ(sum, total);
    EXPECT_EQ(objects, 299u);
  };
  check(8, want8);
  check(18, want18);
  Reopen();  // RocksDB: the counts are on disk, not in memory
  check(8, want8);

  mcos::v1::PartitionUsageRequest bad;
  bad.set_option("gold");
  bad.set_partition_power(19);
  MCOS_EXPECT_CODE(engine_->PartitionUsage(bad), kInvalidArgument);
}

TEST_P(EngineContractTest, RangeReadsAtTheEdges) {
  const std::string data = testing::RandomBytes(2 * kChunkSize + 100, 2);
  MCOS_ASSERT_OK(Put(Key("r"), 1, data));
  EXPECT_EQ(*Read(Key("r"), 0, 1), data.substr(0, 1));
  EXPECT_EQ(*Read(Key("r"), data.size() - 1, 0), data.substr(data.size() - 1));
  EXPECT_EQ(*Read(Key("r"), kChunkSize - 5, 10), data.substr(kChunkSize - 5, 10));
  EXPECT_EQ(*Read(Key("r"), 7, 0), data.substr(7));
  EXPECT_EQ(*Read(Key("r"), 7, data.size() * 2), data.substr(7));  // length clamps
  MCOS_EXPECT_CODE(Read(Key("r"), data.size(), 0), kOutOfRange);
  MCOS_EXPECT_CODE(Read(Key("r"), data.size() + 100, 1), kOutOfRange);
  MCOS_ASSERT_OK(Put(Key("e"), 1, ""));
  MCOS_EXPECT_CODE(Read(Key("e"), 1, 0), kOutOfRange);
}

TEST_P(EngineContractTest, OlderAndEqualVersionsAreIgnoredAndSaySo) {
  MCOS_ASSERT_OK(Put(Key("o"), 20, "new"));
  auto older = Put(Key("o"), 10, "old");
  MCOS_ASSERT_OK(older);
  EXPECT_FALSE(older->applied);
  EXPECT_EQ(older->record.version().hlc(), 20u);
  EXPECT_NE(older->reason.find("newer"), std::string::npos);
  auto replay = Put(Key("o"), 20, "again");
  MCOS_ASSERT_OK(replay);
  EXPECT_FALSE(replay->applied);
  EXPECT_EQ(*Read(Key("o")), "new");
}

TEST_P(EngineContractTest, ARestampedWriteCommitsAboveANewerVersion) {
  MCOS_ASSERT_OK(Put(Key("o"), 20, "stored by another cluster"));
  mcos::v1::StoragePutHeader restamp;
  restamp.set_restamp(true);
  auto mine = PutWith(restamp, Key("o"), 10, "the coordinator's own");
  MCOS_ASSERT_OK(mine);
  EXPECT_TRUE(mine->applied);
  EXPECT_EQ(mine->record.version().hlc(), 21u);
  EXPECT_EQ(mine->record.version().cluster(), "c1");
  EXPECT_EQ(*Read(Key("o")), "the coordinator's own");
  // Newer than what is stored: its own stamp.
  auto newer = PutWith(restamp, Key("o"), 30, "newer still");
  MCOS_ASSERT_OK(newer);
  EXPECT_EQ(newer->record.version().hlc(), 30u);
  // A delete too.
  mcos::v1::StorageDeleteRequest del;
  *del.mutable_key() = Key("o");
  *del.mutable_version() = V(5);
  del.set_restamp(true);
  auto deleted = engine_->Delete(del);
  MCOS_ASSERT_OK(deleted);
  EXPECT_TRUE(deleted->applied);
  EXPECT_EQ(deleted->record.version().hlc(), 31u);
  EXPECT_TRUE(deleted->record.tombstone());
}

// A replica streamed while its coordinator still receives the upload: the header's version is
// provisional, the finish message's is committed (and checked like any replica write).
TEST_P(EngineContractTest, AVersionAtFinishIsTheOneCommittedAndTheHeadersIsNeverFinal) {
  MCOS_ASSERT_OK(Put(Key("s"), 20, "stored by another cluster"));
  mcos::v1::StoragePutHeader streamed;
  streamed.set_version_at_finish(true);
  const std::string content = "streamed before its version was known";
  mcos::v1::StoragePutFinish finish;
  *finish.mutable_version() = V(25);
  finish.set_size(content.size());
  finish.set_md5_hex(testing::Md5Hex(content));
  finish.set_sha256_hex(testing::Sha256Hex(content));
  finish.set_xxh3(common::Hash64(content));
  // Provisional 10 is older than what is stored, yet the stream is not answered as superseded:
  // its version is the finish message's, 25, which is newer.
  auto applied = PutWith(streamed, Key("s"), 10, content, 7, finish);
  MCOS_ASSERT_OK(applied);
  EXPECT_TRUE(applied->applied);
  EXPECT_EQ(applied->record.version().hlc(), 25u);
  EXPECT_EQ(applied->record.etag(), testing::Md5Hex(content));
  EXPECT_EQ(applied->record.checksum(), "sha256:" + testing::Sha256Hex(content));
  EXPECT_EQ(*Read(Key("s")), content);
  // A finish version at or below what is stored changes nothing.
  *finish.mutable_version() = V(25);
  auto replay = PutWith(streamed, Key("s"), 30, content, 7, finish);
  MCOS_ASSERT_OK(replay);
  EXPECT_FALSE(replay->applied);
  // The content is checked against the finish's XXH3-64 and size (the digests it carries were
  // computed where the upload arrived), and the digests must be there.
  *finish.mutable_version() = V(40);
  finish.set_xxh3(common::Hash64("something else"));
  MCOS_EXPECT_CODE(PutWith(streamed, Key("s"), 30, content, 7, finish), kInvalidArgument);
  finish.clear_xxh3();
  MCOS_EXPECT_CODE(PutWith(streamed, Key("s"), 30, content, 7, finish), kInvalidArgument);
  finish.set_xxh3(common::Hash64(content));
  finish.set_size(content.size() + 1);
  MCOS_EXPECT_CODE(PutWith(streamed, Key("s"), 30, content, 7, finish), kInvalidArgument);
  finish.set_size(content.size());
  finish.clear_sha256_hex();
  MCOS_EXPECT_CODE(PutWith(streamed, Key("s"), 30, content, 7, finish), kInvalidArgument);
  finish.set_sha256_hex(testing::Sha256Hex(content));
  // Without the version in the finish message nothing is stored; nor with one the header did not
  // announce.
  finish.clear_version();
  MCOS_EXPECT_CODE(PutWith(streamed, Key("s"), 30, content, 7, finish), kInvalidArgument);
  *finish.mutable_version() = V(40);
  MCOS_EXPECT_CODE(PutWith({}, Key("s"), 30, content, 7, finish), kInvalidArgument);
  auto held = engine_->Stat(Key("s"), false);
  MCOS_ASSERT_OK(held);
  EXPECT_EQ(held->version().hlc(), 25u);
  EXPECT_EQ(*Read(Key("s")), content);
}

TEST_P(EngineContractTest, HoldersAreStoredWithTheVersionAndAddedToOnlyForExactlyIt) {
  mcos::v1::StoragePutHeader h;
  h.add_holders("alpha");
  h.add_holders("beta");
  MCOS_ASSERT_OK(PutWith(h, Key("h"), 10, "held"));
  auto stat = engine_->Stat(Key("h"), false);
  MCOS_ASSERT_OK(stat);
  EXPECT_THAT(stat->holders(), ::testing::ElementsAre("alpha", "beta"));
  // Added once each, in order; for another version, nothing.
  auto added = engine_->AddHolders(Key("h"), V(10), {"gamma", "alpha", "delta"});
  MCOS_ASSERT_OK(added);
  EXPECT_TRUE(*added);
  EXPECT_FALSE(*engine_->AddHolders(Key("h"), V(10), {"beta"}));
  EXPECT_FALSE(*engine_->AddHolders(Key("h"), V(9), {"epsilon"}));
  EXPECT_FALSE(*engine_->AddHolders(Key("missing"), V(10), {"epsilon"}));
  stat = engine_->Stat(Key("h"), false);
  MCOS_ASSERT_OK(stat);
  EXPECT_THAT(stat->holders(), ::testing::ElementsAre("alpha", "beta", "gamma", "delta"));
  EXPECT_EQ(*Read(Key("h")), "held");  // the record changed, not the content
  // A newer version starts from its own write's holders; a tombstone has none to add to.
  MCOS_ASSERT_OK(Put(Key("h"), 11, "newer"));
  stat = engine_->Stat(Key("h"), false);
  MCOS_ASSERT_OK(stat);
  EXPECT_TRUE(stat->holders().empty());
  EXPECT_FALSE(*engine_->AddHolders(Key("h"), V(10), {"gamma"}));
  MCOS_ASSERT_OK(Delete(Key("h"), 12));
  EXPECT_FALSE(*engine_->AddHolders(Key("h"), V(12), {"gamma"}));
}

TEST_P(EngineContractTest, ARepairReplacesTheDataOfExactlyTheStoredVersion) {
  const ObjectKey key = Key("fixed");
  MCOS_ASSERT_OK(Put(key, 10, "the content"));
  const auto before = engine_->Stat(key, false);
  MCOS_ASSERT_OK(before);
  mcos::v1::StoragePutHeader repair;
  repair.set_repair(true);
  auto again = PutWith(repair, key, 10, "the content");
  MCOS_ASSERT_OK(again);
  EXPECT_TRUE(again->applied);
  EXPECT_NE(again->record.data_id(), before->data_id());  // new data, same version
  EXPECT_EQ(again->record.created().seconds(), before->created().seconds());
  EXPECT_EQ(*Read(key), "the content");
  // Without the flag the same version changes nothing; with it, an older one neither.
  auto plain = PutWith({}, key, 10, "the content");
  MCOS_ASSERT_OK(plain);
  EXPECT_FALSE(plain->applied);
  auto older = PutWith(repair, key, 9, "older");
  MCOS_ASSERT_OK(older);
  EXPECT_FALSE(older->applied);
  mcos::v1::ContainerUsageRequest usage;
  usage.set_user("u");
  usage.add_containers("c");
  EXPECT_EQ(engine_->Usage(usage)->usage(0).object_count(), 1u);
  EXPECT_EQ(engine_->Usage(usage)->usage(0).bytes_used(), 11u);
  // A tombstone is not "repaired" back to life.
  MCOS_ASSERT_OK(Delete(key, 11));
  auto over_tombstone = PutWith(repair, key, 11, "zombie");
  MCOS_ASSERT_OK(over_tombstone);
  EXPECT_FALSE(over_tombstone->applied);
  MCOS_EXPECT_CODE(Read(key), kNotFound);
  EXPECT_EQ(engine_->Usage(usage)->usage(0).object_count(), 0u);
}

TEST_P(EngineContractTest, AKeptVersionStaysReadableByVersionOnceReplaced) {
  const std::string first = testing::RandomBytes((3 << 20) + 5, 7);
  mcos::v1::StoragePutFinish keep;
  keep.set_keep_readable_ms(60000);
  MCOS_ASSERT_OK(PutWith({}, Key("o"), 10, first, 1 << 20, keep));
  MCOS_ASSERT_OK(Put(Key("o"), 20, "replaced"));
  EXPECT_EQ(*Read(Key("o")), "replaced");
  auto kept = Read(Key("o"), 0, 0, 10);
  MCOS_ASSERT_OK(kept);
  EXPECT_TRUE(*kept == first);
  EXPECT_EQ(*Read(Key("o"), 1 << 20, 3, 10), first.substr(1 << 20, 3));
  EXPECT_EQ(*Read(Key("o"), 0, 0, 20), "replaced");
  // A version not kept is gone once replaced.
  MCOS_EXPECT_CODE(Read(Key("o"), 0, 0, 15), kFailedPrecondition);
  MCOS_ASSERT_OK(Put(Key("o"), 30, "third"));
  MCOS_EXPECT_CODE(Read(Key("o"), 0, 0, 20), kFailedPrecondition);
  MCOS_EXPECT_OK(Read(Key("o"), 0, 0, 10));
  // Released before its time: gone.
  engine_->ReleaseKept(Key("o"), V(10));
  MCOS_EXPECT_CODE(Read(Key("o"), 0, 0, 10), kFailedPrecondition);
  engine_->ReleaseKept(Key("o"), V(10));  // again: nothing
  EXPECT_EQ(*Read(Key("o")), "third");
}

TEST_F(RocksDbEngineTest, DataAKeptVersionStillSeesIsReclaimedOnceItIsReleased) {
  mcos::v1::StoragePutFinish keep;
  keep.set_keep_readable_ms(600000);
  MCOS_ASSERT_OK(PutWith({}, Key("kept"), 10, testing::RandomBytes(3 << 20, 1), 1 << 20, keep));
  // Replaced while kept: compacting its chunks away now would keep them (the kept snapshot sees
  // them), so their range waits until the kept version is released.
  MCOS_ASSERT_OK(Put(Key("kept"), 20, "small"));
  auto compacted = rocks_->ReclaimOnce();
  MCOS_ASSERT_OK(compacted);
  EXPECT_EQ(*compacted, 0);
  MCOS_EXPECT_OK(Read(Key("kept"), 0, 0, 10));
  rocks_->ReleaseKept(Key("kept"), V(10));
  compacted = rocks_->ReclaimOnce();
  MCOS_ASSERT_OK(compacted);
  EXPECT_EQ(*compacted, 1);
  MCOS_EXPECT_CODE(Read(Key("kept"), 0, 0, 10), kFailedPrecondition);
  EXPECT_EQ(DataKeys(), 1);  // the small object's one chunk
}

TEST_P(EngineContractTest, DeleteWritesATombstoneThatWinsByVersion) {
  MCOS_ASSERT_OK(Put(Key("d"), 10, "x"));
  auto del = Delete(Key("d"), 20);
  MCOS_ASSERT_OK(del);
  EXPECT_TRUE(del->applied);
  EXPECT_EQ(del->prior, mcos::v1::WRITE_PRIOR_LIVE);
  MCOS_EXPECT_CODE(Read(Key("d")), kNotFound);
  // A delete over a tombstone replaced nothing live.
  auto again = Delete(Key("d"), 22);
  MCOS_ASSERT_OK(again);
  EXPECT_TRUE(again->applied);
  EXPECT_EQ(again->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  MCOS_EXPECT_CODE(engine_->Stat(Key("d"), false), kNotFound);
  auto tomb = engine_->Stat(Key("d"), true);
  MCOS_ASSERT_OK(tomb);
  EXPECT_TRUE(tomb->tombstone());
  // A put older than the tombstone does not bring the object back.
  auto late = Put(Key("d"), 15, "zombie");
  MCOS_ASSERT_OK(late);
  EXPECT_FALSE(late->applied);
  MCOS_EXPECT_CODE(Read(Key("d")), kNotFound);
  // An older delete of a newer object is ignored.
  MCOS_ASSERT_OK(Put(Key("d"), 30, "back"));
  auto stale = Delete(Key("d"), 25);
  MCOS_ASSERT_OK(stale);
  EXPECT_FALSE(stale->applied);
  EXPECT_EQ(*Read(Key("d")), "back");
  // A delete of something never written still records the tombstone (over nothing).
  auto never = Delete(Key("never"), 50);
  MCOS_ASSERT_OK(never);
  EXPECT_EQ(never->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  auto before = Put(Key("never"), 40, "x");
  MCOS_ASSERT_OK(before);
  EXPECT_FALSE(before->applied);
}

TEST_P(EngineContractTest, Preconditions) {
  MCOS_ASSERT_OK(Put(Key("p"), 1, "a"));
  MCOS_EXPECT_CODE(Put(Key("p"), 2, "b", 1 << 20, mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST),
                   kFailedPrecondition);
  MCOS_EXPECT_CODE(Put(Key("q"), 2, "b", 1 << 20, mcos::v1::WRITE_PRECONDITION_MUST_EXIST),
                   kFailedPrecondition);
  MCOS_EXPECT_CODE(engine_->Stat(Key("q"), true), kNotFound);  // a refused write records nothing
  MCOS_EXPECT_OK(Put(Key("p"), 3, "c", 1 << 20, mcos::v1::WRITE_PRECONDITION_MUST_EXIST));
  EXPECT_EQ(*Read(Key("p")), "c");
  mcos::v1::StorageDeleteRequest del;
  *del.mutable_key() = Key("q");
  *del.mutable_version() = V(4);
  del.set_precondition(mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
  MCOS_EXPECT_CODE(engine_->Delete(del), kFailedPrecondition);
  if (!memory_) {
    EXPECT_EQ(DataKeys(), 1);  // the refused writes left no chunks behind
  }
}

TEST_P(EngineContractTest, AnAbandonedUploadLeavesThePreviousVersionAndNoGarbage) {
  const std::string v1 = testing::RandomBytes(kChunkSize + 10, 3);
  MCOS_ASSERT_OK(Put(Key("a"), 1, v1));
  const int keys_before = memory_ ? 0 : DataKeys();
  {
    mcos::v1::StoragePutHeader h;
    *h.mutable_key() = Key("a");
    *h.mutable_version() = V(2);
    auto stream = engine_->BeginPut(h);
    MCOS_ASSERT_OK(stream);
    // Enough chunks to take both the WAL path and the path that bypasses it.
    const std::string piece = testing::RandomBytes(kChunkSize, 4);
    for (int i = 0; i < 12; ++i) MCOS_ASSERT_OK((*stream)->Append(piece));
  }  // destroyed without Commit
  EXPECT_EQ(*Read(Key("a")), v1);
  if (memory_) return;
  EXPECT_EQ(DataKeys(), keys_before);
  Reopen();
  EXPECT_EQ(rocks_->recovered_uploads(), 0);
  EXPECT_EQ(*Read(Key("a")), v1);
}

TEST_P(EngineContractTest, ContentNotMatchingTheHeaderIsRefused) {
  MCOS_ASSERT_OK(Put(Key("m"), 1, "original"));
  mcos::v1::StoragePutHeader h;
  *h.mutable_key() = Key("m");
  *h.mutable_version() = V(2);
  h.set_size(5);
  auto stream = engine_->BeginPut(h);
  MCOS_ASSERT_OK(stream);
  MCOS_ASSERT_OK((*stream)->Append("abc"));
  MCOS_EXPECT_CODE((*stream)->Commit({}), kInvalidArgument);
  stream->reset();

  h.clear_size();
  h.set_md5_hex(std::string(32, '0'));
  *h.mutable_version() = V(3);
  stream = engine_->BeginPut(h);
  MCOS_ASSERT_OK(stream);
  MCOS_ASSERT_OK((*stream)->Append("abc"));
  MCOS_EXPECT_CODE((*stream)->Commit({}), kInvalidArgument);
  stream->reset();
  EXPECT_EQ(*Read(Key("m")), "original");
}

TEST_F(RocksDbEngineTest, OverwriteDeletesTheOldData) {
  MCOS_ASSERT_OK(Put(Key("w"), 1, testing::RandomBytes(3 * kChunkSize, 5)));
  EXPECT_EQ(DataKeys(), 3);
  MCOS_ASSERT_OK(Put(Key("w"), 2, "small"));
  EXPECT_EQ(DataKeys(), 1);
  MCOS_ASSERT_OK(Delete(Key("w"), 3));
  EXPECT_EQ(DataKeys(), 0);
}

TEST_F(RocksDbEngineTest, ACorruptChunkIsDataLossNeverWrongBytes) {
  const std::string data = testing::RandomBytes(3 * kChunkSize, 6);
  auto put = Put(Key("x"), 1, data);
  MCOS_ASSERT_OK(put);
  // Flip one byte of chunk 1, keeping its stored checksum.
  const std::string key = DataKey(put->record.data_id(), 1);
  std::string value;
  ASSERT_TRUE(rocks_->db_for_test()
                  ->Get(rocksdb::ReadOptions(), rocks_->data_cf_for_test(), key, &value)
                  .ok());
  value[100] = static_cast<char>(value[100] ^ 0x01);
  ASSERT_TRUE(rocks_->db_for_test()
                  ->Put(rocksdb::WriteOptions(), rocks_->data_cf_for_test(), key, value)
                  .ok());

  mcos::v1::StorageGetRequest r;
  *r.mutable_key() = Key("x");
  auto reader = engine_->OpenReader(r);
  MCOS_ASSERT_OK(reader);
  std::string piece;
  auto first = (*reader)->Next(&piece);
  MCOS_ASSERT_OK(first);
  EXPECT_EQ(piece, data.substr(0, kChunkSize));
  auto second = (*reader)->Next(&piece);
  MCOS_EXPECT_CODE(second, kDataLoss);
  EXPECT_NE(second.status().message().find("chunk 1"), absl::string_view::npos);
  // A range inside the intact chunks still reads.
  EXPECT_EQ(*Read(Key("x"), 2 * kChunkSize, 10), data.substr(2 * kChunkSize, 10));
  MCOS_EXPECT_CODE(Read(Key("x"), kChunkSize + 5, 1), kDataLoss);
}

// A blob file with flipped bytes met by blob garbage collection (which re-reads and checks live
// blobs) fails that collection only: RocksDB would make it a fatal background error and refuse
// every later write, including the one that replaces the corrupt copy.
TEST_F(RocksDbEngineTest, CorruptionMetByGarbageCollectionDoesNotStopWrites) {
  const std::string kept = testing::RandomBytes(3 * kChunkSize, 7);
  MCOS_ASSERT_OK(Put(Key("kept"), 1, kept));
  MCOS_ASSERT_OK(Put(Key("gone"), 2, testing::RandomBytes(3 * kChunkSize, 8)));
  ASSERT_TRUE(
      rocks_->db_for_test()->Flush(rocksdb::FlushOptions(), rocks_->data_cf_for_test()).ok());
  std::vector<std::filesystem::path> blobs;
  for (const auto& f : std::filesystem::directory_iterator(dir_.Sub("db"))) {
    if (f.path().extension() == ".blob") blobs.push_back(f.path());
  }
  ASSERT_EQ(blobs.size(), 1u);
  {  // flip bytes inside every chunk of both objects
    std::fstream file(blobs[0], std::ios::in | std::ios::out | std::ios::binary);
    for (std::streamoff at = 4096; at < 6 * kChunkSize; at += kChunkSize / 2) {
      file.seekp(at);
      file.write("\xde\xad\xbe\xef", 4);
    }
  }
  MCOS_ASSERT_OK(Delete(Key("gone"), 3));
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());  // half of the blob file is garbage now
  auto gc = rocks_->CollectGarbageOnce(/*urgent=*/true, uint64_t{1} << 40);
  EXPECT_FALSE(gc.ok());  // the collection met the corrupt blob and gave up
  MCOS_EXPECT_CODE(Read(Key("kept")), kDataLoss);

  // Writes go on, the repair of the corrupt object included.
  MCOS_ASSERT_OK(Put(Key("new"), 4, "after"));
  EXPECT_EQ(*Read(Key("new")), "after");
  MCOS_ASSERT_OK(Put(Key("kept"), 5, kept));
  EXPECT_EQ(*Read(Key("kept")), kept);
  // The corrupt blobs are garbage now: the next collection frees them without reading them.
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  MCOS_EXPECT_OK(rocks_->CollectGarbageOnce(/*urgent=*/true, uint64_t{1} << 40));
  // RocksDB deletes the file once no version refers to it: a background job may still hold one.
  testing::WaitFor([&] { return !std::filesystem::exists(blobs[0]); }, absl::Seconds(10));
  EXPECT_FALSE(std::filesystem::exists(blobs[0]));
}

TEST_P(EngineContractTest, ListsWithPrefixMarkerDelimiterAndTombstones) {
  const std::vector<std::string> names = {"a.txt",   "docs/1",   "docs/2", "docs/sub/3",
                                          "img/ảnh", "img/日本", "z",      "ẞ"};
  uint64_t v = 1;
  for (const auto& n : names) MCOS_ASSERT_OK(Put(Key(n), v++, n));
  MCOS_ASSERT_OK(Put(Key("other", "c2"), v++, "x"));       // another container
  MCOS_ASSERT_OK(Put(Key("a.txt", "c", "u2"), v++, "x"));  // another user
  MCOS_ASSERT_OK(Delete(Key("z"), v++));
  ASSERT_TRUE(*engine_->AddHolders(Key("docs/1"), V(2), {"alpha", "beta"}));

  mcos::v1::StorageListRequest req;
  req.set_user("u");
  req.set_container("c");
  auto all = List(req);
  MCOS_ASSERT_OK(all);
  std::vector<std::string> got;
  for (const auto& e : all->entries()) got.push_back(e.object());
  EXPECT_EQ(got, (std::vector<std::string>{"a.txt", "docs/1", "docs/2", "docs/sub/3", "img/ảnh",
                                           "img/日本", "ẞ"}));
  EXPECT_TRUE(all->next_marker().empty());

  req.set_include_tombstones(true);
  auto with_tombstones = List(req);
  MCOS_ASSERT_OK(with_tombstones);
  EXPECT_EQ(with_tombstones->entries_size(), 8);
  EXPECT_TRUE(with_tombstones->entries(6).record().tombstone());
  // With versions only: the same entries, each with its version, tombstone and holders alone.
  req.set_versions_only(true);
  auto versions = List(req);
  MCOS_ASSERT_OK(versions);
  ASSERT_EQ(versions->entries_size(), with_tombstones->entries_size());
  for (int i = 0; i < versions->entries_size(); ++i) {
    const auto& whole = with_tombstones->entries(i);
    const auto& version = versions->entries(i);
    EXPECT_EQ(version.object(), whole.object());
    mcos::v1::ObjectRecord expected;
    *expected.mutable_version() = whole.record().version();
    expected.set_tombstone(whole.record().tombstone());
    *expected.mutable_holders() = whole.record().holders();
    EXPECT_EQ(version.record().SerializeAsString(), expected.SerializeAsString()) << i;
  }
  EXPECT_EQ(versions->entries(6).record().version().hlc(), v - 1);
  EXPECT_TRUE(versions->entries(6).record().tombstone());
  EXPECT_THAT(versions->entries(1).record().holders(), ::testing::ElementsAre("alpha", "beta"));
  EXPECT_TRUE(versions->entries(1).record().etag().empty());
  req.set_versions_only(false);
  req.set_include_tombstones(false);

  req.set_delimiter("/");
  auto rolled = List(req);
  MCOS_ASSERT_OK(rolled);
  ASSERT_EQ(rolled->entries_size(), 2);
  EXPECT_EQ(rolled->entries(0).object(), "a.txt");
  EXPECT_EQ(rolled->entries(1).object(), "ẞ");
  EXPECT_EQ(
      std::vector<std::string>(rolled->common_prefixes().begin(), rolled->common_prefixes().end()),
      (std::vector<std::string>{"docs/", "img/"}));

  // Pages of one, stable under the marker, prefixes included.
  req.set_limit(1);
  std::vector<std::string> paged;
  std::string marker;
  for (int i = 0; i < 10; ++i) {
    req.set_marker(marker);
    auto page = List(req);
    MCOS_ASSERT_OK(page);
    for (const auto& e : page->entries()) paged.push_back(e.object());
    for (const auto& p : page->common_prefixes()) paged.push_back(p);
    marker = page->next_marker();
    if (marker.empty()) break;
  }
  EXPECT_EQ(paged, (std::vector<std::string>{"a.txt", "docs/", "img/", "ẞ"}));

  req.set_limit(0);
  req.set_marker("");
  req.set_prefix("docs/");
  auto sub = List(req);
  MCOS_ASSERT_OK(sub);
  ASSERT_EQ(sub->entries_size(), 2);
  EXPECT_EQ(sub->common_prefixes_size(), 1);
  EXPECT_EQ(sub->common_prefixes(0), "docs/sub/");
}

TEST(ParseRecordVersionTest, TakesTheVersionTombstoneAndHoldersAndSkipsTheRest) {
  mcos::v1::ObjectRecord r;
  r.set_size(5);
  r.set_etag("0123456789abcdef0123456789abcdef");
  r.set_checksum("sha256:00");
  (*r.mutable_metadata())["k"] = "v";
  r.mutable_version()->set_hlc(42);
  r.mutable_version()->set_cluster("dc2");
  r.set_tombstone(true);
  r.mutable_modified()->set_seconds(7);
  r.set_data_id("0123456789abcdef0");
  r.add_holders("dc1");
  r.add_holders("dc3");
  r.set_file_first_chunk(3);
  mcos::v1::ObjectRecord parsed;
  ASSERT_TRUE(storage::ParseRecordVersion(r.SerializeAsString(), parsed));
  EXPECT_EQ(parsed.version().hlc(), 42u);
  EXPECT_EQ(parsed.version().cluster(), "dc2");
  EXPECT_TRUE(parsed.tombstone());
  EXPECT_THAT(parsed.holders(), ::testing::ElementsAre("dc1", "dc3"));
  EXPECT_EQ(parsed.ByteSizeLong(), parsed.version().ByteSizeLong() + 2 + 2 + 2 * 5);
  // Not a record: a truncated one, and bytes that are no protobuf at all.
  const std::string bytes = r.SerializeAsString();
  mcos::v1::ObjectRecord cut;
  // (The last field, file_first_chunk, takes 3 bytes: 4 cut into the last holder.)
  EXPECT_FALSE(storage::ParseRecordVersion(bytes.substr(0, bytes.size() - 4), cut));
  mcos::v1::ObjectRecord junk;
  EXPECT_FALSE(storage::ParseRecordVersion(std::string("\xff\xff\xff\xff\xff\xff", 6), junk));
}

TEST_P(EngineContractTest, KeepsContainerUsageInStepWithCommits) {
  auto usage = [&](const std::string& container) {
    mcos::v1::ContainerUsageRequest req;
    req.set_user("u");
    req.add_containers(container);
    auto r = engine_->Usage(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return std::make_pair(r->usage(0).object_count(), r->usage(0).bytes_used());
  };
  MCOS_ASSERT_OK(Put(Key("a"), 1, std::string(100, 'a')));
  MCOS_ASSERT_OK(Put(Key("b"), 2, std::string(2 * kChunkSize, 'b')));
  MCOS_ASSERT_OK(Put(Key("x", "other"), 3, "x"));
  EXPECT_EQ(usage("c"), std::make_pair(uint64_t{2}, uint64_t{100 + 2 * kChunkSize}));
  MCOS_ASSERT_OK(Put(Key("a"), 4, std::string(10, 'a')));   // replace: bytes change only
  MCOS_ASSERT_OK(Put(Key("a"), 3, std::string(999, 'z')));  // older: ignored, no change
  EXPECT_EQ(usage("c"), std::make_pair(uint64_t{2}, uint64_t{10 + 2 * kChunkSize}));
  MCOS_ASSERT_OK(Delete(Key("b"), 5));
  MCOS_ASSERT_OK(Delete(Key("b"), 6));  // deleting a tombstone changes nothing
  MCOS_ASSERT_OK(Delete(Key("never"), 7));
  EXPECT_EQ(usage("c"), std::make_pair(uint64_t{1}, uint64_t{10}));
  Reopen();  // RocksDB: the counts are on disk
  EXPECT_EQ(usage("c"), std::make_pair(uint64_t{1}, uint64_t{10}));
  EXPECT_EQ(usage("other"), std::make_pair(uint64_t{1}, uint64_t{1}));
  EXPECT_EQ(usage("empty"), std::make_pair(uint64_t{0}, uint64_t{0}));
}

// One write of the digest tests.
struct Op {
  std::string object;
  uint64_t version;
  bool tombstone;
  std::string option;
};

absl::Status Apply(Engine& engine, const Op& op) {
  if (op.tombstone) {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = Key(op.object);
    *r.mutable_version() = V(op.version);
    r.set_option(op.option);
    return engine.Delete(r).status();
  }
  mcos::v1::StoragePutHeader h;
  *h.mutable_key() = Key(op.object);
  *h.mutable_version() = V(op.version);
  h.set_option(op.option);
  auto stream = engine.BeginPut(h);
  if (!stream.ok()) return stream.status();
  MCOS_RETURN_IF_ERROR((*stream)->Append(absl::StrCat(op.object, "@", op.version)));
  return (*stream)->Commit({}).status();
}

using Digests = std::vector<std::tuple<uint32_t, uint64_t, uint64_t>>;

absl::StatusOr<Digests> DigestsOf(Engine& engine, const std::string& option, uint32_t power,
                                  std::vector<uint32_t> partitions = {}) {
  mcos::v1::PartitionDigestsRequest r;
  r.set_option(option);
  r.set_partition_power(power);
  for (uint32_t p : partitions) r.add_partitions(p);
  auto response = engine.PartitionDigests(r);
  if (!response.ok()) return response.status();
  Digests out;
  for (const auto& d : response->digests()) {
    out.emplace_back(d.partition(), d.object_count(), d.digest());
  }
  return out;
}

TEST_P(EngineContractTest, PartitionDigestsDependOnlyOnTheVersionsHeld) {
  std::vector<Op> ops;
  for (int i = 0; i < 200; ++i) ops.push_back({absl::StrCat("obj", i), 10, false, "gold"});
  for (int i = 0; i < 20; ++i) ops.push_back({absl::StrCat("obj", i), 20, false, "gold"});
  for (int i = 20; i < 30; ++i) ops.push_back({absl::StrCat("obj", i), 30, true, "gold"});
  ops.push_back({"obj0", 5, false, "gold"});   // older: ignored
  ops.push_back({"ghost", 40, true, "gold"});  // a tombstone of something never written
  ops.push_back({"x", 10, false, "silver"});   // another option's
  ops.push_back({"plain", 10, false, ""});     // written without an option
  for (const Op& op : ops) MCOS_ASSERT_OK(Apply(*engine_, op));
  // The same writes in another order, to the other kind of engine.
  MemoryEngine twin_memory;
  std::unique_ptr<RocksDbEngine> twin_rocks;
  Engine* twin = &twin_memory;
  if (memory_) {
    RocksDbOptions options;
    options.path = dir_.Sub("twin");
    auto e = RocksDbEngine::Open(options);
    MCOS_ASSERT_OK(e);
    twin_rocks = std::move(*e);
    twin = twin_rocks.get();
  }
  std::vector<Op> shuffled = ops;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  for (const Op& op : shuffled) MCOS_ASSERT_OK(Apply(*twin, op));

  // What the digests must be: the newest version of each gold object, tombstones included.
  std::map<std::string, uint64_t> newest;
  for (const Op& op : ops) {
    if (op.option == "gold") newest[op.object] = std::max(newest[op.object], op.version);
  }
  auto expected = [&](uint32_t power) {
    std::map<uint32_t, std::pair<uint64_t, uint64_t>> by_partition;
    for (const auto& [object, version] : newest) {
      const uint32_t p = placement::PartitionOf(placement::ObjectHash("u", "c", object), power);
      by_partition[p].first += 1;
      by_partition[p].second += DigestShare(Key(object), V(version));
    }
    Digests out;
    for (const auto& [p, v] : by_partition) out.emplace_back(p, v.first, v.second);
    return out;
  };
  for (uint32_t power : {4u, 18u}) {
    auto got = DigestsOf(*engine_, "gold", power);
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, expected(power)) << "power " << power;
    EXPECT_EQ(*DigestsOf(*twin, "gold", power), *got) << "power " << power;
  }
  const Digests all = *DigestsOf(*engine_, "gold", 4);
  uint64_t records = 0;
  for (const auto& d : all) records += std::get<1>(d);
  EXPECT_EQ(records, 201u);  // 200 objects (10 of them tombstones) and the ghost's tombstone
  EXPECT_EQ(DigestsOf(*engine_, "silver", 8)->size(), 1u);
  EXPECT_EQ(DigestsOf(*engine_, "", 8)->size(), 1u);
  EXPECT_TRUE(DigestsOf(*engine_, "bronze", 8)->empty());

  // Asking for some partitions answers those (when not empty) and no others.
  ASSERT_GE(all.size(), 3u);
  const std::vector<uint32_t> some = {std::get<0>(all[2]), std::get<0>(all[0])};
  EXPECT_EQ(*DigestsOf(*engine_, "gold", 4, some), (Digests{all[0], all[2]}));

  // One newer version at the twin changes its partition's digest and no other.
  MCOS_ASSERT_OK(Apply(*twin, {"obj5", 50, false, "gold"}));
  const uint32_t changed = placement::PartitionOf(placement::ObjectHash("u", "c", "obj5"), 4);
  const Digests after = *DigestsOf(*twin, "gold", 4);
  ASSERT_EQ(after.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    if (std::get<0>(all[i]) == changed) {
      EXPECT_EQ(std::get<1>(after[i]), std::get<1>(all[i]));
      EXPECT_NE(std::get<2>(after[i]), std::get<2>(all[i]));
    } else {
      EXPECT_EQ(after[i], all[i]);
    }
  }

  Reopen();  // RocksDB: the digests are on disk
  EXPECT_EQ(*DigestsOf(*engine_, "gold", 4), all);

  MCOS_EXPECT_CODE(DigestsOf(*engine_, "gold", 0), kInvalidArgument);
  MCOS_EXPECT_CODE(DigestsOf(*engine_, "gold", 19), kInvalidArgument);
  MCOS_EXPECT_CODE(DigestsOf(*engine_, "gold", 4, {16}), kInvalidArgument);
}

TEST_F(RocksDbEngineTest, BuildsTheDigestsOfADatabaseWrittenBeforeThem) {
  for (int i = 0; i < 50; ++i) {
    MCOS_ASSERT_OK(Apply(*engine_, {absl::StrCat("o", i), 10, i % 7 == 0, "gold"}));
  }
  const Digests before = *DigestsOf(*engine_, "gold", 6);
  ASSERT_FALSE(before.empty());
  // Take away the digest records and their marker, as in a database of an older version.
  rocksdb::WriteBatch batch;
  batch.DeleteRange(rocks_->usage_cf_for_test(), std::string("\0d", 2), std::string("\0e", 2));
  batch.Delete(rocks_->usage_cf_for_test(), std::string("\0m-digests-v1", 13));
  ASSERT_TRUE(rocks_->db_for_test()->Write(rocksdb::WriteOptions(), &batch).ok());
  EXPECT_TRUE(DigestsOf(*engine_, "gold", 6)->empty());
  Reopen();
  EXPECT_EQ(*DigestsOf(*engine_, "gold", 6), before);
}

// Every page of one partition's scan, in order: (object, version, tombstone).
using Scanned = std::vector<std::tuple<std::string, uint64_t, bool>>;

absl::StatusOr<Scanned> ScanOf(Engine& engine, const std::string& option, uint32_t power,
                               uint32_t partition, uint32_t limit = 0, int* pages = nullptr) {
  mcos::v1::ScanPartitionRequest r;
  r.set_option(option);
  r.set_partition_power(power);
  r.set_partition(partition);
  r.set_limit(limit);
  Scanned out;
  do {
    auto page = engine.ScanPartition(r);
    if (!page.ok()) return page.status();
    if (pages != nullptr) ++*pages;
    for (const auto& e : page->entries()) {
      out.emplace_back(e.key().object(), e.record().version().hlc(), e.record().tombstone());
    }
    r.set_marker(page->next_marker());
  } while (!r.marker().empty());
  return out;
}

TEST_P(EngineContractTest, ScanPartitionAnswersExactlyThePartitionsRecordsInIndexOrder) {
  std::vector<Op> ops;
  for (int i = 0; i < 300; ++i) ops.push_back({absl::StrCat("obj", i), 10, false, "gold"});
  for (int i = 0; i < 30; ++i) ops.push_back({absl::StrCat("obj", i), 20, false, "gold"});
  for (int i = 30; i < 60; ++i) ops.push_back({absl::StrCat("obj", i), 30, true, "gold"});
  ops.push_back({"ghost", 40, true, "gold"});  // a tombstone of something never written
  ops.push_back({"x", 10, false, "silver"});   // another option's
  for (const Op& op : ops) MCOS_ASSERT_OK(Apply(*engine_, op));

  // What each partition at power 3 must hold: the newest of each gold object, in the order of
  // (18-bit bucket, key).
  std::map<std::string, std::pair<uint64_t, bool>> newest;
  for (const Op& op : ops) {
    if (op.option != "gold") continue;
    auto& n = newest[op.object];
    if (op.version > n.first) n = {op.version, op.tombstone};
  }
  std::map<uint32_t, std::map<std::string, std::tuple<std::string, uint64_t, bool>>> expected;
  for (const auto& [object, v] : newest) {
    const uint64_t hash = placement::ObjectHash("u", "c", object);
    expected[placement::PartitionOf(hash, 3)]
            [IndexPosition(placement::PartitionOf(hash, 18), ObjectMetaKey("u", "c", object))] = {
                object, v.first, v.second};
  }
  size_t total = 0;
  for (uint32_t p = 0; p < 8; ++p) {
    Scanned want;
    for (const auto& [position, entry] : expected[p]) want.push_back(entry);
    auto got = ScanOf(*engine_, "gold", 3, p);
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, want) << "partition " << p;
    // Small pages give the same records, each once.
    int pages = 0;
    EXPECT_EQ(*ScanOf(*engine_, "gold", 3, p, 7, &pages), want);
    EXPECT_GE(pages, static_cast<int>(want.size() / 7));
    total += got->size();
  }
  EXPECT_EQ(total, 301u);  // 300 objects (30 of them tombstones) and the ghost's tombstone
  // At the finest power a scan answers one bucket: each record of partition 5 is in its own.
  for (const auto& [position, entry] : expected[5]) {
    const uint32_t bucket = placement::PartitionOf(
        placement::ObjectHash("u", "c", std::get<0>(entry)), kUsageBucketBits);
    auto got = ScanOf(*engine_, "gold", kUsageBucketBits, bucket);
    MCOS_ASSERT_OK(got);
    EXPECT_NE(std::find(got->begin(), got->end(), entry), got->end()) << std::get<0>(entry);
    EXPECT_LE(got->size(), 2u);  // 301 records in 2^18 buckets: rarely two in one
  }
  Scanned silver;
  for (uint32_t p = 0; p < 2; ++p) {
    auto got = ScanOf(*engine_, "silver", 1, p);
    silver.insert(silver.end(), got->begin(), got->end());
  }
  EXPECT_EQ(silver, (Scanned{{"x", 10, false}}));

  Reopen();  // RocksDB: the index is on disk
  Scanned want0;
  for (const auto& [position, entry] : expected[0]) want0.push_back(entry);
  EXPECT_EQ(*ScanOf(*engine_, "gold", 3, 0), want0);

  mcos::v1::ScanPartitionRequest bad;
  bad.set_option("gold");
  bad.set_partition_power(3);
  bad.set_partition(8);
  MCOS_EXPECT_CODE(engine_->ScanPartition(bad), kInvalidArgument);
  bad.set_partition(1);
  bad.set_limit(kMaxScanLimit + 1);
  MCOS_EXPECT_CODE(engine_->ScanPartition(bad), kInvalidArgument);
  bad.set_limit(0);
  bad.set_marker("xy");
  MCOS_EXPECT_CODE(engine_->ScanPartition(bad), kInvalidArgument);
  // A marker of another partition is refused too (it would scan outside this one).
  bad.set_marker(IndexPosition(0, ObjectMetaKey("u", "c", "o")));
  MCOS_EXPECT_CODE(engine_->ScanPartition(bad), kInvalidArgument);
}

// Tombstone reaping forgets exactly the tombstone it names: its record, its index entry and its
// digest share (the digests then equal those of an engine that never saw the object).
TEST_P(EngineContractTest, APurgeForgetsExactlyTheNamedTombstone) {
  MCOS_ASSERT_OK(Put(Key("kept"), 10, "x", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  const auto before = DigestsOf(*engine_, "gold", 18);
  MCOS_ASSERT_OK(before);
  MCOS_ASSERT_OK(Put(Key("gone"), 10, "y", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  MCOS_ASSERT_OK(Delete(Key("gone"), 20, "gold"));
  MCOS_ASSERT_OK(Put(Key("back"), 10, "z", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  MCOS_ASSERT_OK(Delete(Key("back"), 20, "gold"));
  MCOS_ASSERT_OK(Put(Key("back"), 30, "again", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));

  auto purge = [&](const std::string& name, uint64_t version) {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = Key(name);
    *r.mutable_version() = V(version);
    r.set_purge(true);
    return engine_->Delete(r);
  };
  // Another version than the tombstone's, a live object, a newer version: nothing changes.
  auto other = purge("gone", 19);
  MCOS_ASSERT_OK(other);
  EXPECT_FALSE(other->applied);
  EXPECT_FALSE(purge("kept", 10)->applied);
  EXPECT_FALSE(purge("back", 20)->applied);
  EXPECT_EQ(*Read(Key("back")), "again");
  MCOS_EXPECT_CODE(purge("never", 5), kNotFound);

  auto purged = purge("gone", 20);
  MCOS_ASSERT_OK(purged);
  EXPECT_TRUE(purged->applied);
  EXPECT_TRUE(purged->record.tombstone());
  MCOS_EXPECT_CODE(engine_->Stat(Key("gone"), /*include_tombstone=*/true), kNotFound);
  MCOS_EXPECT_CODE(purge("gone", 20), kNotFound);
  // "back" is live again at 30; what is left in "gold" is "kept" and "back".
  MCOS_ASSERT_OK(Delete(Key("back"), 40, "gold"));
  EXPECT_TRUE(purge("back", 40)->applied);
  EXPECT_EQ(*DigestsOf(*engine_, "gold", 18), *before);
  const uint32_t kept_partition =
      placement::PartitionOf(placement::ObjectHash("u", "c", "kept"), 18);
  // The partition index holds only "kept" (in the partitions of the three objects).
  for (const std::string name : {"kept", "gone", "back"}) {
    const uint32_t partition = placement::PartitionOf(placement::ObjectHash("u", "c", name), 18);
    auto scanned = ScanOf(*engine_, "gold", 18, partition);
    MCOS_ASSERT_OK(scanned);
    const bool want = partition == kept_partition;
    EXPECT_EQ(scanned->size(), want ? 1u : 0u) << name;
  }
  if (!memory_) {
    Reopen();
    MCOS_EXPECT_CODE(engine_->Stat(Key("gone"), true), kNotFound);
    EXPECT_EQ(*DigestsOf(*engine_, "gold", 18), *before);
  }
}

// Moving data: a cluster that no longer holds a partition releases exactly the version its
// holders confirmed, live (with its data) or a tombstone; the digests and partition usage then
// equal those of an engine that never held it.
TEST_P(EngineContractTest, AReleaseForgetsExactlyTheNamedVersionLiveOrNot) {
  MCOS_ASSERT_OK(Put(Key("kept"), 10, "x", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  const auto before = DigestsOf(*engine_, "gold", 18);
  MCOS_ASSERT_OK(before);
  mcos::v1::PartitionUsageRequest usage;
  usage.set_option("gold");
  usage.set_partition_power(4);
  const auto usage_before = engine_->PartitionUsage(usage);
  MCOS_ASSERT_OK(usage_before);
  MCOS_ASSERT_OK(Put(Key("live"), 10, std::string(3 << 20, 'l'), 1 << 20,
                     mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  MCOS_ASSERT_OK(Put(Key("dead"), 10, "y", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  MCOS_ASSERT_OK(Delete(Key("dead"), 20, "gold"));
  auto release = [&](const std::string& name, uint64_t version) {
    mcos::v1::StorageDeleteRequest r;
    *r.mutable_key() = Key(name);
    *r.mutable_version() = V(version);
    r.set_release(true);
    return engine_->Delete(r);
  };
  // Another version than the one held: nothing changes.
  auto other = release("live", 9);
  MCOS_ASSERT_OK(other);
  EXPECT_FALSE(other->applied);
  EXPECT_EQ(Read(Key("live"))->size(), size_t{3} << 20);
  MCOS_EXPECT_CODE(release("never", 5), kNotFound);

  auto live = release("live", 10);
  MCOS_ASSERT_OK(live);
  EXPECT_TRUE(live->applied);
  EXPECT_FALSE(live->record.tombstone());
  MCOS_EXPECT_CODE(engine_->Stat(Key("live"), /*include_tombstone=*/true), kNotFound);
  auto dead = release("dead", 20);
  MCOS_ASSERT_OK(dead);
  EXPECT_TRUE(dead->applied);
  MCOS_EXPECT_CODE(engine_->Stat(Key("dead"), true), kNotFound);
  EXPECT_EQ(*DigestsOf(*engine_, "gold", 18), *before);
  auto usage_after = engine_->PartitionUsage(usage);
  MCOS_ASSERT_OK(usage_after);
  EXPECT_EQ(usage_after->SerializeAsString(), usage_before->SerializeAsString());
  // The object can be written again afterwards (a later move may bring it back).
  MCOS_ASSERT_OK(Put(Key("live"), 30, "back", 1 << 20, mcos::v1::WRITE_PRECONDITION_NONE, "gold"));
  EXPECT_EQ(*Read(Key("live")), "back");
  if (!memory_) {
    Reopen();
    MCOS_EXPECT_CODE(engine_->Stat(Key("dead"), true), kNotFound);
    EXPECT_EQ(*Read(Key("live")), "back");
  }
}

TEST_F(RocksDbEngineTest, BuildsThePartitionIndexOfADatabaseWrittenBeforeIt) {
  for (int i = 0; i < 50; ++i) {
    MCOS_ASSERT_OK(Apply(*engine_, {absl::StrCat("o", i), 10, i % 7 == 0, "gold"}));
  }
  Scanned before;
  for (uint32_t p = 0; p < 4; ++p) {
    auto got = ScanOf(*engine_, "gold", 2, p);
    before.insert(before.end(), got->begin(), got->end());
  }
  ASSERT_EQ(before.size(), 50u);
  // Take away the index and its marker, as in a database of an older version.
  rocksdb::WriteBatch batch;
  ASSERT_TRUE(rocks_->db_for_test()
                  ->DeleteRange(rocksdb::WriteOptions(), rocks_->index_cf_for_test(),
                                std::string(1, '\0'), std::string(1, '\xff'))
                  .ok());
  batch.Delete(rocks_->usage_cf_for_test(), std::string("\0m-index-v1", 11));
  ASSERT_TRUE(rocks_->db_for_test()->Write(rocksdb::WriteOptions(), &batch).ok());
  EXPECT_TRUE(ScanOf(*engine_, "gold", 2, 0)->empty() && ScanOf(*engine_, "gold", 2, 1)->empty() &&
              ScanOf(*engine_, "gold", 2, 2)->empty() && ScanOf(*engine_, "gold", 2, 3)->empty());
  Reopen();
  Scanned after;
  for (uint32_t p = 0; p < 4; ++p) {
    auto got = ScanOf(*engine_, "gold", 2, p);
    after.insert(after.end(), got->begin(), got->end());
  }
  EXPECT_EQ(after, before);
}

// Chunks past the first 8 (or all of an upload whose header says it is larger) go to one data
// file per version, written once; it goes with the version, never while a snapshot may read it.
TEST_F(RocksDbEngineTest, LargeObjectsLiveInADataFileRemovedOnlyWhenNothingCanReadIt) {
  const auto files = [&] {
    return std::distance(std::filesystem::directory_iterator(dir_.Sub("db") + "/objects"),
                         std::filesystem::directory_iterator());
  };
  // Size unknown at the start: 8 chunks through the WAL, the rest in the file.
  const std::string grown = testing::RandomBytes(10 * kChunkSize + 7, 21);
  auto put = Put(Key("grown"), 1, grown, 300000);
  MCOS_ASSERT_OK(put);
  ASSERT_TRUE(put->record.has_file_first_chunk());
  EXPECT_EQ(put->record.file_first_chunk(), 8u);
  EXPECT_EQ(put->record.chunk_count(), 11u);
  EXPECT_EQ(DataKeys(), 11);  // 8 chunks, and the checksums of the 3 in the file
  // Back to back, the last one padded to the direct I/O alignment.
  EXPECT_EQ(std::filesystem::file_size(rocks_->DataFilePath(put->record.data_id())),
            2 * kChunkSize + kDirectIoAlignment);
  // Size declared: every chunk in the file.
  const std::string sized = testing::RandomBytes(9 * kChunkSize, 22);
  mcos::v1::StoragePutHeader h;
  h.set_size(sized.size());
  auto sized_put = PutWith(h, Key("sized"), 1, sized);
  MCOS_ASSERT_OK(sized_put);
  EXPECT_EQ(sized_put->record.file_first_chunk(), 0u);
  EXPECT_EQ(DataKeys(), 11 + 9);
  EXPECT_EQ(files(), 2);
  constexpr uint64_t kFileBytes = 2 * kChunkSize + kDirectIoAlignment + 9 * kChunkSize;
  EXPECT_EQ(rocks_->disk_usage().file_bytes, kFileBytes);

  Reopen();
  EXPECT_EQ(rocks_->disk_usage().file_bytes, kFileBytes);
  EXPECT_TRUE(*Read(Key("grown")) == grown);
  EXPECT_TRUE(*Read(Key("sized")) == sized);
  // Ranges across the WAL / file boundary and inside the last, short chunk.
  EXPECT_EQ(*Read(Key("grown"), 8 * kChunkSize - 3, 6), grown.substr(8 * kChunkSize - 3, 6));
  EXPECT_EQ(*Read(Key("grown"), 10 * kChunkSize + 2, 5), grown.substr(10 * kChunkSize + 2, 5));

  // A download under way when the version is replaced reads it whole; the file goes after it.
  mcos::v1::StorageGetRequest r;
  *r.mutable_key() = Key("sized");
  auto reader = engine_->OpenReader(r);
  MCOS_ASSERT_OK(reader);
  MCOS_ASSERT_OK(Put(Key("sized"), 2, "small"));
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  EXPECT_EQ(files(), 2);
  std::string read, piece;
  while (*(*reader)->Next(&piece)) read += piece;
  EXPECT_TRUE(read == sized);
  reader->reset();
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  EXPECT_EQ(files(), 1);

  // A kept version's file stays until it is released.
  mcos::v1::StoragePutFinish keep;
  keep.set_keep_readable_ms(600000);
  const std::string kept = testing::RandomBytes(12 * kChunkSize, 23);
  MCOS_ASSERT_OK(PutWith(h, Key("kept"), 1, kept.substr(0, 9 * kChunkSize), 1 << 20, keep));
  MCOS_ASSERT_OK(Delete(Key("kept"), 2));
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  EXPECT_EQ(files(), 2);
  EXPECT_TRUE(*Read(Key("kept"), 0, 0, 1) == kept.substr(0, 9 * kChunkSize));
  rocks_->ReleaseKept(Key("kept"), V(1));
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  EXPECT_EQ(files(), 1);

  // A delete takes the chunks and the file.
  MCOS_ASSERT_OK(Delete(Key("grown"), 2));
  MCOS_ASSERT_OK(rocks_->ReclaimOnce());
  EXPECT_EQ(files(), 0);
  EXPECT_EQ(DataKeys(), 1);  // "small"
  EXPECT_EQ(rocks_->disk_usage().file_bytes, 0u);
}

// What a crash leaves: the intent of an upload and its data file, or the file of a version
// deleted before ReclaimOnce ran. Open removes both and keeps everything committed.
TEST_F(RocksDbEngineTest, DataFilesACrashLeftAreRemovedAtOpen) {
  const std::string big = testing::RandomBytes(9 * kChunkSize, 24);
  mcos::v1::StoragePutHeader h;
  h.set_size(big.size());
  MCOS_ASSERT_OK(PutWith(h, Key("live"), 1, big));
  auto doomed = PutWith(h, Key("doomed"), 1, big);
  MCOS_ASSERT_OK(doomed);
  MCOS_ASSERT_OK(Delete(Key("doomed"), 2));  // not reclaimed before the "crash"
  const std::string crashed_id(16, 'x');
  ASSERT_TRUE(
      rocks_->db_for_test()
          ->Put(rocksdb::WriteOptions(), rocks_->uploads_cf_for_test(), crashed_id, "upload")
          .ok());
  { std::ofstream(rocks_->DataFilePath(crashed_id)) << "half an upload"; }
  const std::string doomed_file = rocks_->DataFilePath(doomed->record.data_id());
  ASSERT_TRUE(std::filesystem::exists(doomed_file));
  Reopen();
  EXPECT_EQ(rocks_->recovered_uploads(), 2);
  EXPECT_FALSE(std::filesystem::exists(doomed_file));
  EXPECT_FALSE(std::filesystem::exists(rocks_->DataFilePath(crashed_id)));
  EXPECT_TRUE(*Read(Key("live")) == big);
  EXPECT_EQ(rocks_->disk_usage().file_bytes, 9 * kChunkSize);
}

// A database older than its data files (restored from a backup taken in two steps): the files no
// record names are removed at open; the records' files, and files not named like data files, stay.
TEST_F(RocksDbEngineTest, DataFilesNoRecordNamesAreRemovedAtOpen) {
  const std::string big = testing::RandomBytes(9 * kChunkSize, 26);
  mcos::v1::StoragePutHeader h;
  h.set_size(big.size());
  auto live = PutWith(h, Key("live"), 1, big);
  MCOS_ASSERT_OK(live);
  engine_.reset();
  const std::string named = dir_.Sub("db") + "/objects/";
  const std::string orphan = named + std::string(32, 'a');
  std::filesystem::copy_file(named + absl::BytesToHexString(live->record.data_id()), orphan);
  { std::ofstream(named + "README") << "not a data file"; }
  { std::ofstream(named + std::string(31, 'b')) << "not a data file's name either"; }
  Reopen();
  EXPECT_FALSE(std::filesystem::exists(orphan));
  EXPECT_TRUE(std::filesystem::exists(named + "README"));
  EXPECT_TRUE(std::filesystem::exists(named + std::string(31, 'b')));
  EXPECT_TRUE(*Read(Key("live")) == big);
  EXPECT_TRUE(std::filesystem::exists(rocks_->DataFilePath(live->record.data_id())));
}

TEST_F(RocksDbEngineTest, ACorruptChunkInADataFileIsDataLoss) {
  const std::string big = testing::RandomBytes(9 * kChunkSize, 25);
  mcos::v1::StoragePutHeader h;
  h.set_size(big.size());
  auto put = PutWith(h, Key("x"), 1, big);
  MCOS_ASSERT_OK(put);
  engine_.reset();
  MCOS_ASSERT_OK(testing::CorruptChunk(dir_.Sub("db"), put->record.data_id(), 4));
  Reopen();
  auto whole = Read(Key("x"));
  MCOS_EXPECT_CODE(whole, kDataLoss);
  EXPECT_NE(whole.status().message().find("chunk 4"), absl::string_view::npos);
  EXPECT_EQ(*Read(Key("x"), 5 * kChunkSize, 10), big.substr(5 * kChunkSize, 10));
}

// Commits through CommitAsync and DeleteAsync (grouped by the RocksDB engine's committing thread)
// answer as Commit and Delete do.
TEST_P(EngineContractTest, AsyncCommitsAndDeletesAnswerAsTheOthers) {
  auto first = PutAsync(Key("a"), 10, "one");
  MCOS_ASSERT_OK(first);
  EXPECT_TRUE(first->applied);
  EXPECT_EQ(*Read(Key("a")), "one");
  // Holders recorded without waiting: in place once a commit queued after them is answered.
  engine_->AddHoldersAsync(Key("a"), V(10), {"c2"});
  engine_->AddHoldersAsync(Key("a"), V(9), {"c3"});  // not the version held: nothing
  MCOS_ASSERT_OK(PutAsync(Key("z"), 1, "after"));
  EXPECT_THAT(engine_->Stat(Key("a"), false)->holders(), ::testing::Contains("c2"));
  EXPECT_THAT(engine_->Stat(Key("a"), false)->holders(), ::testing::Not(::testing::Contains("c3")));
  MCOS_ASSERT_OK(StartDeleteAsync(Key("z"), 2).get());
  auto older = PutAsync(Key("a"), 5, "old");  // superseded when it began
  MCOS_ASSERT_OK(older);
  EXPECT_FALSE(older->applied);
  EXPECT_EQ(older->record.version().hlc(), 10u);
  MCOS_EXPECT_CODE(PutAsync(Key("a"), 11, "x", mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST),
                   kFailedPrecondition);
  MCOS_EXPECT_CODE(PutAsync(Key("b"), 11, "x", mcos::v1::WRITE_PRECONDITION_MUST_EXIST),
                   kFailedPrecondition);
  MCOS_EXPECT_CODE(engine_->Stat(Key("b"), true), kNotFound);
  MCOS_EXPECT_CODE(PutAsync(Key("b"), 12, "abc", mcos::v1::WRITE_PRECONDITION_NONE, 5),
                   kInvalidArgument);
  auto update = PutAsync(Key("a"), 13, "two", mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
  MCOS_ASSERT_OK(update);
  EXPECT_TRUE(update->applied);
  EXPECT_EQ(update->record.created().seconds(), first->record.created().seconds());
  EXPECT_EQ(*Read(Key("a")), "two");

  auto del = StartDeleteAsync(Key("a"), 20).get();
  MCOS_ASSERT_OK(del);
  EXPECT_TRUE(del->applied);
  EXPECT_TRUE(del->record.tombstone());
  EXPECT_EQ(del->prior, mcos::v1::WRITE_PRIOR_LIVE);
  MCOS_EXPECT_CODE(Read(Key("a")), kNotFound);
  auto again = StartDeleteAsync(Key("a"), 21).get();
  MCOS_ASSERT_OK(again);
  EXPECT_EQ(again->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  auto stale = StartDeleteAsync(Key("a"), 15).get();
  MCOS_ASSERT_OK(stale);
  EXPECT_FALSE(stale->applied);
  MCOS_EXPECT_CODE(StartDeleteAsync(Key("a"), 0).get(), kInvalidArgument);  // no version
  if (!memory_) {
    EXPECT_EQ(DataKeys(), 0);  // the refused writes left no chunks, the deletes took theirs
  }
}

// Writes from many threads at once, several of one object in the queue together: each is answered,
// the newest version of each object wins whatever the order, and all of it survives a reopen.
TEST_F(RocksDbEngineTest, GroupedCommitsFromManyThreadsAreEachAnsweredAndKept) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;
  constexpr int kObjects = 10;
  std::vector<std::vector<std::future<absl::StatusOr<WriteResult>>>> answers(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Versions unique across threads; every seventh write is a delete.
        const uint64_t version = 1 + static_cast<uint64_t>(i) * kThreads + t;
        const ObjectKey key = Key(absl::StrCat("o", (i + t) % kObjects));
        answers[t].push_back(i % 7 == 6 ? StartDeleteAsync(key, version)
                                        : StartPutAsync(key, version, absl::StrCat("v", version)));
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<std::string, uint64_t> newest;  // object -> its newest version written
  int applied = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto answer = answers[t][i].get();
      MCOS_ASSERT_OK(answer);
      if (answer->applied) ++applied;
      const uint64_t version = 1 + static_cast<uint64_t>(i) * kThreads + t;
      auto& n = newest[absl::StrCat("o", (i + t) % kObjects)];
      n = std::max(n, version);
    }
  }
  EXPECT_GE(applied, kObjects);
  auto check = [&] {
    for (const auto& [object, version] : newest) {
      auto held = engine_->Stat(Key(object), /*include_tombstone=*/true);
      MCOS_ASSERT_OK(held);
      EXPECT_EQ(held->version().hlc(), version) << object;
      const uint64_t i = (version - 1) / kThreads;
      EXPECT_EQ(held->tombstone(), i % 7 == 6) << object;
      if (!held->tombstone()) {
        EXPECT_EQ(*Read(Key(object)), absl::StrCat("v", version));
      }
    }
  };
  check();
  Reopen();
  check();
}

// Closing the engine commits and answers every commit still waiting.
TEST_F(RocksDbEngineTest, ClosingAnswersEveryCommitWaiting) {
  std::vector<std::future<absl::StatusOr<WriteResult>>> answers;
  for (int i = 0; i < 200; ++i) answers.push_back(StartPutAsync(Key(absl::StrCat("c", i)), 1, "x"));
  Reopen();
  for (int i = 0; i < 200; ++i) {
    auto answer = answers[i].get();
    MCOS_ASSERT_OK(answer);
    EXPECT_TRUE(answer->applied);
    EXPECT_EQ(*Read(Key(absl::StrCat("c", i))), "x");
  }
}

TEST_F(RocksDbEngineTest, StaysAfterReopen) {
  const std::string data =
      testing::RandomBytes(10 * kChunkSize + 7, 8);  // takes the WAL-bypass path
  MCOS_ASSERT_OK(Put(Key("keep"), 1, data));
  Reopen();
  EXPECT_EQ(*Read(Key("keep")), data);
}

}  // namespace
}  // namespace mcos::storage
