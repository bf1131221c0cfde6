// Uploads streamed to every replica cluster as they arrive (docs/design.md, "Data path"), under
// the faults an outside probe uses: the client cancelling and the receiving cluster killed with -9
// half-way through a 200 MiB upload, a replica cluster frozen (SIGSTOP) or killed mid-stream, and
// 50 writers racing on 10 names at three clusters. Three mcos-cluster processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/sdk/client.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/federation_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;
using testing::kAllThree;
using testing::WaitFor;

// An update (or a create) through the bare UserService stream, so that the test decides how it
// is cut and when it stops: it declares `size` bytes when given and sends what Send is given.
class RawUpload {
 public:
  RawUpload(const testing::ClusterProcess& at, const std::string& token,
            const std::string& container, const std::string& object, std::optional<uint64_t> size,
            bool create = false)
      : stub_(mcos::v1::UserService::NewStub(
            grpc::CreateChannel(at.endpoint(), grpc::InsecureChannelCredentials()))) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    writer_ = create ? stub_->CreateObject(&ctx_, &info_) : stub_->UpdateObject(&ctx_, &info_);
    mcos::v1::PutObjectRequest header;
    header.mutable_header()->set_container(container);
    header.mutable_header()->set_object(object);
    if (size) header.mutable_header()->set_size(*size);
    writer_->Write(header);
  }
  bool Send(const std::string& chunk) {
    mcos::v1::PutObjectRequest m;
    m.set_data(chunk);
    return writer_->Write(m);
  }
  void Cancel() { ctx_.TryCancel(); }
  grpc::Status Finish() { return writer_->Finish(); }
  // Sends the finish message (`size` bytes in all), half-closes, and returns the answer.
  grpc::Status Close(uint64_t size) {
    mcos::v1::PutObjectRequest finish;
    finish.mutable_finish()->set_size(size);
    writer_->Write(finish);
    writer_->WritesDone();
    return writer_->Finish();
  }
  const mcos::v1::ObjectInfo& info() const { return info_; }

 private:
  std::unique_ptr<mcos::v1::UserService::Stub> stub_;
  grpc::ClientContext ctx_;
  mcos::v1::ObjectInfo info_;
  std::unique_ptr<grpc::ClientWriter<mcos::v1::PutObjectRequest>> writer_;
};

class StreamedWriteE2eTest : public testing::FederationFixture {
 protected:
  // The data files (a large version's chunks) in cluster `name`'s storage.
  int DataFiles(const std::string& name) {
    const std::string dir = absl::StrCat(dir_.path(), "/", name, "/cluster/storage/db/objects");
    std::error_code ec;
    int files = 0;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++files;
    }
    return files;
  }
  // Carol's client at alpha, beta and gamma (fewer after a failure, which it reports).
  std::vector<std::unique_ptr<Client>> ClientsAtEach() {
    std::vector<std::unique_ptr<Client>> clients;
    for (auto* c : {a_, b_, c_}) {
      auto client = As(*c);
      if (client == nullptr) break;
      clients.push_back(std::move(client));
    }
    return clients;
  }
  // Every cluster (each of `clients` at one) ends up serving one version of each name of `acked`
  // from all three, one of those the name's writes were answered with (their ETags).
  static void ExpectConverged(const std::vector<std::unique_ptr<Client>>& clients,
                              const std::string& container,
                              const std::map<std::string, std::set<std::string>>& acked) {
    for (const auto& [name, etags] : acked) {
      WaitFor([&] {
        std::set<std::string> served;
        for (const auto& client : clients) {
          auto stat = client->StatObject(container, name);
          if (!stat.ok() || Replicas(*stat) != kAllThree) return false;
          served.insert(stat->version());
        }
        return served.size() == 1;
      });
      std::set<std::string> versions;
      for (const auto& client : clients) {
        auto stat = client->StatObject(container, name);
        MCOS_ASSERT_OK(stat);
        versions.insert(stat->version());
        EXPECT_EQ(Replicas(*stat), kAllThree) << name;
        EXPECT_EQ(etags.count(stat->etag()), 1u) << name << " serves a version nobody was answered";
      }
      EXPECT_EQ(versions.size(), 1u) << name << ": the clusters serve different versions";
    }
  }
  static constexpr uint64_t kMiB = uint64_t{1} << 20;

  // Uploads 64 MiB at alpha, calling `fail` once the first 16 MiB are sent: the upload must be
  // acknowledged by alpha and beta alone (W = 2) with its own ETag; then `recover` brings gamma
  // back and gamma must get it from the replication queue.
  void UploadWhileGammaFails(const std::string& container, const std::function<void()>& fail,
                             const std::function<absl::Status()>& recover) {
    Federate();
    auto at_a = ContainerEverywhere(container);
    ASSERT_NE(at_a, nullptr);
    const std::string data = testing::RandomBytes(64 * kMiB, 3);
    std::atomic<bool> failed{false};
    client::PutOptions options;
    options.progress = [&](uint64_t done, uint64_t) {
      if (done >= 16 * kMiB && !failed.exchange(true)) fail();
    };
    std::istringstream in(data);
    const absl::Time start = absl::Now();
    auto info = at_a->PutObject(container, "big", in, options);
    const absl::Duration took = absl::Now() - start;
    const absl::Status recovered = recover();
    MCOS_ASSERT_OK(info);
    MCOS_ASSERT_OK(recovered);
    EXPECT_TRUE(failed.load());
    EXPECT_EQ(info->etag(), testing::Md5Hex(data));
    EXPECT_EQ(Replicas(*info), (std::set<std::string>{"alpha", "beta"}));
    std::printf("64 MiB at alpha, gamma %s after 16 MiB: acknowledged in %s\n", container.c_str(),
                absl::FormatDuration(took).c_str());
    const absl::Time back = absl::Now();
    WaitFor(
        [&] {
          auto stat = at_a->StatObject(container, "big");
          return stat.ok() && Replicas(*stat) == kAllThree;
        },
        absl::Seconds(60));
    std::printf("gamma held it %s after it was back\n",
                absl::FormatDuration(absl::Now() - back).c_str());
    ExpectEverywhere({a_, b_, c_}, container, "big", info->version(), data, kAllThree);
  }

  // Every cluster in `at` serves `version` of container/object with `data`, held by `holders`.
  void ExpectEverywhere(const std::vector<testing::ClusterProcess*>& at,
                        const std::string& container, const std::string& object,
                        const std::string& version, const std::string& data,
                        const std::set<std::string>& holders) {
    for (auto* c : at) {
      auto client = As(*c);
      ASSERT_NE(client, nullptr);
      // A stat names the holders that answered within its grace: a cluster busy dropping what
      // it took in may answer later.
      WaitFor([&] {
        auto stat = client->StatObject(container, object);
        return stat.ok() && stat->version() == version && Replicas(*stat) == holders;
      });
      auto stat = client->StatObject(container, object);
      MCOS_ASSERT_OK(stat);
      EXPECT_EQ(stat->version(), version) << c->endpoint();
      EXPECT_EQ(Replicas(*stat), holders) << c->endpoint();
      auto got = Get(*client, container, object);
      MCOS_ASSERT_OK(got);
      EXPECT_TRUE(*got == data) << c->endpoint() << " serves other content";
    }
  }
};

// A 200 MiB update cut off after 100 MiB, by the client's cancel and then by the receiving
// cluster's death: the streams to the other replicas carried half of it, and no replica stores
// any of it.
TEST_F(StreamedWriteE2eTest, AnUploadCutShortMidStreamLeavesThePreviousVersionAtEveryReplica) {
  Federate();
  auto at_a = ContainerEverywhere("cut");
  ASSERT_NE(at_a, nullptr);
  const std::string before = testing::RandomBytes(3 * kMiB, 1);
  std::istringstream in(before);
  auto v1 = at_a->PutObject("cut", "big", in);
  MCOS_ASSERT_OK(v1);
  ExpectEverywhere({a_, b_, c_}, "cut", "big", v1->version(), before, kAllThree);
  const std::string block = testing::RandomBytes(kMiB, 2);

  {
    RawUpload up(*a_, at_a->token(), "cut", "big", 200 * kMiB);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(up.Send(block)) << "chunk " << i;
    up.Cancel();
    EXPECT_EQ(up.Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ExpectEverywhere({a_, b_, c_}, "cut", "big", v1->version(), before, kAllThree);
  // The cancelled upload's data files (it declared 200 MiB: all of it went to them) are gone.
  for (const char* name : {"alpha", "beta", "gamma"}) EXPECT_EQ(DataFiles(name), 0) << name;

  {
    auto at_b = As(*b_);
    ASSERT_NE(at_b, nullptr);
    RawUpload up(*b_, at_b->token(), "cut", "big", 200 * kMiB);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(up.Send(block)) << "chunk " << i;
    b_->Kill();
    EXPECT_FALSE(up.Finish().ok());
  }
  // Alpha and gamma never got the finish: both still hold the first version (a quorum without
  // beta, which reads skip while it is down).
  ExpectEverywhere({a_, c_}, "cut", "big", v1->version(), before, {"alpha", "gamma"});
  MCOS_ASSERT_OK(Restart(*b_, "beta", /*same_port=*/true));
  WaitFor([&] {
    auto stat = at_a->StatObject("cut", "big");
    return stat.ok() && Replicas(*stat) == kAllThree;
  });
  // Beta's storage dropped the half it had taken in when it died (its data file included: the
  // upload's intent named it), and the others dropped theirs when the stream broke.
  ExpectEverywhere({a_, b_, c_}, "cut", "big", v1->version(), before, kAllThree);
  for (const char* name : {"alpha", "beta", "gamma"}) EXPECT_EQ(DataFiles(name), 0) << name;
}

// Uploads up to 256 KiB are held in memory, committed here in one call and sent to the replicas
// from memory; a larger one is streamed from the chunk that outgrows that, starting with what was
// held. Every size and chunking around the limit arrives whole at every replica, ETag its own.
TEST_F(StreamedWriteE2eTest, UploadsAroundTheInMemoryLimitArriveWholeEverywhere) {
  Federate();
  auto at_a = ContainerEverywhere("sizes");
  ASSERT_NE(at_a, nullptr);
  constexpr size_t kKiB = 1024;
  const std::vector<std::vector<size_t>> chunkings = {
      {},                                    // empty
      {1},                                   // one byte
      {256 * kKiB},                          // exactly the limit
      {128 * kKiB, 128 * kKiB},              // the limit in two chunks
      {256 * kKiB, 1},                       // one byte over: the held part, then that byte
      {200 * kKiB, 100 * kKiB, 300 * kKiB},  // outgrown by the second of three chunks
      {1024 * kKiB, 1024 * kKiB},            // outgrown by the first chunk
  };
  for (size_t i = 0; i < chunkings.size(); ++i) {
    const std::string name = absl::StrCat("o", i);
    std::string data;
    for (size_t n : chunkings[i]) data += testing::RandomBytes(n, 50 + data.size());
    RawUpload up(*a_, at_a->token(), "sizes", name, std::nullopt, /*create=*/true);
    size_t at = 0;
    for (size_t n : chunkings[i]) {
      ASSERT_TRUE(up.Send(data.substr(at, n))) << name;
      at += n;
    }
    const grpc::Status s = up.Close(data.size());
    ASSERT_TRUE(s.ok()) << name << ": " << s.error_message();
    EXPECT_EQ(up.info().etag(), testing::Md5Hex(data)) << name;
    EXPECT_EQ(up.info().size(), data.size()) << name;
    ExpectEverywhere({a_, b_, c_}, "sizes", name, up.info().version(), data, kAllThree);
  }
  // Strict updates around the limit too (held in memory, or streamed and checked at the quorum
  // before the commit), and one of a name that does not exist.
  for (size_t n : {size_t{1000}, 600 * kKiB}) {
    const std::string data = testing::RandomBytes(n, 77);
    RawUpload up(*a_, at_a->token(), "sizes", "o1", std::nullopt, /*create=*/false);
    ASSERT_TRUE(up.Send(data));
    const grpc::Status s = up.Close(data.size());
    ASSERT_TRUE(s.ok()) << n << ": " << s.error_message();
    EXPECT_EQ(up.info().etag(), testing::Md5Hex(data));
    ExpectEverywhere({a_, b_, c_}, "sizes", "o1", up.info().version(), data, kAllThree);
  }
  for (size_t n : {size_t{1000}, 600 * kKiB}) {
    RawUpload up(*a_, at_a->token(), "sizes", "never-made", std::nullopt, /*create=*/false);
    up.Send(testing::RandomBytes(n, 78));
    EXPECT_EQ(up.Close(n).error_code(), grpc::StatusCode::NOT_FOUND) << n;
  }
}

// Gamma frozen after the first 16 MiB of a 64 MiB upload at alpha: the stream to gamma fills and
// is dropped after the stall timeout (2 s), the upload is acknowledged by alpha and beta (W = 2),
// and gamma gets it from the replication queue once it runs again.
TEST_F(StreamedWriteE2eTest, AReplicaFrozenMidStreamDoesNotStopTheWriteAtW) {
  UploadWhileGammaFails(
      "frozen", [this] { kill(c_->pid(), SIGSTOP); },
      [this] {
        kill(c_->pid(), SIGCONT);
        return absl::OkStatus();
      });
}

// Gamma killed with -9 after the first 16 MiB of a 64 MiB upload at alpha: its stream breaks,
// which stops nothing (no stall to wait out), alpha and beta acknowledge the upload, and gamma,
// restarted, gets it from the replication queue.
TEST_F(StreamedWriteE2eTest, AReplicaKilledMidStreamDoesNotStopTheWriteAtW) {
  UploadWhileGammaFails(
      "killed", [this] { c_->Kill(); },
      [this] { return Restart(*c_, "gamma", /*same_port=*/true); });
}

// Gamma paused for 1 s (less than the stall timeout) after 16 MiB of a 64 MiB upload: the upload
// waits for its stream to drain instead of dropping it, so gamma takes the write itself, at once,
// and nothing is queued for it.
TEST_F(StreamedWriteE2eTest, AReplicaPausedShorterThanTheStallTimeoutIsWaitedForNotDropped) {
  Federate();
  auto at_a = ContainerEverywhere("paused");
  ASSERT_NE(at_a, nullptr);
  const std::string data = testing::RandomBytes(64 * kMiB, 5);
  std::atomic<bool> paused{false};
  std::thread resume;
  client::PutOptions options;
  options.progress = [&](uint64_t done, uint64_t) {
    if (done >= 16 * kMiB && !paused.exchange(true)) {
      kill(c_->pid(), SIGSTOP);
      resume = std::thread([this] {
        absl::SleepFor(absl::Seconds(1));
        kill(c_->pid(), SIGCONT);
      });
    }
  };
  // What alpha logs from here on: whether it dropped gamma from the write or queued it.
  const auto logged_before = std::filesystem::file_size(a_->log_path());
  std::istringstream in(data);
  auto info = at_a->PutObject("paused", "big", in, options);
  if (resume.joinable()) resume.join();
  MCOS_ASSERT_OK(info);
  EXPECT_TRUE(paused.load());
  EXPECT_EQ(info->etag(), testing::Md5Hex(data));
  ExpectEverywhere({a_, b_, c_}, "paused", "big", info->version(), data, kAllThree);
  std::ifstream log(a_->log_path());
  log.seekg(static_cast<std::streamoff>(logged_before));
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("took nothing for"), std::string::npos) << "gamma was dropped from the write";
  EXPECT_EQ(text.find("queued"), std::string::npos) << text;
}

// 50 writers racing on 10 names, spread over the three clusters, half of the uploads over the size
// kept in memory (so streamed to the replicas), half under it (so committed here in one call and
// sent from memory): every acknowledged write answers its own ETag, and
// every cluster ends up serving one of the acknowledged versions of each name, the same one.
TEST_F(StreamedWriteE2eTest, FiftyWritersRacingOnTenNamesGetTheirOwnETagsAndConverge) {
  Federate();
  ASSERT_NE(ContainerEverywhere("race"), nullptr);
  const auto clients = ClientsAtEach();
  ASSERT_EQ(clients.size(), 3u);
  std::mutex mu;
  std::map<std::string, std::set<std::string>> acked;  // name -> ETags acknowledged
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int n = 0; n < 50; ++n) {
    writers.emplace_back([&, n] {
      const std::string name = absl::StrCat("o", n % 10);
      // Half of them held in memory (up to 256 KiB), half streamed.
      const size_t size = n % 2 == 0 ? (300 << 10) + static_cast<size_t>(n) * 1024
                                     : 1024 + static_cast<size_t>(n) * 64;
      const std::string data = testing::RandomBytes(size, 100 + n);
      std::istringstream in(data);
      auto info = clients[static_cast<size_t>(n) % 3]->PutObject("race", name, in);
      if (!info.ok()) {
        if (++failed <= 5)
          std::printf("put %s: %s\n", name.c_str(), info.status().ToString().c_str());
        return;
      }
      EXPECT_EQ(info->etag(), testing::Md5Hex(data)) << name;
      std::lock_guard<std::mutex> lock(mu);
      acked[name].insert(info->etag());
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(failed.load(), 0);
  ASSERT_EQ(acked.size(), 10u);
  ExpectConverged(clients, "race", acked);
}

// Thirty strict creates racing on five names at three clusters (small: each sent to the other
// clusters before it is stored where it arrived). Each ends ALREADY_EXISTS or with its own ETag;
// every name was created; the clusters converge on one version of each, one that a create was
// answered with: a refused create takes effect nowhere.
TEST_F(StreamedWriteE2eTest, RacingStrictCreatesConvergeAndRefusedOnesTakeEffectNowhere) {
  Federate();
  ASSERT_NE(ContainerEverywhere("creates"), nullptr);
  const auto clients = ClientsAtEach();
  ASSERT_EQ(clients.size(), 3u);
  std::mutex mu;
  std::map<std::string, std::set<std::string>> acked;  // name -> ETags acknowledged
  std::atomic<int> refused{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> creators;
  for (int n = 0; n < 30; ++n) {
    creators.emplace_back([&, n] {
      const std::string name = absl::StrCat("o", n % 5);
      const std::string data = testing::RandomBytes(512 + static_cast<size_t>(n) * 16, 300 + n);
      std::istringstream in(data);
      auto info = clients[static_cast<size_t>(n) % 3]->CreateObject("creates", name, in);
      if (absl::IsAlreadyExists(info.status())) {
        ++refused;
        return;
      }
      if (!info.ok()) {
        if (++failed <= 5) {
          std::printf("create %s: %s\n", name.c_str(), info.status().ToString().c_str());
        }
        return;
      }
      EXPECT_EQ(info->etag(), testing::Md5Hex(data)) << name;
      std::lock_guard<std::mutex> lock(mu);
      acked[name].insert(info->etag());
    });
  }
  for (auto& t : creators) t.join();
  std::printf("30 racing creates: %zu names created, %d refused\n", acked.size(), refused.load());
  EXPECT_EQ(failed.load(), 0);
  ASSERT_EQ(acked.size(), 5u);
  ExpectConverged(clients, "creates", acked);
}

}  // namespace
}  // namespace mcos
