// Who may call: tokens are revoked when their user is removed or changes its password (on every
// server, at once), a name added again is a new identity, and password guessing can neither lock
// the right user out nor exhaust the server.
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/sdk/client.h"
#include "common/subprocess.h"
#include "tests/support/cluster_process.h"
#include "tests/support/delay_proxy.h"
#include "tests/support/split_cluster.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos {
namespace {

using client::Client;

class AccessE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, dir_.path());
    MCOS_ASSERT_OK(cluster_->Start());
    admin_ = std::make_unique<Client>(cluster_->endpoint());
    MCOS_ASSERT_OK(admin_->Login("admin", testing::kAdminPassword));
  }

  std::unique_ptr<Client> As(const std::string& user, const std::string& password) {
    auto c = std::make_unique<Client>(cluster_->endpoint());
    EXPECT_TRUE(c->Login(user, password).ok()) << user;
    return c;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ClusterProcess> cluster_;
  std::unique_ptr<Client> admin_;
};

TEST_F(AccessE2eTest, RemovedUsersAndAdminsAreRefusedAtOnce) {
  MCOS_ASSERT_OK(admin_->AddUser("alice", "alice-pw", false));
  MCOS_ASSERT_OK(admin_->AddUser("boss", "boss-pw", true));
  auto alice = As("alice", "alice-pw");
  auto boss = As("boss", "boss-pw");
  MCOS_ASSERT_OK(alice->CreateContainer("box"));
  MCOS_ASSERT_OK(boss->ListUsers());

  MCOS_ASSERT_OK(admin_->RemoveUser("alice"));
  auto refused = alice->ListContainers();
  MCOS_EXPECT_CODE(refused, kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "revoked")) << refused.status();
  MCOS_EXPECT_CODE(alice->StatObject("box", "x"), kUnauthenticated);

  // A removed admin's token can no longer add an admin or reset admin's password.
  MCOS_ASSERT_OK(admin_->RemoveUser("boss"));
  MCOS_EXPECT_CODE(boss->AddUser("evil", "evil-pw", true), kUnauthenticated);
  MCOS_EXPECT_CODE(boss->SetPassword("admin", "stolen"), kUnauthenticated);
  auto users = admin_->ListUsers();
  MCOS_ASSERT_OK(users);
  for (const auto& u : users->users()) EXPECT_NE(u.name(), "evil");
  MCOS_EXPECT_OK(As("admin", testing::kAdminPassword)->ListUsers());
}

TEST_F(AccessE2eTest, PasswordChangeRevokesEarlierTokens) {
  MCOS_ASSERT_OK(admin_->AddUser("bob", "old-pw", false));
  auto bob = As("bob", "old-pw");
  auto bob_again = As("bob", "old-pw");
  MCOS_ASSERT_OK(bob->ListContainers());
  MCOS_ASSERT_OK(admin_->SetPassword("bob", "new-pw"));
  MCOS_EXPECT_CODE(bob->ListContainers(), kUnauthenticated);
  MCOS_EXPECT_CODE(bob_again->ListContainers(), kUnauthenticated);
  MCOS_EXPECT_CODE(Client(cluster_->endpoint()).Login("bob", "old-pw"), kUnauthenticated);
  MCOS_EXPECT_OK(As("bob", "new-pw")->ListContainers());
  // An admin changing its own password revokes its own earlier tokens too.
  MCOS_ASSERT_OK(admin_->SetPassword("admin", "admin-pw-2"));
  MCOS_EXPECT_CODE(admin_->ListUsers(), kUnauthenticated);
  MCOS_EXPECT_OK(As("admin", "admin-pw-2")->ListUsers());
}

TEST_F(AccessE2eTest, NameAddedAgainIsANewIdentity) {
  MCOS_ASSERT_OK(admin_->AddUser("carol", "carol-pw", false));
  auto old_carol = As("carol", "carol-pw");
  MCOS_ASSERT_OK(old_carol->CreateContainer("photos"));
  std::istringstream in("old carol's secret");
  MCOS_ASSERT_OK(old_carol->PutObject("photos", "secret.txt", in));

  MCOS_ASSERT_OK(admin_->RemoveUser("carol"));
  MCOS_ASSERT_OK(admin_->AddUser("carol", "carol-pw", false));
  // The old identity's token does not become valid again with the new user of the same name.
  MCOS_EXPECT_CODE(old_carol->ListContainers(), kUnauthenticated);
  auto new_carol = As("carol", "carol-pw");
  auto containers = new_carol->ListContainers();
  MCOS_ASSERT_OK(containers);
  EXPECT_EQ(containers->containers_size(), 0);
  MCOS_EXPECT_CODE(new_carol->StatObject("photos", "secret.txt"), kNotFound);
  // Even a container of the same name is a new, empty one.
  MCOS_ASSERT_OK(new_carol->CreateContainer("photos"));
  mcos::v1::ListObjectsRequest list;
  list.set_container("photos");
  auto objects = new_carol->ListObjects(list);
  MCOS_ASSERT_OK(objects);
  EXPECT_EQ(objects->objects_size(), 0);
  MCOS_EXPECT_CODE(new_carol->StatObject("photos", "secret.txt"), kNotFound);
  std::istringstream in2("new carol's");
  MCOS_EXPECT_OK(new_carol->PutObject("photos", "secret.txt", in2));

  // The old identity's data was kept: the admin sees it among the removed users and gives it to
  // a new user, who then owns the old containers and objects.
  auto users = admin_->ListUsers();
  MCOS_ASSERT_OK(users);
  std::string old_identity;
  for (const auto& u : users->removed()) {
    if (u.name() == "carol") old_identity = u.identity();
  }
  ASSERT_FALSE(old_identity.empty());
  for (const auto& u : users->users()) {
    if (u.name() == "carol") {
      EXPECT_NE(u.identity(), old_identity);
    }
  }
  MCOS_ASSERT_OK(admin_->AddUser("carla", "carla-pw", false, old_identity));
  auto carla = As("carla", "carla-pw");
  auto secret = carla->StatObject("photos", "secret.txt");
  MCOS_ASSERT_OK(secret);
  EXPECT_EQ(secret->size(), std::string("old carol's secret").size());
  // Given once; the old token stays refused; an unknown identity is NOT_FOUND.
  MCOS_EXPECT_CODE(admin_->AddUser("carlo", "pw", false, old_identity), kNotFound);
  MCOS_EXPECT_CODE(admin_->AddUser("carlo", "pw", false, "_0123456789abcdef"), kNotFound);
  MCOS_EXPECT_CODE(old_carol->ListContainers(), kUnauthenticated);
}

int PortOf(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

TEST_F(AccessE2eTest, GuessingFromOneAddressDoesNotStopTheOwnerElsewhere) {
  MCOS_ASSERT_OK(admin_->AddUser("erin", "erin-pw", false));
  // The attacker and erin reach the cluster from different loopback addresses.
  testing::DelayProxy attacker_link(PortOf(cluster_->endpoint()), absl::ZeroDuration(),
                                    "127.0.0.66");
  testing::DelayProxy erin_link(PortOf(cluster_->endpoint()), absl::ZeroDuration(), "127.0.0.7");
  Client attacker(attacker_link.endpoint());
  int checked = 0, refused = 0;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 200; ++i) {
    auto r = attacker.Login("erin", absl::StrCat("guess-", i));
    ASSERT_TRUE(r.status().code() == absl::StatusCode::kUnauthenticated ||
                r.status().code() == absl::StatusCode::kResourceExhausted)
        << r.status();
    (r.status().code() == absl::StatusCode::kUnauthenticated ? checked : refused)++;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("attacker: %d of 200 guesses checked (%d refused unchecked) in %.2f s\n", checked,
              refused, seconds);
  EXPECT_LE(checked, 11);  // 10 at once, one more per 6 s
  // Even the right password is refused from the guessing address...
  MCOS_EXPECT_CODE(attacker.Login("erin", "erin-pw"), kResourceExhausted);
  // ... while erin logs in from hers at once.
  Client erin(erin_link.endpoint());
  const absl::Time t = absl::Now();
  MCOS_ASSERT_OK(erin.Login("erin", "erin-pw"));
  std::printf("erin's login during the attack: %.0f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - t));
  MCOS_EXPECT_OK(erin.ListContainers());
}

TEST(AccessMemoryE2eTest, HundredParallelLoginsStayWithinTheMemoryBound) {
  // The default argon2 cost (64 MiB per hash) and at most 4 hashes at once.
  testing::TempDir dir;
  testing::ClusterProcess cluster(MCOS_CLUSTER_BIN, dir.path());
  MCOS_ASSERT_OK(cluster.Start({"--argon2-memory-kib", "65536", "--max-password-checks", "4"}));
  MCOS_ASSERT_OK(cluster.AddUser("frank", "frank-pw"));
  auto before = common::PeakRssBytes(cluster.pid());
  MCOS_ASSERT_OK(before);
  Client first(cluster.endpoint());
  MCOS_ASSERT_OK(first.Login("frank", "frank-pw"));  // this address is now known for frank
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] {
      client::ClientOptions o;
      o.own_connection = true;
      o.deadline = absl::Seconds(60);
      Client c(cluster.endpoint(), o);
      auto r = c.Login("frank", i % 2 == 0 ? "frank-pw" : "wrong");
      if (r.ok() || r.status().code() == absl::StatusCode::kUnauthenticated) {
        ++ok;
      } else if (r.status().code() == absl::StatusCode::kResourceExhausted) {
        ++busy;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  auto peak = common::PeakRssBytes(cluster.pid());
  MCOS_ASSERT_OK(peak);
  std::printf(
      "100 parallel logins: %d checked, %d refused as busy, in %.1f s; peak RSS %.0f MiB "
      "(%.0f MiB before)\n",
      ok.load(), busy.load(), absl::ToDoubleSeconds(absl::Now() - start),
      static_cast<double>(*peak) / (1 << 20), static_cast<double>(*before) / (1 << 20));
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  // docs/operating.md: peak = what the process held + max-password-checks x argon2 memory
  // (+ allocator slack).
  EXPECT_LT(*peak, *before + (4 * 64 + 96) * (uint64_t{1} << 20));
}

TEST(AccessSplitE2eTest, RevocationReachesTheSeparateServerAtOnce) {
  testing::TempDir dir;
  testing::SplitCluster split(dir.path(), MCOS_STORAGE_BIN, MCOS_CONTROLLER_BIN, MCOS_RESOLVER_BIN,
                              MCOS_SERVER_BIN);
  MCOS_ASSERT_OK(split.Start());
  Client admin(split.controller->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kSplitAdminPassword));
  for (int round = 0; round < 5; ++round) {
    const std::string name = absl::StrCat("dave", round);
    MCOS_ASSERT_OK(admin.AddUser(name, "dave-pw", false));
    // Added at the controller, logged in at the server at once.
    Client dave(split.server->endpoint());
    MCOS_ASSERT_OK(dave.Login(name, "dave-pw"));
    MCOS_ASSERT_OK(dave.ListContainers());
    MCOS_ASSERT_OK(admin.RemoveUser(name));
    MCOS_EXPECT_CODE(dave.ListContainers(), kUnauthenticated);
  }
}

}  // namespace
}  // namespace mcos
