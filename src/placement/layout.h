// The ring builder: which clusters hold each partition (see docs/placement.md).
//
// Pure rendezvous hashing ("straw2") cannot keep every cluster within a few percent of its share:
// a cluster with 1% of the weight owns ~650 of 65,536 partitions, so sampling noise alone is ~4%,
// and for R > 1 picking the top R scores is sampling without replacement, which starves heavy
// clusters (weights 1,2,3 with R = 2 give the heaviest 85% of the partitions instead of 100%).
// So, like Swift's ring builder, the controller computes a layout once per ring change and ships
// it with the ring:
//   1. targets: each member's ideal replica count (IdealReplicaCounts), rounded to integers that
//      add up to partitions x replicas;
//   2. start: for a new ring, the straw2 placement of every partition (placement.h); for a
//      changed ring, the previous layout with the slots of removed or zero-weight members empty;
//   3. fill empty slots with the best-scored member that is under its target and keeps the
//      partition's replicas on distinct clusters and distinct regions (while there are enough);
//   4. balance: every member under its target takes partitions from members over theirs, in the
//      order of its own straw2 score, so only the replicas that must move do.
// The layout is deterministic (the same ring and previous layout give the same bytes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mcos/v1/admin.pb.h"

namespace mcos::placement {

// Each member's ideal number of replicas (indexed like ring.members(); 0 for weight 0), adding up
// to 2^partition_power x replicas. Weight share, water-filled under two caps:
//  - a cluster holds at most one replica of a partition (at most 2^P replicas);
//  - replicas spread over min(replicas, G) distinct regions (G = regions with weight), so a
//    region holds at most 2^P replicas when G >= replicas; when G < replicas every region holds
//    at least 2^P and at most 2^P x min(its clusters, replicas - G + 1).
// Regions are filled first (weight = the sum of their members'), then members within a region.
std::vector<double> IdealReplicaCounts(const mcos::v1::Ring& ring);

// Builds `ring`'s layout. `previous` (may be null, or a ring without layout) is the layout the
// cluster uses now; the new one moves as few replicas away from it as the targets allow.
// INVALID_ARGUMENT if the ring breaks ValidateRing's shape rules.
absl::StatusOr<mcos::v1::RingLayout> BuildLayout(const mcos::v1::Ring& ring,
                                                 const mcos::v1::Ring* previous);

// A ring ready for lookups: the layout decoded into an array. Cheap to copy around by pointer;
// immutable after Make.
class CompiledRing {
 public:
  // Uses ring.layout() if it is there (checking its shape), else builds the layout from scratch.
  static absl::StatusOr<CompiledRing> Make(const mcos::v1::Ring& ring);

  uint32_t partition_power() const { return power_; }
  uint32_t replicas() const { return replicas_; }
  uint32_t partitions() const { return uint32_t{1} << power_; }
  const std::vector<std::string>& clusters() const { return clusters_; }
  // Indexes into clusters(), in preference order.
  std::span<const uint16_t> Replicas(uint32_t partition) const {
    return {slots_.data() + static_cast<size_t>(partition) * replicas_, replicas_};
  }
  // Replicas and handoffs (every other member with weight, by straw2 score).
  struct Placement {
    std::vector<std::string> replicas;
    std::vector<std::string> handoffs;
  };
  // Thread-safe. The handoff order of a partition is computed once and kept while the ring is
  // small enough (partitions x handoffs <= kHandoffCacheEntries); otherwise on every call.
  Placement Place(uint32_t partition) const;
  static constexpr size_t kHandoffCacheEntries = size_t{8} << 20;  // 16 MiB of u16
  // How many replicas each cluster holds (indexed like clusters()).
  std::vector<uint64_t> ReplicaCounts() const;
  // The same by cluster name, leaving out clusters that hold none.
  std::map<std::string, uint64_t> ReplicaCountsByCluster() const;

 private:
  uint32_t power_ = 0;
  uint32_t replicas_ = 0;
  std::vector<std::string> clusters_;
  std::vector<double> weights_;  // like clusters_; handoff scores
  std::vector<uint16_t> slots_;
  struct HandoffCache;
  std::shared_ptr<HandoffCache> handoffs_;  // shared by copies: same ring, same answers
  size_t handoff_width_ = 0;

  std::vector<uint16_t> HandoffIndexes(uint32_t partition) const;
};

}  // namespace mcos::placement
