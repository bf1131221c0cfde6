// The three-cluster federation the e2e tests of federations start: alpha, beta and gamma, each
// its own mcos-cluster process with one federation secret, peered, with ring "fed" (3 replicas
// over all three) as the default option's ring, the option "relaxed" (degraded, W = 2) and the
// user carol.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/service_auth.h"
#include "common/token.h"
#include "tests/support/cluster_process.h"
#include "tests/support/nats_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_for.h"

namespace mcos::testing {

using client::Client;

inline const std::set<std::string> kAllThree = {"alpha", "beta", "gamma"};

inline std::string WriteSecret(const std::string& path, const std::string& secret) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(write(fd, secret.data(), secret.size()), static_cast<ssize_t>(secret.size()));
  close(fd);
  return path;
}

class FederationFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = WriteSecret(dir_.path() + "/federation.secret",
                          "one secret shared by the whole test federation, 0123456789");
  }

  // Starts cluster `name` with the secret file `secret` (the federation's by default; kNoSecret:
  // none).
  static constexpr char kNoSecret[] = "none";
  ClusterProcess* Start(const std::string& name, const std::string& secret = "",
                        const std::vector<std::string>& extra = {}) {
    auto c =
        std::make_unique<ClusterProcess>(MCOS_CLUSTER_BIN, absl::StrCat(dir_.path(), "/", name));
    std::filesystem::create_directories(absl::StrCat(dir_.path(), "/", name));
    std::vector<std::string> args = {"--name", name, "--federation-sync-period-ms", "200"};
    args.insert(args.end(), cluster_args_.begin(), cluster_args_.end());
    if (with_nats_) {
      // Its own nats-server, linked (leafnode) to the first cluster's: a star, never a cycle.
      auto nats =
          std::make_unique<NatsProcess>(absl::StrCat(dir_.path(), "/", name), MCOS_CLUSTER_BIN);
      std::vector<std::string> remotes;
      if (!nats_order_.empty()) remotes.push_back(nats_[nats_order_.front()]->leaf_address());
      const absl::Status configured =
          nats->Configure(absl::StrCat(dir_.path(), "/", name, "/cluster"), name,
                          secret == kNoSecret ? "" : (secret.empty() ? secret_ : secret), remotes);
      EXPECT_TRUE(configured.ok()) << configured;
      const absl::Status started = nats->Start();
      EXPECT_TRUE(started.ok()) << started;
      own_args_[name] = {"--nats", nats->url()};
      nats_order_.push_back(name);
      nats_[name] = std::move(nats);
    }
    args.insert(args.end(), own_args_[name].begin(), own_args_[name].end());
    if (secret != kNoSecret) {
      args.insert(args.end(), {"--federation-secret-file", secret.empty() ? secret_ : secret});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    c->set_client_options(client_options_);
    const absl::Status s = WithClock(name, [&] { return c->Start(args); });
    EXPECT_TRUE(s.ok()) << name << ": " << s;
    clusters_.push_back(std::move(c));
    return clusters_.back().get();
  }

  // Starts `c` again after a kill, as the cluster `name`: on a new port, or with `same_port` on
  // the one it had (so that peers that were down meanwhile still know where it is).
  absl::Status Restart(ClusterProcess& c, const std::string& name, bool same_port = false) {
    const std::string endpoint = c.endpoint();
    return WithClock(name, [&] {
      std::vector<std::string> args = {
          "--name", name, "--federation-secret-file", secret_, "--federation-sync-period-ms",
          "200"};
      if (same_port) args.insert(args.end(), {"--listen", endpoint});
      args.insert(args.end(), cluster_args_.begin(), cluster_args_.end());
      args.insert(args.end(), own_args_[name].begin(), own_args_[name].end());
      return c.Start(args);
    });
  }

  // libfaketime, which runs a cluster with its clock off (Debian's faketime package).
  static constexpr char kFakeTime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
  // Runs `start` with the cluster `name`'s clock `clock_offsets_[name]` seconds off (e.g. "-2"),
  // through libfaketime, when one is set.
  absl::Status WithClock(const std::string& name, const std::function<absl::Status()>& start) {
    auto it = clock_offsets_.find(name);
    if (it == clock_offsets_.end()) return start();
    setenv("LD_PRELOAD", kFakeTime, 1);
    setenv("FAKETIME", it->second.c_str(), 1);
    setenv("DONT_FAKE_MONOTONIC", "1", 1);
    const absl::Status s = start();
    unsetenv("LD_PRELOAD");
    unsetenv("FAKETIME");
    unsetenv("DONT_FAKE_MONOTONIC");
    return s;
  }

  // A ring of `replicas` over `members` (weight 1 each), partition power 8.
  static mcos::v1::Ring RingOf(const std::string& id, uint32_t replicas,
                               std::initializer_list<const char*> members) {
    mcos::v1::Ring ring;
    ring.set_id(id);
    ring.set_replicas(replicas);
    ring.set_partition_power(8);
    for (const char* name : members) {
      auto* m = ring.add_members();
      m->set_cluster(name);
      m->set_weight(1);
    }
    return ring;
  }

  std::unique_ptr<Client> Admin(const ClusterProcess& c) {
    auto client = std::make_unique<Client>(c.endpoint(), client_options_);
    EXPECT_TRUE(client->Login("admin", kAdminPassword).ok());
    return client;
  }

  // The cluster names `at` lists, and whether all of them are up.
  static std::pair<std::set<std::string>, bool> Listed(Client& at) {
    auto r = at.ListClusters();
    if (!r.ok()) return {{}, false};
    std::set<std::string> names;
    bool up = true;
    for (const auto& c : r->clusters()) {
      names.insert(c.id());
      up = up && c.state() == mcos::v1::SERVICE_STATE_UP;
    }
    return {names, up};
  }

  // Starts alpha, beta and gamma, peers them, makes ring "fed" (3 replicas over all three) the
  // default option's ring, adds the option "relaxed" (degraded, W = 2) and the user carol, and
  // waits until a put at each cluster names all three as replicas.
  void Federate() {
    a_ = Start("alpha");
    b_ = Start("beta");
    c_ = Start("gamma");
    auto admin = Admin(*a_);
    ASSERT_TRUE(admin->AddCluster(b_->endpoint()).ok());
    ASSERT_TRUE(admin->AddCluster(c_->endpoint()).ok());
    MCOS_ASSERT_OK(admin->CreateRing(RingOf("fed", 3, {"alpha", "beta", "gamma"})));
    mcos::v1::SetOptionRingRequest set;
    set.set_option("default");
    set.set_ring("fed");
    // The peers' bootstrap rows may still be arriving (ABORTED: changed meanwhile): again then.
    WaitFor([&] { return admin->SetOptionRing(set).ok(); });
    MCOS_ASSERT_OK(admin->SetOptionRing(set));
    mcos::v1::Option relaxed;
    relaxed.set_name("relaxed");
    relaxed.set_ring("fed");
    relaxed.set_write_concern(2);
    relaxed.set_mode(mcos::v1::OPTION_MODE_DEGRADED);
    MCOS_ASSERT_OK(admin->AddOption(relaxed));
    MCOS_ASSERT_OK(admin->AddUser("carol", "carol-pw", false));
    for (auto* c : {a_, b_, c_}) {
      auto user = As(*c);
      ASSERT_NE(user, nullptr);
      const std::string box = absl::StrCat("ready-", c->endpoint().substr(10));
      absl::Duration took = WaitFor(
          [&] {
            if (!user->CreateContainer(box).ok() && !user->ListObjects(Listing(box)).ok()) {
              return false;
            }
            std::istringstream in("probe");
            if (!user->PutObject(box, "probe", in).ok()) return false;
            auto stat = user->StatObject(box, "probe");
            return stat.ok() && stat->replicas_size() == 3;
          },
          absl::Seconds(30));
      ASSERT_LT(took, absl::Seconds(30)) << "puts at " << c->endpoint() << " never reached 3";
    }
  }

  static absl::StatusOr<mcos::v1::ObjectInfo> Put(Client& at, const std::string& container,
                                                  const std::string& object,
                                                  const std::string& data) {
    std::istringstream in(data);
    return at.PutObject(container, object, in);
  }
  // Carol's client at alpha, once `container` is made there and beta and gamma know it too (null
  // after a failure, which it reports).
  std::unique_ptr<Client> ContainerEverywhere(const std::string& container) {
    auto at_a = As(*a_);
    if (at_a == nullptr || !at_a->CreateContainer(container).ok()) {
      ADD_FAILURE() << "cannot make container " << container << " at alpha";
      return nullptr;
    }
    for (auto* c : {b_, c_}) {
      auto at = As(*c);
      if (at == nullptr ||
          WaitFor([&] { return at->ListObjects(Listing(container)).ok(); }) >= absl::Seconds(15)) {
        ADD_FAILURE() << c->endpoint() << " never learnt of container " << container;
        return nullptr;
      }
    }
    return at_a;
  }
  // Carol's client at `c`, logged in (waits for her user to arrive there).
  std::unique_ptr<Client> As(const ClusterProcess& c) {
    auto client = std::make_unique<Client>(c.endpoint(), client_options_);
    WaitFor([&] { return client->Login("carol", "carol-pw").ok(); });
    if (!client->Login("carol", "carol-pw").ok()) return nullptr;
    return client;
  }

  static mcos::v1::ListObjectsRequest Listing(const std::string& container) {
    mcos::v1::ListObjectsRequest req;
    req.set_container(container);
    return req;
  }

  static absl::StatusOr<std::string> Get(Client& c, const std::string& container,
                                         const std::string& object) {
    std::ostringstream out;
    auto info = c.DownloadObject(container, object, out);
    if (!info.ok()) return info.status();
    return out.str();
  }

  static std::set<std::string> Replicas(const mcos::v1::ObjectInfo& info) {
    return {info.replicas().begin(), info.replicas().end()};
  }

  // The federation's peer credential, the caller introducing itself as cluster `name`: what a peer
  // cluster's calls carry. Null (and a test failure) if the keys cannot be derived.
  std::unique_ptr<common::ServiceAuth> PeerAuth(const std::string& name) const {
    auto keys = common::LoadClusterKeys(std::string(64, 'k'), secret_);
    EXPECT_TRUE(keys.ok()) << keys.status();
    if (!keys.ok()) return nullptr;
    return std::make_unique<common::ServiceAuth>(keys->peer, name, keys->user_tokens,
                                                 common::CredentialScope::kFederation);
  }

  ClusterProcess* a_ = nullptr;
  ClusterProcess* b_ = nullptr;
  ClusterProcess* c_ = nullptr;
  TempDir dir_;
  std::string secret_;
  client::ClientOptions client_options_;
  std::vector<std::unique_ptr<ClusterProcess>> clusters_;
  // Flags every cluster this fixture starts gets (set before Federate).
  std::vector<std::string> cluster_args_;
  // Start each cluster with a nats-server of its own (NatsProcess), the first one the hub of
  // their leafnode links; nats_ by cluster name.
  bool with_nats_ = false;
  std::map<std::string, std::unique_ptr<NatsProcess>> nats_;
  std::vector<std::string> nats_order_;
  // Flags of one cluster (e.g. its --nats), for its starts and restarts.
  std::map<std::string, std::vector<std::string>> own_args_;
  // Clusters whose clock is off, by name: libfaketime's FAKETIME (e.g. "-2": 2 s behind).
  std::map<std::string, std::string> clock_offsets_;
};

}  // namespace mcos::testing
