// Integrity of uploads under abuse, against the real mcos-cluster process: uploads cancelled,
// timed out or cut off at random moments never commit a part of an object.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/sdk/client.h"
#include "common/hash.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/cluster_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;

class UploadIntegrityE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    cluster_ = new testing::ClusterProcess(MCOS_CLUSTER_BIN, dir_->path());
    ASSERT_TRUE(cluster_->Start().ok());
    ASSERT_TRUE(cluster_->AddUser("carol", "carol-pw").ok());
  }
  static void TearDownTestSuite() {
    cluster_->Stop();
    delete cluster_;
    delete dir_;
  }

  static testing::TempDir* dir_;
  static testing::ClusterProcess* cluster_;
};

testing::TempDir* UploadIntegrityE2eTest::dir_ = nullptr;
testing::ClusterProcess* UploadIntegrityE2eTest::cluster_ = nullptr;

// The reproduction: UpdateObject of a 5 MiB object, header without size, 786,432 bytes,
// a pause, then a cancel (or a deadline). The object must stay the 5 MiB version.
TEST_F(UploadIntegrityE2eTest, ACancelAfterAPauseKeepsThePreviousVersion) {
  Client carol(cluster_->endpoint());
  MCOS_ASSERT_OK(carol.Login("carol", "carol-pw"));
  MCOS_ASSERT_OK(carol.CreateContainer("pause"));
  const std::string original(5u << 20, 'o');
  std::istringstream in(original);
  MCOS_ASSERT_OK(carol.CreateObject("pause", "obj", in, {}));
  auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
  auto stub = mcos::v1::UserService::NewStub(channel);
  for (int round = 0; round < 10; ++round) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + carol.token());
    const bool by_deadline = round % 2 == 1;
    if (by_deadline)
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    mcos::v1::ObjectInfo info;
    auto w = stub->UpdateObject(&ctx, &info);
    mcos::v1::PutObjectRequest m;
    m.mutable_header()->set_container("pause");
    m.mutable_header()->set_object("obj");
    ASSERT_TRUE(w->Write(m));
    m.set_data(std::string(64 * 1024, 'p'));
    for (int i = 0; i < 12; ++i) w->Write(m);
    std::this_thread::sleep_for(std::chrono::milliseconds(by_deadline ? 400 : 300));
    if (!by_deadline) ctx.TryCancel();
    EXPECT_FALSE(w->Finish().ok());
    auto stat = carol.StatObject("pause", "obj");
    ASSERT_TRUE(stat.ok()) << stat.status();
    EXPECT_EQ(stat->size(), original.size()) << "round " << round;
  }
}

// A server shutdown (SIGTERM) in the middle of an upload that declared no size stores nothing: the
// previous version is there after the restart.
TEST_F(UploadIntegrityE2eTest, AShutdownMidUploadKeepsThePreviousVersion) {
  {
    Client carol(cluster_->endpoint());
    MCOS_ASSERT_OK(carol.Login("carol", "carol-pw"));
    MCOS_ASSERT_OK(carol.CreateContainer("shutdown"));
    std::istringstream in("before the shutdown");
    MCOS_ASSERT_OK(carol.CreateObject("shutdown", "obj", in, {}));
    auto stub = mcos::v1::UserService::NewStub(
        grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + carol.token());
    mcos::v1::ObjectInfo info;
    auto w = stub->UpdateObject(&ctx, &info);
    mcos::v1::PutObjectRequest m;
    m.mutable_header()->set_container("shutdown");
    m.mutable_header()->set_object("obj");
    ASSERT_TRUE(w->Write(m));
    m.set_data(std::string(300000, 'x'));
    ASSERT_TRUE(w->Write(m));
    cluster_->Stop();  // the upload is still open: it is cut off by the shutdown
    EXPECT_FALSE(w->Finish().ok());
  }
  ASSERT_TRUE(cluster_->Start().ok());
  Client carol(cluster_->endpoint());
  MCOS_ASSERT_OK(carol.Login("carol", "carol-pw"));
  std::ostringstream out;
  MCOS_ASSERT_OK(carol.DownloadObject("shutdown", "obj", out));
  EXPECT_EQ(out.str(), "before the shutdown");
}

// How one randomized upload ends.
enum class Ending {
  kComplete,             // all data, then a clean half-close
  kCancelMidway,         // TryCancel after some of the data (possibly all of it, before the end)
  kHalfCloseThenCancel,  // part of the data, a half-close, then a cancel 0-5 ms later (as Node)
  kDeadline,             // a deadline of 2-100 ms while the data trickles in
};

struct Trial {
  std::string object;
  bool create = false;
  bool declare_size = false;
  bool send_finish = false;
  Ending ending = Ending::kComplete;
  std::string content;    // what a complete upload stores
  size_t chunk = 1;       // bytes per data message
  size_t stop_after = 0;  // data messages sent before a cancel / half-close
  int gap_us = 0;         // half-close -> cancel
  int deadline_ms = 0;
};

struct Outcome {
  grpc::StatusCode code;
  std::string md5;  // of the complete content
};

Trial RandomTrial(std::mt19937_64& rng, const std::string& object, bool create, uint64_t seed) {
  Trial t;
  t.object = object;
  t.create = create;
  t.declare_size = rng() % 2 == 0;
  t.send_finish = rng() % 3 == 0;
  static constexpr size_t kSizes[] = {0, 1, 100, 4096, 65536, 300000, 1u << 20, 3u << 20};
  size_t size = kSizes[rng() % std::size(kSizes)];
  if (size > 1) size = 1 + rng() % size;
  static constexpr size_t kChunks[] = {1, 3, 1000, 4096, 65536, 1u << 20};
  t.chunk = kChunks[rng() % std::size(kChunks)];
  t.chunk = std::max(t.chunk, (size + 299) / 300);  // at most 300 messages per upload
  t.content = testing::RandomBytes(size, seed);
  const size_t messages = (size + t.chunk - 1) / t.chunk;
  t.ending = static_cast<Ending>(rng() % 4);
  t.stop_after = rng() % (messages + 1);  // == messages: after the last chunk
  t.gap_us = static_cast<int>(rng() % 5000);
  t.deadline_ms = 2 + static_cast<int>(rng() % 99);
  if (t.ending == Ending::kHalfCloseThenCancel) t.send_finish = false;  // as a Node client
  return t;
}

grpc::StatusCode RunTrial(mcos::v1::UserService::Stub& stub, const std::string& token,
                          const std::string& container, const Trial& t, std::mt19937_64& rng) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  if (t.ending == Ending::kDeadline) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(t.deadline_ms));
  }
  mcos::v1::ObjectInfo info;
  auto w = t.create ? stub.CreateObject(&ctx, &info) : stub.UpdateObject(&ctx, &info);
  mcos::v1::PutObjectRequest m;
  m.mutable_header()->set_container(container);
  m.mutable_header()->set_object(t.object);
  if (t.declare_size) m.mutable_header()->set_size(t.content.size());
  bool open = w->Write(m);
  size_t sent = 0;
  size_t messages = 0;
  const bool stops = t.ending == Ending::kCancelMidway || t.ending == Ending::kHalfCloseThenCancel;
  while (open && sent < t.content.size()) {
    if (stops && messages == t.stop_after) break;
    const size_t n = std::min(t.chunk, t.content.size() - sent);
    m.set_data(t.content.substr(sent, n));
    open = w->Write(m);
    sent += n;
    ++messages;
    if (t.ending == Ending::kDeadline && rng() % 8 == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    }
  }
  switch (t.ending) {
    case Ending::kCancelMidway:
      ctx.TryCancel();
      break;
    case Ending::kHalfCloseThenCancel:
      w->WritesDone();
      std::this_thread::sleep_for(std::chrono::microseconds(t.gap_us));
      ctx.TryCancel();
      break;
    case Ending::kComplete:
    case Ending::kDeadline:
      if (open && t.send_finish) {
        m.mutable_finish()->set_size(t.content.size());
        w->WriteLast(m, grpc::WriteOptions());
      } else {
        w->WritesDone();
      }
      break;
  }
  return w->Finish().error_code();
}

// At least 1,000 uploads, created and updated, with and without a declared size or a finish
// message, chunks of 1 byte to 1 MiB, cancelled, half-closed then cancelled, or timed out at
// random points (including after the last chunk). Afterwards every object holds its previous
// version or one complete new one, never a part; an acknowledged upload is never lost to an older
// one.
TEST_F(UploadIntegrityE2eTest, RandomCancelsAndDeadlinesNeverCommitAPart) {
  constexpr int kThreads = 8;
  constexpr int kTrialsPerThread = 128;
  constexpr int kObjectsPerThread = 4;
  Client carol(cluster_->endpoint());
  MCOS_ASSERT_OK(carol.Login("carol", "carol-pw"));
  MCOS_ASSERT_OK(carol.CreateContainer("random"));
  // object -> the outcomes of its uploads, in order; the first is the original version.
  std::vector<std::map<std::string, std::vector<Outcome>>> history(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kObjectsPerThread; ++i) {
      const std::string name = absl::StrCat("u", t, "-", i);
      const std::string original = testing::RandomBytes(1000 + i, 1000 * t + i);
      std::istringstream in(original);
      MCOS_ASSERT_OK(carol.CreateObject("random", name, in, {}));
      history[t][name].push_back({grpc::StatusCode::OK, testing::Md5Hex(original)});
    }
  }
  std::vector<std::thread> threads;
  std::vector<std::map<grpc::StatusCode, int>> codes(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(42 + t);
      auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
      auto stub = mcos::v1::UserService::NewStub(channel);
      int created = 0;
      for (int i = 0; i < kTrialsPerThread; ++i) {
        const bool create = rng() % 3 == 0;
        const std::string name = create ? absl::StrCat("c", t, "-", created++)
                                        : absl::StrCat("u", t, "-", rng() % kObjectsPerThread);
        const Trial trial = RandomTrial(rng, name, create, 7919u * static_cast<unsigned>(t) + i);
        const grpc::StatusCode code = RunTrial(*stub, carol.token(), "random", trial, rng);
        ++codes[t][code];
        history[t][name].push_back({code, testing::Md5Hex(trial.content)});
      }
    });
  }
  for (auto& th : threads) th.join();

  std::map<grpc::StatusCode, int> total;
  for (const auto& c : codes) {
    for (const auto& [code, n] : c) total[code] += n;
  }
  for (const auto& [code, n] : total) std::printf("status %d: %d uploads\n", code, n);
  EXPECT_GT(total[grpc::StatusCode::OK], 50);
  EXPECT_GT(total[grpc::StatusCode::CANCELLED] + total[grpc::StatusCode::DEADLINE_EXCEEDED], 300);
  int checked = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& [name, outcomes] : history[t]) {
      const bool created = name[0] == 'c';
      std::ostringstream out;
      auto got = carol.DownloadObject("random", name, out, {});
      if (!got.ok()) {
        // Only a new name may be missing, and only if no upload of it was acknowledged.
        EXPECT_TRUE(created) << name << ": " << got.status();
        for (const auto& o : outcomes) EXPECT_NE(o.code, grpc::StatusCode::OK) << name;
        continue;
      }
      const std::string md5 = testing::Md5Hex(out.str());
      EXPECT_EQ(got->etag(), md5) << name;
      // The newest acknowledged version, or one tried after it.
      size_t first_allowed = 0;
      for (size_t i = 0; i < outcomes.size(); ++i) {
        if (outcomes[i].code == grpc::StatusCode::OK) first_allowed = i;
      }
      bool found = false;
      for (size_t i = first_allowed; i < outcomes.size(); ++i) found |= outcomes[i].md5 == md5;
      EXPECT_TRUE(found) << name << " holds content that no complete upload since the last "
                         << "acknowledged one had (a part was committed?)";
      ++checked;
    }
  }
  EXPECT_GT(checked, kThreads * kObjectsPerThread);
}

}  // namespace
}  // namespace mcos
