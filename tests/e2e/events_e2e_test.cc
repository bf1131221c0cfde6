// Events, against real processes: three mcos-cluster processes, each with its own nats-server
// (leafnode links to alpha's), watched through UserService.WatchObjects; nats-servers killed
// under load.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/subprocess.h"
#include "common/token.h"
#include "events/nats_config.h"
#include "events/nats_event_bus.h"
#include "mcos/v1/events.pb.h"
#include "tests/support/federation_fixture.h"
#include "tests/support/nats_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos {
namespace {

using client::Client;
using testing::WaitFor;

// A watch running on a thread of its own, recording what it sees. The thread owns its state with
// the Watcher (shared), so it may outlive the Watcher: it ends at the next change, or when the
// cluster stops at the end of the test.
class Watcher {
 public:
  Watcher(std::unique_ptr<Client> client, std::string container, std::string prefix = "")
      : state_(std::make_shared<State>()) {
    state_->client = std::move(client);
    std::thread([state = state_, container, prefix] {
      absl::Status s = state->client->WatchObjects(
          container, prefix,
          [state](const mcos::v1::ObjectChange& change) {
            std::lock_guard<std::mutex> lock(state->mu);
            state->changes.push_back(change);
            return !state->stop;
          },
          [state] { state->ready = true; });
      std::lock_guard<std::mutex> lock(state->mu);
      state->status = s;
      state->ready = true;
      state->done = true;
    }).detach();
    WaitFor([&] { return state_->ready.load(); });
  }
  ~Watcher() { state_->stop = true; }
  std::vector<mcos::v1::ObjectChange> changes() {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->changes;
  }
  // Changes seen per object, in order: "put <version>" / "delete <version>".
  std::map<std::string, std::vector<std::string>> ByObject() {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& c : changes()) {
      out[c.object().object()].push_back(
          absl::StrCat(c.kind() == mcos::v1::ObjectChange::KIND_DELETE ? "delete " : "put ",
                       c.object().version()));
    }
    return out;
  }
  bool done() {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->done;
  }
  absl::Status status() {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->status;
  }

 private:
  struct State {
    std::unique_ptr<Client> client;
    std::mutex mu;
    std::vector<mcos::v1::ObjectChange> changes;
    std::atomic<bool> stop{false};
    std::atomic<bool> ready{false};
    bool done = false;
    absl::Status status;
  };
  std::shared_ptr<State> state_;
};

// Per object, the changes a watch should see in order: "put <version>" / "delete <version>".
using Changes = std::map<std::string, std::vector<std::string>>;

class EventsE2eTest : public testing::FederationFixture {
 protected:
  void SetUp() override {
    FederationFixture::SetUp();
    with_nats_ = true;
  }

  // At cluster `c`: objects PREFIX0 .. PREFIX<n-1> of `container` put twice each, the even ones
  // then deleted; each acknowledged change appended to `expected`.
  void Write(testing::ClusterProcess& c, const std::string& container, const std::string& prefix,
             int n, Changes& expected) {
    auto at = As(c);
    ASSERT_NE(at, nullptr);
    for (int i = 0; i < n; ++i) {
      const std::string o = absl::StrCat(prefix, i);
      for (int v = 0; v < 2; ++v) {
        auto put = Put(*at, container, o, absl::StrCat(o, " v", v));
        MCOS_ASSERT_OK(put);
        expected[o].push_back(absl::StrCat("put ", put->version()));
      }
      if (i % 2 == 0) {
        auto deleted = at->DeleteObject(container, o);
        MCOS_ASSERT_OK(deleted);
        expected[o].push_back(absl::StrCat("delete ", *deleted));
      }
    }
  }
};

// Issue "Self-healing", events: a watch at alpha sees every change of the container made at any
// cluster after it subscribed, in order per object; another user's watch sees none of them.
TEST_F(EventsE2eTest, AWatchSeesEveryChangeAtEveryClusterInOrderPerObject) {
  Federate();
  auto at_a = ContainerEverywhere("ev");
  ASSERT_NE(at_a, nullptr);
  auto watcher = std::make_unique<Watcher>(As(*a_), "ev");
  ASSERT_FALSE(watcher->done()) << watcher->status();
  // Expected changes per object: (kind, version) as the writes answered.
  Changes expected;
  int clusters = 0;
  for (auto* c : {a_, b_, c_}) {
    ASSERT_NO_FATAL_FAILURE(Write(*c, "ev", absl::StrCat("c", ++clusters, "-"), 5, expected));
  }
  EXPECT_LT(WaitFor([&] { return watcher->ByObject() == expected; }, absl::Seconds(20)),
            absl::Seconds(20));
  const auto seen = watcher->ByObject();
  for (const auto& [object, changes] : expected) {
    auto it = seen.find(object);
    EXPECT_TRUE(it != seen.end() && it->second == changes) << object;
  }
  // Carol's prefix watch sees only its prefix; a watch of a container that is not the caller's
  // is NOT_FOUND (containers belong to their owner).
  auto admin = Admin(*a_);
  MCOS_ASSERT_OK(admin->AddUser("dave", "dave-pw", false));
  Client dave(a_->endpoint(), client_options_);
  WaitFor([&] { return dave.Login("dave", "dave-pw").ok(); });
  MCOS_EXPECT_CODE(dave.WatchObjects("ev", "", [](const auto&) { return false; }), kNotFound);
}

// Each cluster's nats-server killed under a load of writes: no user call fails; the events of the
// writes made while it was down reach the watcher once it is back, in order.

TEST_F(EventsE2eTest, ANatsServerKilledUnderLoadFailsNoCallAndEventsResume) {
  Federate();
  auto at_a = ContainerEverywhere("load");
  ASSERT_NE(at_a, nullptr);
  auto watcher = std::make_unique<Watcher>(As(*a_), "load");
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, done{0};
  std::map<std::string, std::string> last_version;
  std::mutex mu;
  std::vector<std::thread> writers;
  for (auto* c : {a_, b_}) {
    writers.emplace_back([&, c] {
      auto at = As(*c);
      for (int i = 0; !stop; ++i) {
        const std::string o = absl::StrCat(c == a_ ? "a-" : "b-", i % 20);
        auto put = Put(*at, "load", o, absl::StrCat("v", i));
        if (!put.ok()) {
          ++failed;
          ADD_FAILURE() << put.status();
          continue;
        }
        ++done;
        std::lock_guard<std::mutex> lock(mu);
        last_version[o] = put->version();
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(500));
  nats_["alpha"]->Kill();
  absl::SleepFor(absl::Seconds(1));
  nats_["beta"]->Kill();
  absl::SleepFor(absl::Seconds(1));
  nats_["gamma"]->Kill();  // (it takes the replicas of the load)
  absl::SleepFor(absl::Seconds(1));
  MCOS_ASSERT_OK(nats_["alpha"]->Start());
  MCOS_ASSERT_OK(nats_["beta"]->Start());
  MCOS_ASSERT_OK(nats_["gamma"]->Start());
  absl::SleepFor(absl::Seconds(1));
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(done.load(), 50);
  // Every object written at alpha or beta: the watcher's last change of it is its last
  // acknowledged version (events queued while a cluster's nats-server was down arrive once it is
  // back; beta's events, stored in beta's stream while alpha's nats-server was down, are read
  // from there).
  EXPECT_LT(WaitFor(
                [&] {
                  const auto seen = watcher->ByObject();
                  std::lock_guard<std::mutex> lock(mu);
                  for (const auto& [o, v] : last_version) {
                    auto it = seen.find(o);
                    if (it == seen.end() || it->second.back() != absl::StrCat("put ", v)) {
                      return false;
                    }
                  }
                  return true;
                },
                absl::Seconds(20)),
            absl::Seconds(20));
  // In order per object: versions only go up.
  for (const auto& [o, changes] : watcher->ByObject()) {
    for (size_t i = 1; i < changes.size(); ++i) {
      EXPECT_LT(changes[i - 1], changes[i]) << o;
    }
  }
  // After the restarts, changes made anywhere reach the watcher again.
  auto at_b = As(*b_);
  auto after = Put(*at_b, "load", "after-restart", "x");
  MCOS_ASSERT_OK(after);
  EXPECT_LT(
      WaitFor([&] { return watcher->ByObject().count("after-restart") == 1; }, absl::Seconds(40)),
      absl::Seconds(40));
}

// The leafnode links form a star around alpha's nats-server: with it down, nothing crosses between
// beta's and gamma's. A watch at beta still sees every change made meanwhile at any cluster,
// each version once and in order: it reads each cluster's own stream, which kept them.
TEST_F(EventsE2eTest, AWatchMissesNothingWhileTheHubOfTheNatsLinksIsDown) {
  Federate();
  auto at_a = ContainerEverywhere("hub");
  ASSERT_NE(at_a, nullptr);
  auto watcher = std::make_unique<Watcher>(As(*b_), "hub");
  ASSERT_FALSE(watcher->done()) << watcher->status();
  Changes expected;
  auto write = [&](testing::ClusterProcess& c, const std::string& prefix) {
    ASSERT_NO_FATAL_FAILURE(Write(c, "hub", prefix, 4, expected));
  };
  write(*c_, "before-");
  ASSERT_LT(WaitFor([&] { return watcher->ByObject() == expected; }, absl::Seconds(20)),
            absl::Seconds(20));
  nats_["alpha"]->Kill();
  write(*a_, "alpha-");
  write(*b_, "beta-");
  write(*c_, "gamma-");
  absl::SleepFor(absl::Seconds(2));
  MCOS_ASSERT_OK(nats_["alpha"]->Start());
  write(*c_, "after-");
  const absl::Duration took =
      WaitFor([&] { return watcher->ByObject() == expected; }, absl::Seconds(60));
  EXPECT_LT(took, absl::Seconds(60));
  std::cout << "the watch at beta had every change " << absl::FormatDuration(took)
            << " after the hub's nats-server was back\n";
  const auto seen = watcher->ByObject();
  for (const auto& [object, changes] : expected) {
    auto it = seen.find(object);
    EXPECT_TRUE(it != seen.end() && it->second == changes) << object;
  }
  EXPECT_EQ(seen.size(), expected.size());
}

// Service events: alpha's controller publishes gamma going down and coming back, on its NATS.
TEST_F(EventsE2eTest, APeerClusterGoingDownAndUpIsAnEvent) {
  Federate();
  auto key = common::LoadOrCreateKeyFile(absl::StrCat(dir_.path(), "/alpha/cluster/token.key"));
  MCOS_ASSERT_OK(key);
  events::NatsOptions options;
  options.url = nats_["alpha"]->url();
  const auto login = events::ClientCredentials(*key);
  options.user = login.user;
  options.password = login.password;
  auto bus = events::NatsEventBus::Start(options);
  MCOS_ASSERT_OK(bus);
  std::mutex mu;
  std::vector<mcos::v1::ServiceEvent> seen;
  auto sub = (*bus)->Subscribe({"MCOS_SERVICES", "alpha", events::ServiceSubject("alpha")},
                               [&](const std::string&, const std::string& payload) {
                                 mcos::v1::ServiceEvent e;
                                 if (!e.ParseFromString(payload)) return;
                                 std::lock_guard<std::mutex> lock(mu);
                                 seen.push_back(e);
                               });
  MCOS_ASSERT_OK(sub);
  auto has = [&](mcos::v1::ServiceState state) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& e : seen) {
      if (e.cluster() == "gamma" && e.service_id().empty() && e.state() == state) return true;
    }
    return false;
  };
  c_->Kill();
  EXPECT_LT(WaitFor([&] { return has(mcos::v1::SERVICE_STATE_DOWN); }, absl::Seconds(5)),
            absl::Seconds(2));
  MCOS_ASSERT_OK(Restart(*c_, "gamma"));
  EXPECT_LT(WaitFor([&] { return has(mcos::v1::SERVICE_STATE_UP); }, absl::Seconds(10)),
            absl::Seconds(10));
}

// The SDK's WatchCancel ends a watch that sees no change, from another thread.
TEST_F(EventsE2eTest, AWatchEndsWhenCancelledFromAnotherThread) {
  Federate();
  auto at_a = ContainerEverywhere("quiet");
  ASSERT_NE(at_a, nullptr);
  client::WatchCancel cancel;
  std::atomic<bool> ready{false}, done{false};
  absl::Status status = absl::UnknownError("not ended");
  auto watcher = As(*b_);
  ASSERT_NE(watcher, nullptr);
  std::thread watch([&] {
    status = watcher->WatchObjects(
        "quiet", "", [](const mcos::v1::ObjectChange&) { return true; }, [&] { ready = true; },
        &cancel);
    done = true;
  });
  EXPECT_LT(WaitFor([&] { return ready.load(); }), absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(done.load());  // nothing changes: it watches on
  cancel.Cancel();
  EXPECT_LT(WaitFor([&] { return done.load(); }), absl::Seconds(5));
  watch.join();
  MCOS_EXPECT_OK(status);
  // A cancel given before the watch begins ends it at once.
  MCOS_EXPECT_OK(watcher->WatchObjects(
      "quiet", "", [](const mcos::v1::ObjectChange&) { return true; }, nullptr, &cancel));
}

TEST_F(EventsE2eTest, WithoutAnEventBusAWatchIsRefusedWithTheFix) {
  with_nats_ = false;
  auto* solo = Start("solo", kNoSecret);
  MCOS_ASSERT_OK(solo->AddUser("carol", "carol-pw"));
  auto carol = As(*solo);
  MCOS_ASSERT_OK(carol->CreateContainer("box"));
  auto s = carol->WatchObjects("box", "", [](const auto&) { return false; });
  MCOS_EXPECT_CODE(s, kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "--nats")) << s;
}

// The publisher sends its outbox to JetStream in batches: a backlog (what waits while the server
// is away) is stored in order and once, even when a batch is sent again because the server froze
// (SIGSTOP) past the publisher's wait with the batch in its socket (it then stores both copies
// unless it drops the repeats by message id), and when the server is killed with -9 and started
// again.
TEST(NatsEventBusTest, ABacklogIsStoredOnceAndInOrderAcrossAFrozenAndAKilledServer) {
  testing::TempDir dir;
  const int port = testing::FreePort();
  auto start_nats = [&] {
    return common::Subprocess::Start({"/usr/sbin/nats-server", "-js", "-a", "127.0.0.1", "-p",
                                      absl::StrCat(port), "-sd", dir.Sub("store")},
                                     dir.Sub("nats.log"));
  };
  auto nats = start_nats();
  MCOS_ASSERT_OK(nats);
  events::NatsOptions options;
  options.url = absl::StrCat("nats://127.0.0.1:", port);
  options.streams.push_back({"MCOS_TEST", {"mcos.test.>"}});
  auto bus = events::NatsEventBus::Start(options);
  MCOS_ASSERT_OK(bus);
  ASSERT_LT(WaitFor([&] { return (*bus)->connected(); }, absl::Seconds(10)), absl::Seconds(10));
  std::mutex mu;
  std::vector<std::string> seen;
  auto follow = (*bus)->Subscribe({"MCOS_TEST", "", "mcos.test.>"},
                                  [&](const std::string&, const std::string& payload) {
                                    std::lock_guard<std::mutex> lock(mu);
                                    seen.push_back(payload);
                                  });
  MCOS_ASSERT_OK(follow);
  constexpr int kEvents = 60000;
  for (int i = 0; i < kEvents; ++i) {
    (*bus)->Publish(absl::StrCat("mcos.test.o", i % 50), absl::StrCat("event ", i));
  }
  // Frozen while the backlog drains, beyond the 5 s the publisher waits for a batch.
  ASSERT_LT(WaitFor([&] { return (*bus)->published() >= 2000; }, absl::Seconds(20)),
            absl::Seconds(20));
  (*nats)->Signal(SIGSTOP);
  absl::SleepFor(absl::Seconds(7));
  (*nats)->Signal(SIGCONT);
  // Killed while it drains, and started again on the same store.
  const uint64_t thawed = (*bus)->published();
  ASSERT_LT(WaitFor([&] { return (*bus)->published() >= thawed + 2000; }, absl::Seconds(20)),
            absl::Seconds(20));
  (*nats)->Signal(SIGKILL);
  (*nats)->Wait();
  const uint64_t before = (*bus)->published();
  EXPECT_LT(before, static_cast<uint64_t>(kEvents)) << "the backlog drained before the kill";
  nats = start_nats();
  MCOS_ASSERT_OK(nats);
  EXPECT_LT(WaitFor([&] { return (*bus)->published() == kEvents; }, absl::Seconds(60)),
            absl::Seconds(60));
  EXPECT_LT(WaitFor(
                [&] {
                  std::lock_guard<std::mutex> lock(mu);
                  return seen.size() >= static_cast<size_t>(kEvents);
                },
                absl::Seconds(60)),
            absl::Seconds(60));
  absl::SleepFor(absl::Milliseconds(500));  // a repeat would arrive by now
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(seen[i], absl::StrCat("event ", i));
}

}  // namespace
}  // namespace mcos
