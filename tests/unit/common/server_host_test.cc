// ServerHost over a real loopback socket: shutting down is not held by idle client connections.

#include "common/server_host.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace mcos::common {
namespace {

constexpr char kIdleClientOf[] = "MCOS_TEST_IDLE_CLIENT_OF";

// Not a test of its own: the client process of the test below (this binary, run with the address
// in kIdleClientOf). It makes one call, says so, then leaves its connection idle.
TEST(ServerHostTest, IdleClientProcess) {
  const char* address = std::getenv(kIdleClientOf);
  if (address == nullptr) GTEST_SKIP() << "runs only as the client of another test";
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
  std::printf("listening on %s\n", address);  // the line Subprocess waits for
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(120));
}

// A client process with no call running does not poll its connection (here not at all; by
// default gRPC's backup poller looks every 5 s), so it answers the GOAWAY's ping late. Once no call
// is left, the host closes such connections instead of waiting for them up to the grace.
TEST(ServerHostTest, ShutdownWithOnlyIdleConnectionsDoesNotWaitForTheGrace) {
  auto host = ServerHost::Start({}, {}, nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*host)->port());
  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  setenv(kIdleClientOf, address.c_str(), 1);
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "0", 1);
  auto client =
      Subprocess::Start({self, "--gtest_filter=ServerHostTest.IdleClientProcess"}, "/dev/null");
  unsetenv(kIdleClientOf);
  unsetenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS");
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->WaitForListening(absl::Seconds(30)).ok());

  const absl::Time start = absl::Now();
  (*host)->Shutdown(absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace mcos::common
