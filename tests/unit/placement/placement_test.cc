#include "placement/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
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

// Random rings: 1..32 clusters, weights 0.5..4, 1..6 regions, 1..3 replicas.
mcos::v1::Ring RandomRing(std::mt19937_64& rng, uint32_t power) {
  mcos::v1::Ring ring;
  ring.set_id("random");
  ring.set_partition_power(power);
  const int n = 1 + static_cast<int>(rng() % 32);
  const int regions = 1 + static_cast<int>(rng() % 6);
  ring.set_replicas(1 + static_cast<uint32_t>(rng() % std::min(3, n)));
  for (int i = 0; i < n; ++i) {
    auto* m = ring.add_members();
    m->set_cluster("k" + std::to_string(rng()));
    m->set_weight(0.5 + static_cast<double>(rng() % 8) / 2);
    m->set_region("r" + std::to_string(rng() % regions));
  }
  return ring;
}

TEST(PlacementPropertyTest, DistinctReplicasAndRegionsSpreadOnRandomRings) {
  std::mt19937_64 rng(2026);
  for (int t = 0; t < 60; ++t) {
    const auto ring = RandomRing(rng, 8 + static_cast<uint32_t>(rng() % 5));
    std::map<std::string, std::string> region_of;
    for (const auto& m : ring.members()) region_of[m.cluster()] = m.region();
    std::set<std::string> all_regions;
    for (const auto& [c, r] : region_of) all_regions.insert(r);
    for (uint32_t p = 0; p < (1u << ring.partition_power()); p += 7) {
      const auto placed = PlacePartition(ring, p);
      ASSERT_EQ(placed.replicas.size(), ring.replicas());
      std::set<std::string> clusters(placed.replicas.begin(), placed.replicas.end());
      ASSERT_EQ(clusters.size(), placed.replicas.size());
      std::set<std::string> regions;
      for (const auto& c : placed.replicas) regions.insert(region_of[c]);
      // As many distinct regions as there are replicas, or every region when there are fewer.
      EXPECT_EQ(regions.size(), std::min<size_t>(placed.replicas.size(), all_regions.size()));
    }
  }
}

TEST(PlacementPropertyTest, RemovingAClusterMovesOnlyItsReplicas) {
  std::mt19937_64 rng(7);
  for (int t = 0; t < 40; ++t) {
    auto ring = RandomRing(rng, 10);
    if (ring.members_size() <= static_cast<int>(ring.replicas())) continue;
    auto smaller = ring;
    const int victim = static_cast<int>(rng() % static_cast<uint64_t>(ring.members_size()));
    const std::string gone = ring.members(victim).cluster();
    smaller.mutable_members()->DeleteSubrange(victim, 1);
    for (uint32_t p = 0; p < (1u << 10); ++p) {
      const auto before = PlacePartition(ring, p).replicas;
      const auto after = PlacePartition(smaller, p).replicas;
      const bool held = std::find(before.begin(), before.end(), gone) != before.end();
      if (!held) {
        EXPECT_EQ(before, after) << "partition " << p << " moved without losing " << gone;
      } else {
        // Exactly one replica changes: the removed cluster's.
        int changed = 0;
        for (const auto& c : before)
          changed += std::find(after.begin(), after.end(), c) == after.end();
        EXPECT_EQ(changed, 1);
      }
    }
  }
}

TEST(PlacementPropertyTest, AddingAClusterMovesItsFairShareAtPower16) {
  std::mt19937_64 rng(11);
  for (int t = 0; t < 6; ++t) {
    auto ring = RandomRing(rng, 16);
    ring.set_replicas(1);
    double total = 0;
    for (const auto& m : ring.members()) total += m.weight();
    auto bigger = ring;
    auto* added = bigger.add_members();
    added->set_cluster("newcomer");
    added->set_weight(1.0 + static_cast<double>(rng() % 3));
    const double expected = added->weight() / (total + added->weight());
    const auto plan = [&] {
      uint64_t moved = 0;
      for (uint32_t p = 0; p < (1u << 16); ++p) {
        moved += PlacePartition(ring, p).replicas != PlacePartition(bigger, p).replicas;
      }
      return static_cast<double>(moved) / (1u << 16);
    }();
    EXPECT_LE(plan, 1.1 * expected) << "members " << ring.members_size();
    EXPECT_GE(plan, 0.9 * expected) << "members " << ring.members_size();
  }
}

}  // namespace
}  // namespace mcos::placement
