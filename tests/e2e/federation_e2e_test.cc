// Federations (shared/API.md, Federations): clusters that share a secret peer with
// `admin cluster add`, learn every other cluster, and replicate federation metadata (users,
// containers, clusters, rings, options) both ways; another secret is refused with nothing recorded;
// peer services take only a peer credential and user services never take one. Each cluster is its
// own mcos-cluster process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <filesystem>
#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/channel.h"
#include "common/service_auth.h"
#include "common/token.h"
#include "mcos/v1/peer.grpc.pb.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/cluster_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_ca.h"

namespace mcos {
namespace {

using client::Client;

// Polls `done` every 20 ms for up to `timeout`; returns how long it took, or the timeout.
absl::Duration WaitFor(const std::function<bool()>& done,
                       absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time start = absl::Now();
  while (!done()) {
    if (absl::Now() - start > timeout) return timeout;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::Now() - start;
}

std::string WriteSecret(const std::string& path, const std::string& secret) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0) << path;
  EXPECT_EQ(write(fd, secret.data(), secret.size()), static_cast<ssize_t>(secret.size()));
  close(fd);
  return path;
}

class FederationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = WriteSecret(dir_.path() + "/federation.secret",
                          "one secret shared by the whole test federation, 0123456789");
  }

  // Starts cluster `name` with the secret file `secret` (the federation's by default; kNoSecret:
  // none).
  static constexpr char kNoSecret[] = "none";
  testing::ClusterProcess* Start(const std::string& name, const std::string& secret = "",
                                 const std::vector<std::string>& extra = {}) {
    auto c = std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN,
                                                       absl::StrCat(dir_.path(), "/", name));
    std::filesystem::create_directories(absl::StrCat(dir_.path(), "/", name));
    std::vector<std::string> args = {"--name", name, "--federation-sync-period-ms", "200"};
    if (secret != kNoSecret) {
      args.insert(args.end(), {"--federation-secret-file", secret.empty() ? secret_ : secret});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    c->set_client_options(client_options_);
    const absl::Status s = c->Start(args);
    EXPECT_TRUE(s.ok()) << name << ": " << s;
    clusters_.push_back(std::move(c));
    return clusters_.back().get();
  }

  std::unique_ptr<Client> Admin(const testing::ClusterProcess& c) {
    auto client = std::make_unique<Client>(c.endpoint(), client_options_);
    EXPECT_TRUE(client->Login("admin", testing::kAdminPassword).ok());
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

  testing::TempDir dir_;
  std::string secret_;
  client::ClientOptions client_options_;
  std::vector<std::unique_ptr<testing::ClusterProcess>> clusters_;
};

TEST_F(FederationE2eTest, ClustersPeerAndShareUsersAndContainers) {
  auto* a = Start("alpha");
  auto* b = Start("beta");
  auto* c = Start("gamma");
  auto admin_a = Admin(*a);
  auto admin_b = Admin(*b);

  // alpha introduces beta, beta introduces gamma: everyone learns everyone.
  auto added = admin_a->AddCluster(b->endpoint());
  MCOS_ASSERT_OK(added);
  EXPECT_EQ(added->id(), "beta");
  auto added_c = admin_b->AddCluster(c->endpoint());
  MCOS_ASSERT_OK(added_c);
  EXPECT_EQ(added_c->id(), "gamma");
  const std::set<std::string> all = {"alpha", "beta", "gamma"};
  for (auto* at : {a, b, c}) {
    auto admin = Admin(*at);
    const absl::Duration took = WaitFor([&] {
      auto [names, up] = Listed(*admin);
      return names == all && up;
    });
    auto [names, up] = Listed(*admin);
    EXPECT_EQ(names, all) << at->endpoint();
    EXPECT_TRUE(up) << at->endpoint();
    std::printf("cluster at %s knows all three, all up, after %s\n", at->endpoint().c_str(),
                absl::FormatDuration(took).c_str());
  }
  // Each one's status names its services and the peers' controllers.
  auto status = admin_a->GetCluster("gamma");
  MCOS_ASSERT_OK(status);
  EXPECT_EQ(status->cluster().controller_endpoint(), c->endpoint());
  EXPECT_FALSE(status->services().empty());
  MCOS_EXPECT_CODE(admin_a->GetCluster("nowhere"), kNotFound);

  // A user added at beta logs in at gamma, and beta's token works at alpha.
  MCOS_ASSERT_OK(admin_b->AddUser("carol", "carol-pw", false));
  Client carol_c(c->endpoint());
  const absl::Duration login_took =
      WaitFor([&] { return carol_c.Login("carol", "carol-pw").ok(); });
  MCOS_ASSERT_OK(carol_c.ListContainers());
  std::printf("a user added at beta logged in at gamma after %s\n",
              absl::FormatDuration(login_took).c_str());
  EXPECT_LT(login_took, absl::Seconds(5));
  Client carol_b(b->endpoint());
  MCOS_ASSERT_OK(carol_b.Login("carol", "carol-pw"));
  client::ClientOptions with_token;
  with_token.token = carol_b.token();
  Client carol_a(a->endpoint(), with_token);
  WaitFor([&] { return carol_a.ListContainers().ok(); });
  MCOS_EXPECT_OK(carol_a.ListContainers());

  // A container made at alpha is listed at gamma; deleted at alpha, it is gone at gamma.
  MCOS_ASSERT_OK(carol_a.CreateContainer("photos"));
  auto listed_at = [&](Client& at) {
    auto r = at.ListContainers();
    if (!r.ok()) return false;
    return std::any_of(r->containers().begin(), r->containers().end(),
                       [](const auto& info) { return info.name() == "photos"; });
  };
  const absl::Duration container_took = WaitFor([&] { return listed_at(carol_c); });
  EXPECT_TRUE(listed_at(carol_c));
  std::printf("a container made at alpha was listed at gamma after %s\n",
              absl::FormatDuration(container_took).c_str());
  MCOS_ASSERT_OK(carol_a.DeleteContainer("photos"));
  WaitFor([&] { return !listed_at(carol_c); });
  EXPECT_FALSE(listed_at(carol_c));
  MCOS_EXPECT_CODE(carol_c.DeleteContainer("photos"), kNotFound);

  // A user removed at gamma is refused at alpha.
  auto admin_c = Admin(*c);
  MCOS_ASSERT_OK(admin_c->RemoveUser("carol"));
  WaitFor([&] { return !carol_a.ListContainers().ok(); });
  MCOS_EXPECT_CODE(carol_a.ListContainers(), kUnauthenticated);

  // A restarted cluster keeps its peers and catches up with what changed while it was down.
  EXPECT_EQ(b->Stop(), 0);
  MCOS_ASSERT_OK(admin_a->AddUser("dave", "dave-pw", false));
  MCOS_ASSERT_OK(b->Start({"--name", "beta", "--federation-secret-file", secret_,
                           "--federation-sync-period-ms", "200"}));
  Client dave_b(b->endpoint());
  const absl::Duration caught_up = WaitFor([&] { return dave_b.Login("dave", "dave-pw").ok(); });
  MCOS_EXPECT_OK(dave_b.ListContainers());
  std::printf("restarted beta had the user added while it was down after %s\n",
              absl::FormatDuration(caught_up).c_str());
}

TEST_F(FederationE2eTest, RemovingAClusterNeedsItOutOfEveryRing) {
  auto* a = Start("east");
  auto* b = Start("west");
  auto* c = Start("north");
  auto admin_a = Admin(*a);
  MCOS_ASSERT_OK(admin_a->AddCluster(b->endpoint()));
  MCOS_ASSERT_OK(admin_a->AddCluster(c->endpoint()));
  const std::set<std::string> all = {"east", "west", "north"};
  auto admin_b = Admin(*b);
  WaitFor([&] { return Listed(*admin_b).first == all; });
  ASSERT_EQ(Listed(*admin_b).first, all);

  // A ring may name any cluster of the federation now.
  mcos::v1::Ring ring;
  ring.set_id("wide");
  ring.set_replicas(2);
  ring.set_partition_power(8);
  for (const char* name : {"east", "west", "north"}) {
    auto* m = ring.add_members();
    m->set_cluster(name);
    m->set_weight(1);
  }
  MCOS_ASSERT_OK(admin_a->CreateRing(ring));
  auto admin_c = Admin(*c);
  auto refused = admin_c->RemoveCluster("east");
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.message(), "wide")) << refused;
  MCOS_EXPECT_CODE(admin_a->RemoveCluster("east"), kFailedPrecondition);  // itself
  MCOS_EXPECT_CODE(admin_a->RemoveCluster("south"), kNotFound);
  // The three bootstrap default rings merged into one: the highest name's, which names west.
  auto west = admin_c->RemoveCluster("west");
  MCOS_EXPECT_CODE(west, kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(west.message(), "default")) << west;

  // Out of every ring, east goes, everywhere.
  mcos::v1::UpdateRingRequest update;
  update.set_id("wide");
  for (const char* name : {"west", "north"}) {
    auto* m = update.add_members();
    m->set_cluster(name);
    m->set_weight(1);
  }
  MCOS_ASSERT_OK(admin_a->UpdateRing(update));
  WaitFor([&] { return admin_c->RemoveCluster("east").ok(); });
  const std::set<std::string> rest = {"west", "north"};
  WaitFor([&] { return Listed(*admin_c).first == rest && Listed(*admin_b).first == rest; });
  EXPECT_EQ(Listed(*admin_c).first, rest);
  EXPECT_EQ(Listed(*admin_b).first, rest);
}

TEST_F(FederationE2eTest, AnotherSecretIsRefusedAndNothingIsRecorded) {
  auto* a = Start("home");
  const std::string other = WriteSecret(dir_.path() + "/other.secret",
                                        "a different federation's secret, 9876543210 abcdef");
  auto* stranger = Start("stranger", other);
  auto admin_a = Admin(*a);
  auto refused = admin_a->AddCluster(stranger->endpoint());
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "nothing was recorded"))
      << refused.status();
  EXPECT_EQ(Listed(*admin_a).first, std::set<std::string>{"home"});
  auto admin_s = Admin(*stranger);
  EXPECT_EQ(Listed(*admin_s).first, std::set<std::string>{"stranger"});
  // The other way round too, and a cluster without any secret.
  MCOS_EXPECT_CODE(admin_s->AddCluster(a->endpoint()), kFailedPrecondition);
  auto* loner = Start("loner", kNoSecret);
  auto no_secret = admin_a->AddCluster(loner->endpoint());
  MCOS_EXPECT_CODE(no_secret, kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(no_secret.status().message(), "none")) << no_secret.status();
  MCOS_EXPECT_CODE(Admin(*loner)->AddCluster(a->endpoint()), kFailedPrecondition);
  EXPECT_EQ(Listed(*admin_a).first, std::set<std::string>{"home"});
}

TEST_F(FederationE2eTest, PeerServicesTakeOnlyPeerCredentials) {
  auto* a = Start("solo");
  auto keys = common::LoadClusterKeys(std::string(64, 'k'), secret_);
  MCOS_ASSERT_OK(keys);
  common::ServiceAuth peer(keys->peer, "visitor", keys->user_tokens,
                           common::CredentialScope::kFederation);
  auto as_peer = mcos::v1::PeerControllerService::NewStub(common::ConnectInternal(a->endpoint(),
                                                                                  peer));
  auto bare = mcos::v1::PeerControllerService::NewStub(common::ConnectInsecure(a->endpoint()));

  auto health = [](mcos::v1::PeerControllerService::Stub& stub, const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    mcos::v1::PeerHealthRequest req;
    mcos::v1::PeerHealthResponse resp;
    return stub.PeerHealth(&ctx, req, &resp).error_code();
  };
  // The peer credential is accepted; none, a user's token or a forged one are not.
  EXPECT_EQ(health(*as_peer, ""), grpc::StatusCode::OK);
  EXPECT_EQ(health(*bare, ""), grpc::StatusCode::UNAUTHENTICATED);
  Client admin(a->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  EXPECT_EQ(health(*bare, admin.token()), grpc::StatusCode::PERMISSION_DENIED);
  common::ServiceAuth forged(std::string(64, 'f'), "visitor", "",
                             common::CredentialScope::kFederation);
  EXPECT_EQ(health(*bare, forged.Token()), grpc::StatusCode::UNAUTHENTICATED);
  // The cluster's own service credential is not a peer's.
  common::ServiceAuth service(std::string(64, 'k'), "x", keys->user_tokens);
  EXPECT_EQ(health(*bare, service.Token()), grpc::StatusCode::UNAUTHENTICATED);

  // A peer that is no member may not pull or push metadata, nor introduce itself as another.
  {
    grpc::ClientContext ctx;
    mcos::v1::PullMetadataRequest req;
    auto reader = as_peer->PullMetadata(&ctx, req);
    mcos::v1::MetadataRow row;
    EXPECT_FALSE(reader->Read(&row));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext ctx;
    mcos::v1::HelloRequest req;
    req.mutable_cluster()->set_id("someone-else");
    req.mutable_cluster()->set_controller_endpoint("127.0.0.1:1");
    req.set_federation_id(keys->federation_id);
    mcos::v1::HelloResponse resp;
    EXPECT_EQ(as_peer->Hello(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_EQ(Listed(admin).first, std::set<std::string>{"solo"});

  // The peer credential is nobody at UserService or AdminService.
  auto user = mcos::v1::UserService::NewStub(common::ConnectInsecure(a->endpoint()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + peer.Token());
  mcos::v1::ListContainersRequest req;
  mcos::v1::ListContainersResponse resp;
  const grpc::StatusCode code = user->ListContainers(&ctx, req, &resp).error_code();
  EXPECT_TRUE(code == grpc::StatusCode::UNAUTHENTICATED ||
              code == grpc::StatusCode::PERMISSION_DENIED)
      << code;
  client::ClientOptions with_peer;
  with_peer.token = peer.Token();
  MCOS_EXPECT_CODE(Client(a->endpoint(), with_peer).ListUsers(), kUnauthenticated);
}

TEST_F(FederationE2eTest, PeersOverMutualTls) {
  // Each cluster serves its own certificate, requires client certificates of the CA, and calls its
  // peers over TLS presenting its certificate.
  auto ca = testing::TestCa::Create(dir_.path(), "ca");
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto tls_args = [&](const std::string& name) {
    auto cert = ca->Issue(name);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return std::vector<std::string>{"--tls-cert",      cert->cert,  "--tls-key", cert->key,
                                    "--tls-client-ca", ca->cert(),  "--tls-ca",  ca->cert()};
  };
  auto user_cert = ca->Issue("admin-user");
  ASSERT_TRUE(user_cert.ok());
  client_options_.tls_ca_file = ca->cert();
  client_options_.tls_cert_file = user_cert->cert;
  client_options_.tls_key_file = user_cert->key;
  auto* a = Start("tls-a", "", tls_args("tls-a"));
  auto* b = Start("tls-b", "", tls_args("tls-b"));
  auto admin_a = Admin(*a);
  auto added = admin_a->AddCluster(b->endpoint());
  MCOS_ASSERT_OK(added);
  EXPECT_EQ(added->id(), "tls-b");
  auto admin_b = Admin(*b);
  const std::set<std::string> both = {"tls-a", "tls-b"};
  WaitFor([&] { return Listed(*admin_b) == std::make_pair(both, true); });
  EXPECT_EQ(Listed(*admin_b), std::make_pair(both, true));
  MCOS_ASSERT_OK(admin_b->AddUser("tess", "tess-pw", false));
  Client tess(a->endpoint(), client_options_);
  WaitFor([&] { return tess.Login("tess", "tess-pw").ok(); });
  MCOS_EXPECT_OK(tess.ListContainers());
}

TEST_F(FederationE2eTest, SecretFileIsChecked) {
  const std::string open_secret = dir_.path() + "/open.secret";
  WriteSecret(open_secret, "readable by everyone, which it must not be, 0123456789");
  chmod(open_secret.c_str(), 0644);
  const std::string short_secret = WriteSecret(dir_.path() + "/short.secret", "too short");
  for (const auto& [file, words] :
       std::vector<std::pair<std::string, std::string>>{{open_secret, "chmod 600"},
                                                        {short_secret, "at least 32"},
                                                        {dir_.path() + "/none", "does not exist"}}) {
    testing::ClusterProcess c(MCOS_CLUSTER_BIN, dir_.path() + "/bad",
                              dir_.path() + "/bad.log");
    EXPECT_FALSE(c.Start({"--federation-secret-file", file}).ok()) << file;
    std::ifstream log(dir_.path() + "/bad.log");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(absl::StrContains(text, words)) << text;
  }
}

}  // namespace
}  // namespace mcos
