// What a new user and an operator meet in the first hour, each a reproduction of the defects
// issue: two clusters on one port, typos in a config file, a data directory readable by everyone,
// a saved token sent to another endpoint, and the CLI's usage errors and interrupted downloads.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "common/subprocess.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/cli_runner.h"
#include "tests/support/cluster_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FirstHourE2eTest : public ::testing::Test {
 protected:
  // Starts a cluster in `name` under the test's directory.
  std::unique_ptr<testing::ClusterProcess> StartCluster(
      const std::string& name, const std::vector<std::string>& extra = {}) {
    auto c = std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, dir_.Sub(name));
    std::filesystem::create_directories(dir_.Sub(name));
    start_status_ = c->Start(extra);
    return c;
  }
  std::pair<int, std::string> Cli(const std::string& args, const std::string& input = "") {
    return testing::RunCli(MCOS_CLI_BIN, dir_.Sub("home"), args, input);
  }

  testing::TempDir dir_;
  absl::Status start_status_;
};

// Item 8: a second cluster on an address already served does not start.
TEST_F(FirstHourE2eTest, ASecondClusterOnAServedAddressDoesNotStart) {
  auto first = StartCluster("first");
  MCOS_ASSERT_OK(start_status_);
  auto second = StartCluster("second", {"--listen", first->endpoint()});
  // It exits without ever saying "listening on".
  EXPECT_TRUE(absl::IsUnavailable(start_status_)) << start_status_;
  const std::string log = ReadFile(second->log_path());
  EXPECT_TRUE(absl::StrContains(log, absl::StrCat("address already in use: ", first->endpoint())))
      << log;
  // Every login reaches the first one.
  for (int i = 0; i < 10; ++i) {
    client::Client c(first->endpoint());
    MCOS_EXPECT_OK(c.Login("admin", testing::kAdminPassword));
  }
}

// Item 9: an unknown key or a bad value in --config stops the start, naming the key and file.
TEST_F(FirstHourE2eTest, ConfigTyposStopTheStart) {
  const std::pair<std::string, std::string> cases[] = {
      {"max-uplaods = 5\n", "max-uplaods"},
      {"bogus_key = 1\n", "bogus_key"},
      {"[server]\nmax-uploads = \"abc\"\n", "max-uploads"},
      {"max-uploads = \"abc\"\n", "max-uploads"},
  };
  int n = 0;
  for (const auto& [text, key] : cases) {
    const std::string config = dir_.Sub(absl::StrCat("bad", n, ".toml"));
    std::ofstream(config) << text;
    auto c = StartCluster(absl::StrCat("typo", n++), {"--config", config});
    EXPECT_TRUE(absl::IsUnavailable(start_status_)) << text << ": " << start_status_;
    const std::string log = ReadFile(c->log_path());
    EXPECT_TRUE(absl::StrContains(log, key)) << text << ": " << log;
    EXPECT_TRUE(absl::StrContains(log, config)) << text << ": " << log;
  }
  // A correct file starts.
  const std::string good = dir_.Sub("good.toml");
  std::ofstream(good) << "max-uploads = 5\n";
  auto c = StartCluster("good", {"--config", good});
  MCOS_EXPECT_OK(start_status_);
}

// Item 10: the data directory is private (0700, files 0600), also under umask 022 and when it
// existed before with looser modes.
TEST_F(FirstHourE2eTest, TheDataDirectoryIsPrivate) {
  const std::string data = dir_.Sub("open") + "/cluster";
  std::filesystem::create_directories(data + "/controller");
  chmod(data.c_str(), 0755);
  chmod((data + "/controller").c_str(), 0755);
  std::ofstream(data + "/controller/notes") << "left by an operator";
  chmod((data + "/controller/notes").c_str(), 0644);
  const mode_t old = umask(022);
  auto c = StartCluster("open");
  umask(old);
  MCOS_ASSERT_OK(start_status_);
  MCOS_ASSERT_OK(c->AddUser("ursula", "ursula-pw"));
  int files = 0;
  auto check = [&](const std::filesystem::path& p) {
    struct stat st {};
    ASSERT_EQ(lstat(p.c_str(), &st), 0) << p;
    if (S_ISLNK(st.st_mode)) return;
    EXPECT_EQ(st.st_mode & 077, 0u) << p << " is " << std::oct << (st.st_mode & 0777);
    if (S_ISDIR(st.st_mode)) {
      EXPECT_EQ(st.st_mode & 0777, 0700u) << p;
    }
    ++files;
  };
  check(data);
  for (const auto& e : std::filesystem::recursive_directory_iterator(data)) check(e.path());
  EXPECT_TRUE(std::filesystem::exists(data + "/controller/controller.db"));
  EXPECT_GT(files, 5);
}

// Item 12: `mcos admin cluster status` shows the storage node's disk and its free-space floor.
TEST_F(FirstHourE2eTest, ClusterStatusShowsTheStorageFloor) {
  auto c = StartCluster("status", {"--min-free-mib", "100", "--reserve-mib", "10"});
  MCOS_ASSERT_OK(start_status_);
  auto [code, out] =
      Cli(absl::StrCat("--endpoint ", c->endpoint(), " login admin --password-stdin"),
          absl::StrCat(testing::kAdminPassword, "\\n"));
  ASSERT_EQ(code, 0) << out;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    std::tie(code, out) = Cli("admin cluster status");
  } while (!absl::StrContains(out, "new data refused below") && absl::Now() < deadline &&
           (absl::SleepFor(absl::Milliseconds(100)), true));
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "new data refused below 100 MiB free, reserve 10 MiB")) << out;
}

// Item 11: a saved token goes only to the endpoint it was obtained from.
class RecordingUserService final : public mcos::v1::UserService::Service {
 public:
  grpc::Status StatObject(grpc::ServerContext* context, const mcos::v1::StatObjectRequest*,
                          mcos::v1::ObjectInfo*) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    for (const auto& [k, v] : context->client_metadata()) {
      if (k == "authorization") authorization_.emplace_back(v.data(), v.size());
    }
    return {grpc::StatusCode::NOT_FOUND, "recorded"};
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<std::string> authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }

 private:
  std::mutex mu_;
  int calls_ = 0;
  std::vector<std::string> authorization_;
};

TEST_F(FirstHourE2eTest, ASavedTokenGoesOnlyToItsEndpoint) {
  auto c = StartCluster("home-cluster");
  MCOS_ASSERT_OK(start_status_);
  MCOS_ASSERT_OK(c->AddUser("tess", "tess-pw"));
  RecordingUserService recorder;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&recorder);
  auto other = builder.BuildAndStart();
  ASSERT_NE(other, nullptr);
  const std::string elsewhere = absl::StrCat("127.0.0.1:", port);

  auto [code, out] =
      Cli(absl::StrCat("--endpoint ", c->endpoint(), " login tess --password-stdin"), "tess-pw\\n");
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = Cli("mb mine");
  EXPECT_EQ(code, 0) << out;  // the saved endpoint: the saved token
  std::tie(code, out) = Cli(absl::StrCat("--endpoint ", elsewhere, " stat mine x"));
  EXPECT_EQ(code, 4);  // authentication
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat("not logged in at ", elsewhere))) << out;
  EXPECT_TRUE(absl::StrContains(out, "mcos")) << out;
  EXPECT_TRUE(recorder.authorization().empty());
  // An explicit token goes where the user points it.
  std::tie(code, out) = Cli(absl::StrCat("--endpoint ", elsewhere, " --token given stat mine x"));
  EXPECT_EQ(code, 3) << out;  // the recorder's NOT_FOUND
  EXPECT_EQ(recorder.calls(), 1);
  EXPECT_EQ(recorder.authorization(), std::vector<std::string>{"Bearer given"});
  other->Shutdown();
  // Logins at two clusters are both kept; the last is the default.
  auto second = StartCluster("second-cluster");
  MCOS_ASSERT_OK(start_status_);
  MCOS_ASSERT_OK(second->AddUser("tess", "other-pw"));
  std::tie(code, out) =
      Cli(absl::StrCat("--endpoint ", second->endpoint(), " login tess --password-stdin"),
          "other-pw\\n");
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = Cli("mb at-second");  // the default: the last login
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = Cli(absl::StrCat("--endpoint ", c->endpoint(), " ls"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "mine")) << out;
  EXPECT_FALSE(absl::StrContains(out, "at-second")) << out;
}

// Item 13: usage errors exit 2; a download into a missing directory says so; a download ended by
// SIGTERM or SIGINT leaves no partial file.
TEST_F(FirstHourE2eTest, CliUsageErrorsAndInterruptedDownloads) {
  auto c = StartCluster("cli");
  MCOS_ASSERT_OK(start_status_);
  MCOS_ASSERT_OK(c->AddUser("vic", "vic-pw"));
  auto [code, out] =
      Cli(absl::StrCat("--endpoint ", c->endpoint(), " login vic --password-stdin"), "vic-pw\\n");
  ASSERT_EQ(code, 0) << out;
  const std::string file = dir_.Sub("small.txt");
  std::ofstream(file) << "hello";
  ASSERT_EQ(Cli("mb box").first, 0);
  ASSERT_EQ(Cli(absl::StrCat("put box small ", file)).first, 0);
  for (const std::string& args : {absl::StrCat("get box small ", dir_.Sub("x"), " --offset -1"),
                                  absl::StrCat("get box small ", dir_.Sub("x"), " --length -5"),
                                  absl::StrCat("put box other ", file, " --meta novalue"),
                                  absl::StrCat("put box other ", file, " --meta =value"),
                                  std::string("admin option add o --ring r --mode bogus"),
                                  std::string("ls box --limit -1")}) {
    std::tie(code, out) = Cli(args);
    EXPECT_EQ(code, 2) << args << ": " << out;
  }
  std::tie(code, out) = Cli(absl::StrCat("get box small ", dir_.Sub("missing/dir/out.txt")));
  EXPECT_EQ(code, 3) << out;  // not found
  EXPECT_TRUE(absl::StrContains(out, "NOT_FOUND: no directory")) << out;
  EXPECT_FALSE(absl::StrContains(out, "PERMISSION_DENIED")) << out;

  // A download that waits on a frozen cluster, ended by a signal.
  for (int sig : {SIGTERM, SIGINT}) {
    const std::string target = dir_.Sub(absl::StrCat("out-", sig, ".bin"));
    kill(c->pid(), SIGSTOP);
    setenv("XDG_CONFIG_HOME", dir_.Sub("home").c_str(), 1);
    auto cli = common::Subprocess::Start(
        {MCOS_CLI_BIN, "--timeout", "60s", "get", "box", "small", target}, dir_.Sub("cli.log"));
    unsetenv("XDG_CONFIG_HOME");
    ASSERT_TRUE(cli.ok()) << cli.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!std::filesystem::exists(target + ".mcos-part") && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_TRUE(std::filesystem::exists(target + ".mcos-part"));
    (*cli)->Signal(sig);
    (*cli)->Wait();
    kill(c->pid(), SIGCONT);
    EXPECT_FALSE(std::filesystem::exists(target + ".mcos-part")) << "signal " << sig;
    EXPECT_FALSE(std::filesystem::exists(target)) << "signal " << sig;
  }
}

}  // namespace
}  // namespace mcos
