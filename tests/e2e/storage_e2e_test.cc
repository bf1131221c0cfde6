// End-to-end tests of mcos-storage: the real binary as its own process, real RocksDB on disk, gRPC
// over loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "replication/replica.h"
#include "storage/rocksdb_engine.h"
#include "tests/support/corrupt_chunk.h"
#include "tests/support/status_matchers.h"
#include "tests/support/storage_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"

namespace mcos::storage {
namespace {

using mcos::v1::ObjectKey;

constexpr size_t kMiB = 1 << 20;

ObjectKey Key(const std::string& object, const std::string& container = "c") {
  ObjectKey k;
  k.set_user("alice");
  k.set_container(container);
  k.set_object(object);
  return k;
}

std::atomic<uint64_t> g_hlc{1};

mcos::v1::StoragePutHeader Header(const ObjectKey& key, uint64_t hlc = 0) {
  mcos::v1::StoragePutHeader h;
  *h.mutable_key() = key;
  h.mutable_version()->set_hlc(hlc != 0 ? hlc : g_hlc.fetch_add(1));
  h.mutable_version()->set_cluster("c1");
  return h;
}

class StorageE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<testing::StorageProcess>(MCOS_STORAGE_BIN, dir_.path());
    MCOS_ASSERT_OK(node_->Start());
  }

  absl::StatusOr<std::string> Get(const ObjectKey& key, uint64_t offset = 0, uint64_t length = 0) {
    mcos::v1::StorageGetRequest r;
    *r.mutable_key() = key;
    r.set_offset(offset);
    r.set_length(length);
    std::string out;
    auto rec = node_->client().Get(r, [&](absl::string_view d) {
      out.append(d.data(), d.size());
      return absl::OkStatus();
    });
    if (!rec.ok()) return rec.status();
    return out;
  }

  absl::StatusOr<mcos::v1::StoragePutResponse> Put(const ObjectKey& key, const std::string& data,
                                                   uint64_t hlc = 0) {
    return node_->client().PutBytes(Header(key, hlc), data);
  }

  // Sends raw messages on a Put stream and returns the status.
  grpc::Status RawPut(const std::vector<mcos::v1::StoragePutRequest>& messages) {
    grpc::ClientContext ctx;
    mcos::v1::StoragePutResponse response;
    auto w = node_->client().stub().Put(&ctx, &response);
    for (const auto& m : messages) {
      if (!w->Write(m)) break;
    }
    w->WritesDone();
    return w->Finish();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::StorageProcess> node_;
};

TEST_F(StorageE2eTest, ServesHealth) {
  auto health = grpc::health::v1::Health::NewStub(ConnectInsecure(node_->endpoint()));
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(StorageE2eTest, RoundTrips64MiBWithChecksums) {
  const std::string data = testing::RandomBytes(64 * kMiB, 1);
  auto put = Put(Key("big.bin"), data);
  MCOS_ASSERT_OK(put);
  EXPECT_TRUE(put->applied());
  EXPECT_EQ(put->record().size(), data.size());
  EXPECT_EQ(put->record().etag(), testing::Md5Hex(data));
  EXPECT_EQ(put->record().checksum(), "sha256:" + testing::Sha256Hex(data));
  auto got = Get(Key("big.bin"));
  MCOS_ASSERT_OK(got);
  ASSERT_EQ(got->size(), data.size());
  EXPECT_TRUE(*got == data);
  auto stat = node_->client().Stat(Key("big.bin"));
  MCOS_ASSERT_OK(stat);
  EXPECT_EQ(stat->etag(), testing::Md5Hex(data));
}

TEST_F(StorageE2eTest, RangeReadsAtTheEdges) {
  const std::string data = testing::RandomBytes(3 * kMiB + 17, 2);
  MCOS_ASSERT_OK(Put(Key("r"), data));
  EXPECT_EQ(*Get(Key("r"), 0, 1), data.substr(0, 1));
  EXPECT_EQ(*Get(Key("r"), data.size() - 1, 0), data.substr(data.size() - 1));
  EXPECT_EQ(*Get(Key("r"), data.size() - 1, 5), data.substr(data.size() - 1));
  EXPECT_EQ(*Get(Key("r"), kMiB - 3, 6), data.substr(kMiB - 3, 6));
  auto past = Get(Key("r"), data.size(), 0);
  MCOS_EXPECT_CODE(past, kOutOfRange);
  MCOS_EXPECT_CODE(Get(Key("r"), data.size() + 1, 1), kOutOfRange);
  MCOS_EXPECT_CODE(Get(Key("missing")), kNotFound);
}

TEST_F(StorageE2eTest, ListsTenThousandKeysInPagesWithDelimiter) {
  // 100 "directories" x 100 names, with '/' and multi-byte UTF-8.
  std::vector<std::string> names;
  for (int d = 0; d < 100; ++d) {
    for (int f = 0; f < 100; ++f) {
      names.push_back(absl::StrCat(d % 2 == 0 ? "thư-mục-" : "ディレクトリ-", d, "/tệp-", f,
                                   f % 3 == 0 ? "-日本" : ""));
    }
  }
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string first_failure;
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      // Connected first: gRPC 1.51 now and then fails one of several simultaneous connects to a
      // fresh server (a stale errno from connect(), 1 run in ~20), and a channel backing off
      // fails calls at once; what is tested here is the listing of what was written.
      auto channel = node_->Connect();
      if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
        std::lock_guard<std::mutex> lock(mu);
        failures++;
        first_failure = "a writer did not connect within 10 s";
        return;
      }
      StorageClient client(channel);
      for (size_t i = next++; i < names.size(); i = next++) {
        auto put = client.PutBytes(Header(Key(names[i], "many")), "x");
        if (put.ok()) continue;
        if (failures++ == 0) {
          std::lock_guard<std::mutex> lock(mu);
          first_failure = absl::StrCat(names[i], ": ", put.status().ToString());
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0) << "first: " << first_failure;
  std::sort(names.begin(), names.end());

  mcos::v1::StorageListRequest req;
  req.set_user("alice");
  req.set_container("many");
  req.set_limit(777);
  std::vector<std::string> listed;
  int pages = 0;
  do {
    auto page = node_->client().List(req);
    MCOS_ASSERT_OK(page);
    for (const auto& e : page->entries()) listed.push_back(e.object());
    req.set_marker(page->next_marker());
    ++pages;
    ASSERT_LT(pages, 100);
  } while (!req.marker().empty());
  EXPECT_EQ(pages, 13);  // ceil(10000 / 777)
  EXPECT_EQ(listed, names);

  // Default limit is 1000.
  req.clear_limit();
  req.clear_marker();
  auto first = node_->client().List(req);
  MCOS_ASSERT_OK(first);
  EXPECT_EQ(first->entries_size(), 1000);
  EXPECT_EQ(first->next_marker(), names[999]);

  // Delimiter: 100 common prefixes, paged 30 at a time.
  req.set_delimiter("/");
  req.set_limit(30);
  std::vector<std::string> prefixes;
  do {
    auto page = node_->client().List(req);
    MCOS_ASSERT_OK(page);
    EXPECT_EQ(page->entries_size(), 0);
    for (const auto& p : page->common_prefixes()) prefixes.push_back(p);
    req.set_marker(page->next_marker());
  } while (!req.marker().empty());
  ASSERT_EQ(prefixes.size(), 100u);
  EXPECT_TRUE(std::is_sorted(prefixes.begin(), prefixes.end()));
  EXPECT_EQ(std::set<std::string>(prefixes.begin(), prefixes.end()).size(), 100u);

  // Prefix + delimiter inside one directory.
  req.set_prefix("thư-mục-42/");
  req.set_limit(0);
  auto dir = node_->client().List(req);
  MCOS_ASSERT_OK(dir);
  EXPECT_EQ(dir->entries_size(), 100);
  EXPECT_EQ(dir->common_prefixes_size(), 0);
}

TEST_F(StorageE2eTest, OlderVersionIgnoredAndTombstonesWin) {
  MCOS_ASSERT_OK(Put(Key("v"), "second", 2000));
  auto older = Put(Key("v"), "first", 1000);
  MCOS_ASSERT_OK(older);
  EXPECT_FALSE(older->applied());
  EXPECT_FALSE(older->reason().empty());
  EXPECT_EQ(*Get(Key("v")), "second");

  mcos::v1::StorageDeleteRequest del;
  *del.mutable_key() = Key("v");
  del.mutable_version()->set_hlc(3000);
  auto d = node_->client().Delete(del);
  MCOS_ASSERT_OK(d);
  EXPECT_TRUE(d->applied());
  MCOS_EXPECT_CODE(Get(Key("v")), kNotFound);
  auto replay = Put(Key("v"), "second", 2000);
  MCOS_ASSERT_OK(replay);
  EXPECT_FALSE(replay->applied());
  MCOS_EXPECT_CODE(node_->client().Stat(Key("v")), kNotFound);
  auto tomb = node_->client().Stat(Key("v"), true);
  MCOS_ASSERT_OK(tomb);
  EXPECT_TRUE(tomb->tombstone());

  mcos::v1::StorageListRequest list;
  list.set_user("alice");
  list.set_container("c");
  EXPECT_EQ(node_->client().List(list)->entries_size(), 0);
  list.set_include_tombstones(true);
  EXPECT_EQ(node_->client().List(list)->entries_size(), 1);
}

TEST_F(StorageE2eTest, AStreamCutOffMidwayLeavesTheOldVersionIntact) {
  const std::string v1 = testing::RandomBytes(2 * kMiB + 5, 3);
  MCOS_ASSERT_OK(Put(Key("cut"), v1));
  const std::string chunk = testing::RandomBytes(kMiB, 4);
  {
    grpc::ClientContext ctx;
    mcos::v1::StoragePutResponse response;
    auto w = node_->client().stub().Put(&ctx, &response);
    mcos::v1::StoragePutRequest m;
    *m.mutable_header() = Header(Key("cut"));
    ASSERT_TRUE(w->Write(m));
    m.set_data(chunk);
    for (int i = 0; i < 12; ++i) ASSERT_TRUE(w->Write(m));
    ctx.TryCancel();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // A stream that half-closes without its finish message stores nothing either.
  mcos::v1::StoragePutRequest header;
  *header.mutable_header() = Header(Key("cut"));
  mcos::v1::StoragePutRequest data;
  data.set_data("partial");
  EXPECT_EQ(RawPut({header, data}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto got = Get(Key("cut"));
  MCOS_ASSERT_OK(got);
  EXPECT_TRUE(*got == v1);
}

TEST_F(StorageE2eTest, KillDashNineLosesNoAcknowledgedPut) {
  struct Acked {
    uint64_t hlc;
    std::string md5;
    size_t size;
  };
  std::mutex mu;
  std::map<std::string, Acked> acked;  // newest acknowledged version of each object
  std::atomic<bool> stop{false};
  std::atomic<int> count{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      StorageClient client(node_->Connect());
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      for (int i = 0; !stop; ++i) {
        // Mostly small objects, sometimes multi-chunk and sometimes past the WAL-bypass size;
        // names repeat so that overwrites are covered.
        const uint64_t pick = rng() % 20;
        const size_t size =
            pick == 0 ? 10 * kMiB + 3 : (pick < 4 ? 2 * kMiB + 1 : 1 + rng() % 8192);
        const std::string name = absl::StrCat("t", t, "/o", rng() % 40);
        const std::string data = testing::RandomBytes(size, rng());
        const uint64_t hlc = g_hlc.fetch_add(1);
        auto r = client.PutBytes(Header(Key(name), hlc), data);
        if (r.ok() && r->applied()) {
          std::lock_guard<std::mutex> lock(mu);
          acked[name] = Acked{hlc, testing::Md5Hex(data), size};
          ++count;
        }
      }
    });
  }
  // Let some puts be acknowledged, then kill the node in the middle of the loop.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (count < 150 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  node_->Crash();
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(count.load(), 150);

  MCOS_ASSERT_OK(node_->Start());
  for (const auto& [name, a] : acked) {
    auto stat = node_->client().Stat(Key(name));
    MCOS_ASSERT_OK(stat);
    // A put in flight at the crash may have committed after its sender lost the answer: it is
    // newer; the acknowledged one must be there otherwise.
    ASSERT_GE(stat->version().hlc(), a.hlc) << name;
    if (stat->version().hlc() == a.hlc) {
      auto got = Get(Key(name));
      MCOS_ASSERT_OK(got);
      EXPECT_EQ(got->size(), a.size);
      EXPECT_EQ(testing::Md5Hex(*got), a.md5) << name;
    }
  }
}

TEST_F(StorageE2eTest, ServesPartitionDigestsThatSurviveKillDashNine) {
  // 30 objects of option "gold", one of them deleted; one object of another option.
  uint64_t expected_sum = 0;
  for (int i = 0; i < 30; ++i) {
    auto h = Header(Key(absl::StrCat("d", i)));
    h.set_option("gold");
    MCOS_ASSERT_OK(node_->client().PutBytes(h, absl::StrCat("content ", i)));
    if (i != 7) expected_sum += DigestShare(h.key(), h.version());
  }
  mcos::v1::StorageDeleteRequest del;
  *del.mutable_key() = Key("d7");
  del.mutable_version()->set_hlc(g_hlc.fetch_add(1));
  del.mutable_version()->set_cluster("c1");
  del.set_option("gold");
  MCOS_ASSERT_OK(node_->client().Delete(del));
  expected_sum += DigestShare(del.key(), del.version());
  auto other = Header(Key("other"));
  other.set_option("silver");
  MCOS_ASSERT_OK(node_->client().PutBytes(other, "x"));

  auto digests = [&](const std::string& option, uint32_t power,
                     std::vector<uint32_t> partitions = {}) {
    grpc::ClientContext ctx;
    mcos::v1::PartitionDigestsRequest r;
    r.set_option(option);
    r.set_partition_power(power);
    for (uint32_t p : partitions) r.add_partitions(p);
    mcos::v1::PartitionDigestsResponse response;
    const grpc::Status s = node_->client().stub().PartitionDigests(&ctx, r, &response);
    return std::make_pair(s, response);
  };
  auto [status, gold] = digests("gold", 6);
  ASSERT_TRUE(status.ok()) << status.error_message();
  uint64_t records = 0, sum = 0;
  for (const auto& d : gold.digests()) {
    records += d.object_count();
    sum += d.digest();
  }
  EXPECT_EQ(records, 30u);  // the tombstone counts: it is what other clusters must learn
  EXPECT_EQ(sum, expected_sum);

  node_->Crash();
  MCOS_ASSERT_OK(node_->Start());
  auto [again_status, again] = digests("gold", 6);
  ASSERT_TRUE(again_status.ok()) << again_status.error_message();
  EXPECT_EQ(again.SerializeAsString(), gold.SerializeAsString());

  EXPECT_EQ(digests("Not An Option!", 6).first.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(digests("gold", 19).first.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const grpc::Status outside = digests("gold", 6, {64}).first;
  EXPECT_EQ(outside.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outside.error_message().find("partition 64"), std::string::npos)
      << outside.error_message();
}

TEST_F(StorageE2eTest, KillDashNineMidUploadKeepsOldVersionAndRemovesDebris) {
  const std::string v1 = testing::RandomBytes(kMiB + 1, 5);
  MCOS_ASSERT_OK(Put(Key("mid"), v1));
  const std::string chunk = testing::RandomBytes(kMiB, 6);
  grpc::ClientContext ctx;
  mcos::v1::StoragePutResponse response;
  auto w = node_->client().stub().Put(&ctx, &response);
  mcos::v1::StoragePutRequest m;
  *m.mutable_header() = Header(Key("mid"));
  ASSERT_TRUE(w->Write(m));
  m.set_data(chunk);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(w->Write(m));
  // Wait until the node has stored some chunks (they show in its RocksDB), then kill it.
  absl::SleepFor(absl::Milliseconds(300));
  node_->Crash();
  EXPECT_FALSE(w->Finish().ok());

  MCOS_ASSERT_OK(node_->Start());
  auto got = Get(Key("mid"));
  MCOS_ASSERT_OK(got);
  EXPECT_TRUE(*got == v1);
  node_->Stop();
  // Nothing of the interrupted upload is left in the data column family.
  {
    RocksDbOptions options;
    options.path = node_->db_path();
    auto engine = RocksDbEngine::Open(options);
    MCOS_ASSERT_OK(engine);
    std::unique_ptr<rocksdb::Iterator> it((*engine)->db_for_test()->NewIterator(
        rocksdb::ReadOptions(), (*engine)->data_cf_for_test()));
    int keys = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++keys;
    EXPECT_EQ(keys, 2);  // v1's two chunks only
  }
  // Nor its data file (chunks 8-11 went to one).
  EXPECT_TRUE(std::filesystem::is_empty(node_->db_path() + "/objects"));
}

TEST_F(StorageE2eTest, ACorruptChunkOnDiskGivesDataLoss) {
  const std::string data = testing::RandomBytes(4 * kMiB, 7);
  auto put = Put(Key("rot"), data);
  MCOS_ASSERT_OK(put);
  const std::string data_id = put->record().data_id();
  node_->Stop();
  MCOS_ASSERT_OK(testing::CorruptChunk(node_->db_path(), data_id, 2));
  MCOS_ASSERT_OK(node_->Start());
  mcos::v1::StorageGetRequest r;
  *r.mutable_key() = Key("rot");
  std::string received;
  auto got = node_->client().Get(r, [&](absl::string_view d) {
    received.append(d.data(), d.size());
    return absl::OkStatus();
  });
  MCOS_EXPECT_CODE(got, kDataLoss);
  EXPECT_NE(got.status().message().find("rot"), absl::string_view::npos) << got.status();
  // What arrived before the error is exactly the intact prefix: never a wrong byte.
  EXPECT_EQ(received.size(), 2 * kMiB);
  EXPECT_TRUE(received == data.substr(0, received.size()));
}

// A blob file gone from the disk (a bad disk, a careless operator) is data loss, not a passing
// outage: DATA_LOSS, naming the object and not the node's files.
TEST_F(StorageE2eTest, AMissingDataFileGivesDataLoss) {
  // Past the first 8 MiB (through the WAL): in the object's data file.
  const std::string data = testing::RandomBytes(12 * kMiB, 8);
  MCOS_ASSERT_OK(Put(Key("gone"), data));
  node_->Stop();
  int removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(node_->db_path() + "/objects")) {
    std::filesystem::remove(entry.path());
    ++removed;
  }
  ASSERT_EQ(removed, 1);
  MCOS_ASSERT_OK(node_->Start());
  auto got = Get(Key("gone"));
  MCOS_EXPECT_CODE(got, kDataLoss);
  EXPECT_NE(got.status().message().find("gone"), absl::string_view::npos) << got.status();
  EXPECT_EQ(got.status().message().find(node_->db_path()), absl::string_view::npos) << got.status();
  EXPECT_EQ(got.status().message().find(".blob"), absl::string_view::npos) << got.status();
}

TEST_F(StorageE2eTest, HoldersAreKeptWithTheVersionAndAddedToForExactlyIt) {
  auto header = Header(Key("held"));
  header.add_holders("alpha");
  MCOS_ASSERT_OK(node_->client().PutBytes(header, "held"));
  grpc::ClientContext ctx;
  mcos::v1::StorageAddHoldersRequest req;
  *req.mutable_key() = Key("held");
  *req.mutable_version() = header.version();
  req.add_holders("beta");
  req.add_holders("alpha");
  mcos::v1::StorageAddHoldersResponse resp;
  ASSERT_TRUE(node_->client().stub().AddHolders(&ctx, req, &resp).ok());
  EXPECT_TRUE(resp.added());
  auto stat = node_->client().Stat(Key("held"));
  MCOS_ASSERT_OK(stat);
  EXPECT_EQ(std::vector<std::string>(stat->holders().begin(), stat->holders().end()),
            (std::vector<std::string>{"alpha", "beta"}));
  // Another version: nothing added. And they survive kill -9 (written before a synced write).
  grpc::ClientContext other_ctx;
  req.mutable_version()->set_hlc(req.version().hlc() + 1000);
  req.set_holders(0, "gamma");
  ASSERT_TRUE(node_->client().stub().AddHolders(&other_ctx, req, &resp).ok());
  EXPECT_FALSE(resp.added());
  MCOS_ASSERT_OK(Put(Key("another"), "synced"));
  node_->Crash();
  MCOS_ASSERT_OK(node_->Start());
  stat = node_->client().Stat(Key("held"));
  MCOS_ASSERT_OK(stat);
  EXPECT_EQ(std::vector<std::string>(stat->holders().begin(), stat->holders().end()),
            (std::vector<std::string>{"alpha", "beta"}));
}

TEST_F(StorageE2eTest, BadInputGetsInvalidArgumentAndChangesNothing) {
  MCOS_ASSERT_OK(Put(Key("keep"), "precious"));
  const auto before = node_->client().Stat(Key("keep"));
  MCOS_ASSERT_OK(before);

  auto with_key = [&](ObjectKey k) {
    mcos::v1::StoragePutRequest m;
    *m.mutable_header() = Header(k);
    return m;
  };
  mcos::v1::StoragePutRequest finish;
  finish.mutable_finish();
  mcos::v1::StoragePutRequest data;
  data.set_data("x");
  std::vector<ObjectKey> bad_keys;
  bad_keys.push_back(Key("o", "has/slash"));
  bad_keys.push_back(Key(""));
  bad_keys.push_back(Key("bad\xff utf8"));
  bad_keys.push_back(Key("ctrl\x01"));
  bad_keys.push_back(Key(std::string(1025, 'o')));
  bad_keys.push_back(Key("o", std::string(256, 'c')));
  ObjectKey bad_user = Key("keep");
  bad_user.set_user("");
  bad_keys.push_back(bad_user);
  for (const auto& k : bad_keys) {
    const grpc::Status s = RawPut({with_key(k), data, finish});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << k.ShortDebugString();
    EXPECT_FALSE(s.error_message().empty());
  }
  // Oversized chunk, aimed at the stored object with a newer version.
  mcos::v1::StoragePutRequest huge;
  huge.set_data(std::string(kMiB + 1, 'h'));
  grpc::Status s = RawPut({with_key(Key("keep")), huge, finish});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("1 MiB"), std::string::npos) << s.error_message();
  // No header first; two headers; no version; malformed md5.
  EXPECT_EQ(RawPut({data}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut({with_key(Key("keep")), with_key(Key("keep"))}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto no_version = with_key(Key("keep"));
  no_version.mutable_header()->clear_version();
  EXPECT_EQ(RawPut({no_version, data, finish}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_md5 = with_key(Key("keep"));
  bad_md5.mutable_header()->set_md5_hex("xyz");
  EXPECT_EQ(RawPut({bad_md5, data, finish}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto wrong_md5 = with_key(Key("keep"));
  wrong_md5.mutable_header()->set_md5_hex(std::string(32, 'a'));
  EXPECT_EQ(RawPut({wrong_md5, data, finish}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Holders that are not cluster names, or too many of them.
  auto bad_holder = with_key(Key("keep"));
  bad_holder.mutable_header()->add_holders("not a cluster");
  EXPECT_EQ(RawPut({bad_holder, data, finish}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto many_holders = with_key(Key("keep"));
  for (int i = 0; i < 17; ++i) many_holders.mutable_header()->add_holders(absl::StrCat("c", i));
  EXPECT_EQ(RawPut({many_holders, data, finish}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // AddHolders: a bad key, no version, no holders, a bad name each get INVALID_ARGUMENT.
  auto add_holders = [&](const ObjectKey& k, const mcos::v1::Version* v,
                         const std::vector<std::string>& holders) {
    grpc::ClientContext ctx;
    mcos::v1::StorageAddHoldersRequest req;
    *req.mutable_key() = k;
    if (v != nullptr) *req.mutable_version() = *v;
    for (const auto& h : holders) req.add_holders(h);
    mcos::v1::StorageAddHoldersResponse resp;
    return node_->client().stub().AddHolders(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(add_holders(Key("keep", "a/b"), &before->version(), {"beta"}),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(add_holders(Key("keep"), nullptr, {"beta"}), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(add_holders(Key("keep"), &before->version(), {}), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(add_holders(Key("keep"), &before->version(), {"beta", "-x"}),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Bad names on the other calls.
  MCOS_EXPECT_CODE(node_->client().Stat(Key("", "c")), kInvalidArgument);
  mcos::v1::StorageDeleteRequest del;
  *del.mutable_key() = Key("keep", "a/b");
  del.mutable_version()->set_hlc(g_hlc.fetch_add(1));
  MCOS_EXPECT_CODE(node_->client().Delete(del), kInvalidArgument);
  *del.mutable_key() = Key("keep");
  del.clear_version();
  MCOS_EXPECT_CODE(node_->client().Delete(del), kInvalidArgument);
  mcos::v1::StorageListRequest list;
  list.set_user("alice");
  list.set_container("c");
  list.set_prefix("\x01");
  MCOS_EXPECT_CODE(node_->client().List(list), kInvalidArgument);

  const auto after = node_->client().Stat(Key("keep"));
  MCOS_ASSERT_OK(after);
  EXPECT_EQ(after->SerializeAsString(), before->SerializeAsString());
  EXPECT_EQ(*Get(Key("keep")), "precious");
}

// The storage service's replica (as mcos-server reaches storage) and one over an engine of its
// own in this process (as mcos-cluster does); `engine` is null if it could not open (the test is
// failed then).
struct TwoWays {
  explicit TwoWays(testing::StorageProcess& node) {
    RocksDbOptions options;
    options.path = dir.path() + "/db";
    auto opened = RocksDbEngine::Open(options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return;
    engine = *std::move(opened);
    service = replication::StorageReplica("c1", node.Connect());
    in_process = replication::EngineReplica("c1", *engine);
  }
  testing::TempDir dir;
  std::unique_ptr<RocksDbEngine> engine;
  std::unique_ptr<replication::Replica> service;
  std::unique_ptr<replication::Replica> in_process;
};

// A coordinator's upload held in memory is committed in one call (Replica::StoreUpload): over the
// storage service (mcos-server) or straight into the engine (mcos-cluster). Both answer alike:
// restamped above a newer version, the precondition and the digests checked, nothing stored by a
// failed one.
TEST_F(StorageE2eTest, StoreUploadAnswersAlikeOverTheServiceAndInProcess) {
  TwoWays two(*node_);
  ASSERT_NE(two.engine, nullptr);
  for (replication::Replica* replica : {two.service.get(), two.in_process.get()}) {
    SCOPED_TRACE(replica->in_process() ? "engine" : "storage service");
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    auto read = [&](const ObjectKey& key) -> absl::StatusOr<std::string> {
      MCOS_ASSIGN_OR_RETURN(auto reader, replica->Open(key, 0, 0, nullptr, deadline));
      std::string out;
      std::string chunk;
      while (reader->Next(&chunk)) out += chunk;
      MCOS_RETURN_IF_ERROR(reader->Finish());
      return out;
    };
    // A newer version is held: the upload is committed just above it, under its own content.
    const uint64_t newer = g_hlc.fetch_add(1000) + 500;
    auto held = Header(Key("up"), newer);
    held.mutable_version()->set_cluster("c2");
    mcos::v1::StoragePutFinish empty;
    auto first = replica->StoreUpload(held, "from c2", empty, deadline);
    MCOS_ASSERT_OK(first);
    EXPECT_TRUE(first->applied());
    auto own = Header(Key("up"));
    own.set_restamp(true);
    own.set_md5_hex(testing::Md5Hex("mine"));
    mcos::v1::StoragePutFinish finish;
    finish.set_size(4);
    auto stored = replica->StoreUpload(own, "mine", finish, deadline);
    MCOS_ASSERT_OK(stored);
    EXPECT_TRUE(stored->applied());
    EXPECT_TRUE(common::IsNewer(stored->record().version(), held.version()));
    EXPECT_EQ(stored->record().version().cluster(), "c1");
    EXPECT_EQ(stored->record().size(), 4u);
    EXPECT_EQ(*read(Key("up")), "mine");
    // Preconditions: create over a live version, update of nothing; nothing stored.
    auto create = Header(Key("up"));
    create.set_precondition(mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST);
    EXPECT_EQ(replica->StoreUpload(create, "again", empty, deadline).status().code(),
              absl::StatusCode::kFailedPrecondition);
    auto update = Header(Key("none"));
    update.set_precondition(mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
    EXPECT_EQ(replica->StoreUpload(update, "x", empty, deadline).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(replica->Stat(Key("none"), deadline).status().code(), absl::StatusCode::kNotFound);
    // A size or digest that does not match: INVALID_ARGUMENT, the previous version intact.
    mcos::v1::StoragePutFinish wrong_size;
    wrong_size.set_size(99);
    EXPECT_EQ(
        replica->StoreUpload(Header(Key("up")), "short", wrong_size, deadline).status().code(),
        absl::StatusCode::kInvalidArgument);
    mcos::v1::StoragePutFinish wrong_md5;
    wrong_md5.set_md5_hex(std::string(32, 'a'));
    EXPECT_EQ(replica->StoreUpload(Header(Key("up")), "other", wrong_md5, deadline).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(*read(Key("up")), "mine");
    // Larger than one chunk, and empty.
    const std::string big = testing::RandomBytes(kMiB + 12345, 7);
    auto large = replica->StoreUpload(Header(Key("big")), big, empty, deadline);
    MCOS_ASSERT_OK(large);
    EXPECT_EQ(*read(Key("big")), big);
    MCOS_ASSERT_OK(replica->StoreUpload(Header(Key("empty")), "", empty, deadline));
    EXPECT_EQ(*read(Key("empty")), "");
  }
}

// A create's replica write (Replica::PutIf, MUST_NOT_EXIST) is stored only over nothing live and
// nothing newer, an update's (MUST_EXIST) only over a live version, over the storage service and
// in-process alike; refused, each says what is held.
TEST_F(StorageE2eTest, ConditionalWritesAnswerAlikeOverTheServiceAndInProcess) {
  TwoWays two(*node_);
  ASSERT_NE(two.engine, nullptr);
  for (replication::Replica* replica : {two.service.get(), two.in_process.get()}) {
    SCOPED_TRACE(replica->in_process() ? "engine" : "storage service");
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    const ObjectKey key = Key(replica->in_process() ? "if-absent-engine" : "if-absent-service");
    auto put_if = [&](const ObjectKey& k, uint64_t hlc, const std::string& data,
                      mcos::v1::WritePrecondition precondition) {
      mcos::v1::ObjectRecord record;
      record.mutable_version()->set_hlc(hlc);
      record.mutable_version()->set_cluster("c2");
      record.set_size(data.size());
      record.set_etag(testing::Md5Hex(data));
      auto source = replication::MemoryReader(record, std::make_shared<const std::string>(data));
      return replica->PutIf(k, record, *source, deadline, precondition);
    };
    auto create = [&](uint64_t hlc, const std::string& data) {
      return put_if(key, hlc, data, mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST);
    };
    auto update = [&](const ObjectKey& k, uint64_t hlc, const std::string& data) {
      return put_if(k, hlc, data, mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
    };
    const uint64_t base = g_hlc.fetch_add(10000);
    auto made = create(base + 100, "first");
    MCOS_ASSERT_OK(made);
    EXPECT_TRUE(made->applied);
    EXPECT_EQ(made->prior, mcos::v1::WRITE_PRIOR_ABSENT);
    // Over a live version, newer or older than it: refused, LIVE, with the version held.
    for (uint64_t hlc : {base + 50, base + 200}) {
      auto refused = create(hlc, "second");
      MCOS_ASSERT_OK(refused);
      EXPECT_FALSE(refused->applied);
      EXPECT_EQ(refused->prior, mcos::v1::WRITE_PRIOR_LIVE);
      EXPECT_EQ(refused->stored_version.hlc(), base + 100);
    }
    auto held = replica->Stat(key, deadline);
    MCOS_ASSERT_OK(held);
    EXPECT_EQ(held->etag(), testing::Md5Hex("first"));
    // Under a newer tombstone: refused, ABSENT; above it: stored.
    mcos::v1::ObjectRecord tombstone;
    tombstone.set_tombstone(true);
    tombstone.mutable_version()->set_hlc(base + 300);
    tombstone.mutable_version()->set_cluster("c2");
    auto deleted = replica->Delete(key, tombstone, deadline);
    MCOS_ASSERT_OK(deleted);
    ASSERT_TRUE(deleted->applied);
    auto under = create(base + 250, "under");
    MCOS_ASSERT_OK(under);
    EXPECT_FALSE(under->applied);
    EXPECT_EQ(under->prior, mcos::v1::WRITE_PRIOR_ABSENT);
    EXPECT_EQ(under->stored_version.hlc(), base + 300);
    auto above = create(base + 400, "above");
    MCOS_ASSERT_OK(above);
    EXPECT_TRUE(above->applied);
    held = replica->Stat(key, deadline);
    MCOS_ASSERT_OK(held);
    EXPECT_EQ(held->etag(), testing::Md5Hex("above"));

    // Updates: over the live version, stored; over nothing or a tombstone, refused (ABSENT).
    auto updated = update(key, base + 500, "updated");
    MCOS_ASSERT_OK(updated);
    EXPECT_TRUE(updated->applied);
    EXPECT_EQ(updated->prior, mcos::v1::WRITE_PRIOR_LIVE);
    ObjectKey nothing = key;
    nothing.set_object(key.object() + "-nothing");
    auto over_nothing = update(nothing, base + 500, "nothing there");
    MCOS_ASSERT_OK(over_nothing);
    EXPECT_FALSE(over_nothing->applied);
    EXPECT_EQ(over_nothing->prior, mcos::v1::WRITE_PRIOR_ABSENT);
    EXPECT_EQ(replica->Stat(nothing, deadline).status().code(), absl::StatusCode::kNotFound);
    tombstone.mutable_version()->set_hlc(base + 600);
    MCOS_ASSERT_OK(replica->Delete(key, tombstone, deadline));
    auto over_tombstone = update(key, base + 700, "after the delete");
    MCOS_ASSERT_OK(over_tombstone);
    EXPECT_FALSE(over_tombstone->applied);
    EXPECT_EQ(over_tombstone->prior, mcos::v1::WRITE_PRIOR_ABSENT);
    EXPECT_EQ(over_tombstone->stored_version.hlc(), base + 600);
  }
}

}  // namespace
}  // namespace mcos::storage
