// The ring model's rules and the movement a ring change causes. Shared by the controller (which
// validates and plans changes) and the resolver (which places with the rings).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mcos/v1/admin.pb.h"

namespace mcos::placement {

inline constexpr uint32_t kMinPartitionPower = 1;
// 2^18 partitions x 8 replicas x 2 bytes = a 4 MiB layout at most (it ships in metadata).
inline constexpr uint32_t kMaxPartitionPower = 18;
inline constexpr uint32_t kMaxReplicas = 8;
inline constexpr int kMaxMembers = 4096;

// OK, or INVALID_ARGUMENT naming the rule broken: a bad id, a partition power outside 1..18, no
// replicas or more than 8, no members or more than 4096, a duplicate member, a member that is not
// in `known_clusters`, a negative or non-finite weight, a zero total weight, or more replicas than
// members with weight.
absl::Status ValidateRing(const mcos::v1::Ring& ring, const std::set<std::string>& known_clusters);

// How many partitions change hands if `from` is replaced by `to` (by their layouts; a ring
// without one is laid out from scratch): per cluster, partitions that gain (in) or lose (out) a
// replica there, and with `bytes` (bytes stored per partition at the finer of the two partition
// powers; may be null) the bytes they hold.
absl::StatusOr<mcos::v1::MovementPlan> PlanMovement(const mcos::v1::Ring& from,
                                                    const mcos::v1::Ring& to,
                                                    const std::vector<uint64_t>* bytes = nullptr);

}  // namespace mcos::placement
