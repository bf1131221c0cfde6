// Self-healing of a federation, against three mcos-cluster processes: a cluster converges by
// anti-entropy alone after its peers lost their replication queues, and after an old copy of its
// data directory is restored in place, without bringing back anything deleted or serving anything
// older. Each cluster's own copy is read through its ClusterService, as a peer would.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/channel.h"
#include "common/service_auth.h"
#include "common/status_macros.h"
#include "common/token.h"
#include "common/version.h"
#include "replication/replica.h"
#include "tests/support/corrupt_chunk.h"
#include "tests/support/federation_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;
using testing::ClusterProcess;
using testing::WaitFor;

class RepairE2eTest : public testing::FederationFixture {
 protected:
  void SetUp() override {
    FederationFixture::SetUp();
    cluster_args_ = {"--anti-entropy-period-ms", "300"};
    peer_ = PeerAuth("inspector");
    ASSERT_NE(peer_, nullptr);
  }

  // Cluster `name`'s own copy, as a peer reads it.
  std::unique_ptr<replication::Replica> Own(const ClusterProcess& c, const std::string& name) {
    return replication::PeerReplica(name, "inspector",
                                    common::ConnectInternal(c.endpoint(), *peer_));
  }

  static mcos::v1::ObjectKey Key(const std::string& container, const std::string& object) {
    mcos::v1::ObjectKey key;
    key.set_user("carol");
    key.set_container(container);
    key.set_object(object);
    return key;
  }

  // The default option's digests at power 8 (the ring's), serialized for comparison; empty if the
  // cluster cannot be asked.
  static std::string Digests(replication::Replica& r) {
    mcos::v1::PartitionDigestsRequest req;
    req.set_option("default");
    req.set_partition_power(8);
    auto d = r.PartitionDigests(req, absl::Now() + absl::Seconds(5));
    return d.ok() ? d->SerializeAsString() : "";
  }

  // (hlc, cluster, tombstone) of what a replica holds; empty for nothing.
  static std::string Held(replication::Replica& r, const mcos::v1::ObjectKey& key) {
    auto rec = r.Stat(key, absl::Now() + absl::Seconds(5));
    if (!rec.ok()) return absl::StrCat("(", rec.status().ToString(), ")");
    return absl::StrCat(rec->version().hlc(), "@", rec->version().cluster(),
                        rec->tombstone() ? " tombstone" : "");
  }

  // The content of a replica's own copy.
  static absl::StatusOr<std::string> ReadOwn(replication::Replica& r,
                                             const mcos::v1::ObjectKey& key) {
    auto reader = r.Open(key, 0, 0, nullptr, absl::Now() + absl::Seconds(5));
    if (!reader.ok()) return reader.status();
    std::string out, piece;
    while ((*reader)->Next(&piece)) out += piece;
    MCOS_RETURN_IF_ERROR((*reader)->Finish());
    return out;
  }

  // Empties the replication queue in a stopped cluster's controller database.
  void EmptyQueue(const std::string& name) {
    const std::string path =
        absl::StrCat(dir_.path(), "/", name, "/cluster/controller/controller.db");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK) << path;
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM replication_queue", nullptr, nullptr, &error),
              SQLITE_OK)
        << (error != nullptr ? error : "");
    std::cout << name << ": deleted " << sqlite3_changes(db) << " queued replication task(s)\n";
    sqlite3_close(db);
  }

  // The lines of cluster `c`'s log that contain one of `words`.
  static std::string Grep(const ClusterProcess& c, const std::vector<std::string>& words) {
    std::ifstream in(c.log_path());
    std::string line, out;
    while (std::getline(in, line)) {
      for (const auto& w : words) {
        if (absl::StrContains(line, w)) {
          out += line + "\n";
          break;
        }
      }
    }
    return out;
  }
  // What anti-entropy logged at cluster `c` (its copies).
  static std::string AntiEntropyLog(const ClusterProcess& c) { return Grep(c, {"anti-entropy"}); }

  // Flips a byte of chunk `index` of the copy of `key` that cluster `c` (`name`) holds, with the
  // cluster stopped (it is left stopped); false if the chunk is not found.
  bool CorruptChunk(ClusterProcess& c, const std::string& name, const mcos::v1::ObjectKey& key,
                    uint64_t index) {
    // (The write was acknowledged by W = 2 clusters: the third may still be receiving it.)
    auto own = Own(c, name);
    absl::StatusOr<mcos::v1::ObjectRecord> record;
    WaitFor([&] { return (record = own->Stat(key, absl::Now() + absl::Seconds(5))).ok(); });
    EXPECT_TRUE(record.ok()) << record.status();
    if (!record.ok()) return false;
    EXPECT_EQ(c.Stop(), 0);
    const absl::Status corrupted = testing::CorruptChunk(
        absl::StrCat(dir_.path(), "/", name, "/cluster/storage/db"), record->data_id(), index);
    EXPECT_TRUE(corrupted.ok()) << corrupted;
    return corrupted.ok();
  }

  std::unique_ptr<common::ServiceAuth> peer_;
};

// Issue "Self-healing", test 1: gamma killed under a load of writes and deletes at alpha and beta,
// whose replication queues are then emptied: gamma converges by anti-entropy alone.
TEST_F(RepairE2eTest, AClusterConvergesByAntiEntropyAloneWhenItsPeersLostTheirQueues) {
  Federate();
  auto at_a = ContainerEverywhere("heal");
  ASSERT_NE(at_a, nullptr);
  auto at_b = As(*b_);
  ASSERT_NE(at_b, nullptr);
  std::map<std::string, std::string> expected;  // object -> content; absent: deleted
  for (int i = 0; i < 60; ++i) {
    const std::string o = absl::StrCat("obj-", i);
    MCOS_ASSERT_OK(Put(*at_a, "heal", o, absl::StrCat("first ", o)));
    expected[o] = absl::StrCat("first ", o);
  }
  c_->Kill();
  // Every other cluster lists gamma as down within 2 s of its kill -9.
  const absl::Time killed = absl::Now();
  for (auto* c : {a_, b_}) {
    auto admin = Admin(*c);
    WaitFor(
        [&] {
          auto list = admin->ListClusters();
          if (!list.ok()) return false;
          for (const auto& cl : list->clusters()) {
            if (cl.id() == "gamma") return cl.state() == mcos::v1::SERVICE_STATE_DOWN;
          }
          return false;
        },
        absl::Seconds(5));
  }
  const absl::Duration noticed = absl::Now() - killed;
  std::cout << "alpha and beta listed gamma down " << absl::FormatDuration(noticed)
            << " after its kill -9\n";
  EXPECT_LT(noticed, absl::Seconds(2));
  // The load while gamma is down: creates, updates and deletes, at alpha and at beta.
  for (int i = 0; i < 40; ++i) {
    Client& at = i % 2 == 0 ? *at_a : *at_b;
    const std::string o = absl::StrCat("new-", i);
    MCOS_ASSERT_OK(Put(at, "heal", o, absl::StrCat("created while gamma was down ", o)));
    expected[o] = absl::StrCat("created while gamma was down ", o);
  }
  for (int i = 0; i < 20; ++i) {
    Client& at = i % 2 == 0 ? *at_b : *at_a;
    const std::string o = absl::StrCat("obj-", i);
    MCOS_ASSERT_OK(Put(at, "heal", o, absl::StrCat("updated ", o)));
    expected[o] = absl::StrCat("updated ", o);
  }
  std::set<std::string> deleted;
  for (int i = 20; i < 40; ++i) {
    Client& at = i % 2 == 0 ? *at_a : *at_b;
    const std::string o = absl::StrCat("obj-", i);
    MCOS_ASSERT_OK(at.DeleteObject("heal", o));
    expected.erase(o);
    deleted.insert(o);
  }
  // Both queues lost: stop alpha and beta, empty them, start them again; then gamma.
  a_->Kill();
  b_->Kill();
  EmptyQueue("alpha");
  EmptyQueue("beta");
  // (On their ports: the three are down at once, so none could tell the others of a new one.)
  MCOS_ASSERT_OK(Restart(*a_, "alpha", /*same_port=*/true));
  MCOS_ASSERT_OK(Restart(*b_, "beta", /*same_port=*/true));
  const absl::Time restarted = absl::Now();
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  auto own_a = Own(*a_, "alpha");
  auto own_c = Own(*c_, "gamma");
  EXPECT_TRUE(absl::StrContains(Held(*own_c, Key("heal", "new-0")), "NOT_FOUND"));
  std::string target;
  WaitFor([&] { return !(target = Digests(*own_a)).empty(); });
  ASSERT_FALSE(target.empty()) << "alpha's ClusterService never answered after its restart";
  EXPECT_EQ(Digests(*Own(*b_, "beta")), target);
  const absl::Duration took = WaitFor([&] { return Digests(*own_c) == target; }, absl::Seconds(60));
  ASSERT_LT(took, absl::Seconds(60)) << "gamma never caught up by anti-entropy:\n"
                                     << AntiEntropyLog(*c_);
  // (The pass logs what it copied once it is over.)
  EXPECT_LT(WaitFor([&] { return absl::StrContains(AntiEntropyLog(*c_), "anti-entropy: copied"); }),
            absl::Seconds(15));
  const absl::Duration since_restart = absl::Now() - restarted;
  std::cout << "gamma converged " << absl::FormatDuration(since_restart)
            << " after its restart (80 records to repair: "
            << 80 / absl::ToDoubleSeconds(since_restart) << " records/s including start-up)\n";
  // Every acknowledged write reads back from gamma's own copy, every delete holds there.
  for (const auto& [o, content] : expected) {
    auto got = ReadOwn(*own_c, Key("heal", o));
    ASSERT_TRUE(got.ok()) << o << ": " << got.status();
    EXPECT_EQ(*got, content) << o;
  }
  auto at_c = As(*c_);
  for (const std::string& o : deleted) {
    EXPECT_TRUE(absl::StrContains(Held(*own_c, Key("heal", o)), "tombstone")) << o;
    MCOS_EXPECT_CODE(at_c->StatObject("heal", o), kNotFound);
  }
  // What gamma's repair status says: what it copied from whom, and that it is in sync now
  // (512 partitions: options "default" and "relaxed" share the 256 of ring "fed").
  auto admin_c = Admin(*c_);
  uint64_t copied = 0;
  EXPECT_LT(WaitFor([&] {
              auto status = admin_c->GetRepairStatus();
              if (!status.ok()) return false;
              copied = 0;
              bool synced = true;
              int links = 0;
              for (const auto& l : status->links()) {
                if (l.to_cluster() != "gamma") continue;
                ++links;
                copied += l.records_repaired();
                synced = synced && l.partitions_out_of_sync() == 0 &&
                         l.partitions_compared() >= 256 && l.last_full_pass().seconds() > 0 &&
                         l.last_error().empty();
              }
              return links == 2 && synced && copied >= 80;
            }),
            absl::Seconds(15))
      << admin_c->GetRepairStatus()->DebugString();
  EXPECT_LE(copied, 160u);  // each record at most once from each peer
  // Every cluster's stat names gamma as a holder again.
  for (auto* c : {a_, b_, c_}) {
    auto at = As(*c);
    EXPECT_LT(WaitFor([&] {
                auto stat = at->StatObject("heal", "new-0");
                return stat.ok() && Replicas(*stat).count("gamma") == 1;
              }),
              absl::Seconds(5))
        << c->endpoint();
  }
}

// Issue "Self-healing", test 2: an old copy of gamma's data directory, taken before a batch of
// updates and deletes, restored in place.
TEST_F(RepairE2eTest, ARestoredOldCopyOfADataDirectoryBringsNothingBackAndConverges) {
  Federate();
  auto at_a = ContainerEverywhere("restore");
  ASSERT_NE(at_a, nullptr);
  for (int i = 0; i < 40; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "restore", absl::StrCat("o", i), absl::StrCat("v1 of o", i)));
  }
  // The backup: gamma stopped cleanly, its whole data directory copied.
  const std::string data = absl::StrCat(dir_.path(), "/gamma/cluster");
  const std::string backup = absl::StrCat(dir_.path(), "/gamma-backup");
  ASSERT_EQ(c_->Stop(), 0);
  std::filesystem::copy(data, backup, std::filesystem::copy_options::recursive);
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  // Updates and deletes that gamma takes directly (it is up).
  for (int i = 0; i < 20; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "restore", absl::StrCat("o", i), absl::StrCat("v2 of o", i)));
  }
  for (int i = 20; i < 30; ++i) MCOS_ASSERT_OK(at_a->DeleteObject("restore", absl::StrCat("o", i)));
  auto own_a = Own(*a_, "alpha");
  auto own_b = Own(*b_, "beta");
  const std::string before = Digests(*own_a);
  {
    auto own_c = Own(*c_, "gamma");
    ASSERT_LT(WaitFor([&] { return Digests(*own_c) == before; }), absl::Seconds(15));
  }
  // The restore: gamma stopped, its directory replaced by the old copy, started again, first
  // without anti-entropy: its stale copy must not show through any cluster's answers.
  ASSERT_EQ(c_->Stop(), 0);
  std::filesystem::remove_all(data);
  std::filesystem::rename(backup, data);
  const std::vector<std::string> repairing = cluster_args_;
  cluster_args_ = {"--anti-entropy-period-ms", "0"};
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  auto check_answers = [&] {
    for (Client* at : {at_a.get(), at_c.get()}) {
      for (int i : {0, 7, 19}) {
        auto got = Get(*at, "restore", absl::StrCat("o", i));
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(*got, absl::StrCat("v2 of o", i));
      }
      for (int i : {20, 25, 29}) {
        MCOS_EXPECT_CODE(at->StatObject("restore", absl::StrCat("o", i)), kNotFound);
      }
      auto listing = at->ListObjects(Listing("restore"));
      MCOS_ASSERT_OK(listing);
      EXPECT_EQ(listing->objects_size(), 30);
    }
    EXPECT_EQ(Digests(*own_a), before);
    EXPECT_EQ(Digests(*own_b), before);
  };
  {
    auto stale = Own(*c_, "gamma");
    ASSERT_NE(Digests(*stale), before) << "the restored copy is not older";
    ASSERT_TRUE(absl::StrContains(Held(*stale, Key("restore", "o25")), "@alpha"));
    EXPECT_FALSE(absl::StrContains(Held(*stale, Key("restore", "o25")), "tombstone"));
  }
  check_answers();
  // Now with anti-entropy: gamma converges, and nothing changes anywhere else meanwhile.
  ASSERT_EQ(c_->Stop(), 0);
  cluster_args_ = repairing;
  const absl::Time start = absl::Now();
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  auto own_c = Own(*c_, "gamma");
  at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  bool converged = false;
  while (!converged && absl::Now() - start < absl::Seconds(60)) {
    converged = Digests(*own_c) == before;
    check_answers();
  }
  ASSERT_TRUE(converged) << "gamma never converged after the restore:\n" << AntiEntropyLog(*c_);
  std::cout << "gamma converged " << absl::FormatDuration(absl::Now() - start)
            << " after its restart from the old copy (with its start-up)\n";
  EXPECT_LT(WaitFor([&] { return absl::StrContains(AntiEntropyLog(*c_), "anti-entropy: copied"); }),
            absl::Seconds(15));
  for (int i = 0; i < 40; ++i) {
    const auto key = Key("restore", absl::StrCat("o", i));
    if (i >= 20 && i < 30) {
      EXPECT_TRUE(absl::StrContains(Held(*own_c, key), "tombstone")) << i;
      continue;
    }
    auto got = ReadOwn(*own_c, key);
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, absl::StrCat(i < 20 ? "v2" : "v1", " of o", i));
  }
}

// A data directory put back from a backup whose database and data files (db/objects) were copied
// at different moments, both ways round: records whose data file is missing (a version the peers
// hold too, a version they replaced) and data files no record names. The cluster never serves a
// wrong byte, converges (anti-entropy for what the peers replaced, the scrubber for what they
// hold too), and keeps no file that no record names.
TEST_F(RepairE2eTest, ADatabaseAndDataFilesFromDifferentMomentsServeNoWrongByteAndLeakNoFile) {
  cluster_args_.insert(cluster_args_.end(), {"--scrub-period-s", "1"});
  Federate();
  auto at_a = ContainerEverywhere("files");
  ASSERT_NE(at_a, nullptr);
  auto own_a = Own(*a_, "alpha");
  std::map<std::string, std::string> content;  // what each live object holds now
  auto put = [&](const std::string& object, int seed) {
    content[object] = testing::RandomBytes(10 << 20, seed);  // past 8 MiB: in a data file
    return Put(*at_a, "files", object, content[object]);
  };
  for (int i = 0; i < 4; ++i) MCOS_ASSERT_OK(put(absl::StrCat("big-", i), i));
  const std::string db = absl::StrCat(dir_.path(), "/gamma/cluster/storage/db");
  const std::string data = absl::StrCat(dir_.path(), "/gamma/cluster");
  auto files = [&] {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(db + "/objects")) {
      names.insert(e.path().filename().string());
    }
    return names;
  };
  // The data files gamma's records name: one per live object, nothing else.
  auto named_only = [&](replication::Replica& own) {
    std::set<std::string> named;
    for (const auto& [object, bytes] : content) {
      auto record = own.Stat(Key("files", object), absl::Now() + absl::Seconds(5));
      if (!record.ok()) return false;
      named.insert(absl::BytesToHexString(record->data_id()));
    }
    return files() == named;
  };
  auto converged = [&](replication::Replica& own) {
    if (Digests(own) != Digests(*own_a)) return false;
    for (const auto& [object, bytes] : content) {
      auto got = ReadOwn(own, Key("files", object));
      if (!got.ok() || *got != bytes) return false;
    }
    return named_only(own);
  };
  // Every answer at gamma is the newest content, whatever its own copy holds.
  auto check_answers = [&](Client& at) {
    for (const auto& [object, bytes] : content) {
      auto got = Get(at, "files", object);
      ASSERT_TRUE(got.ok()) << object << ": " << got.status();
      EXPECT_TRUE(*got == bytes) << "a download of " << object << " at gamma returned other bytes";
    }
    MCOS_EXPECT_CODE(at.StatObject("files", "big-2"), kNotFound);
  };
  {
    auto own_c = Own(*c_, "gamma");
    ASSERT_LT(WaitFor([&] { return converged(*own_c); }), absl::Seconds(15));
  }
  // Moment 1: the whole directory.
  const std::string moment1 = absl::StrCat(dir_.path(), "/gamma-moment1");
  ASSERT_EQ(c_->Stop(), 0);
  std::filesystem::copy(data, moment1, std::filesystem::copy_options::recursive);
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  // Two objects replaced, one deleted, one created: their old data files are removed.
  MCOS_ASSERT_OK(put("big-0", 10));
  MCOS_ASSERT_OK(put("big-1", 11));
  MCOS_ASSERT_OK(at_a->DeleteObject("files", "big-2"));
  content.erase("big-2");
  MCOS_ASSERT_OK(put("big-4", 14));
  {
    auto own_c = Own(*c_, "gamma");
    ASSERT_LT(WaitFor([&] { return converged(*own_c); }, absl::Seconds(30)), absl::Seconds(30));
  }
  // Moment 2: the data files.
  const std::string moment2 = absl::StrCat(dir_.path(), "/gamma-moment2-objects");
  ASSERT_EQ(c_->Stop(), 0);
  std::filesystem::copy(db + "/objects", moment2, std::filesystem::copy_options::recursive);

  // The database of now with the data files of moment 1: big-4's file is missing (a version the
  // peers hold too: only the scrubber or a read finds it), and the files of big-0, big-1 and
  // big-2 before moment 2 are named by no record.
  std::filesystem::remove_all(db + "/objects");
  std::filesystem::copy(moment1 + "/storage/db/objects", db + "/objects",
                        std::filesystem::copy_options::recursive);
  ASSERT_EQ(files().size(), 4u);
  // Gamma started on the restored directory: every answer right at once, converged within 60 s.
  auto restart_and_converge = [&](const std::string& restored) {
    const absl::Time start = absl::Now();
    MCOS_ASSERT_OK(Restart(*c_, "gamma"));
    auto own_c = Own(*c_, "gamma");
    auto at_c = As(*c_);
    ASSERT_NE(at_c, nullptr);
    check_answers(*at_c);
    ASSERT_LT(WaitFor([&] { return converged(*own_c); }, absl::Seconds(60)), absl::Seconds(60))
        << restored << ": files " << absl::StrJoin(files(), ", ") << "\n"
        << Grep(*c_, {"scrubber", "corrupt", "data file", "anti-entropy"});
    std::cout << restored << ": converged in " << absl::FormatDuration(absl::Now() - start)
              << " (with its start-up)\n";
    check_answers(*at_c);
  };
  restart_and_converge("newer database, older data files");
  if (HasFatalFailure()) return;

  // The database of moment 1 with the data files of moment 2: big-0, big-1 and big-2 name files
  // removed since (versions the peers replaced), and the files of big-0 and big-1 after moment 1
  // and of big-4's first copy are named by no record.
  ASSERT_EQ(c_->Stop(), 0);
  std::filesystem::remove_all(data);
  std::filesystem::rename(moment1, data);
  std::filesystem::remove_all(db + "/objects");
  std::filesystem::rename(moment2, db + "/objects");
  restart_and_converge("older database, newer data files");
  if (HasFatalFailure()) return;
  auto own_c = Own(*c_, "gamma");
  EXPECT_TRUE(absl::StrContains(Held(*own_c, Key("files", "big-2")), "tombstone"));
}

// Issue "Self-healing", test 3: a chunk corrupted on disk at one replica is never served; the read
// succeeds from a peer without the client noticing, and the copy is repaired.
TEST_F(RepairE2eTest, ACorruptCopyIsNeverServedAndTheReadRepairsIt) {
  Federate();
  auto at_a = ContainerEverywhere("scrub");
  ASSERT_NE(at_a, nullptr);
  // "mid" (3 chunks) is read through the replica path, "big" (10) streams from this cluster's
  // storage. Chunk 7 of big is in RocksDB unless the copy's size was declared up front (then all
  // of it is in its data file); the scrubber's test corrupts chunk 9, in the data file either way.
  const std::string mid = testing::RandomBytes(3 << 20, 42);
  const std::string big = testing::RandomBytes(10 << 20, 43);
  MCOS_ASSERT_OK(Put(*at_a, "scrub", "mid", mid));
  MCOS_ASSERT_OK(Put(*at_a, "scrub", "big", big));
  ASSERT_TRUE(CorruptChunk(*c_, "gamma", Key("scrub", "mid"), 1));
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  ASSERT_TRUE(CorruptChunk(*c_, "gamma", Key("scrub", "big"), 7));
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  auto own_c = Own(*c_, "gamma");
  MCOS_EXPECT_CODE(ReadOwn(*own_c, Key("scrub", "mid")), kDataLoss);  // the damage is real
  MCOS_EXPECT_CODE(ReadOwn(*own_c, Key("scrub", "big")), kDataLoss);
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  for (const auto& [object, content] :
       {std::pair<std::string, const std::string*>{"mid", &mid}, {"big", &big}}) {
    auto got = Get(*at_c, "scrub", object);
    ASSERT_TRUE(got.ok()) << object << ": " << got.status();
    EXPECT_TRUE(*got == *content) << "a download of " << object << " at gamma returned other bytes";
    // The read handed the copy to the scrubber, which replaced it from a peer.
    EXPECT_LT(WaitFor([&] {
                auto own = ReadOwn(*own_c, Key("scrub", object));
                return own.ok() && *own == *content;
              }),
              absl::Seconds(15))
        << object << "; gamma's log:\n"
        << Grep(*c_, {"corrupt", "scrubber", "checksum"});
  }
  std::ifstream in(c_->log_path());
  const std::string log(std::istreambuf_iterator<char>(in), {});
  EXPECT_TRUE(absl::StrContains(log, "holds a corrupt copy of object 'scrub/mid'"));
  EXPECT_TRUE(absl::StrContains(log, "holds a corrupt copy of object 'scrub/big'"));
  auto admin_c = Admin(*c_);
  EXPECT_LT(WaitFor([&] {
              auto status = admin_c->GetRepairStatus();
              return status.ok() && status->corrupt_copies_found() == 2 &&
                     status->corrupt_copies_repaired() == 2;
            }),
            absl::Seconds(5))
      << admin_c->GetRepairStatus()->DebugString();
}

// Test 3 again, with nobody reading: the scrubber's sweep finds the corrupt copy and repairs it.
TEST_F(RepairE2eTest, TheScrubberFindsAndRepairsACorruptCopyNobodyReads) {
  Federate();
  auto at_a = ContainerEverywhere("scrub");
  ASSERT_NE(at_a, nullptr);
  for (int i = 0; i < 20; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "scrub", absl::StrCat("small-", i), absl::StrCat("small ", i)));
  }
  const std::string content = testing::RandomBytes(10 << 20, 7);
  MCOS_ASSERT_OK(Put(*at_a, "scrub", "big", content));
  ASSERT_TRUE(CorruptChunk(*c_, "gamma", Key("scrub", "big"), 9));
  cluster_args_.insert(cluster_args_.end(), {"--scrub-period-s", "1"});
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  auto own_c = Own(*c_, "gamma");
  EXPECT_LT(WaitFor(
                [&] {
                  return absl::StrContains(Grep(*c_, {"scrubber"}),
                                           "scrubber: this cluster's copy of object 'scrub/big'");
                },
                absl::Seconds(30)),
            absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(Grep(*c_, {"scrubber"}), "failed its checksums; replaced it"))
      << Grep(*c_, {"scrubber", "corrupt"});
  auto own = ReadOwn(*own_c, Key("scrub", "big"));
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(*own == content);
  for (int i = 0; i < 20; ++i) {
    auto small = ReadOwn(*own_c, Key("scrub", absl::StrCat("small-", i)));
    ASSERT_TRUE(small.ok()) << small.status();
    EXPECT_EQ(*small, absl::StrCat("small ", i));
  }
}

// Issue "Self-healing", test 4: tombstones are reaped only once every cluster of the replica set
// holds them and no cluster has a write of their object queued; a cluster that is down keeps them.
TEST_F(RepairE2eTest, TombstonesWaitForADownClusterAndAreReapedEverywhereOnceItConfirms) {
  cluster_args_.insert(cluster_args_.end(),
                       {"--tombstone-reap-period-ms", "300", "--tombstone-min-age-s", "1"});
  Federate();
  auto at_a = ContainerEverywhere("reap");
  ASSERT_NE(at_a, nullptr);
  constexpr int kDeleted = 20;
  MCOS_ASSERT_OK(Put(*at_a, "reap", "kept", "still here"));
  for (int i = 0; i < kDeleted; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "reap", absl::StrCat("t-", i), absl::StrCat("doomed ", i)));
  }
  auto own_c = Own(*c_, "gamma");
  EXPECT_LT(WaitFor([&] {
              return !absl::StrContains(Held(*own_c, Key("reap", absl::StrCat("t-", kDeleted - 1))),
                                        "NOT_FOUND");
            }),
            absl::Seconds(10));
  c_->Kill();
  for (int i = 0; i < kDeleted; ++i)
    MCOS_ASSERT_OK(at_a->DeleteObject("reap", absl::StrCat("t-", i)));

  // Gamma is down: well past the minimum age, alpha and beta (which reap two thirds of the
  // partitions; gamma the others) keep the tombstones and say they wait for gamma.
  auto admin_a = Admin(*a_);
  auto admin_b = Admin(*b_);
  std::string statuses;
  EXPECT_LT(WaitFor([&] {
              uint64_t waiting = 0;
              statuses.clear();
              for (auto* admin : {admin_a.get(), admin_b.get()}) {
                auto s = admin->GetRepairStatus();
                if (!s.ok()) return false;
                statuses += s->DebugString();
                const auto& on = s->tombstones_waiting_on();
                const bool for_gamma = std::find(on.begin(), on.end(), "gamma") != on.end();
                if (s->tombstones_waiting() > 0 && !for_gamma) return false;
                waiting += s->tombstones_waiting();
              }
              return waiting >= kDeleted / 3;
            }),
            absl::Seconds(10))
      << statuses;
  absl::SleepFor(absl::Seconds(2));
  auto own_a = Own(*a_, "alpha");
  auto own_b = Own(*b_, "beta");
  for (int i = 0; i < kDeleted; ++i) {
    const auto key = Key("reap", absl::StrCat("t-", i));
    EXPECT_TRUE(absl::StrContains(Held(*own_a, key), "tombstone")) << i;
    EXPECT_TRUE(absl::StrContains(Held(*own_b, key), "tombstone")) << i;
  }
  EXPECT_EQ(admin_a->GetRepairStatus()->tombstones_reaped(), 0u);
  EXPECT_EQ(admin_b->GetRepairStatus()->tombstones_reaped(), 0u);

  // Gamma back: it gets the deletes (queue, anti-entropy), confirms, and the tombstones go at
  // every cluster.
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  own_c = Own(*c_, "gamma");
  auto all_gone = [&] {
    for (int i = 0; i < kDeleted; ++i) {
      const auto key = Key("reap", absl::StrCat("t-", i));
      for (auto* own : {own_a.get(), own_b.get(), own_c.get()}) {
        if (!absl::StrContains(Held(*own, key), "NOT_FOUND")) return false;
      }
    }
    return true;
  };
  const absl::Duration took = WaitFor(all_gone, absl::Seconds(30));
  ASSERT_LT(took, absl::Seconds(30))
      << "alpha: " << Held(*own_a, Key("reap", "t-0"))
      << ", beta: " << Held(*own_b, Key("reap", "t-0"))
      << ", gamma: " << Held(*own_c, Key("reap", "t-0")) << "\n"
      << admin_a->GetRepairStatus()->DebugString() << Grep(*a_, {"tombstone"});
  std::cout << "the tombstones were reaped everywhere " << absl::FormatDuration(took)
            << " after gamma's restart\n";
  // Each reaper counts what it reaped (a tombstone whose purge half failed is reaped, and
  // counted, again once anti-entropy has handed it back).
  auto admin_c = Admin(*c_);
  uint64_t reaped = 0;
  EXPECT_LT(WaitFor([&] {
              reaped = 0;
              for (auto* admin : {admin_a.get(), admin_b.get(), admin_c.get()}) {
                auto s = admin->GetRepairStatus();
                if (!s.ok()) return false;
                reaped += s->tombstones_reaped();
              }
              return reaped >= kDeleted;
            }),
            absl::Seconds(15))
      << reaped << " reaped";

  // Nothing comes back: not by anti-entropy (several passes), not at any cluster; the object kept
  // is intact and the three copies are in sync.
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(all_gone());
  const std::string target = Digests(*own_a);
  EXPECT_EQ(Digests(*own_b), target);
  EXPECT_LT(WaitFor([&] { return Digests(*own_c) == target; }), absl::Seconds(10));
  for (auto* c : {a_, b_, c_}) {
    auto at = As(*c);
    ASSERT_NE(at, nullptr);
    MCOS_EXPECT_CODE(at->StatObject("reap", "t-0"), kNotFound);
    mcos::v1::ListObjectsRequest list;
    list.set_container("reap");
    auto listing = at->ListObjects(list);
    ASSERT_TRUE(listing.ok()) << listing.status();
    ASSERT_EQ(listing->objects_size(), 1) << c->endpoint();
    EXPECT_EQ(listing->objects(0).object(), "kept");
  }
  auto kept = Own(*c_, "gamma");
  EXPECT_EQ(*ReadOwn(*kept, Key("reap", "kept")), "still here");

  // Bad input to the reaping calls: INVALID_ARGUMENT with a message, and nothing changes.
  const std::string held = Held(*own_b, Key("reap", "kept"));
  auto stored = own_b->Stat(Key("reap", "kept"), absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(stored.ok()) << stored.status();
  const absl::Time d = absl::Now() + absl::Seconds(5);
  mcos::v1::PurgeTombstonesRequest bad_key;
  auto* ref = bad_key.add_tombstones();
  *ref->mutable_key() = Key("", "kept");
  *ref->mutable_version() = stored->version();
  auto* good = bad_key.add_tombstones();  // in the same call: refused with it
  *good->mutable_key() = Key("reap", "kept");
  *good->mutable_version() = stored->version();
  MCOS_EXPECT_CODE(own_b->PurgeTombstones(bad_key, d), kInvalidArgument);
  mcos::v1::PurgeTombstonesRequest no_version;
  *no_version.add_tombstones()->mutable_key() = Key("reap", "kept");
  auto refused = own_b->PurgeTombstones(no_version, d);
  MCOS_EXPECT_CODE(refused, kInvalidArgument);
  EXPECT_FALSE(refused.status().message().empty());
  mcos::v1::CheckTombstonesRequest too_many;
  for (int i = 0; i < 1001; ++i) *too_many.add_tombstones() = *good;
  MCOS_EXPECT_CODE(own_b->CheckTombstones(too_many, d), kInvalidArgument);
  EXPECT_EQ(Held(*own_b, Key("reap", "kept")), held);
  EXPECT_EQ(*ReadOwn(*own_b, Key("reap", "kept")), "still here");
}

// Reaping under the faults an outside probe uses: two clusters down (alpha alone keeps every
// tombstone); then both back, gamma frozen (SIGSTOP) three times as the reapers could start, and a
// writer racing them by creating some of the deleted objects again at beta; last, a purge left
// half done (a reaper that purged beta's tombstones and stopped). No delete comes back, no object
// written again is lost, and the three copies end the same.
TEST_F(RepairE2eTest, ReapingUnderFaultsBringsNoDeleteBackAndLosesNoNewWrite) {
  cluster_args_.insert(cluster_args_.end(),
                       {"--tombstone-reap-period-ms", "300", "--tombstone-min-age-s", "1"});
  Federate();
  auto at_a = ContainerEverywhere("faults");
  ASSERT_NE(at_a, nullptr);
  constexpr int kDeleted = 60;
  constexpr int kRewritten = 10;  // t-0 .. t-9 are written again while the reapers run
  for (int i = 0; i < kDeleted; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "faults", absl::StrCat("t-", i), absl::StrCat("doomed ", i)));
  }
  MCOS_ASSERT_OK(Put(*at_a, "faults", "kept", "still here"));
  auto own_c = Own(*c_, "gamma");
  EXPECT_LT(WaitFor([&] { return absl::StrContains(Held(*own_c, Key("faults", "kept")), "@"); }),
            absl::Seconds(10));
  c_->Kill();
  for (int i = 0; i < kDeleted; ++i) {
    MCOS_ASSERT_OK(at_a->DeleteObject("faults", absl::StrCat("t-", i)));
  }
  // Beta down too: alpha, alone, is refused every confirmation and keeps every tombstone.
  b_->Kill();
  auto admin_a = Admin(*a_);
  EXPECT_LT(WaitFor([&] {
              auto s = admin_a->GetRepairStatus();
              return s.ok() && s->tombstones_waiting() > 0;
            }),
            absl::Seconds(10));
  absl::SleepFor(absl::Seconds(2));
  auto own_a = Own(*a_, "alpha");
  for (int i = 0; i < kDeleted; ++i) {
    EXPECT_TRUE(absl::StrContains(Held(*own_a, Key("faults", absl::StrCat("t-", i))), "tombstone"))
        << i;
  }
  EXPECT_EQ(admin_a->GetRepairStatus()->tombstones_reaped(), 0u);

  // Both back. Gamma is frozen for 1.5 s three times while the reapers confirm and purge, and
  // beta creates t-0 .. t-9 again meanwhile.
  MCOS_ASSERT_OK(Restart(*b_, "beta"));
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  std::thread freezer([&] {
    for (int round = 0; round < 3; ++round) {
      absl::SleepFor(absl::Milliseconds(500));
      kill(c_->pid(), SIGSTOP);
      absl::SleepFor(absl::Milliseconds(1500));
      kill(c_->pid(), SIGCONT);
    }
  });
  auto at_b = As(*b_);
  ASSERT_NE(at_b, nullptr);
  std::map<std::string, std::string> rewritten;  // object -> version acknowledged
  for (int i = 0; i < kRewritten; ++i) {
    const std::string o = absl::StrCat("t-", i);
    absl::StatusOr<mcos::v1::ObjectInfo> put;
    // (A put while gamma is frozen may be refused as in doubt: then it is tried again.)
    WaitFor([&] { return (put = Put(*at_b, "faults", o, absl::StrCat("again ", i))).ok(); },
            absl::Seconds(20));
    MCOS_ASSERT_OK(put);
    rewritten[o] = put->version();
    absl::SleepFor(absl::Milliseconds(300));
  }
  freezer.join();

  auto own_b = Own(*b_, "beta");
  own_c = Own(*c_, "gamma");
  // Every tombstone of an object not written again is reaped everywhere; every object written
  // again is live everywhere with its new content.
  auto settled = [&] {
    for (int i = kRewritten; i < kDeleted; ++i) {
      const auto key = Key("faults", absl::StrCat("t-", i));
      for (auto* own : {own_a.get(), own_b.get(), own_c.get()}) {
        if (!absl::StrContains(Held(*own, key), "NOT_FOUND")) return false;
      }
    }
    for (const auto& [o, version] : rewritten) {
      for (auto* own : {own_a.get(), own_b.get(), own_c.get()}) {
        auto stored = own->Stat(Key("faults", o), absl::Now() + absl::Seconds(5));
        if (!stored.ok() || stored->tombstone() ||
            common::VersionToString(stored->version()) != version) {
          return false;
        }
      }
    }
    return true;
  };
  ASSERT_LT(WaitFor(settled, absl::Seconds(60)), absl::Seconds(60))
      << "t-20 at alpha: " << Held(*own_a, Key("faults", "t-20"))
      << ", beta: " << Held(*own_b, Key("faults", "t-20"))
      << ", gamma: " << Held(*own_c, Key("faults", "t-20")) << "\n"
      << admin_a->GetRepairStatus()->DebugString();
  // Several anti-entropy and reaping passes later: still so, reads agree, copies in sync.
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(settled());
  for (auto* c : {a_, b_, c_}) {
    auto at = As(*c);
    ASSERT_NE(at, nullptr);
    for (int i = 0; i < kDeleted; ++i) {
      const std::string o = absl::StrCat("t-", i);
      if (i < kRewritten) {
        auto got = Get(*at, "faults", o);
        MCOS_ASSERT_OK(got);
        EXPECT_EQ(*got, absl::StrCat("again ", i));
      } else {
        MCOS_EXPECT_CODE(at->StatObject("faults", o), kNotFound);
      }
    }
    auto got = Get(*at, "faults", "kept");
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, "still here");
  }
  const std::string target = Digests(*own_a);
  EXPECT_LT(WaitFor([&] { return Digests(*own_b) == target && Digests(*own_c) == target; }),
            absl::Seconds(10));

  // A half-done purge: ten fresh tombstones forgotten at beta alone (as by a reaper that purged
  // its peers first and died), gamma frozen meanwhile. Anti-entropy hands them back to beta, the
  // reapers finish, and no read at any cluster ever finds the objects meanwhile.
  mcos::v1::PurgeTombstonesRequest half;
  for (int i = 0; i < 10; ++i) {
    const std::string o = absl::StrCat("h-", i);
    MCOS_ASSERT_OK(Put(*at_a, "faults", o, "half"));
    auto deleted = at_a->DeleteObject("faults", o);
    MCOS_ASSERT_OK(deleted);
    auto* ref = half.add_tombstones();
    *ref->mutable_key() = Key("faults", o);
    auto version = common::ParseVersion(*deleted);
    MCOS_ASSERT_OK(version);
    *ref->mutable_version() = *version;
    EXPECT_LT(WaitFor([&] { return absl::StrContains(Held(*own_b, ref->key()), "tombstone"); }),
              absl::Seconds(10));
  }
  kill(c_->pid(), SIGSTOP);
  auto purged = own_b->PurgeTombstones(half, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(purged);
  EXPECT_EQ(purged->purged(), 10u);
  absl::SleepFor(absl::Milliseconds(1500));
  kill(c_->pid(), SIGCONT);
  int found = 0;
  auto half_gone = [&] {
    for (auto* c : {a_, b_}) {
      auto at = As(*c);
      for (int i = 0; i < 10; ++i) {
        if (!absl::IsNotFound(at->StatObject("faults", absl::StrCat("h-", i)).status())) ++found;
      }
    }
    for (const auto& ref : half.tombstones()) {
      for (auto* own : {own_a.get(), own_b.get(), own_c.get()}) {
        if (!absl::StrContains(Held(*own, ref.key()), "NOT_FOUND")) return false;
      }
    }
    return true;
  };
  EXPECT_LT(WaitFor(half_gone, absl::Seconds(30)), absl::Seconds(30))
      << "h-0 at alpha: " << Held(*own_a, half.tombstones(0).key())
      << ", beta: " << Held(*own_b, half.tombstones(0).key())
      << ", gamma: " << Held(*own_c, half.tombstones(0).key());
  EXPECT_EQ(found, 0);
  EXPECT_TRUE(settled());
  EXPECT_LT(WaitFor([&] {
              return Digests(*own_b) == Digests(*own_a) && Digests(*own_c) == Digests(*own_a);
            }),
            absl::Seconds(10));
}

}  // namespace
}  // namespace mcos
