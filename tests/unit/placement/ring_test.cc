#include "placement/ring.h"

#include <gtest/gtest.h>

#include "placement/layout.h"

namespace mcos::placement {
namespace {

mcos::v1::Ring Ring(std::vector<std::pair<std::string, double>> members, uint32_t replicas) {
  mcos::v1::Ring r;
  r.set_id("r1");
  r.set_partition_power(8);
  r.set_replicas(replicas);
  for (const auto& [c, w] : members) {
    auto* m = r.add_members();
    m->set_cluster(c);
    m->set_weight(w);
  }
  return r;
}

const std::set<std::string> kKnown = {"a", "b", "c", "d"};

TEST(RingTest, ValidationNamesTheBrokenRule) {
  EXPECT_TRUE(ValidateRing(Ring({{"a", 1}, {"b", 2}}, 2), kKnown).ok());
  auto expect = [](const mcos::v1::Ring& r, const std::string& needle) {
    const absl::Status s = ValidateRing(r, kKnown);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), absl::string_view::npos) << s;
  };
  expect(Ring({{"a", 1}}, 2), "only 1 member");
  expect(Ring({{"a", 0}, {"b", 0}}, 1), "total weight is zero");
  expect(Ring({{"a", 1}, {"zz", 1}}, 1), "'zz' is not in the federation");
  expect(Ring({{"a", 1}, {"a", 1}}, 1), "member twice");
  expect(Ring({{"a", -1}, {"b", 1}}, 1), "weights are finite");
  expect(Ring({{"a", 1}, {"b", 0}}, 2), "only 1 member(s) with weight");
  auto r = Ring({{"a", 1}}, 1);
  r.set_partition_power(19);
  expect(r, "partition power 19");
  r.set_partition_power(8);
  r.set_replicas(9);
  expect(r, "limit of 8");
  r.set_partition_power(8);
  r.set_replicas(0);
  expect(r, "at least 1 replica");
  r.set_replicas(1);
  r.set_id("bad id");
  expect(r, "ring id");
}

TEST(RingTest, PlanCountsOnlyWhatMoves) {
  auto before = Ring({{"a", 1}, {"b", 1}, {"c", 1}}, 1);
  *before.mutable_layout() = *BuildLayout(before, nullptr);
  auto same = *PlanMovement(before, before);
  EXPECT_EQ(same.partitions_moved(), 0u);
  EXPECT_EQ(same.partitions_total(), 256u);
  // Adding a member of equal weight moves exactly its quarter, all of it to the new member.
  auto after = Ring({{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}}, 1);
  *after.mutable_layout() = *BuildLayout(after, &before);
  auto plan = *PlanMovement(before, after);
  EXPECT_EQ(plan.partitions_moved(), 256u / 4);
  uint64_t in_d = 0, out_total = 0;
  for (const auto& c : plan.clusters()) {
    if (c.cluster() == "d") in_d = c.partitions_in();
    out_total += c.partitions_out();
    if (c.cluster() != "d") {
      EXPECT_EQ(c.partitions_in(), 0u);
    }
  }
  EXPECT_EQ(in_d, plan.partitions_moved());
  EXPECT_EQ(out_total, plan.partitions_moved());

  // With bytes per partition, the bytes of exactly the moving partitions are counted.
  std::vector<uint64_t> bytes(256);
  for (size_t p = 0; p < bytes.size(); ++p) bytes[p] = 1000 + p;
  const auto a = *CompiledRing::Make(before);
  const auto b = *CompiledRing::Make(after);
  uint64_t expected = 0;
  for (uint32_t p = 0; p < 256; ++p) {
    if (a.Replicas(p)[0] != b.Replicas(p)[0] ||
        a.clusters()[a.Replicas(p)[0]] != b.clusters()[b.Replicas(p)[0]]) {
      expected += bytes[p];
    }
  }
  auto with_bytes = *PlanMovement(before, after, &bytes);
  EXPECT_EQ(with_bytes.bytes_moved(), expected);
  EXPECT_GT(expected, 0u);
  uint64_t bytes_in_d = 0, bytes_out = 0;
  for (const auto& c : with_bytes.clusters()) {
    if (c.cluster() == "d") bytes_in_d = c.bytes_in();
    bytes_out += c.bytes_out();
  }
  EXPECT_EQ(bytes_in_d, expected);
  EXPECT_EQ(bytes_out, expected);
  std::vector<uint64_t> wrong(10);
  EXPECT_FALSE(PlanMovement(before, after, &wrong).ok());
}

}  // namespace
}  // namespace mcos::placement
