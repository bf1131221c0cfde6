// Reshaping a live federation (docs/placement.md, "Moving data"): a ring changed under a load of
// writes, deletes and reads at every cluster moves its data to the new holders, loses no
// acknowledged write, undoes no acknowledged delete, and every read returns at least the newest
// version acknowledged before it began. Three mcos-cluster processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/channel.h"
#include "replication/replica.h"
#include "tests/support/cli_runner.h"
#include "tests/support/federation_fixture.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/status_matchers.h"

namespace mcos {
namespace {

using client::Client;
using testing::ClusterProcess;
using testing::WaitFor;

// One operation on a key by its writer: a put of "key:seq" or a delete, when it began and, if it
// was acknowledged, when.
struct Op {
  int seq = 0;
  bool remove = false;
  absl::Time start;
  std::optional<absl::Time> acked;
};

// A read: what it returned (nullopt: not found) and when it ran.
struct Read {
  std::string key;
  std::optional<int> seq;
  absl::Time start;
  absl::Time end;
  std::string at;
};

class RebalanceE2eTest : public testing::FederationFixture {
 protected:
  void SetUp() override {
    FederationFixture::SetUp();
    cluster_args_ = {"--anti-entropy-period-ms", "300", "--move-settle-ms", "1000"};
    peer_ = PeerAuth("inspector");
    ASSERT_NE(peer_, nullptr);
  }

  // Cluster `name`'s own copy, as a peer reads it.
  std::unique_ptr<replication::Replica> Own(const ClusterProcess& c, const std::string& name) {
    return replication::PeerReplica(name, "inspector",
                                    common::ConnectInternal(c.endpoint(), *peer_));
  }

  // Whether `read` returned a state the key may have had: that of the last operation
  // acknowledged before it began, or of one begun before it ended and newer than that.
  static bool Possible(const std::vector<Op>& ops, const Read& read) {
    const Op* last = nullptr;
    for (const auto& op : ops) {
      if (op.acked && *op.acked < read.start && (last == nullptr || op.seq > last->seq)) last = &op;
    }
    const int floor = last == nullptr ? 0 : last->seq;
    auto matches = [&](const Op& op) {
      return read.seq ? (!op.remove && op.seq == *read.seq) : op.remove;
    };
    if (last == nullptr && !read.seq) return true;  // never written before it began
    if (last != nullptr && matches(*last)) return true;
    for (const auto& op : ops) {
      if (op.seq > floor && op.start < read.end && matches(op)) return true;
    }
    return false;
  }

  // Records of option `option` a cluster's own copy holds (-1 if it cannot be asked).
  static int64_t RecordsAt(replication::Replica& r, const std::string& option = "pair") {
    mcos::v1::PartitionDigestsRequest req;
    req.set_option(option);
    req.set_partition_power(8);
    auto d = r.PartitionDigests(req, absl::Now() + absl::Seconds(5));
    if (!d.ok()) return -1;
    int64_t n = 0;
    for (const auto& p : d->digests()) n += static_cast<int64_t>(p.object_count());
    return n;
  }

  // Ring "pair" over {alpha, beta} (2 replicas), option "pair" on it and carol's container
  // `container` bound to it; carol's client at alpha.
  std::unique_ptr<Client> PairContainer(const std::string& container) {
    auto admin = Admin(*a_);
    EXPECT_TRUE(admin->CreateRing(RingOf("pair", 2, {"alpha", "beta"})).ok());
    mcos::v1::Option pair;
    pair.set_name("pair");
    pair.set_ring("pair");
    pair.set_write_concern(2);
    EXPECT_TRUE(admin->AddOption(pair).ok());
    auto at_a = As(*a_);
    if (at_a == nullptr || !at_a->CreateContainer(container, "pair").ok()) {
      ADD_FAILURE() << "cannot make container " << container;
      return nullptr;
    }
    return at_a;
  }

  // Ring "pair" changed to {beta, gamma}.
  static mcos::v1::UpdateRingRequest ToBetaAndGamma() {
    mcos::v1::UpdateRingRequest change;
    change.set_id("pair");
    for (const char* m : {"beta", "gamma"}) {
      auto* member = change.add_members();
      member->set_cluster(m);
      member->set_weight(1);
    }
    return change;
  }

  // The CLI at cluster `at`, logged in as admin (the first call logs in).
  std::pair<int, std::string> Cli(const ClusterProcess& at, const std::string& args) {
    const std::string config = dir_.path() + "/cli";
    const std::string endpoint = absl::StrCat("--endpoint ", at.endpoint(), " ");
    if (!cli_logged_in_) {
      auto login = testing::RunCli(MCOS_CLI_BIN, config, endpoint + "login admin --password-stdin",
                                   absl::StrCat(testing::kAdminPassword, "\\n"));
      EXPECT_EQ(login.first, 0) << login.second;
      cli_logged_in_ = true;
    }
    return testing::RunCli(MCOS_CLI_BIN, config, endpoint + args);
  }

  // A load of puts, deletes and reads of carol's container `container` at several clusters (a
  // writer and a reader at each; the writer at cluster i owns the keys k with k % n == i), with a
  // listing of the objects under "still/" every 20th read; every operation is recorded, so that
  // each read can be checked against what the writes acknowledged (Possible).
  class MixedLoad {
   public:
    static constexpr int kKeys = 90;

    MixedLoad(RebalanceE2eTest& test, std::string container, const std::vector<ClusterProcess*>& at,
              std::vector<std::string> names)
        : container_(std::move(container)), names_(std::move(names)) {
      for (auto* c : at) {
        writers_.push_back(test.As(*c));
        readers_.push_back(test.As(*c));
        EXPECT_NE(writers_.back(), nullptr);
        if (writers_.back() == nullptr) return;
        auto& user = *writers_.back();
        EXPECT_LT(WaitFor([&] { return user.ListObjects(Listing(container_)).ok(); }),
                  absl::Seconds(15));
      }
    }
    ~MixedLoad() { Stop(); }

    Client& writer(size_t i) { return *writers_[i]; }
    Client& reader(size_t i) { return *readers_[i]; }
    int writes() const { return writes_; }

    // Writes every key once (acknowledged before the load starts); the listings expect `still`
    // objects under "still/".
    void Seed(int still) {
      still_ = still;
      for (int k = 0; k < kKeys; ++k) {
        Op op{1, false, absl::Now(), std::nullopt};
        ASSERT_TRUE(
            Put(*writers_[k % writers_.size()], container_, Name(k), absl::StrCat(Name(k), ":1"))
                .ok());
        op.acked = absl::Now();
        ops_[Name(k)].push_back(op);
      }
    }

    void Start() {
      const int n = static_cast<int>(writers_.size());
      for (int w = 0; w < n; ++w) {
        threads_.emplace_back([this, w, n] { Write(w, n); });
        threads_.emplace_back([this, w] { ReadLoop(w); });
      }
    }
    void Stop() {
      stop_ = true;
      for (auto& t : threads_) t.join();
      threads_.clear();
    }

    // No operation failed (but writes refused as unavailable, when `refused_writes_allowed`:
    // a holder was stopped) and every read returned a state its key could have had; the load did
    // run (writes since `writes_before`, reads, listings).
    void ExpectSound(int writes_before, bool refused_writes_allowed = false) {
      std::vector<std::string> failures;
      for (const auto& f : failures_) {
        const bool refused_write =
            (absl::StartsWith(f, "put ") || absl::StartsWith(f, "delete ")) &&
            (absl::StrContains(f, "UNAVAILABLE") || absl::StrContains(f, "DEADLINE_EXCEEDED"));
        if (refused_write && refused_writes_allowed) {
          ++refused_;
        } else {
          failures.push_back(f);
        }
      }
      EXPECT_TRUE(failures.empty())
          << failures.size() << " failures, the first: "
          << absl::StrJoin(failures.begin(),
                           failures.begin() + std::min<size_t>(5, failures.size()), "\n");
      size_t impossible = 0;
      std::string first;
      for (const auto& read : reads_) {
        if (Possible(ops_[read.key], read)) continue;
        if (++impossible == 1) {
          first = absl::StrCat(read.key, " read at ", read.at, " as ",
                               read.seq ? absl::StrCat(*read.seq) : "not found");
        }
      }
      EXPECT_EQ(impossible, 0u) << "of " << reads_.size() << " reads; the first: " << first;
      EXPECT_GT(writes_ - writes_before, 50) << "the load ran";
      EXPECT_GT(reads_.size(), 100u);
      EXPECT_GT(listings_, 10);
    }

    // Every key reads at every cluster as its last acknowledged operation left it; returns the
    // keys that are live.
    std::vector<std::string> ExpectFinal() {
      std::vector<std::string> live;
      for (const auto& [key, list] : ops_) {
        const Op* last = nullptr;
        for (const auto& op : list) {
          if (op.acked && (last == nullptr || op.seq > last->seq)) last = &op;
        }
        EXPECT_NE(last, nullptr) << key;
        if (last == nullptr) continue;
        for (auto& at : readers_) {
          auto got = Get(*at, container_, key);
          if (last->remove) {
            EXPECT_TRUE(absl::IsNotFound(got.status())) << key << ": " << got.status();
          } else {
            EXPECT_EQ(got.value_or("?"), absl::StrCat(key, ":", last->seq));
          }
        }
        if (!last->remove) live.push_back(key);
      }
      return live;
    }

    // The p99 of the acknowledged writes begun in [from, to).
    absl::Duration WriteP99(absl::Time from, absl::Time to) {
      std::vector<absl::Duration> in;
      for (const auto& [start, took] : latencies_) {
        if (start >= from && start < to) in.push_back(took);
      }
      if (in.empty()) return absl::ZeroDuration();
      std::sort(in.begin(), in.end());
      return in[in.size() * 99 / 100];
    }

    std::string Summary(int writes_before) const {
      return absl::StrCat(writes_ - writes_before, " writes, ", reads_.size(), " reads and ",
                          listings_, " listings",
                          refused_ > 0 ? absl::StrCat(" (", refused_, " writes refused)") : "");
    }

   private:
    static std::string Name(int k) { return absl::StrCat("k", k); }

    void Write(int w, int n) {
      std::mt19937 rng(w);
      Client& at = *writers_[w];
      std::map<int, int> seq;
      while (!stop_) {
        const int k = w + n * static_cast<int>(rng() % (kKeys / n));
        const int s = std::max(seq[k], 1) + 1;
        seq[k] = s;
        Op op{s, rng() % 6 == 0, absl::Now(), std::nullopt};
        size_t index = 0;
        {
          std::lock_guard<std::mutex> lock(mu_);
          ops_[Name(k)].push_back(op);
          index = ops_[Name(k)].size() - 1;
        }
        absl::Status result =
            op.remove ? at.DeleteObject(container_, Name(k)).status()
                      : Put(at, container_, Name(k), absl::StrCat(Name(k), ":", s)).status();
        if (op.remove && absl::IsNotFound(result)) result = absl::OkStatus();  // deleted already
        std::lock_guard<std::mutex> lock(mu_);
        if (result.ok()) {
          ops_[Name(k)][index].acked = absl::Now();
          latencies_.emplace_back(op.start, *ops_[Name(k)][index].acked - op.start);
          ++writes_;
        } else {
          failures_.push_back(absl::StrCat(op.remove ? "delete " : "put ", Name(k), " at ",
                                           names_[w], ": ", result.ToString()));
        }
      }
    }

    void ReadLoop(int r) {
      std::mt19937 rng(100 + r);
      Client& at = *readers_[r];
      int round = 0;
      while (!stop_) {
        if (++round % 20 == 0) {
          // A listing merges every live layout's holders: the objects the load never touches
          // are always all there.
          mcos::v1::ListObjectsRequest list;
          list.set_container(container_);
          list.set_prefix("still/");
          list.set_limit(1000);
          auto listed = at.ListObjects(list);
          std::lock_guard<std::mutex> lock(mu_);
          ++listings_;
          if (!listed.ok() || listed->objects_size() != still_) {
            failures_.push_back(absl::StrCat("listing at ", names_[r], ": ",
                                             listed.ok()
                                                 ? absl::StrCat(listed->objects_size(), " objects")
                                                 : listed.status().ToString()));
          }
          continue;
        }
        Read read{Name(static_cast<int>(rng() % kKeys)), std::nullopt, absl::Now(), {}, names_[r]};
        auto got = Get(at, container_, read.key);
        read.end = absl::Now();
        std::lock_guard<std::mutex> lock(mu_);
        if (got.ok()) {
          int s = 0;
          const auto colon = got->find(':');
          if (colon == std::string::npos || !absl::SimpleAtoi(got->substr(colon + 1), &s)) {
            failures_.push_back(absl::StrCat("read of ", read.key, " returned '", *got, "'"));
            continue;
          }
          read.seq = s;
        } else if (!absl::IsNotFound(got.status())) {
          failures_.push_back(
              absl::StrCat("read of ", read.key, " at ", names_[r], ": ", got.status().ToString()));
          continue;
        }
        reads_.push_back(std::move(read));
      }
    }

    const std::string container_;
    const std::vector<std::string> names_;
    std::vector<std::unique_ptr<Client>> writers_;
    std::vector<std::unique_ptr<Client>> readers_;
    int still_ = 0;
    std::mutex mu_;  // guards what follows while the load runs
    std::map<std::string, std::vector<Op>> ops_;
    std::vector<Read> reads_;
    std::vector<std::string> failures_;
    std::vector<std::pair<absl::Time, absl::Duration>> latencies_;  // of acknowledged writes
    std::atomic<bool> stop_{false};
    std::atomic<int> writes_{0};
    int listings_ = 0;
    int refused_ = 0;
    std::vector<std::thread> threads_;
  };

  std::unique_ptr<common::ServiceAuth> peer_;
  bool cli_logged_in_ = false;
};

TEST_F(RebalanceE2eTest, ARingChangedUnderLoadMovesItsDataAndLosesNothing) {
  Federate();
  auto admin = Admin(*a_);
  ASSERT_NE(PairContainer("moving"), nullptr);
  MixedLoad load(*this, "moving", {a_, b_, c_}, {"alpha", "beta", "gamma"});
  // Objects the load never touches (the mover alone brings them to gamma), then every key of the
  // load written once before the change (alpha and beta hold them all).
  constexpr int kStill = 200;
  const std::string still_data(16 << 10, 's');
  for (int k = 0; k < kStill; ++k) {
    MCOS_ASSERT_OK(Put(load.writer(k % 3), "moving", absl::StrCat("still/", k), still_data));
  }
  load.Seed(kStill);
  load.Start();

  // The change, under the load: {alpha, beta} becomes {beta, gamma}.
  absl::SleepFor(absl::Seconds(2));
  const int writes_before = load.writes();
  auto own_alpha = Own(*a_, "alpha");
  const int64_t at_alpha_before = RecordsAt(*own_alpha);
  EXPECT_GE(at_alpha_before, kStill + MixedLoad::kKeys);
  const absl::Time changed = absl::Now();
  auto updated = admin->UpdateRing(ToBetaAndGamma());
  MCOS_ASSERT_OK(updated);
  EXPECT_EQ(updated->plan().partitions_moved(), 256u);
  // The move shows in the status until every cluster confirmed it.
  bool seen_task = false;
  mcos::v1::RebalanceStatus last;
  const absl::Duration took = WaitFor(
      [&] {
        auto status = admin->GetRebalanceStatus();
        if (!status.ok()) return false;
        for (const auto& t : status->tasks()) {
          if (t.option() == "pair" && t.from_ring_version() == 1 && t.to_ring_version() == 2 &&
              t.clusters_size() == 3) {
            seen_task = true;
            last = *status;
          }
        }
        return status->tasks().empty();
      },
      absl::Seconds(90));
  const absl::Time moved = absl::Now();
  ASSERT_LT(took, absl::Seconds(90)) << "the move never finished: " << last.DebugString();
  EXPECT_TRUE(seen_task);
  absl::SleepFor(absl::Seconds(1));  // load on the new placement alone
  load.Stop();
  load.ExpectSound(writes_before);

  // Every key ends as its last acknowledged operation left it, read at every cluster, and each
  // live one is held by beta and gamma, gamma's own copy included.
  auto own_gamma = Own(*c_, "gamma");
  for (const std::string& key : load.ExpectFinal()) {
    auto info = load.reader(0).StatObject("moving", key);
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"})) << key;
    mcos::v1::ObjectKey k;
    k.set_user("carol");
    k.set_container("moving");
    k.set_object(key);
    auto held = own_gamma->Stat(k, absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(held.ok()) << key << ": " << held.status();
  }
  for (int k = 0; k < kStill; ++k) {
    mcos::v1::ObjectKey key;
    key.set_user("carol");
    key.set_container("moving");
    key.set_object(absl::StrCat("still/", k));
    auto held = own_gamma->Stat(key, absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(held.ok()) << key.object() << ": " << held.status();
    EXPECT_EQ(held->size(), still_data.size());
    auto info = load.reader(2).StatObject("moving", key.object());
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"})) << key.object();
  }
  // Alpha holds no partition of the option now: it drops every copy once beta and gamma hold it.
  EXPECT_LT(WaitFor([&] { return RecordsAt(*own_alpha) == 0; }, absl::Seconds(30)),
            absl::Seconds(30))
      << RecordsAt(*own_alpha) << " records of the option left at alpha";
  EXPECT_EQ(RecordsAt(*Own(*c_, "gamma")), RecordsAt(*Own(*b_, "beta")));
  uint64_t records = 0;
  uint64_t bytes = 0;
  for (const auto& t : last.tasks()) {
    for (const auto& c : t.clusters()) {
      records += c.records_copied();
      bytes += c.bytes_copied();
    }
  }
  std::cout << "move of " << kStill << " still objects of 16 KiB and " << MixedLoad::kKeys
            << " keys under load: " << absl::ToDoubleSeconds(moved - changed)
            << " s to retire the former layout, " << load.Summary(writes_before)
            << "; last status before retirement: " << records << " records, " << bytes
            << " bytes copied; write p99 "
            << absl::FormatDuration(load.WriteP99(changed - absl::Seconds(2), changed))
            << " before, " << absl::FormatDuration(load.WriteP99(changed, moved))
            << " during; alpha held " << at_alpha_before
            << " records before the change and released them all\n";
}

// A former holder stopped (SIGSTOP) for seconds in the middle of a move, under a load at the
// other two clusters: writes that need it are refused, never half-applied; reads go on from the
// others; once it runs again the move finishes and nothing acknowledged is lost.
TEST_F(RebalanceE2eTest, AMoveSurvivesAFormerHolderStopped) {
  Federate();
  auto admin = Admin(*a_);
  ASSERT_NE(PairContainer("frozen"), nullptr);
  MixedLoad load(*this, "frozen", {b_, c_}, {"beta", "gamma"});
  constexpr int kStill = 150;
  const std::string still_data(32 << 10, 'f');
  for (int k = 0; k < kStill; ++k) {
    MCOS_ASSERT_OK(Put(load.writer(k % 2), "frozen", absl::StrCat("still/", k), still_data));
  }
  load.Seed(kStill);
  load.Start();
  absl::SleepFor(absl::Seconds(1));
  const int writes_before = load.writes();
  MCOS_ASSERT_OK(admin->UpdateRing(ToBetaAndGamma()));
  absl::SleepFor(absl::Milliseconds(500));
  // Alpha holds every object of the former layout, half of which only it and beta hold.
  ASSERT_EQ(kill(a_->pid(), SIGSTOP), 0);
  {
    // Runs again even if the test fails meanwhile (a stopped process ignores the teardown).
    const pid_t alpha = a_->pid();
    absl::Cleanup resume = [alpha] { kill(alpha, SIGCONT); };
    absl::SleepFor(absl::Seconds(4));
  }
  const int writes_while_stopped = load.writes();
  auto at_b = Admin(*b_);
  const absl::Duration took = WaitFor(
      [&] {
        auto status = at_b->GetRebalanceStatus();
        return status.ok() && status->tasks().empty();
      },
      absl::Seconds(90));
  ASSERT_LT(took, absl::Seconds(90)) << "the move never finished";
  absl::SleepFor(absl::Seconds(1));
  load.Stop();
  load.ExpectSound(writes_before, /*refused_writes_allowed=*/true);
  std::cout << "alpha stopped 4 s during the move: " << load.Summary(writes_before) << ", "
            << writes_while_stopped - writes_before << " acknowledged before it ran again\n";
  // Every key ends as its last acknowledged operation left it, on beta and gamma; the objects the
  // load never touched reached gamma; alpha releases everything.
  for (const std::string& key : load.ExpectFinal()) {
    auto info = load.reader(0).StatObject("frozen", key);
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"})) << key;
  }
  auto own_gamma = Own(*c_, "gamma");
  for (int k = 0; k < kStill; ++k) {
    mcos::v1::ObjectKey key;
    key.set_user("carol");
    key.set_container("frozen");
    key.set_object(absl::StrCat("still/", k));
    auto held = own_gamma->Stat(key, absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(held.ok()) << key.object() << ": " << held.status();
    EXPECT_EQ(held->size(), still_data.size());
  }
  auto own_alpha = Own(*a_, "alpha");
  EXPECT_LT(WaitFor([&] { return RecordsAt(*own_alpha) == 0; }, absl::Seconds(30)),
            absl::Seconds(30))
      << RecordsAt(*own_alpha) << " records of the option left at alpha";
  EXPECT_EQ(RecordsAt(*own_gamma), RecordsAt(*Own(*b_, "beta")));
}

// A move paused copies nothing (and writes still reach every live layout); resumed, it survives its
// target killed with -9 half-way: the restarted cluster resumes where it stopped and finishes.
// Driven through the CLI as an operator would.
TEST_F(RebalanceE2eTest, APausedMoveWaitsAndAResumedOneSurvivesItsTargetKilled) {
  cluster_args_.insert(cluster_args_.end(), {"--metrics-listen", "127.0.0.1:0"});
  Federate();
  auto admin = Admin(*a_);
  auto at_a = PairContainer("moving");
  ASSERT_NE(at_a, nullptr);
  constexpr int kObjects = 120;
  auto content = [](int i) { return std::string(64 << 10, static_cast<char>('a' + i % 26)); };
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "moving", absl::StrCat("o", i), content(i)));
  }
  auto cli = [&](const std::string& args) { return Cli(*a_, args); };
  auto paused = cli("admin rebalance pause");
  ASSERT_EQ(paused.first, 0) << paused.second;
  EXPECT_NE(paused.second.find("moving data is paused (0 former layout(s) live)"),
            std::string::npos)
      << paused.second;

  MCOS_ASSERT_OK(admin->UpdateRing(ToBetaAndGamma()));
  // Paused: gamma copies nothing, though it is known to settle; a write still reaches alpha.
  auto own_gamma = Own(*c_, "gamma");
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(RecordsAt(*own_gamma), 0);
  MCOS_ASSERT_OK(Put(*at_a, "moving", "during-pause", "written while paused"));
  EXPECT_EQ(RecordsAt(*own_gamma), 1);  // the write went to gamma too (and to alpha)
  auto status = cli("admin rebalance status");
  ASSERT_EQ(status.first, 0) << status.second;
  EXPECT_NE(status.second.find("moving data is paused"), std::string::npos) << status.second;
  EXPECT_NE(status.second.find("option pair: ring pair v1 -> pair v2, 0 of 512 partitions done"),
            std::string::npos)
      << status.second;
  // Gamma's metrics say what moves to it (as of its servers' last report).
  EXPECT_LT(WaitFor([&] {
              auto m = testing::ScrapeMetrics(c_->metrics_port());
              return m.ok() &&
                     testing::SumSamples(*m, "mcos_rebalance",
                                         {"option=\"pair\"", "what=\"former_layouts\""}) == 1 &&
                     testing::SumSamples(*m, "mcos_rebalance",
                                         {"option=\"pair\"", "what=\"partitions\""}) == 256;
            }),
            absl::Seconds(15));
  auto json = cli("--json admin rebalance status");
  ASSERT_EQ(json.first, 0) << json.second;
  EXPECT_NE(json.second.find("\"paused\":true"), std::string::npos) << json.second;

  // Resumed: gamma is killed once it has copied part of it, and restarted.
  // About 2 s of copying at 4 MB/s, set live (the servers' own rate is 50 MB/s).
  auto rate = cli("admin rebalance rate 4");
  ASSERT_EQ(rate.first, 0) << rate.second;
  EXPECT_NE(rate.second.find("data moves at up to 4 MB/s per server"), std::string::npos)
      << rate.second;
  auto limited = cli("admin rebalance status");
  EXPECT_NE(limited.second.find("copies go at up to 4 MB/s per server"), std::string::npos)
      << limited.second;
  MCOS_EXPECT_CODE(admin->SetRebalanceRate(-1), kInvalidArgument);
  auto resumed = cli("admin rebalance resume");
  ASSERT_EQ(resumed.first, 0) << resumed.second;
  EXPECT_NE(resumed.second.find("moving data is resumed (1 former layout(s) live)"),
            std::string::npos)
      << resumed.second;
  ASSERT_LT(WaitFor([&] { return RecordsAt(*own_gamma) > kObjects / 4; }, absl::Seconds(30)),
            absl::Seconds(30));
  const int64_t at_kill = RecordsAt(*own_gamma);
  EXPECT_LT(at_kill, kObjects) << "the copies went faster than the rate set";
  c_->Kill();
  MCOS_ASSERT_OK(Restart(*c_, "gamma", /*same_port=*/true));
  const absl::Time restarted = absl::Now();
  auto watch = cli("admin rebalance status --watch");
  ASSERT_EQ(watch.first, 0) << watch.second;
  EXPECT_NE(watch.second.find("nothing moves"), std::string::npos) << watch.second;
  std::cout << "gamma held " << at_kill << " of " << kObjects + 1
            << " records when killed; the move finished "
            << absl::ToDoubleSeconds(absl::Now() - restarted) << " s after its restart\n";

  // Every object is readable with its content at every cluster, held by beta and gamma only.
  auto own_c = Own(*c_, "gamma");
  EXPECT_EQ(RecordsAt(*own_c), kObjects + 1);
  EXPECT_LT(WaitFor([&] { return RecordsAt(*Own(*a_, "alpha")) == 0; }, absl::Seconds(30)),
            absl::Seconds(30));
  EXPECT_LT(WaitFor([&] {
              auto m = testing::ScrapeMetrics(a_->metrics_port());
              return m.ok() && testing::SumSamples(*m, "mcos_rebalance", {"what=\"released\""}) >=
                                   kObjects + 1;
            }),
            absl::Seconds(15));
  for (auto* c : {a_, b_, c_}) {
    auto user = As(*c);
    ASSERT_NE(user, nullptr);
    for (int i = 0; i < kObjects; i += 7) {
      EXPECT_EQ(Get(*user, "moving", absl::StrCat("o", i)).value_or("?"), content(i)) << i;
    }
    auto info = user->StatObject("moving", "during-pause");
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"}));
  }
}

// A cluster that holds data cannot be removed (the error says how much and what to do);
// `cluster remove --drain` moves its data off, then removes it, and every object stays readable
// with its replicas on the clusters that remain.
TEST_F(RebalanceE2eTest, RemovingAClusterThatHoldsDataTakesADrain) {
  Federate();
  auto admin = Admin(*b_);
  // The default option's ring has 3 replicas over the 3 clusters: 2 once alpha is gone.
  mcos::v1::UpdateRingRequest fewer;
  fewer.set_id("fed");
  fewer.set_replicas(2);
  MCOS_ASSERT_OK(admin->UpdateRing(fewer));
  MCOS_ASSERT_OK(admin->CreateRing(RingOf("wide", 2, {"alpha", "beta", "gamma"})));
  mcos::v1::Option wide;
  wide.set_name("wide");
  wide.set_ring("wide");
  MCOS_ASSERT_OK(admin->AddOption(wide));
  auto at_b = As(*b_);
  ASSERT_NE(at_b, nullptr);
  MCOS_ASSERT_OK(at_b->CreateContainer("kept", "wide"));
  constexpr int kObjects = 60;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_b, "kept", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  // The rebalance calls take the admin role: a user's token is refused, no token is nobody.
  auto carol = As(*b_);
  ASSERT_NE(carol, nullptr);
  MCOS_EXPECT_CODE(carol->GetRebalanceStatus(), kPermissionDenied);
  MCOS_EXPECT_CODE(carol->PauseRebalance(true), kPermissionDenied);
  MCOS_EXPECT_CODE(carol->PauseRebalance(false), kPermissionDenied);
  MCOS_EXPECT_CODE(carol->SetRebalanceRate(10), kPermissionDenied);
  Client anonymous(b_->endpoint(), client_options_);
  MCOS_EXPECT_CODE(anonymous.GetRebalanceStatus(), kUnauthenticated);
  MCOS_EXPECT_CODE(anonymous.PauseRebalance(true), kUnauthenticated);
  // What alpha stores: its replicas of "kept" and the three probes Federate() wrote (5 bytes each,
  // on all three clusters).
  uint64_t on_alpha = 3;
  uint64_t bytes_on_alpha = 3 * 5;
  for (int i = 0; i < kObjects; ++i) {
    auto info = at_b->StatObject("kept", absl::StrCat("o", i));
    MCOS_ASSERT_OK(info);
    if (Replicas(*info).count("alpha") != 0) {
      ++on_alpha;
      bytes_on_alpha += absl::StrCat("content ", i).size();
    }
  }
  auto refused = admin->RemoveCluster("alpha");
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_NE(refused.message().find("still holds"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find(
                absl::StrCat("it stores ", on_alpha, " object(s), ", bytes_on_alpha, " bytes")),
            std::string::npos)
      << refused;
  EXPECT_NE(refused.message().find("ring wide"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("--drain"), std::string::npos) << refused;

  auto cli = [&](const std::string& args) { return Cli(*b_, args); };
  const absl::Time start = absl::Now();
  auto drained = cli("admin cluster remove alpha --drain");
  ASSERT_EQ(drained.first, 0) << drained.second;
  EXPECT_NE(drained.second.find("ring wide: weight of alpha set to 0"), std::string::npos)
      << drained.second;
  EXPECT_NE(drained.second.find("drained alpha in"), std::string::npos) << drained.second;
  EXPECT_NE(drained.second.find("removed cluster alpha"), std::string::npos) << drained.second;
  std::cout << "drained alpha (" << kObjects << " objects) in "
            << absl::ToDoubleSeconds(absl::Now() - start) << " s\n";
  for (auto* c : {b_, c_}) {
    auto user = As(*c);
    ASSERT_NE(user, nullptr);
    for (int i = 0; i < kObjects; ++i) {
      auto info = user->StatObject("kept", absl::StrCat("o", i));
      MCOS_ASSERT_OK(info);
      EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"})) << i;
      EXPECT_EQ(Get(*user, "kept", absl::StrCat("o", i)).value_or("?"),
                absl::StrCat("content ", i));
    }
  }
  const std::set<std::string> rest = {"beta", "gamma"};
  EXPECT_LT(WaitFor([&] { return Listed(*admin).first == rest; }), absl::Seconds(10));
}

// A cluster started alone, with users, containers and objects of its own, joins a federation of
// three under load: a join that cannot merge is refused first and changes nothing on either side;
// then its users log in anywhere, its objects are read anywhere (while they move too), and end
// on the federation ring's clusters, the joiner releasing its copies.
TEST_F(RebalanceE2eTest, AClusterWithDataJoinsAndItsDataMoves) {
  // The load runs at every cluster throughout: copies that gave way to it would make the move
  // several times longer (the other tests keep the default share).
  cluster_args_.insert(cluster_args_.end(), {"--anti-entropy-foreground-share", "1"});
  Federate();
  auto admin = Admin(*a_);

  // Epsilon cannot join: its carol is another person, and its admin's container "shared" has
  // another option than the federation admin's.
  ClusterProcess* e = Start("epsilon");
  auto e_admin = Admin(*e);
  MCOS_ASSERT_OK(e_admin->AddUser("carol", "another-carol", false));
  MCOS_ASSERT_OK(e_admin->CreateContainer("shared"));
  MCOS_ASSERT_OK(admin->CreateContainer("shared", "relaxed"));
  auto refused = admin->AddCluster(e->endpoint());
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("user 'carol' is another user there"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find(
                "container 'admin/shared' uses option 'default' there and 'relaxed' here"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("Nothing was recorded"), std::string::npos);
  absl::SleepFor(absl::Seconds(1));  // anything recorded would have spread by now
  EXPECT_EQ(Listed(*Admin(*b_)).first, testing::kAllThree);
  EXPECT_EQ(Listed(*e_admin).first, (std::set<std::string>{"epsilon"}));
  Client e_carol(e->endpoint(), client_options_);
  MCOS_EXPECT_OK(e_carol.Login("carol", "another-carol"));
  EXPECT_FALSE(e_carol.Login("carol", "carol-pw").ok());
  auto moving = admin->GetRebalanceStatus();
  MCOS_ASSERT_OK(moving);
  EXPECT_EQ(moving->tasks_size(), 0);
  e->Kill();

  // Delta, alone: dave's 1,000 objects in two containers of its default option.
  ClusterProcess* d = Start("delta");
  auto d_admin = Admin(*d);
  MCOS_ASSERT_OK(d_admin->AddUser("dave", "dave-pw", false));
  Client dave(d->endpoint(), client_options_);
  MCOS_ASSERT_OK(dave.Login("dave", "dave-pw"));
  MCOS_ASSERT_OK(dave.CreateContainer("photos"));
  MCOS_ASSERT_OK(dave.CreateContainer("notes"));
  constexpr int kObjects = 1000;
  auto where = [](int i) { return i % 4 == 0 ? "notes" : "photos"; };
  auto content = [](int i) { return absl::StrCat("dave's object ", i, std::string(i % 500, '.')); };
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(dave, where(i), absl::StrCat("o", i), content(i)));
  }
  auto own_delta = Own(*d, "delta");
  EXPECT_EQ(RecordsAt(*own_delta, "default"), kObjects);

  // The join, under a load at the federation's three clusters.
  auto at_a = As(*a_);
  ASSERT_NE(at_a, nullptr);
  MCOS_ASSERT_OK(at_a->CreateContainer("busy"));
  MixedLoad load(*this, "busy", {a_, b_, c_}, {"alpha", "beta", "gamma"});
  constexpr int kStill = 50;
  for (int k = 0; k < kStill; ++k) {
    MCOS_ASSERT_OK(Put(load.writer(k % 3), "busy", absl::StrCat("still/", k), "still"));
  }
  load.Seed(kStill);
  load.Start();
  absl::SleepFor(absl::Seconds(1));
  const int writes_before = load.writes();
  const absl::Time joined = absl::Now();
  auto added = admin->AddCluster(d->endpoint());
  MCOS_ASSERT_OK(added);
  EXPECT_EQ(added->id(), "delta");

  // Dave logs in anywhere; his objects are read anywhere while they move.
  std::vector<std::unique_ptr<Client>> daves;
  for (auto* c : {a_, b_, c_, d}) {
    daves.push_back(std::make_unique<Client>(c->endpoint(), client_options_));
    Client& at = *daves.back();
    EXPECT_LT(WaitFor([&] { return at.Login("dave", "dave-pw").ok(); }, absl::Seconds(15)),
              absl::Seconds(15));
  }
  int dave_reads = 0;
  std::vector<std::string> dave_failures;
  mcos::v1::RebalanceStatus last;
  const absl::Duration took = WaitFor(
      [&] {
        for (int n = 0; n < 8; ++n, ++dave_reads) {
          const int i = (dave_reads * 37) % kObjects;
          auto got = Get(*daves[dave_reads % 4], where(i), absl::StrCat("o", i));
          if (got.value_or("?") != content(i)) {
            dave_failures.push_back(
                absl::StrCat("o", i, " at cluster ", dave_reads % 4, ": ",
                             got.ok() ? "wrong content" : got.status().ToString()));
          }
        }
        auto status = admin->GetRebalanceStatus();
        if (!status.ok()) return false;
        if (!status->tasks().empty()) last = *status;
        return status->tasks().empty() && !last.tasks().empty();
      },
      absl::Seconds(120));
  const absl::Time moved = absl::Now();
  ASSERT_LT(took, absl::Seconds(120)) << "the move never finished: " << last.DebugString();
  load.Stop();
  load.ExpectSound(writes_before);
  EXPECT_TRUE(dave_failures.empty())
      << dave_failures.size() << " of " << dave_reads
      << " reads of dave's objects failed, the first: " << dave_failures.front();
  ASSERT_EQ(last.tasks_size(), 1) << last.DebugString();
  EXPECT_EQ(last.tasks(0).option(), "default");
  EXPECT_EQ(last.tasks(0).from_ring(), "default");
  EXPECT_EQ(last.tasks(0).to_ring(), "fed");
  load.ExpectFinal();

  // Every object of dave's is on the federation ring's three clusters, read anywhere; delta
  // released its copies (of carol's writes during the move too).
  for (int i = 0; i < kObjects; ++i) {
    auto info = daves[i % 3]->StatObject(where(i), absl::StrCat("o", i));
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), testing::kAllThree) << i;
    if (i % 10 == 0) {
      EXPECT_EQ(Get(*daves[3 - i % 3], where(i), absl::StrCat("o", i)).value_or("?"), content(i));
    }
  }
  EXPECT_LT(WaitFor([&] { return RecordsAt(*own_delta, "default") == 0; }, absl::Seconds(30)),
            absl::Seconds(30))
      << RecordsAt(*own_delta, "default") << " records of the default option left at delta";
  auto listed = daves[1]->ListObjects(Listing("photos"));
  MCOS_ASSERT_OK(listed);
  EXPECT_EQ(listed->objects_size(), kObjects * 3 / 4);
  EXPECT_EQ(Listed(*admin).first, (std::set<std::string>{"alpha", "beta", "delta", "gamma"}));
  std::cout << "delta joined with " << kObjects << " objects; the former layout retired after "
            << absl::ToDoubleSeconds(moved - joined) << " s, " << load.Summary(writes_before)
            << " at the federation meanwhile (write p99 "
            << absl::FormatDuration(load.WriteP99(joined - absl::Seconds(1), joined)) << " before, "
            << absl::FormatDuration(load.WriteP99(joined, moved)) << " during), " << dave_reads
            << " reads of dave's objects\n";
}

// A cluster gone for good (killed, never to return) is dropped with `cluster remove --force`:
// every ring leaves it at once, writes work again, and what it held is copied from the
// surviving replicas to its successors, so that every object ends with its replicas again.
TEST_F(RebalanceE2eTest, AClusterGoneForGoodIsDroppedAndItsCopiesAreMadeAgain) {
  Federate();
  auto admin = Admin(*b_);
  MCOS_ASSERT_OK(admin->CreateRing(RingOf("wide", 2, {"alpha", "beta", "gamma"})));
  mcos::v1::Option wide;
  wide.set_name("wide");
  wide.set_ring("wide");
  wide.set_write_concern(2);
  MCOS_ASSERT_OK(admin->AddOption(wide));
  auto at_b = As(*b_);
  ASSERT_NE(at_b, nullptr);
  MCOS_ASSERT_OK(at_b->CreateContainer("kept", "wide"));
  constexpr int kObjects = 80;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_b, "kept", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  MCOS_ASSERT_OK(at_b->CreateContainer("queued"));  // the default option: 3 replicas, W = 2
  a_->Kill();
  // Writes of the default option go on without alpha, queued for it.
  for (int i = 0; i < 5; ++i) {
    MCOS_ASSERT_OK(Put(*at_b, "queued", absl::StrCat("q", i), "queued for alpha"));
  }
  auto backlog_for_alpha = [&] {
    auto repair = admin->GetRepairStatus();
    uint64_t n = 0;
    if (!repair.ok()) return uint64_t{999};
    for (const auto& l : repair->links()) {
      if (l.to_cluster() == "alpha") n += l.backlog();
    }
    return n;
  };
  EXPECT_LT(WaitFor([&] { return backlog_for_alpha() == 5; }), absl::Seconds(10))
      << backlog_for_alpha();
  // Without alpha, the writes of partitions it held cannot make W = 2.
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    if (!Put(*at_b, "kept", absl::StrCat("o", i), "while alpha is down").ok()) ++refused;
  }
  EXPECT_GT(refused, 0);

  auto dropped = Cli(*b_, "admin cluster remove alpha --force --yes");
  ASSERT_EQ(dropped.first, 0) << dropped.second;
  EXPECT_NE(dropped.second.find("ring wide: version 2 without alpha"), std::string::npos)
      << dropped.second;
  EXPECT_NE(dropped.second.find("wide copied again from the surviving replicas"), std::string::npos)
      << dropped.second;
  EXPECT_NE(dropped.second.find("ring fed: version 2 without alpha, 3 -> 2 replicas"),
            std::string::npos)
      << dropped.second;
  EXPECT_NE(dropped.second.find("dropped cluster alpha"), std::string::npos) << dropped.second;
  auto again = admin->RemoveCluster("alpha");
  MCOS_EXPECT_CODE(again, kNotFound);

  // Writes work again at once (the resolvers follow within a moment), every object is read,
  // and once the move retires each is held by beta and gamma, gamma's own copy included.
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  EXPECT_LT(WaitFor([&] { return Put(*at_b, "kept", "after", "after the drop").ok(); }),
            absl::Seconds(10));
  for (int i = 0; i < kObjects; ++i) {
    auto got = Get(*at_c, "kept", absl::StrCat("o", i));
    MCOS_ASSERT_OK(got);
    EXPECT_TRUE(*got == absl::StrCat("content ", i) || *got == "while alpha is down") << *got;
  }
  EXPECT_LT(WaitFor(
                [&] {
                  auto status = admin->GetRebalanceStatus();
                  return status.ok() && status->tasks().empty();
                },
                absl::Seconds(60)),
            absl::Seconds(60));
  auto own_gamma = Own(*c_, "gamma");
  auto own_beta = Own(*b_, "beta");
  EXPECT_EQ(RecordsAt(*own_gamma, "wide"), kObjects + 1);
  EXPECT_EQ(RecordsAt(*own_beta, "wide"), kObjects + 1);
  for (int i = 0; i < kObjects; i += 5) {
    auto info = at_c->StatObject("kept", absl::StrCat("o", i));
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"beta", "gamma"})) << i;
  }
  EXPECT_EQ(Listed(*admin).first, (std::set<std::string>{"beta", "gamma"}));
  // What was queued for alpha is dropped: there is nobody to send it to.
  EXPECT_LT(WaitFor([&] { return backlog_for_alpha() == 0; }, absl::Seconds(15)),
            absl::Seconds(15));
}

// `option set-ring` moves an option's data like a ring change, here while three writers at three
// clusters race on one name and gamma's clock runs 3 s behind: afterwards every cluster reads the
// same newest version of it and every object is on the new ring's clusters only. (Racing writers
// still get a few answers "in doubt" that should be acknowledgements: issue 21's notes.)
TEST_F(RebalanceE2eTest, AnOptionPointedAtAnotherRingMovesItsDataUnderRacingWriters) {
  clock_offsets_["gamma"] = "-3";
  Federate();
  auto admin = Admin(*a_);
  auto at_a = PairContainer("moving");
  ASSERT_NE(at_a, nullptr);
  MCOS_ASSERT_OK(admin->CreateRing(RingOf("other", 2, {"beta", "gamma"})));
  constexpr int kObjects = 100;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "moving", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  std::vector<std::unique_ptr<Client>> writers;
  for (auto* c : {a_, b_, c_}) {
    writers.push_back(As(*c));
    ASSERT_NE(writers.back(), nullptr);
    Client& w = *writers.back();
    ASSERT_LT(WaitFor([&] { return w.ListObjects(Listing("moving")).ok(); }), absl::Seconds(15));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::atomic<int> failed{0};
  std::atomic<int> in_doubt{0};
  std::string first_in_doubt;
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> racers;
  for (int w = 0; w < 3; ++w) {
    racers.emplace_back([&, w] {
      for (int n = 0; !stop; ++n) {
        auto put = Put(*writers[w], "moving", "hot", absl::StrCat("writer ", w, " #", n));
        if (put.ok()) {
          ++acked;
        } else if (absl::IsUnavailable(put.status()) &&
                   absl::StrContains(put.status().message(), "in doubt")) {
          ++in_doubt;  // stored somewhere, so it may yet be the newest: allowed by the contract
          std::lock_guard<std::mutex> lock(mu);
          if (first_in_doubt.empty()) first_in_doubt = put.status().ToString();
        } else {
          ++failed;
          std::lock_guard<std::mutex> lock(mu);
          errors.push_back(absl::StrCat("writer ", w, ": ", put.status().ToString()));
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(500));
  mcos::v1::SetOptionRingRequest set;
  set.set_option("pair");
  set.set_ring("other");
  auto moved = admin->SetOptionRing(set);
  MCOS_ASSERT_OK(moved);
  EXPECT_EQ(moved->plan().partitions_moved(), 256u);
  const absl::Duration took = WaitFor(
      [&] {
        auto status = admin->GetRebalanceStatus();
        return status.ok() && status->tasks().empty();
      },
      absl::Seconds(60));
  ASSERT_LT(took, absl::Seconds(60));
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  for (auto& t : racers) t.join();
  EXPECT_EQ(failed, 0) << absl::StrJoin(errors, "\n");
  EXPECT_GT(acked, 30);
  EXPECT_LE(in_doubt * 10, acked) << in_doubt << " answers in doubt";
  std::cout << "racing writers on one name during the move: " << acked << " acknowledged, "
            << in_doubt << " in doubt" << (in_doubt > 0 ? ", the first: " : "") << first_in_doubt
            << "\n";

  // One newest version of "hot", the same everywhere; everything on beta and gamma only. (The
  // newest may be a write answered in doubt, held by one cluster until the others get it from
  // its queue.)
  std::set<std::string> hot;
  std::set<std::string> versions;
  std::set<std::string> replicas;
  const absl::Duration converged = WaitFor(
      [&] {
        hot.clear();
        versions.clear();
        replicas.clear();
        for (auto& w : writers) {
          hot.insert(Get(*w, "moving", "hot").value_or("?"));
          auto info = w->StatObject("moving", "hot");
          if (!info.ok()) return false;
          versions.insert(info->version());
          replicas.insert(absl::StrJoin(Replicas(*info), ","));
        }
        return hot.size() == 1 && versions.size() == 1 && replicas.size() == 1 &&
               *replicas.begin() == "beta,gamma";
      },
      absl::Seconds(20));
  EXPECT_LT(converged, absl::Seconds(20))
      << absl::StrJoin(hot, " | ") << "; versions " << absl::StrJoin(versions, " | ")
      << "; replicas " << absl::StrJoin(replicas, " | ");
  for (int i = 0; i < kObjects; i += 3) {
    EXPECT_EQ(Get(*writers[i % 3], "moving", absl::StrCat("o", i)).value_or("?"),
              absl::StrCat("content ", i));
  }
  EXPECT_LT(WaitFor([&] { return RecordsAt(*Own(*a_, "alpha")) == 0; }, absl::Seconds(30)),
            absl::Seconds(30));
  EXPECT_EQ(RecordsAt(*Own(*c_, "gamma")), kObjects + 1);
}

}  // namespace
}  // namespace mcos
