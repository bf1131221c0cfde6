// Federations (shared/API.md, Federations): clusters that share a secret peer with
// `admin cluster add`, learn every other cluster, and replicate federation metadata (users,
// containers, clusters, rings, options) both ways; another secret is refused with nothing recorded;
// peer services take only a peer credential and user services never take one. Each cluster is its
// own mcos-cluster process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/service_auth.h"
#include "common/token.h"
#include "common/version.h"
#include "mcos/v1/cluster.grpc.pb.h"
#include "mcos/v1/controller.pb.h"
#include "mcos/v1/peer.grpc.pb.h"
#include "mcos/v1/user.grpc.pb.h"
#include "replication/replica.h"
#include "tests/support/cluster_process.h"
#include "tests/support/delay_proxy.h"
#include "tests/support/federation_fixture.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_ca.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;

class FederationE2eTest : public testing::FederationFixture {
 protected:
  // Federates, writes "the current version" of carol's `container`/obj at alpha, and returns
  // beta's ClusterService as alpha sees it (a peer replica) and that object's key; the replica is
  // null if any step failed (the test is failed then).
  std::pair<std::unique_ptr<replication::Replica>, mcos::v1::ObjectKey> CurrentVersionAtBeta(
      const std::string& container) {
    Federate();
    mcos::v1::ObjectKey key;
    key.set_user("carol");
    key.set_container(container);
    key.set_object("obj");
    auto at_a = As(*a_);
    if (at_a == nullptr) return {nullptr, key};
    std::istringstream in("the current version");
    absl::Status made = at_a->CreateContainer(container).status();
    if (made.ok()) made = at_a->PutObject(container, "obj", in).status();
    peer_ = PeerAuth("alpha");
    EXPECT_TRUE(made.ok()) << made;
    EXPECT_NE(peer_, nullptr);
    if (!made.ok() || peer_ == nullptr) return {nullptr, key};
    auto replica =
        replication::PeerReplica("beta", "alpha", common::ConnectInternal(b_->endpoint(), *peer_));
    // The put was acknowledged at W=2: beta's copy may still be on its way.
    const absl::Duration took = testing::WaitFor(
        [&] {
          auto record = replica->Stat(key, absl::Now() + absl::Seconds(2));
          return record.ok() && record->etag() == testing::Md5Hex("the current version");
        },
        absl::Seconds(10));
    EXPECT_LT(took, absl::Seconds(10)) << "beta never stored the current version";
    return {std::move(replica), key};
  }
  // The peer credential of CurrentVersionAtBeta's replica (its channel uses it).
  std::unique_ptr<common::ServiceAuth> peer_;
};

using testing::WaitFor;
using testing::WriteSecret;

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
  const mcos::v1::Ring ring = RingOf("wide", 2, {"east", "west", "north"});
  MCOS_ASSERT_OK(admin_a->CreateRing(ring));
  auto admin_c = Admin(*c);
  // A cluster decides with the metadata it holds: wait until the ring reached north.
  auto knows_wide = [&] {
    auto rings = admin_c->ListRings();
    if (!rings.ok()) return false;
    for (const auto& r : rings->rings()) {
      if (r.id() == "wide") return true;
    }
    return false;
  };
  WaitFor(knows_wide);
  ASSERT_TRUE(knows_wide());
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
  auto as_peer =
      mcos::v1::PeerControllerService::NewStub(common::ConnectInternal(a->endpoint(), peer));
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
  // What a cluster brings to a join is told only to a peer, and without password hashes.
  auto describe = [](mcos::v1::PeerControllerService::Stub& stub, const std::string& token,
                     std::vector<mcos::v1::MetadataRow>* rows) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    mcos::v1::DescribeForJoinRequest req;
    req.set_cluster("visitor");
    auto reader = stub.DescribeForJoin(&ctx, req);
    mcos::v1::MetadataRow row;
    while (reader->Read(&row)) rows->push_back(row);
    return reader->Finish().error_code();
  };
  std::vector<mcos::v1::MetadataRow> rows;
  EXPECT_EQ(describe(*bare, "", &rows), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(*bare, admin.token(), &rows), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(rows.empty());
  EXPECT_EQ(describe(*as_peer, "", &rows), grpc::StatusCode::OK);
  bool admin_row = false;
  for (const auto& row : rows) {
    if (row.table() != "users") continue;
    mcos::v1::User user;
    ASSERT_TRUE(user.ParseFromString(row.value()));
    admin_row = admin_row || user.name() == "admin";
    EXPECT_TRUE(user.password_hash().empty()) << user.name();
  }
  EXPECT_TRUE(admin_row);

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

  // ClusterService takes the peer credential only.
  auto cluster = mcos::v1::ClusterService::NewStub(common::ConnectInsecure(a->endpoint()));
  auto cluster_stat = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    mcos::v1::ClusterStatObjectRequest req;
    req.mutable_key()->set_user("admin");
    req.mutable_key()->set_container("c");
    req.mutable_key()->set_object("o");
    mcos::v1::ClusterStatObjectResponse resp;
    return cluster->ClusterStatObject(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(cluster_stat(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(cluster_stat(admin.token()), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(cluster_stat(service.Token()), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(cluster_stat(peer.Token()), grpc::StatusCode::NOT_FOUND);

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

const std::set<std::string> kAll = {"alpha", "beta", "gamma"};

// Reads ask what they need: a stat or download asks R-W+1 replicas (this cluster's copy and one
// other), not all R, once the write's holders are recorded with it, and still names every holder.
class FederationReadsE2eTest : public testing::FederationFixture {
 protected:
  FederationReadsE2eTest() { cluster_args_ = {"--metrics-listen", "127.0.0.1:0"}; }

  // The samples of `metric` with all of `labels`, summed over the three clusters.
  double AtAll(const std::string& metric, const std::vector<std::string>& labels) {
    double sum = 0;
    for (auto* c : {a_, b_, c_}) {
      auto metrics = testing::ScrapeMetrics(c->metrics_port());
      EXPECT_TRUE(metrics.ok()) << metrics.status();
      if (metrics.ok()) sum += testing::SumSamples(*metrics, metric, labels);
    }
    return sum;
  }
  // Replica operations of `kind` served on replication streams so far, with `code` if not empty.
  double Served(const std::string& kind, const std::string& code = "") {
    std::vector<std::string> labels = {absl::StrCat("kind=\"", kind, "\"")};
    if (!code.empty()) labels.push_back(absl::StrCat("code=\"", code, "\""));
    return AtAll("mcos_cluster_replicate_operations_total", labels);
  }
  // Served(kind, code) less `before` once it reaches `n` or 10 s pass: a write is answered once W
  // replicas stored it, so the last peer's count may still be on its way.
  double ServedSince(const std::string& kind, const std::string& code, double before, int n) {
    double now = 0;
    WaitFor([&] { return (now = Served(kind, code) - before) >= n; }, absl::Seconds(10));
    return now;
  }
  // Peer stats that found the object, served by the three clusters so far (probes find nothing),
  // as calls or on replication streams.
  double PeerStatsFound() {
    return AtAll("mcos_grpc_requests_total",
                 {"method=\"/mcos.v1.ClusterService/ClusterStatObject\"", "code=\"OK\""}) +
           Served("stat", "OK");
  }
  // Whether `at` names all three clusters as holders of o0..o<objects-1> of `container` within
  // 20 s (the writes' last copies landed).
  static bool EveryHolderNamed(Client& at, const std::string& container, int objects) {
    return WaitFor(
               [&] {
                 for (int i = 0; i < objects; ++i) {
                   auto s = at.StatObject(container, absl::StrCat("o", i));
                   if (!s.ok() || Replicas(*s) != kAll) return false;
                 }
                 return true;
               },
               absl::Seconds(20)) < absl::Seconds(20);
  }
};

TEST_F(FederationReadsE2eTest, StatsAndDownloadsAskTheQuorumAndStillNameEveryHolder) {
  Federate();
  for (auto* c : {a_, b_, c_}) ASSERT_NE(c->metrics_port(), 0);
  auto at_a = As(*a_);
  auto at_b = As(*b_);
  auto at_c = As(*c_);
  MCOS_ASSERT_OK(at_a->CreateContainer("reads"));
  constexpr int kObjects = 10;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "reads", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  // Every cluster names all three holders of every object (the writes' last copies landed).
  for (Client* at : {at_a.get(), at_b.get(), at_c.get()}) {
    ASSERT_TRUE(EveryHolderNamed(*at, "reads", kObjects));
  }
  const double before = PeerStatsFound();
  int reads = 0;
  for (Client* at : {at_a.get(), at_b.get(), at_c.get()}) {
    for (int i = 0; i < kObjects; ++i) {
      auto stat = at->StatObject("reads", absl::StrCat("o", i));
      MCOS_ASSERT_OK(stat);
      EXPECT_EQ(Replicas(*stat), kAll);
      auto got = Get(*at, "reads", absl::StrCat("o", i));
      MCOS_ASSERT_OK(got);
      EXPECT_EQ(*got, absl::StrCat("content ", i));
      reads += 2;
    }
  }
  const double asked = PeerStatsFound() - before;
  std::printf("%d stats and downloads at three clusters asked %.0f peer replicas\n", reads, asked);
  // One peer each (R=3, W=2: two answers, this cluster's first); a slow answer may be hedged.
  // Asking every holder would be two each.
  EXPECT_GE(asked, reads);
  EXPECT_LE(asked, reads * 1.25);
}

// Writes take one round trip between clusters (R=3, W=2). A put (create-or-replace: `mcos put`,
// the SDK's PutObject) is written first and asks no replica whether the object exists; so is a
// strict create of a name held nowhere here, or a strict update of one held here: it goes to the
// others before it is stored here, each taking it only over nothing live (an update: over a live
// version), and it is stored here once one took it. A strict create of a
// name held here asks the read quorum first (one peer). A create that the other clusters refuse
// takes effect nowhere; one they refuse as older than a tombstone they hold is checked at the
// quorum and written above it.
TEST_F(FederationReadsE2eTest, WritesTakeOneRoundTripAndRefusedCreatesTakeEffectNowhere) {
  Federate();
  for (auto* c : {a_, b_, c_}) ASSERT_NE(c->metrics_port(), 0);
  auto at_a = ContainerEverywhere("puts");
  ASSERT_NE(at_a, nullptr);
  auto at_b = As(*b_);
  auto at_c = As(*c_);
  ASSERT_TRUE(at_b != nullptr && at_c != nullptr);
  const std::vector<Client*> at = {at_a.get(), at_b.get(), at_c.get()};
  constexpr int kObjects = 9;
  const double creates_before = Served("create", "OK");
  const double puts_before = Served("put");
  for (int i = 0; i < kObjects; ++i) {
    std::istringstream in("first");
    auto made = at[i % 3]->CreateObject("puts", absl::StrCat("o", i), in);
    MCOS_ASSERT_OK(made);
    EXPECT_GE(Replicas(*made).size(), 2U);
  }
  // Each went to both peers as a create's write (a create checked first sends puts).
  EXPECT_EQ(ServedSince("create", "OK", creates_before, 2 * kObjects), 2 * kObjects);
  EXPECT_EQ(Served("put") - puts_before, 0);
  ASSERT_TRUE(EveryHolderNamed(*at_c, "puts", kObjects));
  for (Client* c : at) {
    for (int i = 0; i < kObjects; ++i) {
      auto got = Get(*c, "puts", absl::StrCat("o", i));
      MCOS_ASSERT_OK(got);
      EXPECT_EQ(*got, "first");
    }
  }

  double before = PeerStatsFound();
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at[i % 3], "puts", absl::StrCat("o", i), "second"));
  }
  // A put that first read the quorum would have found each object at one peer.
  EXPECT_EQ(PeerStatsFound() - before, 0);
  for (Client* c : at) {
    for (int i = 0; i < kObjects; ++i) {
      auto got = Get(*c, "puts", absl::StrCat("o", i));
      MCOS_ASSERT_OK(got);
      EXPECT_EQ(*got, "second");
    }
  }
  // Strict updates of names held here: sent to both peers before they are stored here.
  const double updates_before = Served("update", "OK");
  const double puts_before_updates = Served("put");
  for (int i = 0; i < kObjects; ++i) {
    std::istringstream in("updated");
    MCOS_ASSERT_OK(at[i % 3]->UpdateObject("puts", absl::StrCat("o", i), in));
  }
  EXPECT_EQ(ServedSince("update", "OK", updates_before, 2 * kObjects), 2 * kObjects);
  EXPECT_EQ(Served("put") - puts_before_updates, 0);
  for (Client* c : at) {
    for (int i = 0; i < kObjects; ++i) {
      auto got = Get(*c, "puts", absl::StrCat("o", i));
      MCOS_ASSERT_OK(got);
      EXPECT_EQ(*got, "updated");
    }
  }
  // Strict creates of names held here: refused after asking one peer each, nothing changed.
  before = PeerStatsFound();
  for (int i = 0; i < kObjects; ++i) {
    std::istringstream in("third");
    MCOS_EXPECT_CODE(at[i % 3]->CreateObject("puts", absl::StrCat("o", i), in), kAlreadyExists);
  }
  const double asked = PeerStatsFound() - before;
  EXPECT_GE(asked, kObjects);
  EXPECT_LE(asked, kObjects * 1.25);

  // beta and gamma hold a version that alpha does not (written to them as a peer would): alpha's
  // create of that name goes to them before it is checked, both refuse it, and it is stored
  // nowhere, not even at alpha.
  auto peer = PeerAuth("gamma");
  ASSERT_NE(peer, nullptr);
  mcos::v1::ObjectKey planted;
  planted.set_user("carol");  // her identity: the first user of the name
  planted.set_container("puts");
  planted.set_object("planted");
  const std::string content = "held by beta and gamma";
  mcos::v1::ObjectRecord record;
  record.mutable_version()->set_hlc(common::HybridLogicalClock(common::SystemClock::Get()).Now());
  record.mutable_version()->set_cluster("gamma");
  record.set_size(content.size());
  record.set_etag(testing::Md5Hex(content));
  record.set_partition(0);
  // beta's and gamma's storage as gamma, a peer, writes to them.
  std::vector<std::unique_ptr<replication::Replica>> beta_and_gamma;
  for (auto* c : {b_, c_}) {
    beta_and_gamma.push_back(replication::PeerReplica(
        c == b_ ? "beta" : "gamma", "gamma", common::ConnectInternal(c->endpoint(), *peer)));
  }
  // Stores a tombstone of `key` stamped `hlc` at beta and gamma.
  auto delete_at_beta_and_gamma = [&](const mcos::v1::ObjectKey& key, uint64_t hlc) {
    mcos::v1::ObjectRecord tombstone;
    tombstone.set_tombstone(true);
    tombstone.mutable_version()->set_hlc(hlc);
    tombstone.mutable_version()->set_cluster("gamma");
    for (auto& replica : beta_and_gamma) {
      auto ack = replica->Delete(key, tombstone, absl::Now() + absl::Seconds(5));
      ASSERT_TRUE(ack.ok()) << ack.status();
      ASSERT_TRUE(ack->applied);
    }
  };
  for (auto& replica : beta_and_gamma) {
    auto source = replication::MemoryReader(record, std::make_shared<const std::string>(content));
    auto ack = replica->Put(planted, record, *source, absl::Now() + absl::Seconds(5));
    MCOS_ASSERT_OK(ack);
    ASSERT_TRUE(ack->applied);
  }
  const double refusals_before = Served("create", "OK");
  std::istringstream in("alpha's create");
  MCOS_EXPECT_CODE(at_a->CreateObject("puts", "planted", in), kAlreadyExists);
  EXPECT_EQ(Served("create", "OK") - refusals_before, 2);
  auto at_alpha =
      replication::PeerReplica("alpha", "gamma", common::ConnectInternal(a_->endpoint(), *peer));
  MCOS_EXPECT_CODE(at_alpha->Stat(planted, absl::Now() + absl::Seconds(5)), kNotFound);
  for (Client* c : at) {
    auto got = Get(*c, "puts", "planted");
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, content);
  }
  for (int i = 0; i < kObjects; ++i) {
    auto got = Get(*at_b, "puts", absl::StrCat("o", i));
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, "updated");
  }

  // beta and gamma hold a delete of o0 that alpha missed (a tombstone planted as a peer would
  // send it): alpha's update, sent before it is checked, is refused by both (NOT_FOUND) and
  // stored nowhere: alpha still holds its old version.
  mcos::v1::ObjectKey o0 = planted;
  o0.set_object("o0");
  delete_at_beta_and_gamma(o0, common::MakeHlc(absl::Now() + absl::Seconds(1)));
  if (HasFatalFailure()) return;
  const double update_refusals_before = Served("update", "OK");
  std::istringstream late_update("an update of a deleted object");
  MCOS_EXPECT_CODE(at_a->UpdateObject("puts", "o0", late_update), kNotFound);
  EXPECT_EQ(Served("update", "OK") - update_refusals_before, 2);
  auto alpha_copy = at_alpha->Stat(o0, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(alpha_copy);
  EXPECT_EQ(alpha_copy->etag(), testing::Md5Hex("updated"));
  for (Client* c : at) MCOS_EXPECT_CODE(c->StatObject("puts", "o0"), kNotFound);

  // beta and gamma hold a tombstone stamped ahead of alpha's clock (a delete from a cluster whose
  // clock runs ahead, which alpha missed): alpha's create, stamped below it, is refused by both
  // as older, then checked at the quorum, stamped above the tombstone and stored everywhere.
  mcos::v1::ObjectKey deleted = planted;
  deleted.set_object("deleted-ahead");
  delete_at_beta_and_gamma(deleted, common::MakeHlc(absl::Now() + absl::Seconds(30)));
  if (HasFatalFailure()) return;
  const double sent_before = Served("create", "OK");
  std::istringstream after("created after a delete from ahead");
  auto made = at_a->CreateObject("puts", "deleted-ahead", after);
  MCOS_ASSERT_OK(made);
  EXPECT_EQ(Served("create", "OK") - sent_before, 2);
  for (Client* c : at) {
    auto got = Get(*c, "puts", "deleted-ahead");
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, "created after a delete from ahead");
  }
}

// A listing merges a read quorum of the ring's pages (R=3, W=2: this cluster's and one other's),
// which every acknowledged write and delete reaches, and names every holder of each entry: those
// the pages' records name as holders count too.
TEST_F(FederationReadsE2eTest, ListingsMergeAQuorumOfPagesAndStillNameEveryHolder) {
  Federate();
  for (auto* c : {a_, b_, c_}) ASSERT_NE(c->metrics_port(), 0);
  auto at_a = As(*a_);
  auto at_b = As(*b_);
  auto at_c = As(*c_);
  ASSERT_TRUE(at_a != nullptr && at_b != nullptr && at_c != nullptr);
  const std::vector<Client*> at = {at_a.get(), at_b.get(), at_c.get()};
  MCOS_ASSERT_OK(at_a->CreateContainer("pages"));
  constexpr int kObjects = 12;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "pages", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  ASSERT_TRUE(EveryHolderNamed(*at_a, "pages", kObjects));

  auto peer_pages = [&] {
    return AtAll("mcos_grpc_requests_total",
                 {"method=\"/mcos.v1.ClusterService/ClusterListObjects\"", "code=\"OK\""});
  };
  const double before = peer_pages();
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    for (Client* c : at) {
      auto listed = c->ListObjects(Listing("pages"));
      MCOS_ASSERT_OK(listed);
      ASSERT_EQ(listed->objects_size(), kObjects);
      for (const auto& o : listed->objects()) EXPECT_EQ(Replicas(o), kAll) << o.object();
    }
  }
  const double asked = peer_pages() - before;
  const int listings = kRounds * 3;
  std::printf("%d listings at three clusters asked %.0f peer pages\n", listings, asked);
  // One peer page each (a slow one may be hedged); asking every member would be two each.
  EXPECT_GE(asked, listings);
  EXPECT_LE(asked, listings * 1.25);

  // alpha misses a write and a delete (frozen while beta and gamma take them): its own page is
  // stale, the quorum is not: alpha lists the new object and not the deleted one.
  ASSERT_EQ(kill(a_->pid(), SIGSTOP), 0);
  auto missed = Put(*at_b, "pages", "missed", "written while alpha was frozen");
  auto deleted = at_c->DeleteObject("pages", "o0");
  ASSERT_EQ(kill(a_->pid(), SIGCONT), 0);
  MCOS_ASSERT_OK(missed);
  MCOS_ASSERT_OK(deleted);
  absl::StatusOr<mcos::v1::ListObjectsResponse> listed;
  WaitFor([&] {
    listed = at_a->ListObjects(Listing("pages"));
    return listed.ok();
  });
  MCOS_ASSERT_OK(listed);
  std::set<std::string> names;
  for (const auto& o : listed->objects()) names.insert(o.object());
  EXPECT_EQ(names.count("missed"), 1U);
  EXPECT_EQ(names.count("o0"), 0U);
  EXPECT_EQ(names.size(), static_cast<size_t>(kObjects));
}

// Deletes are tombstone-first (R=3, W=2): the two clusters that take a tombstone are a read
// quorum, so what they held before says whether the object existed; no replica is asked first
// (one round trip). A delete of what is not there still answers NOT_FOUND, announces nothing and
// blocks no later create; a cluster that missed the object still deletes it.
TEST_F(FederationReadsE2eTest, DeletesAskNoReplicaFirstAndStillAnswerNotFound) {
  Federate();
  auto at_a = As(*a_);
  auto at_b = As(*b_);
  auto at_c = As(*c_);
  ASSERT_TRUE(at_a != nullptr && at_b != nullptr && at_c != nullptr);
  const std::vector<Client*> at = {at_a.get(), at_b.get(), at_c.get()};
  MCOS_ASSERT_OK(at_a->CreateContainer("gone"));
  constexpr int kObjects = 9;
  for (int i = 0; i < kObjects; ++i) {
    MCOS_ASSERT_OK(Put(*at_a, "gone", absl::StrCat("o", i), absl::StrCat("content ", i)));
  }
  ASSERT_TRUE(EveryHolderNamed(*at_c, "gone", kObjects));

  const double before = PeerStatsFound();
  for (int i = 0; i < kObjects; ++i) {
    MCOS_EXPECT_OK(at[i % 3]->DeleteObject("gone", absl::StrCat("o", i)));
  }
  // A delete that first read the quorum would have found each object at one peer.
  EXPECT_EQ(PeerStatsFound() - before, 0);
  for (Client* c : at) {
    for (int i = 0; i < kObjects; ++i) {
      MCOS_EXPECT_CODE(c->StatObject("gone", absl::StrCat("o", i)), kNotFound);
      MCOS_EXPECT_CODE(c->DeleteObject("gone", absl::StrCat("o", i)), kNotFound);
    }
    MCOS_EXPECT_CODE(c->DeleteObject("gone", "never-written"), kNotFound);
    auto listed = c->ListObjects(Listing("gone"));
    MCOS_ASSERT_OK(listed);
    EXPECT_EQ(listed->objects_size(), 0);
  }
  // The tombstones of NOT_FOUND deletes stop no create.
  std::istringstream in("made after failed deletes");
  MCOS_ASSERT_OK(at_b->CreateObject("gone", "never-written", in));
  for (Client* c : at) {
    auto got = Get(*c, "gone", "never-written");
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(*got, "made after failed deletes");
  }

  // alpha misses a write (frozen while beta and gamma take it): a delete at alpha, which may not
  // hold the object yet, finds it live at the others and deletes it everywhere.
  ASSERT_EQ(kill(a_->pid(), SIGSTOP), 0);
  auto missed = Put(*at_b, "gone", "missed", "written while alpha was frozen");
  ASSERT_EQ(kill(a_->pid(), SIGCONT), 0);
  MCOS_ASSERT_OK(missed);
  // Thawed, alpha's calls that were under way have passed their deadlines: it takes writes again
  // once its probes find the others (a refusal until then stores nothing).
  absl::Status deleted;
  WaitFor([&] {
    deleted = at_a->DeleteObject("gone", "missed").status();
    return !absl::StrContains(deleted.message(), "can be reached now");
  });
  MCOS_EXPECT_OK(deleted);
  for (Client* c : at) {
    EXPECT_LT(WaitFor([&] { return absl::IsNotFound(c->StatObject("gone", "missed").status()); },
                      absl::Seconds(10)),
              absl::Seconds(10));
  }
}

TEST_F(FederationE2eTest, WrittenAtOneClusterReadAndListedAtTheOthers) {
  Federate();
  auto at_a = As(*a_);
  auto at_b = As(*b_);
  auto at_c = As(*c_);
  MCOS_ASSERT_OK(at_a->CreateContainer("docs"));
  const std::string data = testing::RandomBytes((3 << 20) + 5, 7);
  std::istringstream in(data);
  auto put = at_a->PutObject("docs", "report.bin", in);
  MCOS_ASSERT_OK(put);
  // Acknowledged once W = 2 clusters held it, this one among them; the third follows.
  EXPECT_GE(put->replicas_size(), 2);
  EXPECT_TRUE(Replicas(*put).count("alpha") > 0);
  for (Client* at : {at_b.get(), at_c.get()}) {
    WaitFor([&] {
      auto s = at->StatObject("docs", "report.bin");
      return s.ok() && Replicas(*s) == kAll;
    });
    auto stat = at->StatObject("docs", "report.bin");
    MCOS_ASSERT_OK(stat);
    EXPECT_EQ(stat->etag(), put->etag());
    EXPECT_EQ(stat->version(), put->version());
    EXPECT_EQ(Replicas(*stat), kAll);
    auto back = Get(*at, "docs", "report.bin");
    MCOS_ASSERT_OK(back);
    EXPECT_TRUE(*back == data) << "downloaded bytes differ";
    auto listed = at->ListObjects(Listing("docs"));
    MCOS_ASSERT_OK(listed);
    ASSERT_EQ(listed->objects_size(), 1);
    EXPECT_EQ(listed->objects(0).object(), "report.bin");
    EXPECT_EQ(Replicas(listed->objects(0)), kAll);
  }
  // An update at gamma wins everywhere; a delete at beta hides it everywhere.
  std::istringstream second("second version");
  auto updated = at_c->UpdateObject("docs", "report.bin", second);
  MCOS_ASSERT_OK(updated);
  auto back = Get(*at_a, "docs", "report.bin");
  MCOS_ASSERT_OK(back);
  EXPECT_EQ(*back, "second version");
  MCOS_ASSERT_OK(at_b->DeleteObject("docs", "report.bin"));
  for (Client* at : {at_a.get(), at_b.get(), at_c.get()}) {
    MCOS_EXPECT_CODE(at->StatObject("docs", "report.bin"), kNotFound);
    auto listed = at->ListObjects(Listing("docs"));
    MCOS_ASSERT_OK(listed);
    EXPECT_EQ(listed->objects_size(), 0);
  }
  // Empty everywhere, so it can go; then it is gone at every cluster.
  MCOS_ASSERT_OK(at_a->DeleteContainer("docs"));
  WaitFor([&] { return !at_c->ListObjects(Listing("docs")).ok(); });
  MCOS_EXPECT_CODE(at_c->ListObjects(Listing("docs")), kNotFound);
}

// A cluster behind a proxy (NAT, a load balancer) announces the proxy's address with --advertise:
// its peers list it there and call it only there (its own port is never announced), and a
// replicated write of a streamed size reaches it through the proxy.
TEST_F(FederationE2eTest, PeersCallAClusterAtTheAddressItAdvertises) {
  std::atomic<int> beta_port{0};
  testing::DelayProxy proxy([&beta_port] { return beta_port.load(); }, absl::Milliseconds(2));
  a_ = Start("alpha");
  b_ = Start("beta", "", {"--advertise", proxy.endpoint()});
  const std::string own = b_->endpoint();
  beta_port = std::stoi(own.substr(own.rfind(':') + 1));
  auto admin = Admin(*a_);
  MCOS_ASSERT_OK(admin->AddCluster(proxy.endpoint()));
  auto listed = admin->ListClusters();
  MCOS_ASSERT_OK(listed);
  bool seen = false;
  for (const auto& c : listed->clusters()) {
    if (c.id() != "beta") continue;
    seen = true;
    EXPECT_EQ(c.controller_endpoint(), proxy.endpoint());
    EXPECT_EQ(std::vector<std::string>(c.server_endpoints().begin(), c.server_endpoints().end()),
              std::vector<std::string>{proxy.endpoint()});
  }
  EXPECT_TRUE(seen);
  MCOS_ASSERT_OK(admin->CreateRing(RingOf("pair", 2, {"alpha", "beta"})));
  mcos::v1::SetOptionRingRequest set;
  set.set_option("default");
  set.set_ring("pair");
  WaitFor([&] { return admin->SetOptionRing(set).ok(); });
  MCOS_ASSERT_OK(admin->SetOptionRing(set));
  MCOS_ASSERT_OK(admin->AddUser("carol", "carol-pw", false));
  auto at_a = As(*a_);
  ASSERT_NE(at_a, nullptr);
  MCOS_ASSERT_OK(at_a->CreateContainer("behind"));
  const std::string data = testing::RandomBytes(1 << 20, 9);
  absl::StatusOr<mcos::v1::ObjectInfo> put;
  WaitFor([&] {
    std::istringstream in(data);
    put = at_a->PutObject("behind", "o", in);
    return put.ok();
  });
  MCOS_ASSERT_OK(put);
  EXPECT_EQ(Replicas(*put), (std::set<std::string>{"alpha", "beta"}));
  auto at_b = As(*b_);
  ASSERT_NE(at_b, nullptr);
  auto back = Get(*at_b, "behind", "o");
  MCOS_ASSERT_OK(back);
  EXPECT_TRUE(*back == data);
}

TEST_F(FederationE2eTest, ReplayedAndOlderReplicaWritesAreIgnored) {
  // As a peer, at beta's ClusterService: the same version again, then an older one.
  auto [replica, key] = CurrentVersionAtBeta("replay");
  ASSERT_NE(replica, nullptr);
  auto held = replica->Stat(key, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(held);
  // A source that yields `data` once.
  class Bytes final : public replication::ObjectReader {
   public:
    Bytes(mcos::v1::ObjectRecord r, std::string d) : r_(std::move(r)), d_(std::move(d)) {}
    const mcos::v1::ObjectRecord& record() const override { return r_; }
    bool Next(std::string* data) override {
      if (done_) return false;
      done_ = true;
      *data = d_;
      return true;
    }
    absl::Status Finish() override { return absl::OkStatus(); }
    void Cancel() override {}

   private:
    mcos::v1::ObjectRecord r_;
    std::string d_;
    bool done_ = false;
  };
  const absl::Time start = absl::Now();
  Bytes same(*held, "the current version");
  auto again = replica->Put(key, *held, same, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(again);
  EXPECT_FALSE(again->applied);
  mcos::v1::ObjectRecord older = *held;
  older.mutable_version()->set_hlc(held->version().hlc() - 1000);
  older.set_size(3);
  older.set_etag("acbd18db4cc2f85cedef654fccc4a4d8");  // md5("foo")
  older.set_checksum("");
  Bytes old_data(older, "foo");
  auto late = replica->Put(key, older, old_data, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(late);
  EXPECT_FALSE(late->applied);
  std::printf("a replayed and an older replica write were ignored in %s\n",
              absl::FormatDuration(absl::Now() - start).c_str());
  auto back = Get(*As(*b_), "replay", "obj");
  MCOS_ASSERT_OK(back);
  EXPECT_EQ(*back, "the current version");
}

// Streamed replica writes (version at the finish) that lie or stop short, sent as a peer to
// beta's ClusterService: each is refused with INVALID_ARGUMENT saying what is wrong, and beta keeps
// serving the version it had.
TEST_F(FederationE2eTest, StreamedReplicaWritesThatLieOrStopShortStoreNothing) {
  Federate();
  auto at_a = As(*a_);
  MCOS_ASSERT_OK(at_a->CreateContainer("lies"));
  std::istringstream in("the current version");
  auto put = at_a->PutObject("lies", "obj", in);
  MCOS_ASSERT_OK(put);
  auto peer = PeerAuth("alpha");
  ASSERT_NE(peer, nullptr);
  auto stub = mcos::v1::ClusterService::NewStub(common::ConnectInternal(b_->endpoint(), *peer));
  const std::string data = "newer content that never lands";
  // Sends a streamed write of `data` whose finish says `size` and `xxh3` (none: no finish).
  auto send = [&](uint64_t size, std::optional<uint64_t> xxh3) {
    grpc::ClientContext ctx;
    mcos::v1::ClusterWriteResponse resp;
    auto w = stub->ClusterCreateObject(&ctx, &resp);
    mcos::v1::ClusterPutObjectRequest m;
    auto* h = m.mutable_header();
    h->mutable_key()->set_user("carol");
    h->mutable_key()->set_container("lies");
    h->mutable_key()->set_object("obj");
    h->mutable_version()->set_hlc(uint64_t{1} << 62);  // newer than anything
    h->mutable_version()->set_cluster("alpha");
    h->set_coordinator("alpha");
    h->set_version_at_finish(true);
    const mcos::v1::Version version = h->version();
    w->Write(m);
    m.set_data(data);
    w->Write(m);
    if (xxh3) {
      auto* f = m.mutable_finish();
      *f->mutable_version() = version;
      f->set_size(size);
      f->set_md5_hex(testing::Md5Hex(data));
      f->set_sha256_hex(testing::Sha256Hex(data));
      f->set_xxh3(*xxh3);
      w->Write(m);
    }
    w->WritesDone();
    return w->Finish();
  };
  for (const grpc::Status& s :
       {send(data.size(), common::Hash64("other content")),
        send(data.size() + 1, common::Hash64(data)), send(data.size(), std::nullopt)}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("nothing was stored"), std::string::npos) << s.error_message();
  }
  auto back = Get(*As(*b_), "lies", "obj");
  MCOS_ASSERT_OK(back);
  EXPECT_EQ(*back, "the current version");
}

// A create's replica write (ClusterReplicateOp.create, sent by a coordinator that has not stored
// the create yet) is stored only over nothing live and nothing newer; refused, it says what the
// replica holds (a live version: LIVE with its version; a newer tombstone: ABSENT), and the
// replica keeps it. An update's (ClusterReplicateOp.update) only over a live version.
TEST_F(FederationE2eTest, ACreatesReplicaWriteIsStoredOnlyOverNothingLive) {
  auto [replica, key] = CurrentVersionAtBeta("creates");
  ASSERT_NE(replica, nullptr);
  auto held = replica->Stat(key, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(held);
  mcos::v1::WritePrecondition precondition = mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST;
  auto create = [&](const mcos::v1::ObjectKey& k, uint64_t hlc, const std::string& data) {
    mcos::v1::ObjectRecord record;
    record.mutable_version()->set_hlc(hlc);
    record.mutable_version()->set_cluster("alpha");
    record.set_size(data.size());
    record.set_etag(testing::Md5Hex(data));
    absl::Notification answered;
    absl::StatusOr<replication::WriteAck> ack;
    replica->PutIfAsync(k, record, std::make_shared<const std::string>(data),
                        absl::Now() + absl::Seconds(5), precondition,
                        [&](absl::StatusOr<replication::WriteAck> a) {
                          ack = std::move(a);
                          answered.Notify();
                        });
    answered.WaitForNotification();
    return ack;
  };
  const uint64_t base = held->version().hlc();
  // Over a live version, older or not: refused, and the version stays.
  auto over_live = create(key, base + 1000, "a create of a name that exists");
  MCOS_ASSERT_OK(over_live);
  EXPECT_FALSE(over_live->applied);
  EXPECT_EQ(over_live->prior, mcos::v1::WRITE_PRIOR_LIVE);
  EXPECT_EQ(common::CompareVersions(over_live->stored_version, held->version()), 0);
  auto still = replica->Stat(key, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(still);
  EXPECT_EQ(still->etag(), testing::Md5Hex("the current version"));

  // Over nothing: stored.
  mcos::v1::ObjectKey fresh = key;
  fresh.set_object("fresh");
  auto made = create(fresh, base + 1000, "fresh content");
  MCOS_ASSERT_OK(made);
  EXPECT_TRUE(made->applied);
  EXPECT_EQ(made->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  auto stored = replica->Stat(fresh, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(stored);
  EXPECT_EQ(stored->etag(), testing::Md5Hex("fresh content"));
  // The same again: it is live now.
  auto again = create(fresh, base + 1000, "fresh content");
  MCOS_ASSERT_OK(again);
  EXPECT_FALSE(again->applied);
  EXPECT_EQ(again->prior, mcos::v1::WRITE_PRIOR_LIVE);

  // Under a newer tombstone: refused, ABSENT; above it: stored.
  mcos::v1::ObjectRecord tombstone;
  tombstone.set_tombstone(true);
  tombstone.mutable_version()->set_hlc(base + 2000);
  tombstone.mutable_version()->set_cluster("alpha");
  auto deleted = replica->Delete(fresh, tombstone, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(deleted);
  ASSERT_TRUE(deleted->applied);
  auto under = create(fresh, base + 1500, "under the tombstone");
  MCOS_ASSERT_OK(under);
  EXPECT_FALSE(under->applied);
  EXPECT_EQ(under->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  EXPECT_EQ(common::CompareVersions(under->stored_version, tombstone.version()), 0);
  auto above = create(fresh, base + 3000, "above the tombstone");
  MCOS_ASSERT_OK(above);
  EXPECT_TRUE(above->applied);
  auto now = replica->Stat(fresh, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(now);
  EXPECT_EQ(now->etag(), testing::Md5Hex("above the tombstone"));

  // An update's (ClusterReplicateOp.update): over the live version, stored; over nothing,
  // refused (ABSENT), nothing stored.
  precondition = mcos::v1::WRITE_PRECONDITION_MUST_EXIST;
  auto updated = create(fresh, base + 4000, "updated");
  MCOS_ASSERT_OK(updated);
  EXPECT_TRUE(updated->applied);
  EXPECT_EQ(updated->prior, mcos::v1::WRITE_PRIOR_LIVE);
  mcos::v1::ObjectKey none = key;
  none.set_object("none");
  auto missing = create(none, base + 4000, "an update of nothing");
  MCOS_ASSERT_OK(missing);
  EXPECT_FALSE(missing->applied);
  EXPECT_EQ(missing->prior, mcos::v1::WRITE_PRIOR_ABSENT);
  MCOS_EXPECT_CODE(replica->Stat(none, absl::Now() + absl::Seconds(5)), kNotFound);
}

// Small replica writes (ClusterPutSmallObject: header and content in one message) sent as a peer
// to beta: a replay and an older version are ignored (applied = false) through PutAsync; one
// whose content is not the header's size, over 1 MiB, without a header or a name, streamed, or
// without its md5 is refused with INVALID_ARGUMENT saying nothing was stored; a user's token is
// refused (PERMISSION_DENIED); and beta keeps serving the version it had.
TEST_F(FederationE2eTest, SmallReplicaWritesThatLieStoreNothing) {
  auto [replica, key] = CurrentVersionAtBeta("small");
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(replica->writes_async());
  auto held = replica->Stat(key, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(held);
  auto put_async = [&](const mcos::v1::ObjectRecord& record, const std::string& data) {
    absl::Notification answered;
    absl::StatusOr<replication::WriteAck> ack;
    replica->PutAsync(key, record, std::make_shared<const std::string>(data),
                      absl::Now() + absl::Seconds(5), [&](absl::StatusOr<replication::WriteAck> a) {
                        ack = std::move(a);
                        answered.Notify();
                      });
    answered.WaitForNotification();
    return ack;
  };
  auto again = put_async(*held, "the current version");
  MCOS_ASSERT_OK(again);
  EXPECT_FALSE(again->applied);
  mcos::v1::ObjectRecord older = *held;
  older.mutable_version()->set_hlc(held->version().hlc() - 1000);
  older.set_size(3);
  older.set_etag(testing::Md5Hex("foo"));
  older.set_checksum("");
  auto late = put_async(older, "foo");
  MCOS_ASSERT_OK(late);
  EXPECT_FALSE(late->applied);

  auto peer = PeerAuth("alpha");
  ASSERT_NE(peer, nullptr);
  auto stub = mcos::v1::ClusterService::NewStub(common::ConnectInternal(b_->endpoint(), *peer));
  const std::string data = "newer content that never lands";
  auto request = [&] {
    mcos::v1::ClusterPutSmallObjectRequest r;
    auto* h = r.mutable_header();
    *h->mutable_key() = key;
    h->mutable_version()->set_hlc(uint64_t{1} << 62);  // newer than anything
    h->mutable_version()->set_cluster("alpha");
    h->set_coordinator("alpha");
    h->set_size(data.size());
    h->set_md5_hex(testing::Md5Hex(data));
    r.set_data(data);
    return r;
  };
  auto send = [&](const mcos::v1::ClusterPutSmallObjectRequest& r) {
    grpc::ClientContext ctx;
    mcos::v1::ClusterWriteResponse resp;
    return stub->ClusterPutSmallObject(&ctx, r, &resp);
  };
  std::vector<mcos::v1::ClusterPutSmallObjectRequest> lies;
  lies.push_back(request());
  lies.back().mutable_header()->set_size(data.size() + 1);  // longer than what came
  lies.push_back(request());
  lies.back().set_data(data + "!");  // more than the header says
  lies.push_back(request());
  lies.back().mutable_header()->set_md5_hex(testing::Md5Hex("other content"));
  lies.push_back(request());
  lies.back().mutable_header()->clear_md5_hex();
  lies.push_back(request());
  lies.back().mutable_header()->set_version_at_finish(true);
  lies.push_back(request());
  lies.back().clear_header();
  lies.push_back(request());
  lies.back().set_data(std::string((1 << 20) + 1, 'x'));
  lies.back().mutable_header()->set_size(lies.back().data().size());
  lies.back().mutable_header()->set_md5_hex(testing::Md5Hex(lies.back().data()));
  for (const auto& lie : lies) {
    const grpc::Status s = send(lie);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message() << " for " << lie.header().ShortDebugString();
    EXPECT_NE(s.error_message().find("nothing was stored"), std::string::npos) << s.error_message();
  }
  auto unnamed = request();
  unnamed.mutable_header()->mutable_key()->set_object("");
  EXPECT_EQ(send(unnamed).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A user's token is no peer credential.
  auto as_user = mcos::v1::ClusterService::NewStub(
      grpc::CreateChannel(b_->endpoint(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext user_ctx;
  auto at_a = As(*a_);
  ASSERT_NE(at_a, nullptr);
  user_ctx.AddMetadata("authorization", "Bearer " + at_a->token());
  mcos::v1::ClusterWriteResponse resp;
  EXPECT_EQ(as_user->ClusterPutSmallObject(&user_ctx, request(), &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto back = Get(*As(*b_), "small", "obj");
  MCOS_ASSERT_OK(back);
  EXPECT_EQ(*back, "the current version");
}

// ClusterReplicate: each operation is answered by its id with what its own call would answer (a
// lie is its answer's INVALID_ARGUMENT, not the stream's end); a broken protocol ends the stream;
// only a peer may open one; nothing held changes.
TEST_F(FederationE2eTest, TheReplicationStreamAnswersEachOperationAndRefusesWhatIsWrong) {
  auto [replica, key] = CurrentVersionAtBeta("streamed");
  ASSERT_NE(replica, nullptr);
  auto held = replica->Stat(key, absl::Now() + absl::Seconds(5));
  MCOS_ASSERT_OK(held);
  auto peer = PeerAuth("alpha");
  ASSERT_NE(peer, nullptr);
  auto stub = mcos::v1::ClusterService::NewStub(common::ConnectInternal(b_->endpoint(), *peer));

  mcos::v1::ClusterReplicateRequest batch;
  auto add = [&](uint64_t id) {
    auto* op = batch.add_ops();
    op->set_id(id);
    op->set_timeout_ms(5000);
    return op;
  };
  *add(1)->mutable_stat()->mutable_key() = key;
  auto* lie = add(2)->mutable_put();
  *lie->mutable_header()->mutable_key() = key;
  lie->mutable_header()->mutable_version()->set_hlc(uint64_t{1} << 62);
  lie->mutable_header()->mutable_version()->set_cluster("alpha");
  lie->mutable_header()->set_size(5);
  lie->mutable_header()->set_md5_hex(testing::Md5Hex("other"));
  lie->set_data("lies!");
  mcos::v1::ObjectKey missing = key;
  missing.set_object("never-written");
  *add(3)->mutable_stat()->mutable_key() = missing;
  auto* replay = add(4)->mutable_delete_();
  *replay->mutable_key() = key;
  *replay->mutable_version() = held->version();
  replay->mutable_version()->set_hlc(held->version().hlc() - 1000);  // older than what is held
  {
    grpc::ClientContext ctx;
    auto stream = stub->ClusterReplicate(&ctx);
    ASSERT_TRUE(stream->Write(batch));
    std::map<uint64_t, mcos::v1::ClusterReplicateAnswer> answers;
    mcos::v1::ClusterReplicateResponse in;
    while (answers.size() < 4 && stream->Read(&in)) {
      for (const auto& a : in.answers()) answers[a.id()] = a;
    }
    ASSERT_EQ(answers.size(), 4U);
    EXPECT_EQ(answers[1].code(), 0) << answers[1].message();
    EXPECT_EQ(answers[1].stat().record().version().hlc(), held->version().hlc());
    EXPECT_EQ(answers[2].code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(answers[2].message().find("nothing was stored"), std::string::npos)
        << answers[2].message();
    EXPECT_FALSE(answers[2].has_write());
    EXPECT_EQ(answers[3].code(), grpc::StatusCode::NOT_FOUND) << answers[3].message();
    EXPECT_EQ(answers[4].code(), 0) << answers[4].message();
    EXPECT_FALSE(answers[4].write().applied());
    EXPECT_EQ(answers[4].write().stored_version().hlc(), held->version().hlc());
    // The stream goes on; one id twice among unanswered operations ends it.
    mcos::v1::ClusterReplicateRequest twice;
    for (int i = 0; i < 2; ++i) {
      auto* op = twice.add_ops();
      op->set_id(7);
      *op->mutable_stat()->mutable_key() = key;
    }
    ASSERT_TRUE(stream->Write(twice));
    stream->WritesDone();
    while (stream->Read(&in)) {
    }
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("unanswered"), std::string::npos) << s.error_message();
  }
  auto ends_with = [&](grpc::ClientContext& ctx, mcos::v1::ClusterService::Stub& on,
                       const mcos::v1::ClusterReplicateRequest& message) {
    auto stream = on.ClusterReplicate(&ctx);
    stream->Write(message);
    stream->WritesDone();
    mcos::v1::ClusterReplicateResponse in;
    while (stream->Read(&in)) {
    }
    return stream->Finish();
  };
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(ends_with(ctx, *stub, mcos::v1::ClusterReplicateRequest()).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    mcos::v1::ClusterReplicateRequest unnamed;
    unnamed.add_ops()->set_id(1);
    grpc::ClientContext ctx;
    const grpc::Status s = ends_with(ctx, *stub, unnamed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("names no operation"), std::string::npos) << s.error_message();
  }
  {
    // A user's token is no peer credential.
    auto as_user = mcos::v1::ClusterService::NewStub(
        grpc::CreateChannel(b_->endpoint(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    auto at_a = As(*a_);
    ASSERT_NE(at_a, nullptr);
    ctx.AddMetadata("authorization", "Bearer " + at_a->token());
    EXPECT_EQ(ends_with(ctx, *as_user, batch).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  auto back = Get(*As(*b_), "streamed", "obj");
  MCOS_ASSERT_OK(back);
  EXPECT_EQ(*back, "the current version");
}

// A replication stream is served only as long as its credential may be trusted
// (--replication-stream-lifetime-s, 20 minutes by default; 2 s here): an operation that arrives
// later is answered UNAVAILABLE without being done, and the server ends the stream cleanly.
class ShortReplicationStreamE2eTest : public FederationE2eTest {
 protected:
  ShortReplicationStreamE2eTest() { cluster_args_ = {"--replication-stream-lifetime-s", "2"}; }
};

TEST_F(ShortReplicationStreamE2eTest, AStreamOlderThanItsLifetimeDoesNothingMoreAndEnds) {
  Federate();
  auto peer = PeerAuth("alpha");
  ASSERT_NE(peer, nullptr);
  auto stub = mcos::v1::ClusterService::NewStub(common::ConnectInternal(b_->endpoint(), *peer));
  auto stat_of = [](uint64_t id, const std::string& object) {
    mcos::v1::ClusterReplicateRequest message;
    auto* op = message.add_ops();
    op->set_id(id);
    op->set_timeout_ms(5000);
    op->mutable_stat()->mutable_key()->set_user("carol");
    op->mutable_stat()->mutable_key()->set_container("c");
    op->mutable_stat()->mutable_key()->set_object(object);
    op->mutable_stat()->set_include_tombstone(true);
    return message;
  };
  auto tombstone = [](uint64_t id) {
    mcos::v1::ClusterReplicateRequest message;
    auto* op = message.add_ops();
    op->set_id(id);
    op->set_timeout_ms(5000);
    auto* del = op->mutable_delete_();
    del->mutable_key()->set_user("carol");
    del->mutable_key()->set_container("c");
    del->mutable_key()->set_object("late");
    del->mutable_version()->set_hlc(uint64_t{1} << 62);
    del->mutable_version()->set_cluster("alpha");
    return message;
  };
  grpc::ClientContext ctx;
  auto stream = stub->ClusterReplicate(&ctx);
  mcos::v1::ClusterReplicateResponse in;
  ASSERT_TRUE(stream->Write(stat_of(1, "young")));
  ASSERT_TRUE(stream->Read(&in));
  ASSERT_EQ(in.answers_size(), 1);
  EXPECT_EQ(in.answers(0).code(), grpc::StatusCode::NOT_FOUND) << in.answers(0).message();
  absl::SleepFor(absl::Milliseconds(2500));
  ASSERT_TRUE(stream->Write(tombstone(2)));
  ASSERT_TRUE(stream->Read(&in));
  ASSERT_EQ(in.answers_size(), 1);
  EXPECT_EQ(in.answers(0).id(), 2U);
  EXPECT_EQ(in.answers(0).code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(in.answers(0).message(), "older than 2s"))
      << in.answers(0).message();
  EXPECT_TRUE(absl::StrContains(in.answers(0).message(), "nothing was done"));
  stream->WritesDone();
  while (stream->Read(&in)) {
  }
  const grpc::Status ended = stream->Finish();
  EXPECT_TRUE(ended.ok()) << ended.error_message();
  // The tombstone was not stored: beta still holds nothing of that object.
  grpc::ClientContext fresh_ctx;
  auto fresh = stub->ClusterReplicate(&fresh_ctx);
  ASSERT_TRUE(fresh->Write(stat_of(3, "late")));
  ASSERT_TRUE(fresh->Read(&in));
  ASSERT_EQ(in.answers_size(), 1);
  EXPECT_EQ(in.answers(0).code(), grpc::StatusCode::NOT_FOUND) << in.answers(0).message();
  fresh->WritesDone();
  while (fresh->Read(&in)) {
  }
  EXPECT_TRUE(fresh->Finish().ok());
}

// A frozen peer answers nothing on the stream: each operation fails at its own deadline (not the
// stream's, not later), and once the peer is thawed the next operations go through.
TEST_F(FederationE2eTest, StreamedOperationsToAFrozenPeerFailAtTheirDeadline) {
  auto [replica, key] = CurrentVersionAtBeta("frozen");
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(replica->stats_async());
  auto stat = [&, &replica = replica, &key = key](absl::Duration timeout) {
    absl::Notification answered;
    absl::StatusOr<mcos::v1::ObjectRecord> record;
    replica->StatAsync(key, absl::Now() + timeout, [&](absl::StatusOr<mcos::v1::ObjectRecord> r) {
      record = std::move(r);
      answered.Notify();
    });
    answered.WaitForNotification();
    return record;
  };
  MCOS_ASSERT_OK(stat(absl::Seconds(5)));
  kill(b_->pid(), SIGSTOP);
  // SIGSTOP takes effect asynchronously: a thread of beta still running could answer.
  auto stopped = [pid = b_->pid()] {
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
      std::ifstream in(task.path() / "stat");
      std::string line;
      std::getline(in, line);
      const size_t end = line.rfind(')');
      if (end == std::string::npos || end + 2 >= line.size() || line[end + 2] != 'T') return false;
    }
    return !ec;
  };
  ASSERT_LT(WaitFor(stopped, absl::Seconds(5)), absl::Seconds(5));
  const absl::Time start = absl::Now();
  auto frozen = stat(absl::Milliseconds(600));
  const absl::Duration took = absl::Now() - start;
  kill(b_->pid(), SIGCONT);
  EXPECT_TRUE(absl::IsDeadlineExceeded(frozen.status())) << frozen.status();
  EXPECT_GE(took, absl::Milliseconds(550));
  EXPECT_LT(took, absl::Seconds(3));
  absl::StatusOr<mcos::v1::ObjectRecord> thawed;
  for (int i = 0; i < 50; ++i) {  // the first after the thaw may still meet the old stream's end
    thawed = stat(absl::Seconds(5));
    if (thawed.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  MCOS_ASSERT_OK(thawed);
  EXPECT_EQ(thawed->etag(), testing::Md5Hex("the current version"));
}

TEST_F(FederationE2eTest, AKilledClusterLosesNothingAndCatchesUp) {
  Federate();
  auto at_a = As(*a_);
  auto at_b = As(*b_);
  MCOS_ASSERT_OK(at_a->CreateContainer("load"));
  std::istringstream doomed_in("to be deleted while gamma is down");
  MCOS_ASSERT_OK(at_a->PutObject("load", "doomed", doomed_in));
  // beta writes into the container too: wait until it has learnt of it (metadata is pushed at
  // once, but a loaded machine may take a moment).
  ASSERT_LT(WaitFor([&] { return at_b->ListObjects(Listing("load")).ok(); }, absl::Seconds(10)),
            absl::Seconds(10));

  // Writers at alpha and beta; gamma is killed with -9 while they run.
  std::map<std::string, std::string> acked;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  auto writer = [&](Client& at, const std::string& prefix) {
    for (int i = 0; !stop.load() || i < 20; ++i) {
      const std::string name = absl::StrCat(prefix, "-", i);
      const std::string data = testing::RandomBytes(4096 + i, static_cast<uint32_t>(i));
      std::istringstream in(data);
      auto info = at.PutObject("load", name, in);
      if (info.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        acked[name] = data;
      } else {
        if (++failed <= 5)
          std::printf("write %s failed: %s\n", name.c_str(), info.status().ToString().c_str());
      }
      if (i > 200) break;
    }
  };
  std::thread wa([&] { writer(*at_a, "a"); });
  std::thread wb([&] { writer(*at_b, "b"); });
  absl::SleepFor(absl::Milliseconds(300));
  c_->Kill();
  absl::SleepFor(absl::Milliseconds(700));
  stop = true;
  wa.join();
  wb.join();
  std::printf("%zu writes acknowledged, %d failed, gamma killed during them\n", acked.size(),
              failed.load());
  EXPECT_EQ(failed.load(), 0) << "R=3, W=2: one cluster down must not fail writes";
  MCOS_ASSERT_OK(at_a->DeleteObject("load", "doomed"));
  // Every acknowledged write reads back, byte-identical, at alpha and beta.
  for (const auto& [name, data] : acked) {
    for (Client* at : {at_a.get(), at_b.get()}) {
      auto back = Get(*at, "load", name);
      MCOS_ASSERT_OK(back);
      EXPECT_TRUE(*back == data) << name;
    }
  }
  // The missed writes wait in the queues of alpha and beta.
  auto admin = Admin(*a_);
  auto repair = admin->GetRepairStatus();
  MCOS_ASSERT_OK(repair);
  EXPECT_GT(repair->queued_tasks(), 0u);

  // gamma comes back and catches up from the queues.
  const absl::Time restarted = absl::Now();
  MCOS_ASSERT_OK(c_->Start({"--name", "gamma", "--federation-secret-file", secret_,
                            "--federation-sync-period-ms", "200"}));
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  const absl::Duration caught_up = WaitFor(
      [&] {
        auto listed = at_c->ListObjects(Listing("load"));
        if (!listed.ok()) return false;
        size_t full = 0;
        for (const auto& o : listed->objects()) full += Replicas(o) == kAll ? 1 : 0;
        return full == acked.size() && listed->objects_size() == static_cast<int>(acked.size());
      },
      absl::Seconds(60));
  std::printf("restarted gamma held all %zu objects %s after its restart\n", acked.size(),
              absl::FormatDuration(absl::Now() - restarted).c_str());
  EXPECT_LT(caught_up, absl::Seconds(60));
  for (const auto& [name, data] : acked) {
    auto back = Get(*at_c, "load", name);
    MCOS_ASSERT_OK(back);
    EXPECT_TRUE(*back == data) << name;
  }
  // The object deleted while gamma was down stays deleted there and in every listing.
  MCOS_EXPECT_CODE(at_c->StatObject("load", "doomed"), kNotFound);
  for (auto* c : {a_, b_, c_}) {
    auto listed = As(*c)->ListObjects(Listing("load"));
    MCOS_ASSERT_OK(listed);
    for (const auto& o : listed->objects()) EXPECT_NE(o.object(), "doomed");
  }
  WaitFor([&] {
    auto r = admin->GetRepairStatus();
    return r.ok() && r->queued_tasks() == 0;
  });
  auto drained = admin->GetRepairStatus();
  MCOS_ASSERT_OK(drained);
  EXPECT_EQ(drained->queued_tasks(), 0u);
}

TEST_F(FederationE2eTest, TheReplicationQueueSurvivesARestartOfTheCoordinator) {
  Federate();
  auto at_a = As(*a_);
  MCOS_ASSERT_OK(at_a->CreateContainer("queued"));
  c_->Kill();
  std::map<std::string, std::string> acked;
  for (int i = 0; i < 10; ++i) {
    const std::string data = testing::RandomBytes(1000 + i, static_cast<uint32_t>(i));
    std::istringstream in(data);
    MCOS_ASSERT_OK(at_a->PutObject("queued", absl::StrCat("q", i), in));
    acked[absl::StrCat("q", i)] = data;
  }
  auto repair = Admin(*a_)->GetRepairStatus();
  MCOS_ASSERT_OK(repair);
  uint64_t for_gamma = 0;  // (writes of the set-up may still wait for beta too)
  for (const auto& link : repair->links()) {
    if (link.to_cluster() == "gamma") for_gamma = link.backlog();
  }
  EXPECT_GE(for_gamma, 10u);
  // The coordinator's cluster dies too, and comes back on another port; then gamma comes back.
  a_->Kill();
  const std::vector<std::string> args = {
      "--name", "alpha", "--federation-secret-file", secret_, "--federation-sync-period-ms", "200"};
  MCOS_ASSERT_OK(a_->Start(args));
  MCOS_ASSERT_OK(c_->Start({"--name", "gamma", "--federation-secret-file", secret_,
                            "--federation-sync-period-ms", "200"}));
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  const absl::Time start = absl::Now();
  WaitFor(
      [&] {
        for (const auto& [name, data] : acked) {
          auto stat = at_c->StatObject("queued", name);
          if (!stat.ok() || Replicas(*stat) != kAll) return false;
        }
        return true;
      },
      absl::Seconds(60));
  std::printf("gamma held the 10 writes queued at alpha (restarted meanwhile) after %s\n",
              absl::FormatDuration(absl::Now() - start).c_str());
  for (const auto& [name, data] : acked) {
    // Until gamma's discovery learns alpha's new address, calls to alpha go to the old one and
    // fail, which keeps alpha out of gamma's reads until a probe at the new one succeeds (failures
    // through the old replica once the new one is used no longer count): what gamma names is
    // checked once that settled.
    WaitFor(
        [&] {
          auto stat = at_c->StatObject("queued", name);
          return stat.ok() && Replicas(*stat) == kAll;
        },
        absl::Seconds(10));
    auto stat = at_c->StatObject("queued", name);
    MCOS_ASSERT_OK(stat);
    EXPECT_EQ(Replicas(*stat), kAll) << name;
    auto back = Get(*at_c, "queued", name);
    MCOS_ASSERT_OK(back);
    EXPECT_TRUE(*back == data) << name;
  }
}

TEST_F(FederationE2eTest, AFrozenClusterDelaysNoWriteBeyondTheQuorum) {
  Federate();
  auto at_a = As(*a_);
  MCOS_ASSERT_OK(at_a->CreateContainer("frozen"));
  kill(c_->pid(), SIGSTOP);
  std::vector<double> ms;
  std::map<std::string, std::string> acked;
  for (int i = 0; i < 60; ++i) {
    const std::string data = testing::RandomBytes(4096, static_cast<uint32_t>(i));
    std::istringstream in(data);
    const absl::Time start = absl::Now();
    // Puts, and strict creates (sent to beta and gamma before alpha stores them).
    auto info = i % 2 == 0 ? at_a->PutObject("frozen", absl::StrCat("o", i), in)
                           : at_a->CreateObject("frozen", absl::StrCat("o", i), in);
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    MCOS_ASSERT_OK(info);
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"alpha", "beta"}));  // not the frozen one
    acked[absl::StrCat("o", i)] = data;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("60 writes at alpha while gamma was frozen: p50 %.1f ms, p99 %.1f ms\n",
              ms[ms.size() / 2], ms[ms.size() * 99 / 100]);
  kill(c_->pid(), SIGCONT);
  auto at_c = As(*c_);
  ASSERT_NE(at_c, nullptr);
  const absl::Time thawed = absl::Now();
  WaitFor(
      [&] {
        for (const auto& [name, data] : acked) {
          auto stat = at_c->StatObject("frozen", name);
          if (!stat.ok() || Replicas(*stat) != kAll) return false;
        }
        return true;
      },
      absl::Seconds(60));
  std::printf("thawed gamma held all 60 after %s\n",
              absl::FormatDuration(absl::Now() - thawed).c_str());
  for (const auto& [name, data] : acked) {
    auto stat = at_c->StatObject("frozen", name);
    MCOS_ASSERT_OK(stat);
    EXPECT_EQ(Replicas(*stat), kAll) << name;
  }
}

TEST_F(FederationE2eTest, PeersOverMutualTls) {
  // Each cluster serves its own certificate, requires client certificates of the CA, and calls its
  // peers over TLS presenting its certificate.
  auto ca = testing::TestCa::Create(dir_.path(), "ca");
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto tls_args = [&](const std::string& name) {
    auto cert = ca->Issue(name);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return std::vector<std::string>{"--tls-cert",      cert->cert, "--tls-key", cert->key,
                                    "--tls-client-ca", ca->cert(), "--tls-ca",  ca->cert()};
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
  for (const auto& [file, words] : std::vector<std::pair<std::string, std::string>>{
           {open_secret, "chmod 600"},
           {short_secret, "at least 32"},
           {dir_.path() + "/none", "does not exist"}}) {
    testing::ClusterProcess c(MCOS_CLUSTER_BIN, dir_.path() + "/bad", dir_.path() + "/bad.log");
    EXPECT_FALSE(c.Start({"--federation-secret-file", file}).ok()) << file;
    std::ifstream log(dir_.path() + "/bad.log");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(absl::StrContains(text, words)) << text;
  }
}

}  // namespace
}  // namespace mcos
