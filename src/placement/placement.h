// Placement of objects on a ring (part of the on-disk format: every resolver of every cluster must
// compute the same answer forever, so never change these functions; add new versions instead).
//   object hash  = XXH3-64 of u32le(len user) user u32le(len container) container object
//   partition    = hash >> (64 - partition_power)
//   member score = ln(u) / weight, u = ((XXH3-64(cluster, seed = partition) >> 11) + 1) / 2^53
//                  (weighted rendezvous, Ceph's "straw2"); highest score first.
//   replicas     = the `replicas` best-scored members, taking members of regions not used yet
//                  first while there are any; handoffs = the rest in score order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "mcos/v1/admin.pb.h"

namespace mcos::placement {

uint64_t ObjectHash(absl::string_view user, absl::string_view container, absl::string_view object);
uint32_t PartitionOf(uint64_t object_hash, uint32_t partition_power);
// The straw2 score of a member for a partition (higher is preferred); -inf for weight <= 0.
double MemberScore(absl::string_view cluster, double weight, uint32_t partition);

struct PlacementResult {
  std::vector<std::string> replicas;
  std::vector<std::string> handoffs;
};
// Pure straw2 placement. Members with weight <= 0 are never chosen. This seeds a new ring's
// layout (layout.h) and orders handoffs; lookups use the ring's layout (CompiledRing).
PlacementResult PlacePartition(const mcos::v1::Ring& ring, uint32_t partition);

}  // namespace mcos::placement
