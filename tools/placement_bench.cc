// Placement speed in-process (Google Benchmark), R=3, rings of 10 and 100 clusters in 5 regions,
// partition power 16. Run: build/release/tools/mcos-placement-bench
//   BM_PlaceObject     object hash + partition + replica set from the ring's layout (what a
//                      write needs);
//   BM_PlaceWithHandoffs  the same plus the handoff order (every other member, by straw2 score;
//                      computed once per partition, then cached);
//   BM_Straw2Only      pure straw2 placement without a layout, for comparison;
//   BM_BuildLayout     the controller's ring builder, from scratch.
#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "placement/layout.h"
#include "placement/placement.h"

namespace {

mcos::v1::Ring MakeRing(int clusters) {
  mcos::v1::Ring ring;
  ring.set_id("bench");
  ring.set_partition_power(16);
  ring.set_replicas(3);
  for (int i = 0; i < clusters; ++i) {
    auto* m = ring.add_members();
    m->set_cluster(absl::StrCat("cluster-", i));
    m->set_weight(1.0 + i % 4);
    m->set_region(absl::StrCat("region-", i % 5));
  }
  return ring;
}

mcos::placement::CompiledRing Compile(int clusters) {
  auto ring = MakeRing(clusters);
  *ring.mutable_layout() = *mcos::placement::BuildLayout(ring, nullptr);
  return *mcos::placement::CompiledRing::Make(ring);
}

void BM_PlaceObject(benchmark::State& state) {
  const auto ring = Compile(static_cast<int>(state.range(0)));
  std::vector<std::string> names;
  uint64_t i = 0;
  for (auto _ : state) {
    const std::string object = absl::StrCat("photos/2026/", i++, ".jpg");
    const uint32_t p = mcos::placement::PartitionOf(
        mcos::placement::ObjectHash("alice", "photos", object), ring.partition_power());
    names.clear();
    for (uint16_t k : ring.Replicas(p)) names.push_back(ring.clusters()[k]);
    benchmark::DoNotOptimize(names);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlaceObject)->Arg(10)->Arg(100);

void BM_PlaceWithHandoffs(benchmark::State& state) {
  const auto ring = Compile(static_cast<int>(state.range(0)));
  uint64_t i = 0;
  for (auto _ : state) {
    const std::string object = absl::StrCat("photos/2026/", i++, ".jpg");
    const uint32_t p = mcos::placement::PartitionOf(
        mcos::placement::ObjectHash("alice", "photos", object), ring.partition_power());
    auto placed = ring.Place(p);
    benchmark::DoNotOptimize(placed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlaceWithHandoffs)->Arg(10)->Arg(100);

void BM_Straw2Only(benchmark::State& state) {
  const auto ring = MakeRing(static_cast<int>(state.range(0)));
  uint64_t i = 0;
  for (auto _ : state) {
    const std::string object = absl::StrCat("photos/2026/", i++, ".jpg");
    const uint32_t p = mcos::placement::PartitionOf(
        mcos::placement::ObjectHash("alice", "photos", object), ring.partition_power());
    auto placed = mcos::placement::PlacePartition(ring, p);
    benchmark::DoNotOptimize(placed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Straw2Only)->Arg(10)->Arg(100);

void BM_BuildLayout(benchmark::State& state) {
  const auto ring = MakeRing(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto layout = mcos::placement::BuildLayout(ring, nullptr);
    benchmark::DoNotOptimize(layout);
  }
}
BENCHMARK(BM_BuildLayout)->Arg(10)->Arg(100)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
