// Unit tests of the resolver core (the gRPC side is covered by the e2e tests).
#include "resolver/resolver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "placement/layout.h"
#include "placement/placement.h"
#include "tests/support/status_matchers.h"

namespace mcos::resolver {
namespace {

mcos::v1::MetadataSnapshot Snapshot(uint64_t revision, uint32_t power) {
  mcos::v1::MetadataSnapshot snap;
  snap.set_revision(revision);
  auto* ring = snap.add_rings();
  ring->set_id("main");
  ring->set_partition_power(power);
  ring->set_replicas(2);
  ring->set_version(revision);
  for (const char* c : {"a", "b", "c"}) {
    auto* m = ring->add_members();
    m->set_cluster(c);
    m->set_weight(1);
    m->set_region(c);
  }
  *ring->mutable_layout() = *placement::BuildLayout(*ring, nullptr);
  auto* o = snap.add_options();
  o->set_name("gold");
  o->set_ring("main");
  return snap;
}

mcos::v1::ResolveRequest Keys(const std::string& option, int n) {
  mcos::v1::ResolveRequest r;
  r.set_option(option);
  for (int i = 0; i < n; ++i) {
    auto* k = r.add_keys();
    k->set_user("alice");
    k->set_container("photos");
    k->set_object("o" + std::to_string(i));
  }
  return r;
}

class ResolverTest : public ::testing::Test {
 protected:
  Resolver resolver_{
      [](const std::string&, const std::string& name) -> absl::StatusOr<std::string> {
        if (name == "photos") return std::string("gold");
        return absl::NotFoundError("no such container");
      },
      [this] { ++refreshes_; }};
  int refreshes_ = 0;
};

TEST_F(ResolverTest, UnavailableUntilTheFirstSnapshot) {
  MCOS_EXPECT_CODE(resolver_.Resolve(Keys("gold", 1)), kUnavailable);
  EXPECT_EQ(resolver_.revision(), 0u);
}

TEST_F(ResolverTest, PlacesFromTheLayout) {
  const auto snap = Snapshot(1, 10);
  resolver_.SetSnapshot(snap);
  const auto ring = *placement::CompiledRing::Make(snap.rings(0));
  auto r = resolver_.Resolve(Keys("", 50));  // the container's option
  MCOS_ASSERT_OK(r);
  for (int i = 0; i < 50; ++i) {
    const auto& p = r->placements(i);
    const uint32_t partition = placement::PartitionOf(
        placement::ObjectHash("alice", "photos", "o" + std::to_string(i)), 10);
    EXPECT_EQ(p.partition(), partition);
    EXPECT_EQ(p.option(), "gold");
    EXPECT_EQ(p.ring_id(), "main");
    EXPECT_EQ(p.ring_version(), 1u);
    const auto want = ring.Place(partition);
    EXPECT_EQ(std::vector<std::string>(p.replicas().begin(), p.replicas().end()), want.replicas);
    EXPECT_EQ(std::vector<std::string>(p.handoffs().begin(), p.handoffs().end()), want.handoffs);
    EXPECT_EQ(p.write_concern(), 2u);  // a majority of 2
  }
}

// While an option's data moves, writes go to every live layout's set and need the write concern
// in each; reads and listings ask the union.
TEST_F(ResolverTest, AMovingOptionPlacesOnTheUnionOfItsLiveLayouts) {
  auto snap = Snapshot(1, 10);
  mcos::v1::Ring former;
  former.set_id("old");
  former.set_partition_power(6);  // another power: partitions map by their top bits
  former.set_replicas(2);
  for (const char* c : {"c", "d"}) {
    auto* m = former.add_members();
    m->set_cluster(c);
    m->set_weight(1);
  }
  *former.mutable_layout() = *placement::BuildLayout(former, nullptr);
  auto* f = snap.add_former_layouts();
  f->set_option("gold");
  f->set_id("1-x");
  *f->mutable_ring() = former;
  resolver_.SetSnapshot(snap);
  const auto now = *placement::CompiledRing::Make(snap.rings(0));
  const auto old = *placement::CompiledRing::Make(former);
  auto r = resolver_.Resolve(Keys("gold", 40));
  MCOS_ASSERT_OK(r);
  for (int i = 0; i < 40; ++i) {
    const auto& p = r->placements(i);
    const uint64_t hash = placement::ObjectHash("alice", "photos", "o" + std::to_string(i));
    const auto want_now = now.Place(placement::PartitionOf(hash, 10)).replicas;
    const auto want_old = old.Place(placement::PartitionOf(hash, 6)).replicas;
    ASSERT_EQ(p.write_sets_size(), 2);
    EXPECT_EQ(std::vector<std::string>(p.write_sets(0).clusters().begin(),
                                       p.write_sets(0).clusters().end()),
              want_now);
    EXPECT_EQ(std::vector<std::string>(p.write_sets(1).clusters().begin(),
                                       p.write_sets(1).clusters().end()),
              want_old);
    // The current set first, then the former holders it lacks.
    std::vector<std::string> want = want_now;
    for (const auto& c : want_old) {
      if (std::find(want.begin(), want.end(), c) == want.end()) want.push_back(c);
    }
    EXPECT_EQ(std::vector<std::string>(p.replicas().begin(), p.replicas().end()), want);
    EXPECT_EQ(std::set<std::string>(p.ring_members().begin(), p.ring_members().end()),
              (std::set<std::string>{"a", "b", "c", "d"}));
    EXPECT_EQ(p.write_concern(), 2u);
  }
  // Other options, and this one once its former layout is retired, place as before; a member of
  // weight 0 (drained) holds nothing and listings leave it out.
  snap.clear_former_layouts();
  snap.set_revision(2);
  auto* ring = snap.mutable_rings(0);
  ring->set_version(2);  // a new version is decoded anew
  ring->mutable_members(2)->set_weight(0);
  const mcos::v1::Ring before = *ring;
  *ring->mutable_layout() = *placement::BuildLayout(*ring, &before);
  resolver_.SetSnapshot(snap);
  r = resolver_.Resolve(Keys("gold", 20));
  MCOS_ASSERT_OK(r);
  for (const auto& p : r->placements()) {
    EXPECT_EQ(p.write_sets_size(), 0);
    EXPECT_EQ(std::set<std::string>(p.replicas().begin(), p.replicas().end()),
              (std::set<std::string>{"a", "b"}));
    EXPECT_EQ(std::set<std::string>(p.ring_members().begin(), p.ring_members().end()),
              (std::set<std::string>{"a", "b"}));
  }
}

TEST_F(ResolverTest, UnknownNamesFailPerKeyAndReloadOncePerRequest) {
  resolver_.SetSnapshot(Snapshot(1, 8));
  auto r = resolver_.Resolve(Keys("nope", 100));
  MCOS_ASSERT_OK(r);
  EXPECT_EQ(refreshes_, 1);
  for (const auto& p : r->placements()) EXPECT_EQ(p.error(), "option 'nope' does not exist");
  auto missing = Keys("", 1);
  missing.mutable_keys(0)->set_container("ghost");
  r = resolver_.Resolve(missing);
  MCOS_ASSERT_OK(r);
  EXPECT_EQ(r->placements(0).error(), "no such container");
}

TEST_F(ResolverTest, BadRequestsAreRefused) {
  resolver_.SetSnapshot(Snapshot(1, 8));
  MCOS_EXPECT_CODE(resolver_.Resolve(Keys("gold", kMaxResolveBatch + 1)), kInvalidArgument);
  auto bad = Keys("gold", 1);
  bad.mutable_keys(0)->set_container("");
  MCOS_EXPECT_CODE(resolver_.Resolve(bad), kInvalidArgument);
}

TEST_F(ResolverTest, NewRevisionsReplaceRingsAndUnchangedAnswersKeepThem) {
  resolver_.SetSnapshot(Snapshot(1, 8));
  mcos::v1::MetadataSnapshot unchanged;
  unchanged.set_revision(1);
  unchanged.set_unchanged(true);
  resolver_.SetSnapshot(unchanged);
  auto r = resolver_.Resolve(Keys("gold", 1));
  MCOS_ASSERT_OK(r);
  EXPECT_EQ(r->placements(0).ring_version(), 1u);
  resolver_.SetSnapshot(Snapshot(2, 12));
  r = resolver_.Resolve(Keys("gold", 1));
  MCOS_ASSERT_OK(r);
  EXPECT_EQ(r->placements(0).ring_version(), 2u);
  EXPECT_EQ(r->placements(0).partition(),
            placement::PartitionOf(placement::ObjectHash("alice", "photos", "o0"), 12));
  EXPECT_EQ(resolver_.revision(), 2u);
}

TEST_F(ResolverTest, ARingWithACorruptLayoutIsNotUsed) {
  auto snap = Snapshot(1, 8);
  snap.mutable_rings(0)->mutable_layout()->mutable_slots()->resize(10);
  resolver_.SetSnapshot(snap);
  auto r = resolver_.Resolve(Keys("gold", 1));
  MCOS_ASSERT_OK(r);
  EXPECT_NE(r->placements(0).error().find("cannot be read"), std::string::npos)
      << r->placements(0).error();
}

}  // namespace
}  // namespace mcos::resolver
