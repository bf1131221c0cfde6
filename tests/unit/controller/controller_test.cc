#include "controller/controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "tests/support/fake_clock.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos::controller {
namespace {

class FakeProbe final : public HealthProbe {
 public:
  absl::Status Check(const std::string& endpoint, const std::string& service,
                     absl::Duration) override {
    if (during_check) during_check(endpoint);
    if (!healthy[endpoint]) return absl::UnavailableError("connection refused");
    if (!service.empty() && full[endpoint]) return absl::FailedPreconditionError("not serving");
    return absl::OkStatus();
  }
  std::map<std::string, bool> healthy;
  std::map<std::string, bool> full;
  // Runs while a check is under way (e.g. the service registers again meanwhile).
  std::function<void(const std::string&)> during_check;
};

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = dir_.path();
    options_.token_key = std::string(32, 'k');
    options_.argon2.memory_kib = 1024;
    options_.admin_password = "root-pw";
    options_.cluster_id = "c1";
    options_.down_after_misses = 2;
    auto c = Controller::Open(options_, clock_, probe_);
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = std::move(*c);
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  FakeProbe probe_;
  ControllerOptions options_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, BootstrapsAdminDefaultRingAndOption) {
  auto login = controller_->users().Login("admin", "root-pw");
  MCOS_ASSERT_OK(login);
  EXPECT_EQ(login->role(), "admin");
  auto snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  ASSERT_EQ(snap->rings_size(), 1);
  EXPECT_EQ(snap->rings(0).members(0).cluster(), "c1");
  ASSERT_EQ(snap->options_size(), 1);
  EXPECT_TRUE(snap->options(0).is_default());
}

TEST_F(ControllerTest, RingsAreStoredWithLayoutsAndShownWithout) {
  mcos::v1::Ring ring;
  ring.set_id("r2");
  ring.set_partition_power(10);
  ring.set_replicas(1);
  auto* m = ring.add_members();
  m->set_cluster("c1");
  m->set_weight(2);
  auto created = controller_->CreateRing(ring);
  MCOS_ASSERT_OK(created);
  EXPECT_FALSE(created->has_layout());                        // answers leave the layout out...
  EXPECT_EQ(created->members(0).assigned_replicas(), 1024u);  // ...and say what it holds
  EXPECT_DOUBLE_EQ(created->members(0).ideal_replicas(), 1024.0);
  auto snap = controller_->Snapshot();  // resolvers get it
  MCOS_ASSERT_OK(snap);
  const mcos::v1::Ring* stored = nullptr;
  for (const auto& r : snap->rings()) {
    if (r.id() == "r2") stored = &r;
  }
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->layout().slots().size(), 2u * 1024);
  // A snapshot at the current revision is "unchanged" and carries no rings.
  auto same = controller_->Snapshot(snap->revision());
  MCOS_ASSERT_OK(same);
  EXPECT_TRUE(same->unchanged());
  EXPECT_EQ(same->rings_size(), 0);

  mcos::v1::UpdateRingRequest update;
  update.set_id("r2");
  update.set_partition_power(12);
  update.set_dry_run(true);
  auto dry = controller_->UpdateRing(update);
  MCOS_ASSERT_OK(dry);
  EXPECT_EQ(dry->plan().partitions_total(), 4096u);
  EXPECT_EQ(dry->plan().partitions_moved(), 0u);
  EXPECT_TRUE(dry->plan().bytes_unknown());  // no storage service in this test
  EXPECT_EQ(dry->ring().version(), 1u);
  auto unchanged = controller_->Snapshot(snap->revision());
  MCOS_ASSERT_OK(unchanged);
  EXPECT_TRUE(unchanged->unchanged()) << "a dry run must not write";
  update.set_dry_run(false);
  auto done = controller_->UpdateRing(update);
  MCOS_ASSERT_OK(done);
  EXPECT_EQ(done->ring().version(), 2u);
  EXPECT_EQ(done->ring().partition_power(), 12u);
  EXPECT_EQ(done->ring().members(0).cluster(), "c1");  // members kept when none are given
  EXPECT_EQ(done->ring().members(0).assigned_replicas(), 4096u);
  auto after = controller_->Snapshot(snap->revision());
  MCOS_ASSERT_OK(after);
  EXPECT_FALSE(after->unchanged());
  EXPECT_GT(after->revision(), snap->revision());
  update.set_partition_power(19);
  MCOS_EXPECT_CODE(controller_->UpdateRing(update), kInvalidArgument);
}

// A ring change keeps the former layout of every option with containers live until every cluster
// settled it and every cluster holding partitions now synced it (docs/placement.md, Moving data).
TEST_F(ControllerTest, ARingChangeKeepsTheFormerLayoutUntilEveryClusterConfirms) {
  for (const char* c : {"c2", "c3"}) {
    mcos::v1::ClusterInfo info;
    info.set_id(c);
    info.set_controller_endpoint(absl::StrCat("127.0.0.1:", c[1] == '2' ? 1002 : 1003));
    MCOS_ASSERT_OK(controller_->PutCluster(info));
  }
  mcos::v1::Ring ring;
  ring.set_id("pair");
  ring.set_partition_power(4);
  ring.set_replicas(2);
  for (const char* c : {"c1", "c2"}) {
    auto* m = ring.add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  MCOS_ASSERT_OK(controller_->CreateRing(ring));
  for (const char* name : {"used", "unused"}) {
    mcos::v1::Option o;
    o.set_name(name);
    o.set_ring("pair");
    MCOS_ASSERT_OK(controller_->AddOption(o));
  }
  MCOS_ASSERT_OK(controller_->CreateContainer("alice", "box", "used"));
  auto update = [&](std::vector<const char*> members) {
    mcos::v1::UpdateRingRequest req;
    req.set_id("pair");
    for (const char* c : members) {
      auto* m = req.add_members();
      m->set_cluster(c);
      m->set_weight(1);
    }
    return controller_->UpdateRing(req);
  };
  MCOS_ASSERT_OK(update({"c2", "c3"}));
  auto snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  // Only the option with a container has data to move.
  ASSERT_EQ(snap->former_layouts_size(), 1);
  const mcos::v1::FormerLayout former = snap->former_layouts(0);
  EXPECT_EQ(former.option(), "used");
  EXPECT_EQ(former.ring().version(), 1u);
  EXPECT_EQ(former.ring().layout().slots().size(), 2u * 16 * 2);
  EXPECT_EQ(former.to_ring_version(), 2u);
  EXPECT_EQ(snap->clusters_size(), 2);  // the federation's clusters come with a move

  auto status = controller_->RebalanceStatus();
  MCOS_ASSERT_OK(status);
  ASSERT_EQ(status->tasks_size(), 1);
  EXPECT_EQ(status->tasks(0).option(), "used");
  EXPECT_EQ(status->tasks(0).clusters_size(), 3);
  EXPECT_EQ(status->tasks(0).partitions_left(), 32u);  // c2 and c3 hold all 16 partitions each

  // What a cluster reports (its own rows come from RecordMoves, peers' rows by federation).
  auto report = [&](const std::string& cluster, uint64_t ring_version, bool synced) {
    mcos::v1::MoveReport r;
    r.set_option("used");
    r.set_cluster(cluster);
    r.set_ring("pair");
    r.set_ring_version(ring_version);
    r.add_settled(former.id());
    if (synced) r.add_synced(former.id());
    if (cluster == "c1") return controller_->RecordMoves({r});
    mcos::v1::MetadataRow row;
    row.set_table("move_reports");
    row.set_key(absl::StrCat("used/", cluster));
    row.set_value(r.SerializeAsString());
    row.mutable_version()->set_hlc(uint64_t{1} << 60);
    row.mutable_version()->set_cluster(cluster);
    return controller_->metadata().Apply({row}).status();
  };
  MCOS_ASSERT_OK(report("c1", 2, false));
  MCOS_ASSERT_OK(report("c2", 2, true));
  MCOS_ASSERT_OK(report("c3", 1, true));  // about the former placement: it does not count
  auto retired = controller_->RetireMoves();
  MCOS_ASSERT_OK(retired);
  EXPECT_EQ(*retired, 0);
  status = controller_->RebalanceStatus();
  MCOS_ASSERT_OK(status);
  ASSERT_EQ(status->tasks_size(), 1);
  EXPECT_EQ(status->tasks(0).partitions_done(), 16u);
  EXPECT_EQ(status->tasks(0).partitions_left(), 16u);

  // Further changes keep at most four former layouts per option.
  MCOS_ASSERT_OK(update({"c1", "c3"}));
  MCOS_ASSERT_OK(update({"c2", "c3"}));
  MCOS_ASSERT_OK(update({"c1", "c2"}));
  MCOS_EXPECT_CODE(update({"c1", "c3"}), kFailedPrecondition);
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  EXPECT_EQ(snap->former_layouts_size(), 4);
  // Reports about version 5, the current one: c1 and c2 hold partitions now, c3 none.
  std::vector<std::string> ids;
  for (const auto& f : snap->former_layouts()) ids.push_back(f.id());
  auto report_all = [&](const std::string& cluster, const std::vector<std::string>& synced) {
    mcos::v1::MoveReport r;
    r.set_option("used");
    r.set_cluster(cluster);
    r.set_ring("pair");
    r.set_ring_version(5);
    for (const auto& id : ids) r.add_settled(id);
    for (const auto& id : synced) r.add_synced(id);
    if (cluster == "c1") return controller_->RecordMoves({r});
    mcos::v1::MetadataRow row;
    row.set_table("move_reports");
    row.set_key(absl::StrCat("used/", cluster));
    row.set_value(r.SerializeAsString());
    row.mutable_version()->set_hlc((uint64_t{1} << 60) + 1);
    row.mutable_version()->set_cluster(cluster);
    return controller_->metadata().Apply({row}).status();
  };
  // c3 holds nothing now: it only settles. c1 synced the first two, c2 all four.
  MCOS_ASSERT_OK(report_all("c1", {ids[0], ids[1]}));
  MCOS_ASSERT_OK(report_all("c2", ids));
  MCOS_ASSERT_OK(report_all("c3", {}));
  retired = controller_->RetireMoves();
  MCOS_ASSERT_OK(retired);
  EXPECT_EQ(*retired, 2);
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  ASSERT_EQ(snap->former_layouts_size(), 2);
  EXPECT_EQ(snap->former_layouts(0).id(), ids[2]);
  // A report keeps what was synced before (another server of c1 may lag behind).
  MCOS_ASSERT_OK(report_all("c1", {ids[2], ids[3]}));
  retired = controller_->RetireMoves();
  MCOS_ASSERT_OK(retired);
  EXPECT_EQ(*retired, 2);
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  EXPECT_EQ(snap->former_layouts_size(), 0);
  EXPECT_EQ(snap->move_reports_size(), 0);
  status = controller_->RebalanceStatus();
  MCOS_ASSERT_OK(status);
  EXPECT_EQ(status->tasks_size(), 0);
  // The option with no container moved at once; a set-ring of the used one keeps a layout.
  mcos::v1::SetOptionRingRequest set;
  set.set_option("used");
  set.set_ring("default");
  MCOS_ASSERT_OK(controller_->SetOptionRing(set));
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  ASSERT_EQ(snap->former_layouts_size(), 1);
  EXPECT_EQ(snap->former_layouts(0).ring().id(), "pair");
  EXPECT_EQ(snap->former_layouts(0).to_ring(), "default");
}

TEST_F(ControllerTest, TokensCarryUserRoleAndExpire) {
  MCOS_ASSERT_OK(controller_->users().AddUser("alice", "pw", "user"));
  auto login = controller_->users().Login("alice", "pw");
  MCOS_ASSERT_OK(login);
  auto claims = controller_->users().VerifyToken(login->token());
  MCOS_ASSERT_OK(claims);
  EXPECT_EQ(claims->user(), "alice");
  EXPECT_EQ(claims->role(), "user");
  clock_.Advance(options_.token_ttl + absl::Seconds(1));
  MCOS_EXPECT_CODE(controller_->users().VerifyToken(login->token()), kUnauthenticated);
}

TEST_F(ControllerTest, FailedLoginsAreLimitedPerAddressWithoutLockingTheOwnerOut) {
  const LoginLimits& limits = options_.login_limits;
  MCOS_ASSERT_OK(controller_->users().AddUser("bob", "pw", "user"));
  for (int i = 0; i < limits.address_burst; ++i) {
    MCOS_EXPECT_CODE(controller_->users().Login("bob", "wrong", "10.0.0.66"), kUnauthenticated);
  }
  // The guessing address is refused before any hash, even with the right password...
  MCOS_EXPECT_CODE(controller_->users().Login("bob", "pw", "10.0.0.66"), kResourceExhausted);
  MCOS_EXPECT_CODE(controller_->users().Login("someone-else", "x", "10.0.0.66"),
                   kResourceExhausted);
  // ... while bob logs in from his own address at once.
  MCOS_EXPECT_OK(controller_->users().Login("bob", "pw", "10.0.0.7"));
  // The address gets one attempt back per refill period.
  clock_.Advance(limits.address_refill);
  MCOS_EXPECT_CODE(controller_->users().Login("bob", "wrong", "10.0.0.66"), kUnauthenticated);
  MCOS_EXPECT_CODE(controller_->users().Login("bob", "wrong", "10.0.0.66"), kResourceExhausted);
}

TEST_F(ControllerTest, GuessingANameFromManyAddressesSlowsItDownButNotForItsOwner) {
  const LoginLimits& limits = options_.login_limits;
  MCOS_ASSERT_OK(controller_->users().AddUser("carol", "pw", "user"));
  MCOS_ASSERT_OK(controller_->users().Login("carol", "pw", "10.1.0.1"));  // her usual address
  // Two failures from each of many addresses use up the name's attempts.
  int refused = 0;
  for (int a = 0; a < limits.name_burst; ++a) {
    const std::string address = absl::StrCat("10.2.0.", a);
    for (int i = 0; i < 2; ++i) {
      auto r = controller_->users().Login("carol", "wrong", address);
      if (r.status().code() == absl::StatusCode::kResourceExhausted) ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  // An address with failures behind it is refused for carol now...
  MCOS_EXPECT_CODE(controller_->users().Login("carol", "pw", "10.2.0.1"), kResourceExhausted);
  // ... but not her usual address, even after a typo, nor a fresh one.
  MCOS_EXPECT_CODE(controller_->users().Login("carol", "typo", "10.1.0.1"), kUnauthenticated);
  MCOS_EXPECT_OK(controller_->users().Login("carol", "pw", "10.1.0.1"));
  MCOS_EXPECT_OK(controller_->users().Login("carol", "pw", "10.3.0.1"));
}

TEST_F(ControllerTest, ParallelGuessesCountBeforeTheyAreChecked) {
  const LoginLimits& limits = options_.login_limits;
  MCOS_ASSERT_OK(controller_->users().AddUser("dan", "pw", "user"));
  std::atomic<int> checked{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3 * limits.address_burst; ++i) {
    threads.emplace_back([&] {
      auto r = controller_->users().Login("dan", "wrong", "10.9.9.9");
      (r.status().code() == absl::StatusCode::kResourceExhausted ? refused : checked)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(checked.load(), limits.address_burst);
  EXPECT_EQ(refused.load(), 2 * limits.address_burst);
}

TEST_F(ControllerTest, UserRules) {
  MCOS_EXPECT_CODE(controller_->users().AddUser("bad name", "pw", "user"), kInvalidArgument);
  MCOS_EXPECT_CODE(controller_->users().AddUser("carol", "", "user"), kInvalidArgument);
  MCOS_EXPECT_CODE(controller_->users().AddUser("carol", "pw", "root"), kInvalidArgument);
  MCOS_ASSERT_OK(controller_->users().AddUser("carol", "pw", "user"));
  MCOS_EXPECT_CODE(controller_->users().AddUser("carol", "pw", "user"), kAlreadyExists);
  MCOS_EXPECT_CODE(controller_->users().RemoveUser("admin"),
                   kFailedPrecondition);  // the last admin
  MCOS_ASSERT_OK(controller_->users().SetPassword("carol", "new"));
  MCOS_EXPECT_CODE(controller_->users().Login("carol", "pw"), kUnauthenticated);
  MCOS_EXPECT_OK(controller_->users().Login("carol", "new"));
  MCOS_ASSERT_OK(controller_->users().RemoveUser("carol"));
  MCOS_EXPECT_CODE(controller_->users().Login("carol", "new"), kUnauthenticated);
  MCOS_EXPECT_CODE(controller_->users().RemoveUser("carol"), kNotFound);
}

TEST_F(ControllerTest, ContainersArePerUserAndBoundToAnOption) {
  auto c = controller_->CreateContainer("alice", "photos", "");
  MCOS_ASSERT_OK(c);
  EXPECT_EQ(c->option(), "default");
  MCOS_EXPECT_OK(controller_->CreateContainer("bob", "photos", "default"));
  MCOS_EXPECT_CODE(controller_->CreateContainer("alice", "photos", ""), kAlreadyExists);
  MCOS_EXPECT_CODE(controller_->CreateContainer("alice", "x", "gold"), kNotFound);
  mcos::v1::ListUserContainersRequest req;
  req.set_user("alice");
  auto list = controller_->ListContainers(req);
  MCOS_ASSERT_OK(list);
  ASSERT_EQ(list->containers_size(), 1);
  MCOS_ASSERT_OK(controller_->DeleteContainer("alice", "photos"));
  MCOS_EXPECT_CODE(controller_->GetContainer("alice", "photos"), kNotFound);
  MCOS_EXPECT_OK(controller_->GetContainer("bob", "photos"));
  MCOS_EXPECT_OK(controller_->CreateContainer("alice", "photos", ""));  // again after delete
}

TEST_F(ControllerTest, MarksServicesDownAfterMissesAndUpWhenTheyAnswer) {
  mcos::v1::RegisterRequest req;
  req.set_kind(mcos::v1::SERVICE_KIND_SERVER);
  req.set_endpoint("127.0.0.1:1");
  MCOS_ASSERT_OK(controller_->registry().Register(req));
  probe_.healthy["127.0.0.1:1"] = false;
  MCOS_ASSERT_OK(controller_->registry().PollOnce());
  EXPECT_EQ((*controller_->registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, true)).size(),
            1u);
  MCOS_ASSERT_OK(controller_->registry().PollOnce());  // second miss: down
  EXPECT_TRUE((*controller_->registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, true)).empty());
  probe_.healthy["127.0.0.1:1"] = true;
  MCOS_ASSERT_OK(controller_->registry().PollOnce());
  auto live = controller_->registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, true);
  MCOS_ASSERT_OK(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].consecutive_misses(), 0u);
  req.set_endpoint("no-port");
  MCOS_EXPECT_CODE(controller_->registry().Register(req), kInvalidArgument);
}

// A service restarted on another port registers again while a health check of its old endpoint
// is under way: the check's outcome must not bring the old endpoint back (it did: the poll wrote
// back the row it had read before probing, and the cluster then advertised a dead address).
TEST_F(ControllerTest, AHealthCheckUnderWayDoesNotUndoARegistration) {
  mcos::v1::RegisterRequest req;
  req.set_kind(mcos::v1::SERVICE_KIND_SERVER);
  req.set_id("server-1");
  req.set_endpoint("127.0.0.1:1");
  MCOS_ASSERT_OK(controller_->registry().Register(req));
  probe_.healthy["127.0.0.1:1"] = false;  // the old process is gone
  probe_.healthy["127.0.0.1:2"] = true;
  MCOS_ASSERT_OK(controller_->registry().PollOnce());  // one miss
  probe_.during_check = [&](const std::string& endpoint) {
    if (endpoint != "127.0.0.1:1") return;
    probe_.during_check = nullptr;
    mcos::v1::RegisterRequest again = req;
    again.set_endpoint("127.0.0.1:2");
    MCOS_ASSERT_OK(controller_->registry().Register(again));
  };
  MCOS_ASSERT_OK(controller_->registry().PollOnce());  // the second miss of the old endpoint
  auto live = controller_->registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, true);
  MCOS_ASSERT_OK(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].endpoint(), "127.0.0.1:2");
  EXPECT_EQ((*live)[0].consecutive_misses(), 0u);
  MCOS_ASSERT_OK(controller_->registry().PollOnce());  // the new endpoint answers
  live = controller_->registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, true);
  MCOS_ASSERT_OK(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].endpoint(), "127.0.0.1:2");
}

TEST_F(ControllerTest, KeepsItsClusterIdAcrossRestarts) {
  controller_.reset();
  options_.cluster_id = "";
  auto again = Controller::Open(options_, clock_, probe_);
  MCOS_ASSERT_OK(again);
  EXPECT_EQ((*again)->cluster_id(), "c1");
  (*again).reset();
  options_.cluster_id = "other";
  MCOS_EXPECT_CODE(Controller::Open(options_, clock_, probe_), kFailedPrecondition);
}

TEST(ControllerNameTest, ANewClusterNameIsLettersDigitsAndDashes) {
  for (const char* bad : {"dc_1", "dc.1", "-dc", "d c"}) {
    testing::TempDir dir;
    testing::FakeClock clock;
    FakeProbe probe;
    ControllerOptions options;
    options.data_dir = dir.path();
    options.token_key = std::string(32, 'k');
    options.argon2.memory_kib = 1024;
    options.admin_password = "pw";
    options.cluster_id = bad;
    MCOS_EXPECT_CODE(Controller::Open(options, clock, probe), kInvalidArgument);
  }
  EXPECT_TRUE(common::ValidateClusterName("eu-west-1").ok());
  EXPECT_TRUE(common::ValidateClusterName("c-3fa2b1c0").ok());
}

// A cluster with data of its own is admitted when its users and containers merge: its placement
// of the options the federation places otherwise becomes a former layout, and the federation's
// rows of the same names are stamped again to win; a join that cannot merge records nothing.
TEST_F(ControllerTest, AClusterWithDataIsAdmittedOrRefusedWithEveryConflict) {
  // Two clusters started alone: c9's data cannot merge here, c8's can.
  std::vector<std::unique_ptr<testing::TempDir>> dirs;
  auto open = [&](const std::string& name) {
    dirs.push_back(std::make_unique<testing::TempDir>());
    ControllerOptions o = options_;
    o.data_dir = dirs.back()->path();
    o.cluster_id = name;
    auto c = Controller::Open(o, clock_, probe_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  };
  auto c9 = open("c9");
  auto c8 = open("c8");
  ASSERT_NE(c9, nullptr);
  ASSERT_NE(c8, nullptr);
  MCOS_ASSERT_OK(c9->users().AddUser("dave", "dave-pw", "user"));
  MCOS_ASSERT_OK(c9->users().AddUser("gone", "gone-pw", "user"));
  MCOS_ASSERT_OK(c9->CreateContainer("dave", "photos", ""));
  MCOS_ASSERT_OK(c9->CreateContainer("admin", "shared", ""));
  MCOS_ASSERT_OK(c8->users().AddUser("frank", "frank-pw", "user"));
  MCOS_ASSERT_OK(c8->CreateContainer("frank", "photos", ""));
  auto info = [](const std::string& name) {
    mcos::v1::ClusterInfo c;
    c.set_id(name);
    c.set_controller_endpoint("127.0.0.1:1009");
    return c;
  };

  // Here: another dave (made later), a removed user's identity "gone" kept, the admin's "shared"
  // under another option.
  clock_.Advance(absl::Seconds(1));
  MCOS_ASSERT_OK(controller_->users().AddUser("dave", "other-pw", "user"));
  MCOS_ASSERT_OK(controller_->users().AddUser("gone", "gone-pw", "user"));
  MCOS_ASSERT_OK(controller_->users().RemoveUser("gone"));
  mcos::v1::Ring ring;
  ring.set_id("here");
  ring.set_partition_power(4);
  ring.set_replicas(1);
  auto* m = ring.add_members();
  m->set_cluster("c1");
  m->set_weight(1);
  MCOS_ASSERT_OK(controller_->CreateRing(ring));
  mcos::v1::Option other;
  other.set_name("other");
  other.set_ring("here");
  MCOS_ASSERT_OK(controller_->AddOption(other));
  MCOS_ASSERT_OK(controller_->CreateContainer("admin", "shared", "other"));
  auto rows = c9->JoinRows();
  MCOS_ASSERT_OK(rows);
  for (const auto& row : *rows) {
    if (row.table() != "users") continue;
    mcos::v1::User u;
    ASSERT_TRUE(u.ParseFromString(row.value()));
    EXPECT_TRUE(u.password_hash().empty()) << u.name();  // hashes stay home
  }
  auto refused = controller_->AdmitCluster(info("c9"), *rows);
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  for (const char* conflict :
       {"user 'dave' is another user there", "identity 'gone' is a removed user's here",
        "container 'admin/shared' uses option 'default' there and 'other' here"}) {
    EXPECT_NE(refused.status().message().find(conflict), std::string::npos)
        << conflict << " in " << refused.status();
  }
  auto clusters = controller_->ListClusters();
  MCOS_ASSERT_OK(clusters);
  for (const auto& c : *clusters) EXPECT_NE(c.id(), "c9");  // nothing recorded
  auto snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  EXPECT_EQ(snap->former_layouts_size(), 0);

  rows = c8->JoinRows();
  MCOS_ASSERT_OK(rows);
  auto admitted = controller_->AdmitCluster(info("c8"), *rows);
  MCOS_ASSERT_OK(admitted);
  EXPECT_FALSE(admitted->member_already);
  EXPECT_EQ(admitted->moving, std::vector<std::string>{"default"});
  EXPECT_EQ(admitted->restamped, 2);  // the default ring (another member), admin
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  ASSERT_EQ(snap->former_layouts_size(), 1);
  EXPECT_EQ(snap->former_layouts(0).option(), "default");
  EXPECT_EQ(snap->former_layouts(0).ring().members(0).cluster(), "c8");
  // The federation's rows now win over the joiner's of the same names (those that differ).
  auto mine = controller_->metadata().RowsAfter(0, 100000);
  MCOS_ASSERT_OK(mine);
  for (const auto& row : *rows) {
    if (row.table() != "rings" && row.table() != "options") continue;
    for (const auto& r : *mine) {
      if (r.table() == row.table() && r.key() == row.key() && r.value() != row.value()) {
        EXPECT_GT(r.version().hlc(), row.version().hlc()) << row.table() << "/" << row.key();
      }
    }
  }
  // Undone (the introduction failed): the row and the former layout go.
  MCOS_ASSERT_OK(controller_->UndoAdmission("c8", *admitted));
  snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  EXPECT_EQ(snap->former_layouts_size(), 0);
  clusters = controller_->ListClusters();
  MCOS_ASSERT_OK(clusters);
  for (const auto& c : *clusters) EXPECT_NE(c.id(), "c8");
}

// A cluster gone for good leaves every ring at once; the options with containers keep their
// former layouts without it, so that its successors copy from the survivors.
TEST_F(ControllerTest, ADroppedClusterLeavesEveryRingAndTheFormerSetsOmitIt) {
  for (const char* c : {"c2", "c3"}) {
    mcos::v1::ClusterInfo info;
    info.set_id(c);
    info.set_controller_endpoint(absl::StrCat("127.0.0.1:", c[1] == '2' ? 1002 : 1003));
    MCOS_ASSERT_OK(controller_->PutCluster(info));
  }
  auto make = [&](const std::string& id, uint32_t replicas, std::vector<const char*> members) {
    mcos::v1::Ring ring;
    ring.set_id(id);
    ring.set_partition_power(4);
    ring.set_replicas(replicas);
    for (const char* c : members) {
      auto* m = ring.add_members();
      m->set_cluster(c);
      m->set_weight(1);
    }
    return controller_->CreateRing(ring).status();
  };
  MCOS_ASSERT_OK(make("wide", 2, {"c1", "c2", "c3"}));
  MCOS_ASSERT_OK(make("pair", 2, {"c2", "c3"}));
  MCOS_ASSERT_OK(make("alone", 1, {"c3"}));
  mcos::v1::Option wide;
  wide.set_name("wide");
  wide.set_ring("wide");
  wide.set_write_concern(2);
  MCOS_ASSERT_OK(controller_->AddOption(wide));
  MCOS_ASSERT_OK(controller_->CreateContainer("alice", "box", "wide"));
  // A ring would keep no member: refused, nothing changed.
  auto refused = controller_->DropCluster("c3");
  MCOS_EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("ring 'alone' has no other member"), std::string::npos)
      << refused.status();
  MCOS_EXPECT_CODE(controller_->DropCluster("c1"), kFailedPrecondition);  // itself
  MCOS_EXPECT_CODE(controller_->DropCluster("c7"), kNotFound);
  mcos::v1::UpdateRingRequest grow;  // "alone" gets another member
  grow.set_id("alone");
  for (const char* c : {"c2", "c3"}) {
    auto* member = grow.add_members();
    member->set_cluster(c);
    member->set_weight(1);
  }
  MCOS_ASSERT_OK(controller_->UpdateRing(grow));
  // An option on "pair" with W = 2 would write to more replicas than it keeps.
  mcos::v1::Option strict;
  strict.set_name("strict");
  strict.set_ring("pair");
  strict.set_write_concern(2);
  MCOS_ASSERT_OK(controller_->AddOption(strict));
  MCOS_EXPECT_CODE(controller_->DropCluster("c3"), kFailedPrecondition);
  MCOS_ASSERT_OK(controller_->RemoveOption("strict"));

  auto changes = controller_->DropCluster("c3");
  MCOS_ASSERT_OK(changes);
  ASSERT_EQ(changes->size(), 3u) << changes->front();
  auto snap = controller_->Snapshot();
  MCOS_ASSERT_OK(snap);
  for (const auto& r : snap->rings()) {
    for (const auto& m : r.members()) EXPECT_NE(m.cluster(), "c3") << r.id();
    EXPECT_EQ(r.replicas(), r.id() == "pair" || r.id() == "alone" ? 1u
                            : r.id() == "wide"                    ? 2u
                                                                  : 1u)
        << r.id();
  }
  ASSERT_EQ(snap->former_layouts_size(), 1);  // only "wide" has a container
  EXPECT_EQ(snap->former_layouts(0).option(), "wide");
  EXPECT_EQ(std::vector<std::string>(snap->former_layouts(0).dropped().begin(),
                                     snap->former_layouts(0).dropped().end()),
            std::vector<std::string>{"c3"});
  auto clusters = controller_->ListClusters();
  MCOS_ASSERT_OK(clusters);
  for (const auto& c : *clusters) EXPECT_NE(c.id(), "c3");
}

}  // namespace
}  // namespace mcos::controller
