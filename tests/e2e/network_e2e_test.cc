// MCOS on a real network: TLS on every port (a CA made in the test with openssl), mutual TLS
// between the split processes, certificates renewed on disk without a restart, and a client that
// works over a slow link (a proxy adding 200 ms each way) and does not hang on a frozen server.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "tests/support/cli_runner.h"
#include "tests/support/cluster_process.h"
#include "tests/support/delay_proxy.h"
#include "tests/support/split_cluster.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_ca.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;
using client::ClientOptions;
using testing::CertFiles;
using testing::TestCa;

constexpr size_t kMiB = size_t{1} << 20;

std::pair<int, std::string> Cli(const std::string& home, const std::string& args,
                                const std::string& input = "", const std::string& env = "") {
  return testing::RunCli(MCOS_CLI_BIN, home, args, input, env);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ClientOptions Tls(const std::string& ca, const CertFiles* client_cert = nullptr) {
  ClientOptions o;
  o.tls_ca_file = ca;
  if (client_cert != nullptr) {
    o.tls_cert_file = client_cert->cert;
    o.tls_key_file = client_cert->key;
  }
  o.deadline = absl::Seconds(10);
  return o;
}

absl::StatusOr<std::string> Download(Client& c, const std::string& container,
                                     const std::string& object) {
  std::ostringstream out;
  auto info = c.DownloadObject(container, object, out);
  if (!info.ok()) return info.status();
  return out.str();
}

class NetworkE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = TestCa::Create(dir_.path(), "ca");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::make_unique<TestCa>(*ca);
    auto cert = ca_->Issue("cluster");
    ASSERT_TRUE(cert.ok()) << cert.status();
    cert_ = *cert;
  }

  // mcos-cluster serving TLS with `cert_`.
  void StartTlsCluster(const std::vector<std::string>& extra = {}) {
    cluster_ = std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, dir_.path());
    std::vector<std::string> args = {"--tls-cert", cert_.cert, "--tls-key", cert_.key};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(cluster_->Start(args).ok());
    cluster_->set_client_options(Tls(ca_->cert()));
  }

  testing::TempDir dir_;
  std::unique_ptr<TestCa> ca_;
  CertFiles cert_;
  std::unique_ptr<testing::ClusterProcess> cluster_;
};

TEST_F(NetworkE2eTest, WholeCliSessionOverTls) {
  StartTlsCluster();
  const std::string home = dir_.Sub("cli-home");
  const std::string ep = "--endpoint " + cluster_->endpoint();
  auto [rc, out] = Cli(home, ep + " --tls-ca " + ca_->cert() + " login admin --password-stdin",
                       std::string(testing::kAdminPassword) + "\\n");
  ASSERT_EQ(rc, 0) << out;
  // The saved login remembers the CA: the rest of the session needs no TLS flag.
  std::tie(rc, out) = Cli(home, "mb tls-box");
  ASSERT_EQ(rc, 0) << out;
  const std::string file = dir_.Sub("data.bin");
  const std::string data = testing::RandomBytes(3 * kMiB + 17, 7);
  std::ofstream(file, std::ios::binary) << data;
  std::tie(rc, out) = Cli(home, "put tls-box a/b.bin " + file);
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "ls tls-box");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "a/b.bin")) << out;
  std::tie(rc, out) = Cli(home, "stat tls-box a/b.bin");
  ASSERT_EQ(rc, 0) << out;
  const std::string back = dir_.Sub("back.bin");
  std::tie(rc, out) = Cli(home, "get tls-box a/b.bin " + back);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(ReadAll(back), data);
  std::tie(rc, out) = Cli(home, "rm tls-box a/b.bin");
  ASSERT_EQ(rc, 0) << out;

  // MCOS_TLS_CA works like --tls-ca (a fresh config home: nothing saved there).
  const std::string home2 = dir_.Sub("cli-home-2");
  std::tie(rc, out) =
      Cli(home2, ep + " login admin --password-stdin", std::string(testing::kAdminPassword) + "\\n",
          "MCOS_TLS_CA=" + ca_->cert());
  EXPECT_EQ(rc, 0) << out;

  // Plaintext to a TLS port, and TLS verified with another CA: refused, nothing logged in.
  const std::string home3 = dir_.Sub("cli-home-3");
  std::tie(rc, out) = Cli(home3, ep + " --timeout 5s login admin --password-stdin",
                          std::string(testing::kAdminPassword) + "\\n");
  EXPECT_EQ(rc, 5) << out;  // unavailable, saying what to do
  EXPECT_TRUE(absl::StrContains(out, "UNAVAILABLE")) << out;
  EXPECT_TRUE(absl::StrContains(out, "if it speaks TLS, add --tls-ca")) << out;
  auto other_ca = TestCa::Create(dir_.path(), "other-ca");
  ASSERT_TRUE(other_ca.ok());
  std::tie(rc, out) = Cli(
      home3, ep + " --timeout 5s --tls-ca " + other_ca->cert() + " login admin --password-stdin",
      std::string(testing::kAdminPassword) + "\\n");
  EXPECT_EQ(rc, 5) << out;
  EXPECT_TRUE(absl::StrContains(out, "UNAVAILABLE")) << out;
  EXPECT_TRUE(absl::StrContains(out, "certificate that the CA given does not sign")) << out;
  EXPECT_FALSE(std::filesystem::exists(home3 + "/mcos/credentials"));
  // TLS to a port that speaks none, and a port where nothing listens.
  testing::ClusterProcess plain(MCOS_CLUSTER_BIN, dir_.Sub("plain"));
  std::filesystem::create_directories(dir_.Sub("plain"));
  ASSERT_TRUE(plain.Start().ok());
  std::tie(rc, out) = Cli(home3, "--endpoint " + plain.endpoint() + " --tls-ca " + ca_->cert() +
                                     " --timeout 5s --token x ls");
  EXPECT_EQ(rc, 5) << out;
  EXPECT_TRUE(absl::StrContains(out, "does not speak TLS: drop --tls / --tls-ca")) << out;
  const std::string gone = plain.endpoint();
  plain.Stop();
  std::tie(rc, out) = Cli(home3, "--endpoint " + gone + " --timeout 5s --token x ls");
  EXPECT_EQ(rc, 5) << out;
  EXPECT_TRUE(absl::StrContains(
      out, "cannot reach " + gone + ": connection refused; is the cluster running?"))
      << out;

  // An unreadable CA file is a usage error, never a fall-back to plaintext.
  std::tie(rc, out) = Cli(home3, ep + " --tls-ca " + dir_.Sub("missing.pem") + " ls");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "cannot read the TLS CA file")) << out;
}

TEST_F(NetworkE2eTest, RenewedCertificateIsUsedWithoutRestart) {
  StartTlsCluster();
  Client old_trust(cluster_->endpoint(), Tls(ca_->cert()));
  ASSERT_TRUE(old_trust.Login("admin", testing::kAdminPassword).ok());

  // Renewal: a certificate from a new CA replaces the files (renamed into place, as tools do).
  auto new_ca = TestCa::Create(dir_.path(), "new-ca");
  ASSERT_TRUE(new_ca.ok());
  auto renewed = new_ca->Issue("renewed");
  ASSERT_TRUE(renewed.ok());
  std::filesystem::copy_file(renewed->key, cert_.key + ".tmp");
  std::filesystem::copy_file(renewed->cert, cert_.cert + ".tmp");
  std::filesystem::rename(cert_.key + ".tmp", cert_.key);
  std::filesystem::rename(cert_.cert + ".tmp", cert_.cert);
  kill(cluster_->pid(), SIGHUP);  // what operators send; it must not stop the process

  const absl::Time start = absl::Now();
  bool renewed_served = false;
  while (absl::Now() - start < absl::Seconds(20) && !renewed_served) {
    Client new_trust(cluster_->endpoint(), Tls(new_ca->cert()));
    renewed_served = new_trust.Login("admin", testing::kAdminPassword).ok();
    if (!renewed_served) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(renewed_served) << "the renewed certificate was not served within 20 s";
  std::printf("renewed certificate served %.1f s after the files changed\n",
              absl::ToDoubleSeconds(absl::Now() - start));
  // New connections with the old trust fail now: the old certificate is gone.
  Client stale(cluster_->endpoint(), Tls(ca_->cert()));
  MCOS_EXPECT_CODE(stale.Login("admin", testing::kAdminPassword), kUnavailable);
}

TEST_F(NetworkE2eTest, MutualTlsBetweenSplitProcesses) {
  // Every process serves its own certificate, requires client certificates of the CA, and calls
  // the others over TLS presenting its certificate.
  std::vector<std::string> serve = {"--tls-client-ca", ca_->cert()};
  std::map<std::string, CertFiles> certs;
  for (const char* name : {"storage", "controller", "resolver", "server"}) {
    auto c = ca_->Issue(name);
    ASSERT_TRUE(c.ok()) << c.status();
    certs[name] = *c;
  }
  testing::SplitCluster split(dir_.path(), MCOS_STORAGE_BIN, MCOS_CONTROLLER_BIN, MCOS_RESOLVER_BIN,
                              MCOS_SERVER_BIN);
  split.extra_args = [&](const std::string& role) {
    std::vector<std::string> a = {"--tls-cert",    certs[role].cert,  "--tls-key",
                                  certs[role].key, "--tls-client-ca", ca_->cert()};
    if (role != "storage") a.insert(a.end(), {"--tls-ca", ca_->cert()});
    return a;
  };
  ASSERT_TRUE(split.Start().ok());

  // A user with a client certificate of the CA: a whole session.
  auto user_cert = ca_->Issue("user");
  ASSERT_TRUE(user_cert.ok());
  Client admin(split.server->endpoint(), Tls(ca_->cert(), &*user_cert));
  ASSERT_TRUE(admin.Login("admin", testing::kSplitAdminPassword).ok());
  ASSERT_TRUE(admin.CreateContainer("mtls").ok());
  const std::string data = testing::RandomBytes(2 * kMiB + 3, 11);
  std::istringstream in(data);
  ASSERT_TRUE(admin.PutObject("mtls", "obj", in).ok());
  auto back = Download(admin, "mtls", "obj");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);

  // Without a client certificate, or with one of another CA: refused at the handshake.
  Client no_cert(split.server->endpoint(), Tls(ca_->cert()));
  MCOS_EXPECT_CODE(no_cert.Login("admin", testing::kSplitAdminPassword), kUnavailable);
  auto rogue_ca = TestCa::Create(dir_.path(), "rogue-ca");
  ASSERT_TRUE(rogue_ca.ok());
  auto rogue = rogue_ca->Issue("rogue");
  ASSERT_TRUE(rogue.ok());
  Client rogue_client(split.storage->endpoint(), Tls(ca_->cert(), &*rogue));
  MCOS_EXPECT_CODE(rogue_client.Login("admin", testing::kSplitAdminPassword), kUnavailable);
}

TEST_F(NetworkE2eTest, ProcessesRefuseBadTlsFilesAndWarnAboutPlaintextOffLoopback) {
  // A key that is not the certificate's: refused at start with a message naming the flag.
  auto other = ca_->Issue("other");
  ASSERT_TRUE(other.ok());
  testing::ClusterProcess bad(MCOS_CLUSTER_BIN, dir_.Sub("bad"));
  std::filesystem::create_directories(dir_.Sub("bad"));
  EXPECT_FALSE(bad.Start({"--tls-cert", cert_.cert, "--tls-key", other->key}).ok());
  EXPECT_TRUE(absl::StrContains(ReadAll(bad.log_path()), "--tls-key")) << ReadAll(bad.log_path());

  // Plaintext on every address: one warning line.
  testing::ClusterProcess open(MCOS_CLUSTER_BIN, dir_.Sub("open"));
  std::filesystem::create_directories(dir_.Sub("open"));
  ASSERT_TRUE(open.Start({"--listen", "0.0.0.0:0"}).ok());
  const std::string log = ReadAll(open.log_path());
  EXPECT_TRUE(absl::StrContains(log, "serving plaintext on 0.0.0.0")) << log;
}

TEST_F(NetworkE2eTest, ClientWorksOverALinkOf400MsRoundTrip) {
  StartTlsCluster();
  ASSERT_TRUE(cluster_->AddUser("alice", "alice-pw").ok());
  const int port = std::stoi(cluster_->endpoint().substr(cluster_->endpoint().rfind(':') + 1));
  testing::DelayProxy proxy(port, absl::Milliseconds(200));
  // What the SDK did before: connect attempts capped at its 100 ms reconnect backoff never
  // finish the handshakes over this link.
  ClientOptions hasty = Tls(ca_->cert());
  hasty.connect_timeout = absl::Milliseconds(100);
  Client too_hasty(proxy.endpoint(), hasty);
  MCOS_EXPECT_CODE(too_hasty.Login("alice", "alice-pw"), kUnavailable);
  // The certificate names 127.0.0.1, which the proxy's address is too.
  Client alice(proxy.endpoint(), Tls(ca_->cert()));
  absl::Time t = absl::Now();
  ASSERT_TRUE(alice.Login("alice", "alice-pw").ok());
  std::printf("login over the slow link (TCP + TLS + HTTP/2 handshakes): %.2f s\n",
              absl::ToDoubleSeconds(absl::Now() - t));
  ASSERT_TRUE(alice.CreateContainer("far").ok());
  const std::string data = testing::RandomBytes(20 * kMiB, 5);
  std::istringstream in(data);
  t = absl::Now();
  auto put = alice.PutObject("far", "big", in);
  ASSERT_TRUE(put.ok()) << put.status();
  std::printf("put of 20 MiB over the slow link: %.2f s\n", absl::ToDoubleSeconds(absl::Now() - t));
  t = absl::Now();
  auto back = Download(alice, "far", "big");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);
  std::printf("get of 20 MiB over the slow link: %.2f s\n", absl::ToDoubleSeconds(absl::Now() - t));
  mcos::v1::ListObjectsRequest list;
  list.set_container("far");
  auto listing = alice.ListObjects(list);
  ASSERT_TRUE(listing.ok()) << listing.status();
  ASSERT_EQ(listing->objects_size(), 1);

  // The CLI too (its own process, a fresh connection).
  const std::string home = dir_.Sub("cli-home");
  auto [rc, out] = Cli(home,
                       "--endpoint " + proxy.endpoint() + " --tls-ca " + ca_->cert() +
                           " login alice --password-stdin",
                       "alice-pw\\n");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "ls far");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "big")) << out;
}

TEST_F(NetworkE2eTest, FrozenServerEndsTransfersWithDeadlineExceeded) {
  cluster_ = std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, dir_.path());
  ASSERT_TRUE(cluster_->Start().ok());
  ASSERT_TRUE(cluster_->AddUser("alice", "alice-pw").ok());
  ClientOptions o;
  o.stream_idle_timeout = absl::Seconds(2);
  o.deadline = absl::Seconds(2);
  Client alice(cluster_->endpoint(), o);
  ASSERT_TRUE(alice.Login("alice", "alice-pw").ok());
  ASSERT_TRUE(alice.CreateContainer("c").ok());
  const std::string data = testing::RandomBytes(8 * kMiB, 3);
  std::istringstream in(data);
  ASSERT_TRUE(alice.PutObject("c", "obj", in).ok());

  // Frozen in the middle of an upload: the upload ends within the idle timeout.
  const std::string big = testing::RandomBytes(256 * kMiB, 4);
  std::istringstream big_in(big);
  client::PutOptions po;
  bool frozen = false;
  po.progress = [&](uint64_t done, uint64_t) {
    if (!frozen && done >= 8 * kMiB) {
      kill(cluster_->pid(), SIGSTOP);
      frozen = true;
    }
  };
  absl::Time t = absl::Now();
  auto put = alice.PutObject("c", "big", big_in, po);
  const double put_s = absl::ToDoubleSeconds(absl::Now() - t);
  ASSERT_TRUE(frozen);
  MCOS_EXPECT_CODE(put, kDeadlineExceeded);
  EXPECT_TRUE(absl::StrContains(put.status().message(), "made no progress")) << put.status();
  EXPECT_LT(put_s, 10.0) << "the upload hung on a frozen server";
  std::printf("upload to a frozen server ended after %.1f s (idle timeout 2 s)\n", put_s);

  // Frozen before a download and a stat: they end too, and so does the CLI, saying why.
  t = absl::Now();
  auto get = Download(alice, "c", "obj");
  MCOS_EXPECT_CODE(get, kDeadlineExceeded);
  EXPECT_LT(absl::ToDoubleSeconds(absl::Now() - t), 10.0);
  MCOS_EXPECT_CODE(alice.StatObject("c", "obj"), kDeadlineExceeded);
  const std::string home = dir_.Sub("cli-home");
  auto [rc, out] = Cli(home, "--endpoint " + cluster_->endpoint() + " --token " + alice.token() +
                                 " --timeout 2s get c obj " + dir_.Sub("out.bin"));
  EXPECT_EQ(rc, 5) << out;
  EXPECT_TRUE(absl::StrContains(out, "DEADLINE_EXCEEDED")) << out;
  std::ofstream(dir_.Sub("x")) << "x";
  std::tie(rc, out) = Cli(home, "--endpoint " + cluster_->endpoint() + " --token " + alice.token() +
                                    " --timeout 2s put c obj2 " + dir_.Sub("x"));
  EXPECT_EQ(rc, 5) << out;
  EXPECT_TRUE(absl::StrContains(out, "DEADLINE_EXCEEDED")) << out;

  // Thawed: the same client goes on, and the interrupted upload stored nothing.
  kill(cluster_->pid(), SIGCONT);
  auto again = Download(alice, "c", "obj");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, data);
  MCOS_EXPECT_CODE(alice.StatObject("c", "big"), kNotFound);
}

}  // namespace
}  // namespace mcos
