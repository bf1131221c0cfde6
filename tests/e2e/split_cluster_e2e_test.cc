// One cluster run as separate processes (mcos-storage, mcos-controller, mcos-resolver,
// mcos-server): failures of one process, seen from the client and from the controller.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/subprocess.h"
#include "common/token.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/split_cluster.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos {
namespace {

using testing::kSplitAdminPassword;
constexpr size_t kMiB = size_t{1} << 20;

// Waits until the controller reports the service of `kind` in `state`.
bool WaitForState(client::Client& admin, mcos::v1::ServiceKind kind, mcos::v1::ServiceState state,
                  absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    auto status = admin.GetCluster();
    if (status.ok()) {
      for (const auto& s : status->services()) {
        if (s.kind() == kind && s.state() == state) return true;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

TEST(SplitClusterE2eTest, ProcessesFailAndComeBack) {
  testing::TempDir dir;
  testing::SplitCluster cluster(dir.path(), MCOS_STORAGE_BIN, MCOS_CONTROLLER_BIN,
                                MCOS_RESOLVER_BIN, MCOS_SERVER_BIN);
  MCOS_ASSERT_OK(cluster.Start());
  testing::ServiceProcess& storage = *cluster.storage;
  testing::ServiceProcess& controller = *cluster.controller;
  testing::ServiceProcess& resolver = *cluster.resolver;
  testing::ServiceProcess& server = *cluster.server;

  client::Client admin(controller.endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", kSplitAdminPassword));
  MCOS_ASSERT_OK(admin.AddUser("alice", "alice-pw", false));
  client::Client alice(server.endpoint());
  MCOS_ASSERT_OK(alice.Login("alice", "alice-pw"));
  MCOS_ASSERT_OK(alice.CreateContainer("box"));
  const std::string v1(5 * kMiB, 'a');
  {
    std::istringstream in(v1);
    MCOS_ASSERT_OK(alice.CreateObject("box", "obj", in));
  }

  // kill -9 the storage node in the middle of an upload of a new version.
  {
    auto stub = mcos::v1::UserService::NewStub(
        grpc::CreateChannel(server.endpoint(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice.token());
    mcos::v1::ObjectInfo info;
    auto w = stub->UpdateObject(&ctx, &info);
    mcos::v1::PutObjectRequest m;
    m.mutable_header()->set_container("box");
    m.mutable_header()->set_object("obj");
    ASSERT_TRUE(w->Write(m));
    m.set_data(std::string(kMiB, 'b'));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(w->Write(m));
    absl::SleepFor(absl::Milliseconds(200));  // let chunks reach the storage node
    storage.Kill9();
    for (int i = 0; i < 8 && w->Write(m); ++i) {
    }
    w->WritesDone();
    const grpc::Status s = w->Finish();
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  EXPECT_TRUE(WaitForState(admin, mcos::v1::SERVICE_KIND_STORAGE, mcos::v1::SERVICE_STATE_DOWN,
                           absl::Seconds(10)));
  MCOS_EXPECT_CODE(alice.StatObject("box", "obj"), kUnavailable);

  ASSERT_TRUE(storage.Start().ok());
  EXPECT_TRUE(WaitForState(admin, mcos::v1::SERVICE_KIND_STORAGE, mcos::v1::SERVICE_STATE_UP,
                           absl::Seconds(10)));
  // UNAVAILABLE means "retry": the server reconnects to the restarted node within a second.
  std::ostringstream out;
  absl::StatusOr<mcos::v1::ObjectInfo> got = absl::UnavailableError("not tried");
  for (absl::Time end = absl::Now() + absl::Seconds(5);
       !got.ok() && got.status().code() == absl::StatusCode::kUnavailable && absl::Now() < end;) {
    out.str("");
    got = alice.DownloadObject("box", "obj", out);
    if (!got.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  MCOS_ASSERT_OK(got);
  EXPECT_TRUE(out.str() == v1) << "the previous version did not survive";

  // Resolver and server restart while the controller runs: they register again, requests resume.
  resolver.Kill9();
  server.Kill9();
  ASSERT_TRUE(resolver.Start().ok());
  ASSERT_TRUE(server.Start().ok());
  const std::string v2(kMiB + 3, 'c');
  std::istringstream in(v2);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::StatusOr<mcos::v1::ObjectInfo> updated = absl::UnavailableError("not tried");
  while (!updated.ok() && absl::Now() < deadline) {
    in.clear();
    in.seekg(0);
    updated = alice.UpdateObject("box", "obj", in);
    if (!updated.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  MCOS_ASSERT_OK(updated);
  EXPECT_EQ(updated->size(), v2.size());
  // The controller's health checks see all three up again (a restarted process is up once it
  // registers; a check of the process it replaced does not count against it).
  std::string services;
  int up = 0;
  for (const absl::Time end = absl::Now() + absl::Seconds(10); up != 3 && absl::Now() < end;) {
    auto status = admin.GetCluster();
    MCOS_ASSERT_OK(status);
    up = 0;
    services.clear();
    for (const auto& s : status->services()) {
      up += s.state() == mcos::v1::SERVICE_STATE_UP;
      absl::StrAppend(&services, s.id(), " at ", s.endpoint(), ": ",
                      mcos::v1::ServiceState_Name(s.state()), " (", s.consecutive_misses(),
                      " misses); ");
    }
    if (up != 3) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(up, 3) << services;
}

}  // namespace
}  // namespace mcos
