// End-to-end tests of one cluster: the real mcos-cluster process (RocksDB + SQLite on disk, every
// service over loopback gRPC), driven through the C++ SDK and the mcos CLI.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "client/sdk/client.h"
#include "common/channel.h"
#include "common/hash.h"
#include "common/token.h"
#include "mcos/v1/resolver.grpc.pb.h"
#include "mcos/v1/user.grpc.pb.h"
#include "placement/placement.h"
#include "storage/rocksdb_engine.h"
#include "tests/support/cli_runner.h"
#include "tests/support/cluster_process.h"
#include "tests/support/corrupt_chunk.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

client::ClientOptions WithToken(const std::string& token) {
  client::ClientOptions o;
  o.token = token;
  o.deadline = absl::Seconds(10);
  return o;
}

using client::Client;

constexpr size_t kMiB = size_t{1} << 20;

class ClusterE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    cluster_ = new testing::ClusterProcess(MCOS_CLUSTER_BIN, dir_->path());
    ASSERT_TRUE(cluster_->Start().ok());
    ASSERT_TRUE(cluster_->AddUser("alice", "alice-pw").ok());
    ASSERT_TRUE(cluster_->AddUser("bob", "bob-pw").ok());
  }
  static void TearDownTestSuite() {
    cluster_->Stop();
    delete cluster_;
    delete dir_;
  }

  static std::unique_ptr<Client> As(const std::string& user, const std::string& password) {
    auto c = std::make_unique<Client>(cluster_->endpoint());
    auto r = c->Login(user, password);
    EXPECT_TRUE(r.ok()) << r.status();
    return c;
  }

  static absl::StatusOr<std::string> Download(Client& c, const std::string& container,
                                              const std::string& object,
                                              client::GetOptions options = {}) {
    std::ostringstream out;
    auto r = c.DownloadObject(container, object, out, options);
    if (!r.ok()) return r.status();
    return out.str();
  }

  static absl::StatusOr<mcos::v1::ObjectInfo> Upload(Client& c, bool create,
                                                     const std::string& container,
                                                     const std::string& object,
                                                     const std::string& data,
                                                     client::PutOptions options = {}) {
    std::istringstream in(data);
    return create ? c.CreateObject(container, object, in, options)
                  : c.UpdateObject(container, object, in, options);
  }

  static testing::TempDir* dir_;
  static testing::ClusterProcess* cluster_;
};

testing::TempDir* ClusterE2eTest::dir_ = nullptr;
testing::ClusterProcess* ClusterE2eTest::cluster_ = nullptr;

TEST_F(ClusterE2eTest, FullSessionThroughTheSdk) {
  auto alice = As("alice", "alice-pw");
  auto made = alice->CreateContainer("session", "default");
  MCOS_ASSERT_OK(made);
  EXPECT_EQ(made->option(), "default");
  const std::string data = testing::RandomBytes(100 * kMiB + 17, 1);
  uint64_t last_progress = 0;
  client::PutOptions po;
  po.content_type = "application/x-test";
  po.metadata = {{"owner", "alice"}};
  po.progress = [&](uint64_t done, uint64_t) { last_progress = done; };
  auto created = Upload(*alice, true, "session", "big/file.bin", data, po);
  MCOS_ASSERT_OK(created);
  EXPECT_EQ(last_progress, data.size());
  EXPECT_EQ(created->size(), data.size());
  EXPECT_EQ(created->etag(), testing::Md5Hex(data));
  ASSERT_EQ(created->replicas_size(), 1);

  auto stat = alice->StatObject("session", "big/file.bin");
  MCOS_ASSERT_OK(stat);
  EXPECT_EQ(stat->etag(), testing::Md5Hex(data));
  EXPECT_EQ(stat->content_type(), "application/x-test");
  EXPECT_EQ(stat->metadata().at("owner"), "alice");
  auto back = Download(*alice, "session", "big/file.bin");
  MCOS_ASSERT_OK(back);
  EXPECT_TRUE(*back == data);

  const std::string v2 = testing::RandomBytes(3 * kMiB, 2);
  auto updated = Upload(*alice, false, "session", "big/file.bin", v2);
  MCOS_ASSERT_OK(updated);
  EXPECT_GT(updated->version(), created->version());
  client::GetOptions range;
  range.offset = kMiB - 10;
  range.length = 20;
  EXPECT_EQ(*Download(*alice, "session", "big/file.bin", range), v2.substr(kMiB - 10, 20));

  mcos::v1::ListObjectsRequest list;
  list.set_container("session");
  list.set_delimiter("/");
  auto listing = alice->ListObjects(list);
  MCOS_ASSERT_OK(listing);
  ASSERT_EQ(listing->common_prefixes_size(), 1);
  EXPECT_EQ(listing->common_prefixes(0), "big/");

  auto version = alice->DeleteObject("session", "big/file.bin");
  MCOS_ASSERT_OK(version);
  EXPECT_FALSE(version->empty());
  MCOS_EXPECT_CODE(alice->StatObject("session", "big/file.bin"), kNotFound);
  MCOS_EXPECT_OK(alice->DeleteContainer("session"));
  MCOS_EXPECT_CODE(alice->DeleteContainer("session"), kNotFound);
}

TEST_F(ClusterE2eTest, UsersSeeOnlyTheirOwnContainers) {
  auto alice = As("alice", "alice-pw");
  auto bob = As("bob", "bob-pw");
  MCOS_ASSERT_OK(alice->CreateContainer("photos"));
  MCOS_ASSERT_OK(bob->CreateContainer("photos"));
  MCOS_ASSERT_OK(Upload(*alice, true, "photos", "cat.jpg", "alice's cat"));
  MCOS_ASSERT_OK(Upload(*bob, true, "photos", "cat.jpg", "bob's cat"));
  EXPECT_EQ(*Download(*alice, "photos", "cat.jpg"), "alice's cat");
  EXPECT_EQ(*Download(*bob, "photos", "cat.jpg"), "bob's cat");
  MCOS_ASSERT_OK(alice->CreateContainer("alice-only"));
  MCOS_ASSERT_OK(Upload(*alice, true, "photos", "dog.jpg", "alice's dog"));
  auto alices = alice->ListContainers();
  MCOS_ASSERT_OK(alices);
  bool seen = false;
  for (const auto& c : alices->containers()) {
    if (c.name() != "photos") continue;
    seen = true;
    EXPECT_EQ(c.object_count(), 2u);
    EXPECT_EQ(c.bytes_used(),
              std::string("alice's cat").size() + std::string("alice's dog").size());
  }
  EXPECT_TRUE(seen);
  auto bobs = bob->ListContainers();
  MCOS_ASSERT_OK(bobs);
  for (const auto& c : bobs->containers()) EXPECT_NE(c.name(), "alice-only");
  MCOS_EXPECT_CODE(bob->StatObject("alice-only", "x"), kNotFound);
  MCOS_EXPECT_CODE(Upload(*bob, true, "alice-only", "x", "intruder"), kNotFound);
}

TEST_F(ClusterE2eTest, AuthenticationErrors) {
  Client anonymous(cluster_->endpoint());
  MCOS_EXPECT_CODE(anonymous.ListContainers(), kUnauthenticated);
  MCOS_EXPECT_CODE(anonymous.CreateContainer("x"), kUnauthenticated);

  // Wrong password and unknown user get the same answer.
  auto wrong = anonymous.Login("alice", "nope");
  auto unknown = anonymous.Login("nobody", "nope");
  MCOS_EXPECT_CODE(wrong, kUnauthenticated);
  MCOS_EXPECT_CODE(unknown, kUnauthenticated);
  EXPECT_EQ(wrong.status().message(), unknown.status().message());

  // A forged token (signature of another key) and an expired one (right key, past expiry).
  auto alice = As("alice", "alice-pw");
  for (size_t from_end : {1, 5, 20}) {  // the last character, and inside the signature
    std::string token = alice->token();
    char& c = token[token.size() - from_end];
    c = c == 'A' ? 'B' : 'A';
    Client forged(cluster_->endpoint(), WithToken(token));
    MCOS_EXPECT_CODE(forged.ListContainers(), kUnauthenticated);
  }
  common::TokenSigner other_key(std::string(64, 'k'));
  mcos::v1::TokenClaims claims;
  claims.set_user("alice");
  claims.set_role("admin");
  claims.set_expires_unix(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  Client other(cluster_->endpoint(), WithToken(other_key.Sign(claims)));
  MCOS_EXPECT_CODE(other.ListContainers(), kUnauthenticated);
  std::ifstream key_file(cluster_->token_key_path());
  std::string key;
  key_file >> key;
  ASSERT_GE(key.size(), 32u);
  claims.set_expires_unix(absl::ToUnixSeconds(absl::Now() - absl::Seconds(1)));
  Client expired(cluster_->endpoint(), WithToken(common::TokenSigner(key).Sign(claims)));
  auto e = expired.ListContainers();
  MCOS_EXPECT_CODE(e, kUnauthenticated);
  EXPECT_NE(e.status().message().find("expired"), absl::string_view::npos) << e.status();

  // A user is not an admin.
  MCOS_EXPECT_CODE(alice->ListUsers(), kPermissionDenied);
  MCOS_EXPECT_CODE(alice->AddUser("mallory", "pw", true), kPermissionDenied);
}

TEST_F(ClusterE2eTest, FailedLoginsAreRateLimitedPerClientAddress) {
  // A cluster of its own: this test uses up the attempts of the tests' address.
  testing::TempDir dir;
  testing::ClusterProcess cluster(MCOS_CLUSTER_BIN, dir.path());
  MCOS_ASSERT_OK(cluster.Start());
  Client c(cluster.endpoint());
  Client admin(cluster.endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  MCOS_ASSERT_OK(admin.AddUser("carol", "carol-pw", false));
  // The server forwards the client's address to the controller: this address (the test's) runs
  // out of attempts after 10 failures, whatever the names.
  for (int i = 0; i < 10; ++i) MCOS_EXPECT_CODE(c.Login("carol", "wrong"), kUnauthenticated);
  auto refused = c.Login("ghost", "x");
  MCOS_EXPECT_CODE(refused, kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "from 127.0.0.1")) << refused.status();
  MCOS_EXPECT_CODE(c.Login("carol", "carol-pw"), kResourceExhausted);
  // A name that logged in from this address before still can (the admin did, above).
  MCOS_EXPECT_OK(c.Login("admin", testing::kAdminPassword));
}

TEST_F(ClusterE2eTest, EveryErrorHasItsCodeAndChangesNothing) {
  auto alice = As("alice", "alice-pw");
  MCOS_ASSERT_OK(alice->CreateContainer("errors"));
  MCOS_ASSERT_OK(Upload(*alice, true, "errors", "keep", "precious"));
  const auto before = alice->StatObject("errors", "keep");
  MCOS_ASSERT_OK(before);

  MCOS_EXPECT_CODE(alice->CreateContainer("errors"), kAlreadyExists);
  MCOS_EXPECT_CODE(alice->CreateContainer("bad/name"), kInvalidArgument);
  MCOS_EXPECT_CODE(alice->CreateContainer(std::string(256, 'x')), kInvalidArgument);
  MCOS_EXPECT_CODE(alice->CreateContainer("no-such-option", "gold"), kNotFound);
  MCOS_EXPECT_CODE(Upload(*alice, true, "errors", "keep", "overwrite?"), kAlreadyExists);
  MCOS_EXPECT_CODE(Upload(*alice, false, "errors", "missing", "x"), kNotFound);
  MCOS_EXPECT_CODE(Upload(*alice, true, "errors", "bad\x01name", "x"), kInvalidArgument);
  MCOS_EXPECT_CODE(Upload(*alice, true, "errors", "", "x"), kInvalidArgument);
  MCOS_EXPECT_CODE(alice->DeleteContainer("errors"), kFailedPrecondition);
  MCOS_EXPECT_CODE(alice->DeleteObject("errors", "missing"), kNotFound);
  client::GetOptions past;
  past.offset = 100;
  MCOS_EXPECT_CODE(Download(*alice, "errors", "keep", past), kOutOfRange);

  // A header with a wrong MD5 or size: nothing stored.
  client::PutOptions bad_md5;
  bad_md5.md5_hex = std::string(32, '0');
  MCOS_EXPECT_CODE(Upload(*alice, false, "errors", "keep", "new content", bad_md5),
                   kInvalidArgument);
  client::PutOptions bad_size;
  bad_size.size = 3;
  MCOS_EXPECT_CODE(Upload(*alice, false, "errors", "keep", "new content", bad_size),
                   kInvalidArgument);
  MCOS_EXPECT_CODE(Upload(*alice, true, "errors", "fresh", "new content", bad_md5),
                   kInvalidArgument);
  MCOS_EXPECT_CODE(alice->StatObject("errors", "fresh"), kNotFound);

  // A chunk over 1 MiB, sent with the raw stub.
  {
    auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
    auto stub = mcos::v1::UserService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice->token());
    mcos::v1::ObjectInfo info;
    auto w = stub->UpdateObject(&ctx, &info);
    mcos::v1::PutObjectRequest m;
    m.mutable_header()->set_container("errors");
    m.mutable_header()->set_object("keep");
    w->Write(m);
    m.set_data(std::string(kMiB + 1, 'x'));
    w->Write(m);
    w->WritesDone();
    const grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("1 MiB"), std::string::npos);
  }
  const auto after = alice->StatObject("errors", "keep");
  MCOS_ASSERT_OK(after);
  EXPECT_EQ(after->version(), before->version());
  EXPECT_EQ(*Download(*alice, "errors", "keep"), "precious");
}

TEST_F(ClusterE2eTest, ACancelledUploadStoresNothing) {
  auto alice = As("alice", "alice-pw");
  MCOS_ASSERT_OK(alice->CreateContainer("cancel"));
  MCOS_ASSERT_OK(Upload(*alice, true, "cancel", "obj", "version one"));
  auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
  auto stub = mcos::v1::UserService::NewStub(channel);
  for (int round = 0; round < 20; ++round) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice->token());
    mcos::v1::ObjectInfo info;
    auto w = stub->UpdateObject(&ctx, &info);
    mcos::v1::PutObjectRequest m;
    m.mutable_header()->set_container("cancel");
    m.mutable_header()->set_object("obj");  // no size: only the cancel tells it is incomplete
    ASSERT_TRUE(w->Write(m));
    m.set_data(std::string(64 * 1024 + round, 'x'));
    for (int i = 0; i <= round % 4; ++i) w->Write(m);
    ctx.TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  EXPECT_EQ(*Download(*alice, "cancel", "obj"), "version one");
}

// How many times `what` occurs in `text`.
int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The JSON the CLI prints for one object (as `stat --json` would: the same printer).
std::string ObjectJsonOf(Client& client, const std::string& container, const std::string& object) {
  auto info = client.StatObject(container, object);
  if (!info.ok()) return info.status().ToString();
  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(*info, &json, o);
  return json;
}

// Runs the mcos CLI with `args`, feeding `input` on stdin; returns (exit status, output).
std::pair<int, std::string> Cli(const std::string& config_home, const std::string& args,
                                const std::string& input = "") {
  return testing::RunCli(MCOS_CLI_BIN, config_home, args, input);
}

TEST_F(ClusterE2eTest, FullSessionThroughTheCli) {
  const std::string home = dir_->Sub("cli-home");
  const std::string ep = "--endpoint " + cluster_->endpoint();
  auto [rc, out] = Cli(home, ep + " login alice --password-stdin", "alice-pw\\n");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("logged in as alice"), std::string::npos) << out;
  // The saved login is used from now on (no --endpoint), and it is private.
  struct stat st {};
  ASSERT_EQ(::stat((home + "/mcos/credentials").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::tie(rc, out) = Cli(home, "mb cli-box --option default");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "mb cli-box");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error: ALREADY_EXISTS"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "container list");
  EXPECT_NE(out.find("cli-box\tdefault"), std::string::npos) << out;

  const std::string data = testing::RandomBytes(100 * kMiB, 3);
  const std::string file = dir_->Sub("upload.bin");
  std::ofstream(file, std::ios::binary) << data;
  std::tie(rc, out) = Cli(home, "put cli-box dir/data.bin " + file);
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "--json stat cli-box dir/data.bin");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"etag\":\"" + testing::Md5Hex(data) + "\""), std::string::npos) << out;
  const std::string back = dir_->Sub("download.bin");
  std::tie(rc, out) = Cli(home, "get cli-box dir/data.bin " + back);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream in(back, std::ios::binary);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_TRUE(got.str() == data);

  std::tie(rc, out) = Cli(home, "object update cli-box dir/data.bin -", "v2");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "get cli-box dir/data.bin - --offset 1 --length 1");
  EXPECT_EQ(out, "2");
  std::tie(rc, out) = Cli(home, "ls cli-box --delimiter /");
  EXPECT_NE(out.find("PRE\tdir/"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "rb cli-box");
  EXPECT_NE(out.find("FAILED_PRECONDITION"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "rm cli-box dir/data.bin");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "get cli-box dir/data.bin -");
  EXPECT_EQ(rc, 3);  // exit statuses by class: not found
  EXPECT_NE(out.find("error: NOT_FOUND"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "rb cli-box");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "admin user list");
  EXPECT_EQ(rc, 4);  // permission
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "mb cli-box");
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "mb cli-box");
  EXPECT_EQ(rc, 1);  // any other failure
  EXPECT_NE(out.find("error: ALREADY_EXISTS"), std::string::npos) << out;
  std::tie(rc, out) = Cli(home, "--token not-a-token ls");
  EXPECT_EQ(rc, 4) << out;  // authentication
}

// The defects a first user tripped on: puts that raced into ALREADY_EXISTS, `get` into a
// directory, `ls` stopping at 1,000 names, a directory given to `put`.
TEST_F(ClusterE2eTest, CliPutsGetsAndListsAsAUserExpects) {
  const std::string home = dir_->Sub("cli-defects");
  auto [rc, out] =
      Cli(home, "--endpoint " + cluster_->endpoint() + " login bob --password-stdin", "bob-pw\\n");
  ASSERT_EQ(rc, 0) << out;
  ASSERT_EQ(Cli(home, "mb puts").first, 0);
  const std::string file = dir_->Sub("small.txt");
  std::ofstream(file) << "small";

  // 12 concurrent puts of 3 new names: each is one atomic create-or-replace.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      auto [code, text] = Cli(home, absl::StrCat("put puts name-", i % 3, " ", file));
      if (code != 0) {
        ++failures;
        std::printf("put failed: %s\n", text.c_str());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::tie(rc, out) = Cli(home, "put puts name-0 " + file);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("updated puts/name-0"), std::string::npos) << out;

  // get into a directory: the object's last path segment there, as cp does.
  std::tie(rc, out) = Cli(home, "put puts deep/path/leaf.txt " + file);
  ASSERT_EQ(rc, 0) << out;
  const std::string into = dir_->Sub("into");
  std::filesystem::create_directories(into);
  std::tie(rc, out) = Cli(home, "get puts deep/path/leaf.txt " + into);
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(home, "get puts name-1 " + into + "/");
  EXPECT_EQ(rc, 0) << out;
  std::string got;
  std::ifstream(into + "/leaf.txt") >> got;
  EXPECT_EQ(got, "small");
  std::ifstream(into + "/name-1") >> got;
  EXPECT_EQ(got, "small");
  EXPECT_FALSE(std::filesystem::exists(into + "/leaf.txt.mcos-part"));

  // A directory is not a file.
  std::tie(rc, out) = Cli(home, "put puts d " + into);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--recursive"), std::string::npos) << out;

  // ls lists everything (paging behind the scenes) unless --limit.
  Client bob(cluster_->endpoint());
  MCOS_ASSERT_OK(bob.Login("bob", "bob-pw"));
  MCOS_ASSERT_OK(bob.CreateContainer("many"));
  for (int i = 0; i < 1010; ++i) {
    std::istringstream in("x");
    MCOS_ASSERT_OK(bob.PutObject("many", absl::StrCat("o", 10000 + i), in));
  }
  std::tie(rc, out) = Cli(home, "ls many");
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1010);
  std::tie(rc, out) = Cli(home, "ls many --limit 10");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 10);

  // Global flags after the subcommand, --version, and usage errors exit 2.
  std::tie(rc, out) = Cli(home, "ls many --limit 1 --json");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out,
            "[\n" + ObjectJsonOf(bob, "many", "o10000") + ",\n{\"next_marker\":\"o10000\"}\n]\n")
      << out;
  // A listing of two pages with --json: one array of every object.
  std::tie(rc, out) = Cli(home, "ls many --json");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.rfind("[\n{", 0), 0u) << out.substr(0, 200);
  EXPECT_TRUE(absl::EndsWith(out, "}\n]\n")) << out.substr(out.size() - 200);
  EXPECT_EQ(CountOf(out, "\"object\":"), 1010);
  EXPECT_EQ(CountOf(out, "\n]"), 1);
  // -l: size, time and name; -h: sizes for people.
  std::ofstream(dir_->Sub("big.bin")) << std::string(3 * 1024 + 512, 'b');
  ASSERT_EQ(Cli(home, "put puts big " + dir_->Sub("big.bin")).first, 0);
  std::tie(rc, out) = Cli(home, "ls puts -l --prefix big");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "3584\t")) << out;
  EXPECT_TRUE(absl::EndsWith(out, "\tbig\n")) << out;
  std::tie(rc, out) = Cli(home, "ls puts -lh --prefix big");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.rfind("3.5K\t", 0), 0u) << out;
  std::tie(rc, out) = Cli(home, "--version");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.rfind("mcos ", 0), 0u) << out;
  std::tie(rc, out) = Cli(home, "ls --no-such-flag");
  EXPECT_EQ(rc, 2) << out;
}

TEST_F(ClusterE2eTest, AdminManagesRingsAndOptionsThroughTheCli) {
  const std::string admin = dir_->Sub("admin-home");
  const std::string user = dir_->Sub("user-home");
  const std::string ep = "--endpoint " + cluster_->endpoint();
  auto [rc, out] = Cli(admin, ep + " login admin --password-stdin",
                       std::string(testing::kAdminPassword) + "\\n");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(admin, "admin cluster status");
  ASSERT_EQ(rc, 0) << out;
  const std::string id = out.substr(8, out.find_first_of("\t\n") - 8);  // "cluster <id>\t..."
  auto expect_error = [&](const std::string& args, const std::string& code,
                          const std::string& words) {
    auto [c, o] = Cli(admin, args);
    // Exit statuses by class.
    const int expected = code == "NOT_FOUND"                                        ? 3
                         : code == "PERMISSION_DENIED" || code == "UNAUTHENTICATED" ? 4
                         : code == "UNAVAILABLE" || code == "DEADLINE_EXCEEDED"     ? 5
                                                                                    : 1;
    EXPECT_EQ(c, expected) << args << ": " << o;
    EXPECT_NE(o.find("error: " + code), std::string::npos) << args << ": " << o;
    EXPECT_NE(o.find(words), std::string::npos) << args << ": " << o;
  };

  std::tie(rc, out) = Cli(admin, "admin ring list");
  EXPECT_NE(out.find("default\tv1"), std::string::npos) << out;
  std::tie(rc, out) =
      Cli(admin, "admin ring create r2 --replicas 1 --partition-power 8 --member " + id + ":2:eu");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(admin, "admin ring list");
  // r2's one member holds every one of its 256 partitions, as its ideal says.
  EXPECT_NE(out.find("r2\tv1\treplicas 1\tpower 8"), std::string::npos) << out;
  EXPECT_NE(out.find("replicas      256 (ideal 256.0)"), std::string::npos) << out;
  expect_error("admin ring create r2 --member " + id, "ALREADY_EXISTS", "r2");
  expect_error("admin ring create r3 --member ghost", "INVALID_ARGUMENT", "not in the federation");
  expect_error("admin ring create r3 --replicas 2 --member " + id, "INVALID_ARGUMENT",
               "wants 2 replicas");
  expect_error("admin ring create r3 --member " + id + " --member " + id, "INVALID_ARGUMENT",
               "member twice");
  expect_error("admin ring create r3 --member " + id + ":0", "INVALID_ARGUMENT", "zero");
  expect_error("admin ring create r3 --partition-power 30 --member " + id, "INVALID_ARGUMENT",
               "partition power");
  expect_error("admin ring update nope --member " + id, "NOT_FOUND", "nope");
  std::tie(rc, out) = Cli(admin, "admin ring update r2 --member " + id + ":3:eu --dry-run");
  ASSERT_EQ(rc, 0) << out;
  // The controller asked the storage service for the bytes (one cluster: nothing moves).
  EXPECT_NE(out.find("0 of 256 partitions change placement, holding 0 bytes"), std::string::npos)
      << out;
  std::tie(rc, out) = Cli(admin, "admin ring update r2 --member " + id + ":3:eu");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("version 2"), std::string::npos) << out;
  // Raising the partition power splits partitions in place: nothing moves.
  std::tie(rc, out) = Cli(admin, "admin ring update r2 --partition-power 10 --dry-run");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 of 1024 partitions change placement"), std::string::npos) << out;
  std::tie(rc, out) = Cli(admin, "admin ring update r2 --partition-power 10");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(admin, "admin ring list");
  EXPECT_NE(out.find("r2\tv3\treplicas 1\tpower 10"), std::string::npos) << out;
  EXPECT_NE(out.find("replicas     1024 (ideal 1024.0)"), std::string::npos) << out;
  expect_error("admin ring update r2 --partition-power 19", "INVALID_ARGUMENT", "partition power");
  expect_error("admin ring update r2 --replicas 2", "INVALID_ARGUMENT", "wants 2 replicas");

  std::tie(rc, out) = Cli(admin, "admin option add gold --ring r2 --mode degraded");
  ASSERT_EQ(rc, 0) << out;
  expect_error("admin option add gold --ring r2", "ALREADY_EXISTS", "gold");
  expect_error("admin option add silver --ring nope", "NOT_FOUND", "nope");
  expect_error("admin option add silver --ring r2 --write-concern 2", "INVALID_ARGUMENT",
               "write concern 2");
  {
    // A bad flag value is a usage error (exit status 2), caught before any call.
    auto [c, o] = Cli(admin, "admin option add silver --ring r2 --mode fast");
    EXPECT_EQ(c, 2) << o;
    EXPECT_NE(o.find("--mode"), std::string::npos) << o;
  }
  std::tie(rc, out) = Cli(admin, "admin option set-ring gold default --dry-run");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("partitions change placement"), std::string::npos) << out;
  std::tie(rc, out) = Cli(admin, "admin option list");
  EXPECT_NE(out.find("gold\tring r2\twrite concern majority\tdegraded"), std::string::npos) << out;
  EXPECT_NE(out.find("default\tring default"), std::string::npos) << out;

  // A container bound to the option keeps it from being removed; so does being the default.
  std::tie(rc, out) = Cli(user, ep + " login alice --password-stdin", "alice-pw\\n");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(user, "mb golden --option gold");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(user, "put golden x -", "data");
  ASSERT_EQ(rc, 0) << out;
  expect_error("admin option remove gold", "FAILED_PRECONDITION", "used by 1 container");
  expect_error("admin option remove default", "FAILED_PRECONDITION", "default");
  expect_error("admin option remove nope", "NOT_FOUND", "nope");
  std::tie(rc, out) = Cli(user, "admin ring list");
  EXPECT_NE(out.find("error: PERMISSION_DENIED"), std::string::npos) << out;
  std::tie(rc, out) = Cli(user, "admin option add x --ring r2");
  EXPECT_NE(out.find("error: PERMISSION_DENIED"), std::string::npos) << out;
  std::tie(rc, out) = Cli(user, "rm golden x");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(user, "rb golden");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = Cli(admin, "admin option remove gold");
  EXPECT_EQ(rc, 0) << out;
}

TEST_F(ClusterE2eTest, ResolverSeesRingChangesAtOnce) {
  Client admin(cluster_->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  auto status = admin.GetCluster();
  MCOS_ASSERT_OK(status);
  const std::string id = status->cluster().id();
  mcos::v1::Ring ring;
  ring.set_id("watched");
  ring.set_partition_power(10);
  ring.set_replicas(1);
  auto* m = ring.add_members();
  m->set_cluster(id);
  m->set_weight(1);
  MCOS_ASSERT_OK(admin.CreateRing(ring));
  mcos::v1::Option option;
  option.set_name("watched");
  option.set_ring("watched");
  MCOS_ASSERT_OK(admin.AddOption(option));

  // The resolver answers over gRPC on the cluster's port (internal service: a service credential).
  auto key = common::LoadOrCreateKeyFile(cluster_->token_key_path());
  MCOS_ASSERT_OK(key);
  common::ServiceAuth auth(*key, "test");
  auto resolver =
      mcos::v1::ResolverService::NewStub(common::ConnectInternal(cluster_->endpoint(), auth));
  auto resolve = [&](mcos::v1::ResolveResponse* response) {
    mcos::v1::ResolveRequest request;
    request.set_option("watched");
    for (int i = 0; i < 100; ++i) {
      auto* k = request.add_keys();
      k->set_user("alice");
      k->set_container("photos");
      k->set_object("dir/" + std::to_string(i) + ".jpg");
    }
    grpc::ClientContext ctx;
    return resolver->Resolve(&ctx, request, response);
  };
  mcos::v1::ResolveResponse response;
  ASSERT_TRUE(resolve(&response).ok());
  ASSERT_EQ(response.placements_size(), 100);
  for (int i = 0; i < 100; ++i) {
    const auto& p = response.placements(i);
    EXPECT_EQ(p.error(), "");
    EXPECT_EQ(p.ring_id(), "watched");
    EXPECT_EQ(p.ring_version(), 1u);
    EXPECT_EQ(
        p.partition(),
        placement::PartitionOf(
            placement::ObjectHash("alice", "photos", "dir/" + std::to_string(i) + ".jpg"), 10));
    ASSERT_EQ(p.replicas_size(), 1);
    EXPECT_EQ(p.replicas(0), id);
    EXPECT_EQ(p.write_concern(), 1u);
  }

  // A ring change reaches the resolver within a second (it watches the controller).
  mcos::v1::UpdateRingRequest update;
  update.set_id("watched");
  *update.mutable_members() = ring.members();
  update.mutable_members(0)->set_weight(3);
  MCOS_ASSERT_OK(admin.UpdateRing(update));
  const absl::Time changed = absl::Now();
  absl::Duration seen = absl::InfiniteDuration();
  while (absl::Now() - changed < absl::Seconds(5)) {
    ASSERT_TRUE(resolve(&response).ok());
    if (response.placements(0).ring_version() == 2) {
      seen = absl::Now() - changed;
      break;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  std::printf("ring version 2 seen by the resolver after %s\n", absl::FormatDuration(seen).c_str());
  EXPECT_LT(seen, absl::Seconds(1));
  for (const auto& p : response.placements()) EXPECT_EQ(p.ring_version(), 2u);

  // Bad input gets a clear error and no placement.
  mcos::v1::ResolveRequest bad;
  bad.add_keys()->set_user("alice");
  grpc::ClientContext ctx;
  mcos::v1::ResolveResponse ignored;
  const grpc::Status s = resolver->Resolve(&ctx, bad, &ignored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

TEST_F(ClusterE2eTest, ControllerSeesEveryService) {
  Client admin(cluster_->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  auto status = admin.GetCluster();
  MCOS_ASSERT_OK(status);
  std::set<mcos::v1::ServiceKind> kinds;
  for (const auto& s : status->services()) {
    kinds.insert(s.kind());
    EXPECT_EQ(s.state(), mcos::v1::SERVICE_STATE_UP) << s.id();
  }
  EXPECT_EQ(kinds.size(), 3u);  // server, resolver, storage
}

// One cluster streams a download of up to 4 MiB from its engine in-process: a chunk that fails
// its checksum is never served (DATA_LOSS, naming the object), after exactly the intact chunks
// before it.
TEST(ClusterCorruptionE2eTest, ACorruptChunkOfALocalReadIsNeverServed) {
  testing::TempDir dir;
  testing::ClusterProcess cluster(MCOS_CLUSTER_BIN, dir.path());
  MCOS_ASSERT_OK(cluster.Start());
  MCOS_ASSERT_OK(cluster.AddUser("alice", "alice-pw"));
  const std::string data = testing::RandomBytes((3 << 20) + 100, 5);
  std::string data_id;
  {
    Client c(cluster.endpoint());
    MCOS_ASSERT_OK(c.Login("alice", "alice-pw"));
    MCOS_ASSERT_OK(c.CreateContainer("box"));
    std::istringstream in(data);
    MCOS_ASSERT_OK(c.CreateObject("box", "rot", in));
  }
  ASSERT_EQ(cluster.Stop(), 0);
  const std::string db = dir.path() + "/cluster/storage/db";
  {
    storage::RocksDbOptions options;
    options.path = db;
    auto engine = storage::RocksDbEngine::Open(options);
    MCOS_ASSERT_OK(engine);
    mcos::v1::ObjectKey key;
    key.set_user("alice");
    key.set_container("box");
    key.set_object("rot");
    auto record = (*engine)->Stat(key, false);
    MCOS_ASSERT_OK(record);
    data_id = record->data_id();
  }
  MCOS_ASSERT_OK(testing::CorruptChunk(db, data_id, 1));
  MCOS_ASSERT_OK(cluster.Start());
  Client c(cluster.endpoint());
  MCOS_ASSERT_OK(c.Login("alice", "alice-pw"));
  std::ostringstream out;
  auto got = c.DownloadObject("box", "rot", out);
  MCOS_EXPECT_CODE(got, kDataLoss);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "rot")) << got.status();
  EXPECT_EQ(out.str().size(), size_t{1} << 20);
  EXPECT_TRUE(out.str() == data.substr(0, out.str().size()));
  // The rest of it, from past the corrupt chunk, is intact and served.
  client::GetOptions past;
  past.offset = 2 << 20;
  std::ostringstream tail;
  MCOS_ASSERT_OK(c.DownloadObject("box", "rot", tail, past));
  EXPECT_TRUE(tail.str() == data.substr(2 << 20));
}

}  // namespace
}  // namespace mcos
