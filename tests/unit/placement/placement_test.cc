#include "placement/placement.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace mcos::placement {
namespace {

mcos::v1::Ring MakeRing(int members, uint32_t replicas, int regions) {
  mcos::v1::Ring ring;
  ring.set_id("r");
  ring.set_partition_power(12);
  ring.set_replicas(replicas);
  for (int i = 0; i < members; ++i) {
    auto* m = ring.add_members();
    m->set_cluster("c" + std::to_string(i));
    m->set_weight(1.0 + i % 3);
    m->set_region("region" + std::to_string(i % regions));
  }
  return ring;
}

TEST(PlacementTest, HashAndPartitionAreFixed) {
  // Golden values: placement is part of the data format and must never change.
  EXPECT_EQ(ObjectHash("alice", "photos", "cat.jpg"), ObjectHash("alice", "photos", "cat.jpg"));
  EXPECT_NE(ObjectHash("alice", "photos", "cat.jpg"), ObjectHash("alicep", "hotos", "cat.jpg"));
  EXPECT_EQ(PartitionOf(0xFFFFFFFFFFFFFFFFull, 8), 255u);
  EXPECT_EQ(PartitionOf(0x0123456789ABCDEFull, 16), 0x0123u);
  EXPECT_EQ(PartitionOf(12345, 0), 0u);
}

TEST(PlacementTest, ReplicasAreDistinctAndSpreadOverRegions) {
  const auto ring = MakeRing(9, 3, 3);
  for (uint32_t p = 0; p < 4096; ++p) {
    const auto placed = PlacePartition(ring, p);
    ASSERT_EQ(placed.replicas.size(), 3u);
    std::set<std::string> clusters(placed.replicas.begin(), placed.replicas.end());
    EXPECT_EQ(clusters.size(), 3u);
    std::set<std::string> regions;
    for (const auto& c : placed.replicas)
      regions.insert("region" + std::to_string(std::stoi(c.substr(1)) % 3));
    EXPECT_EQ(regions.size(), 3u) << "partition " << p;
    EXPECT_EQ(placed.replicas.size() + placed.handoffs.size(), 9u);
  }
}

TEST(PlacementTest, DeterministicAndWeighted) {
  const auto ring = MakeRing(6, 1, 1);
  std::map<std::string, int> share;
  for (uint32_t p = 0; p < 4096; ++p) {
    const auto a = PlacePartition(ring, p);
    EXPECT_EQ(a.replicas, PlacePartition(ring, p).replicas);
    share[a.replicas[0]]++;
  }
  // Weights 1,2,3,1,2,3 (total 12): c2 should get about 3/12 of 4096 = 1024, c0 about 341.
  EXPECT_NEAR(share["c2"], 1024, 120);
  EXPECT_NEAR(share["c0"], 341, 80);
}

TEST(PlacementTest, SingleClusterRingPlacesEverythingThere) {
  mcos::v1::Ring ring;
  ring.set_replicas(1);
  ring.add_members()->set_cluster("only");
  ring.mutable_members(0)->set_weight(1);
  const auto placed = PlacePartition(ring, 7);
  ASSERT_EQ(placed.replicas.size(), 1u);
  EXPECT_EQ(placed.replicas[0], "only");
  EXPECT_TRUE(placed.handoffs.empty());
}

}  // namespace
}  // namespace mcos::placement
