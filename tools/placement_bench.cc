// Placement speed in-process (Google Benchmark): object hash + partition + replica set, R=3,
// over rings of 10 and 100 clusters in 5 regions. Run: build/release/tools/mcos-placement-bench
#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
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

void BM_PlaceObject(benchmark::State& state) {
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
BENCHMARK(BM_PlaceObject)->Arg(10)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
