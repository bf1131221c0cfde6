// A cluster on a small filesystem made by the test (ext4 on a loop device, else tmpfs; both need
// root, so the test is skipped with a message otherwise): it fills up, refuses new data with
// RESOURCE_EXHAUSTED, reports the condition, keeps deleting, survives kill -9 on a full disk,
// and accepts data again once space is back. Nothing acknowledged is lost.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/sdk/client.h"
#include "common/health_names.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/cluster_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_data.h"

namespace mcos {
namespace {

using client::Client;

constexpr size_t kMiB = size_t{1} << 20;
constexpr int kFsMiB = 160;

int Shell(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

uint64_t FreeBytes(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::space(dir, ec).available;
}

class FullDiskE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small filesystem";
    mnt_ = dir_.Sub("mnt");
    std::filesystem::create_directories(mnt_);
    const std::string img = dir_.Sub("fs.img");
    const char* forced = std::getenv("MCOS_TEST_FS");  // "tmpfs" skips the loop device
    const bool loop_ok = forced == nullptr || std::string(forced) != "tmpfs";
    if (loop_ok && Shell(absl::StrCat("truncate -s ", kFsMiB, "M ", img)) == 0 &&
        Shell(absl::StrCat("mkfs.ext4 -q -F -m 0 ", img)) == 0 &&
        Shell(absl::StrCat("mount -o loop ", img, " ", mnt_)) == 0) {
      kind_ = "ext4 on a loop device";
    } else if (Shell(absl::StrCat("mount -t tmpfs -o size=", kFsMiB, "m tmpfs ", mnt_)) == 0) {
      kind_ = "tmpfs";
    } else {
      GTEST_SKIP() << "cannot mount a loop device or a tmpfs here";
    }
    mounted_ = true;
    std::printf("filesystem: %s, %d MiB\n", kind_.c_str(), kFsMiB);
  }

  void TearDown() override {
    cluster_.reset();
    if (mounted_) Shell("umount -l " + mnt_);
  }

  void StartCluster() {
    cluster_ =
        std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, mnt_, dir_.Sub("cluster.log"));
    ASSERT_TRUE(cluster_
                    ->Start({"--min-free-mib", "24", "--min-free-percent", "15", "--reserve-mib",
                             "12", "--memtable-mib", "4"})
                    .ok())
        << "see " << dir_.Sub("cluster.log");
  }

  // The health of the storage node's writes as grpc.health.v1 reports it.
  bool WritesServing() {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(common::kStorageWritesHealth);
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, req, &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  // Waits until `pred` holds, for at most `timeout`.
  template <typename Pred>
  bool WaitFor(Pred pred, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return pred();
  }

  testing::TempDir dir_;
  std::string mnt_;
  std::string kind_;
  bool mounted_ = false;
  std::unique_ptr<testing::ClusterProcess> cluster_;
};

TEST_F(FullDiskE2eTest, FillsUpRefusesDeletesRestartsAndRecovers) {
  StartCluster();
  MCOS_ASSERT_OK(cluster_->AddUser("dora", "dora-pw"));
  Client dora(cluster_->endpoint());
  MCOS_ASSERT_OK(dora.Login("dora", "dora-pw"));
  MCOS_ASSERT_OK(dora.CreateContainer("fill"));
  ASSERT_TRUE(WritesServing());

  // Fill with 1 MiB objects until the cluster keeps saying it is out of space (the space that a
  // RocksDB flush gives back when it deletes its log may let a few more in after a refusal).
  std::map<std::string, std::string> stored;  // name -> md5 of every acknowledged object
  absl::Status refusal;
  int refusals_in_a_row = 0;
  for (int i = 0; i < 4 * kFsMiB && refusals_in_a_row < 5; ++i) {
    const std::string name = absl::StrCat("obj-", i);
    const std::string data = testing::RandomBytes(kMiB, 100 + i);
    std::istringstream in(data);
    auto put = dora.CreateObject("fill", name, in, {});
    if (put.ok()) {
      stored[name] = testing::Md5Hex(data);
      refusals_in_a_row = 0;
    } else {
      refusal = put.status();
      ASSERT_EQ(refusal.code(), absl::StatusCode::kResourceExhausted) << refusal;
      ++refusals_in_a_row;
      absl::SleepFor(absl::Milliseconds(300));
    }
  }
  std::printf("acknowledged %zu MiB before the refusal: %s\n", stored.size(),
              std::string(refusal.message()).c_str());
  ASSERT_EQ(refusal.code(), absl::StatusCode::kResourceExhausted) << refusal;
  EXPECT_NE(refusal.message().find("out of space"), std::string::npos) << refusal;
  // Most of the filesystem was usable: the floor (24), the reserve (12), RocksDB's WAL and
  // memtables (about 12) and ext4's own metadata take the rest.
  EXPECT_GE(stored.size(), static_cast<size_t>(kFsMiB / 2));
  // The condition is visible: health of writes and the admin's cluster status.
  EXPECT_TRUE(WaitFor([&] { return !WritesServing(); }, absl::Seconds(5)));
  {
    Client admin(cluster_->endpoint());
    MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
    EXPECT_TRUE(WaitFor(
        [&] {
          auto status = admin.GetCluster();
          if (!status.ok()) return false;
          for (const auto& s : status->services()) {
            if (s.kind() == mcos::v1::SERVICE_KIND_STORAGE &&
                s.state() == mcos::v1::SERVICE_STATE_UP &&
                s.condition().find("out of space") != std::string::npos) {
              return true;
            }
          }
          return false;
        },
        absl::Seconds(5)));
  }

  // Another program takes the rest of the disk: it is now truly full.
  const std::string filler = mnt_ + "/filler";
  Shell(absl::StrCat("dd if=/dev/zero of=", filler, " bs=4K count=", 256 * kFsMiB));
  std::printf("free after the filler: %llu KiB\n",
              static_cast<unsigned long long>(FreeBytes(mnt_) >> 10));
  // Deletes still work (they free space) and reads too.
  for (int i = 0; i < 20; ++i) {
    const std::string name = absl::StrCat("obj-", i);
    auto deleted = dora.DeleteObject("fill", name);
    ASSERT_TRUE(deleted.ok()) << name << ": " << deleted.status();
    stored.erase(name);
  }
  {
    std::ostringstream out;
    auto got = dora.DownloadObject("fill", stored.begin()->first, out);
    MCOS_ASSERT_OK(got);
    EXPECT_EQ(testing::Md5Hex(out.str()), stored.begin()->second);
  }

  // kill -9 on a full disk (the filler takes what the deletes gave back), and a restart.
  Shell(absl::StrCat("dd if=/dev/zero of=", filler, " bs=4K count=", 256 * kFsMiB,
                     " oflag=append conv=notrunc"));
  cluster_->Kill();
  StartCluster();
  Client again(cluster_->endpoint());
  MCOS_ASSERT_OK(again.Login("dora", "dora-pw"));
  for (const auto& [name, md5] : stored) {
    std::ostringstream out;
    auto got = again.DownloadObject("fill", name, out);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    ASSERT_EQ(testing::Md5Hex(out.str()), md5) << name;
  }
  MCOS_ASSERT_OK(again.DeleteObject("fill", stored.begin()->first));
  stored.erase(stored.begin());

  // Space comes back: the filler goes, the deleted objects' space is reclaimed, writes resume.
  std::filesystem::remove(filler);
  EXPECT_TRUE(WaitFor([&] { return WritesServing(); }, absl::Seconds(10)));
  for (int i = 0; i < 4; ++i) {
    const std::string data = testing::RandomBytes(kMiB, 9000 + i);
    std::istringstream in(data);
    const std::string name = absl::StrCat("after-", i);
    MCOS_ASSERT_OK(again.CreateObject("fill", name, in, {}));
    stored[name] = testing::Md5Hex(data);
  }
  auto listing = again.ListObjects([] {
    mcos::v1::ListObjectsRequest r;
    r.set_container("fill");
    r.set_limit(10000);
    return r;
  }());
  MCOS_ASSERT_OK(listing);
  EXPECT_EQ(static_cast<size_t>(listing->objects_size()), stored.size());
}

// Deleting and replacing objects gives their space back within a few seconds, without new writes.
TEST_F(FullDiskE2eTest, DeletedAndReplacedDataIsReclaimed) {
  StartCluster();
  MCOS_ASSERT_OK(cluster_->AddUser("eve", "eve-pw"));
  Client eve(cluster_->endpoint());
  MCOS_ASSERT_OK(eve.Login("eve", "eve-pw"));
  MCOS_ASSERT_OK(eve.CreateContainer("space"));
  const uint64_t empty = FreeBytes(mnt_);
  const std::string big = testing::RandomBytes(32 * kMiB, 5);
  {
    std::istringstream in(big);
    MCOS_ASSERT_OK(eve.CreateObject("space", "big", in, {}));
  }
  // Each replaced version is given back in the background; on this small disk a replacement that
  // comes before the last one's space is back is refused (RESOURCE_EXHAUSTED, "retry"), as it
  // should be: retry it, as a client would, for up to 15 s.
  int refused = 0;
  for (int i = 0; i < 5; ++i) {
    absl::Status s;
    const absl::Time until = absl::Now() + absl::Seconds(15);
    do {
      std::istringstream in(big);
      s = eve.UpdateObject("space", "big", in, {}).status();
      if (absl::IsResourceExhausted(s)) {
        ++refused;
        absl::SleepFor(absl::Milliseconds(200));
      }
    } while (absl::IsResourceExhausted(s) && absl::Now() < until);
    MCOS_ASSERT_OK(s);
  }
  std::printf("5 replacements of a 32 MiB object: %d refused for space and retried\n", refused);
  // One 32 MiB version is live; the five replaced ones must be given back.
  EXPECT_TRUE(WaitFor([&] { return empty - FreeBytes(mnt_) < 48 * kMiB; }, absl::Seconds(15)))
      << "used " << ((empty - FreeBytes(mnt_)) >> 20) << " MiB for one 32 MiB object";
  std::printf("one 32 MiB object after 5 replacements uses %llu MiB of the disk\n",
              static_cast<unsigned long long>((empty - FreeBytes(mnt_)) >> 20));
  MCOS_ASSERT_OK(eve.DeleteObject("space", "big"));
  EXPECT_TRUE(WaitFor([&] { return empty - FreeBytes(mnt_) < 16 * kMiB; }, absl::Seconds(15)))
      << "used " << ((empty - FreeBytes(mnt_)) >> 20) << " MiB after deleting everything";
}

// A disk smaller than the default floor (256 MiB) is writable: the floor and the reserve are then
// a share of the disk (5% by default).
TEST_F(FullDiskE2eTest, ADiskSmallerThanTheDefaultFloorIsWritable) {
  cluster_ =
      std::make_unique<testing::ClusterProcess>(MCOS_CLUSTER_BIN, mnt_, dir_.Sub("cluster.log"));
  ASSERT_TRUE(cluster_->Start({"--min-free-mib", "256", "--reserve-mib", "64"}).ok())
      << "see " << dir_.Sub("cluster.log");
  MCOS_ASSERT_OK(cluster_->AddUser("sam", "sam-pw"));
  Client sam(cluster_->endpoint());
  MCOS_ASSERT_OK(sam.Login("sam", "sam-pw"));
  MCOS_ASSERT_OK(sam.CreateContainer("small"));
  EXPECT_TRUE(WritesServing());
  int stored = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string data = testing::RandomBytes(kMiB, 900 + i);
    std::istringstream in(data);
    auto put = sam.PutObject("small", absl::StrCat("o", i), in);
    if (!put.ok()) {
      ADD_FAILURE() << "put " << i << ": " << put.status();
      break;
    }
    ++stored;
  }
  std::printf("%d MiB stored on a %d MiB disk with --min-free-mib 256\n", stored, kFsMiB);
  EXPECT_EQ(stored, 40);
  // `mcos admin cluster status` shows the floor in force (5% of the disk).
  Client admin(cluster_->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  std::string detail;
  WaitFor(
      [&] {
        auto status = admin.GetCluster("");
        if (!status.ok()) return false;
        for (const auto& s : status->services()) {
          if (s.kind() == mcos::v1::SERVICE_KIND_STORAGE) detail = s.detail();
        }
        return !detail.empty();
      },
      absl::Seconds(10));
  std::printf("storage: %s\n", detail.c_str());
  const size_t at = detail.find("new data refused below ");
  ASSERT_NE(at, std::string::npos) << detail;
  const int floor_mib = std::atoi(detail.c_str() + at + 23);
  EXPECT_GE(floor_mib, 6) << detail;  // 5% of the disk, not 256 MiB
  EXPECT_LE(floor_mib, 8) << detail;
}

}  // namespace
}  // namespace mcos
