// Prints the placement golden vectors checked in as tests/data/placement_golden.txt:
//   user container object -> hash partition replicas... | handoffs...
// for a fixed ring laid out from scratch (version 1) and after a member joins (version 2, laid
// out from version 1), plus a digest of each whole layout. Regenerate only on purpose (placement is
// part of the data format):
//   build/release/tools/mcos-placement-golden > tests/data/placement_golden.txt
#include <xxhash.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "placement/layout.h"
#include "placement/placement.h"

namespace mcos::placement {

// The ring the golden vectors use (also built by tests/unit/placement/golden_test.cc).
mcos::v1::Ring GoldenRing() {
  mcos::v1::Ring ring;
  ring.set_id("golden");
  ring.set_partition_power(12);
  ring.set_replicas(3);
  const char* regions[] = {"eu", "eu", "us", "us", "ap", "ap", "eu"};
  const double weights[] = {1, 2, 1, 3, 1, 0.5, 4};
  for (int i = 0; i < 7; ++i) {
    auto* m = ring.add_members();
    m->set_cluster(absl::StrCat("c", i));
    m->set_weight(weights[i]);
    m->set_region(regions[i]);
  }
  return ring;
}

}  // namespace mcos::placement

namespace {

void Print(const mcos::v1::Ring& ring) {
  const auto compiled = *mcos::placement::CompiledRing::Make(ring);
  std::printf("ring %s version %llu layout xxh3 %016llx\n", ring.id().c_str(),
              static_cast<unsigned long long>(ring.version()),
              static_cast<unsigned long long>(
                  XXH3_64bits(ring.layout().slots().data(), ring.layout().slots().size())));
  for (int i = 0; i < 64; ++i) {
    const std::string user = absl::StrCat("user", i % 5);
    const std::string container = i % 2 == 0 ? "photos" : "ảnh";
    const std::string object = absl::StrCat("dir/", i, i % 3 == 0 ? "/日本.jpg" : ".bin");
    const uint64_t h = mcos::placement::ObjectHash(user, container, object);
    const uint32_t p = mcos::placement::PartitionOf(h, ring.partition_power());
    const auto placed = compiled.Place(p);
    std::printf("%s %s %s -> %016llx %u %s | %s\n", user.c_str(), container.c_str(), object.c_str(),
                static_cast<unsigned long long>(h), p, absl::StrJoin(placed.replicas, ",").c_str(),
                absl::StrJoin(placed.handoffs, ",").c_str());
  }
}

}  // namespace

int main() {
  auto ring = mcos::placement::GoldenRing();
  ring.set_version(1);
  *ring.mutable_layout() = *mcos::placement::BuildLayout(ring, nullptr);
  Print(ring);
  auto next = ring;
  next.set_version(2);
  auto* m = next.add_members();
  m->set_cluster("c7");
  m->set_weight(2);
  m->set_region("ap");
  *next.mutable_layout() = *mcos::placement::BuildLayout(next, &ring);
  Print(next);
  return 0;
}
