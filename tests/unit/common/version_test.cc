#include "common/version.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "tests/support/fake_clock.h"

namespace mcos::common {
namespace {

mcos::v1::Version V(uint64_t hlc, std::string cluster) {
  mcos::v1::Version v;
  v.set_hlc(hlc);
  v.set_cluster(std::move(cluster));
  return v;
}

TEST(HybridLogicalClockTest, StrictlyIncreasesEvenWhenTimeStandsStillOrGoesBack) {
  testing::FakeClock clock;
  HybridLogicalClock hlc(clock);
  uint64_t last = hlc.Now();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t next = hlc.Now();
    EXPECT_GT(next, last);
    last = next;
  }
  clock.Advance(-absl::Seconds(10));
  EXPECT_GT(hlc.Now(), last);
}

TEST(HybridLogicalClockTest, FollowsPhysicalTime) {
  testing::FakeClock clock;
  HybridLogicalClock hlc(clock);
  const uint64_t a = hlc.Now();
  clock.Advance(absl::Seconds(1));
  const uint64_t b = hlc.Now();
  EXPECT_EQ(HlcTime(b) - HlcTime(a), absl::Seconds(1));
  EXPECT_EQ(HlcTime(b), clock.Now());
}

TEST(HybridLogicalClockTest, ObserveMovesPastARemoteReading) {
  testing::FakeClock clock;
  HybridLogicalClock hlc(clock);
  const uint64_t remote = MakeHlc(clock.Now() + absl::Minutes(5), 7);
  const uint64_t after = hlc.Observe(remote);
  EXPECT_GT(after, remote);
  EXPECT_GT(hlc.Now(), after);
}

TEST(VersionTest, OrdersByClockThenCluster) {
  EXPECT_LT(CompareVersions(V(1, "z"), V(2, "a")), 0);
  EXPECT_LT(CompareVersions(V(2, "a"), V(2, "b")), 0);
  EXPECT_EQ(CompareVersions(V(2, "a"), V(2, "a")), 0);
  EXPECT_TRUE(IsNewer(V(3, ""), V(2, "zz")));
  EXPECT_FALSE(IsSet(V(0, "x")));
}

TEST(VersionTest, StringFormRoundTripsAndSortsLikeTheStruct) {
  std::mt19937_64 rng(7);
  std::vector<mcos::v1::Version> versions;
  for (int i = 0; i < 500; ++i) {
    versions.push_back(V(rng() >> (rng() % 40), std::string(1 + rng() % 3, 'a' + rng() % 4)));
  }
  for (const auto& a : versions) {
    auto parsed = ParseVersion(VersionToString(a));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(CompareVersions(*parsed, a), 0);
    for (int j = 0; j < 20; ++j) {
      const auto& b = versions[rng() % versions.size()];
      const int by_struct = CompareVersions(a, b);
      const int by_text = VersionToString(a).compare(VersionToString(b));
      EXPECT_EQ(by_struct < 0, by_text < 0);
      EXPECT_EQ(by_struct == 0, by_text == 0);
    }
  }
}

TEST(VersionTest, ParseRejectsGarbage) {
  EXPECT_FALSE(ParseVersion("").ok());
  EXPECT_FALSE(ParseVersion("123-c").ok());
  EXPECT_FALSE(ParseVersion("000000000000000g-c").ok());
  EXPECT_FALSE(ParseVersion("0000000000000001_c").ok());
  EXPECT_TRUE(ParseVersion("0000000000000001-").ok());
}

}  // namespace
}  // namespace mcos::common
