// The ring model's rules and the movement a ring change causes. Shared by the controller (which
// validates and plans changes) and the resolver (which places with the rings).
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"
#include "mcos/v1/admin.pb.h"

namespace mcos::placement {

inline constexpr uint32_t kMinPartitionPower = 1;
inline constexpr uint32_t kMaxPartitionPower = 24;

// OK, or INVALID_ARGUMENT naming the rule broken: a bad id, a partition power outside 1..24, no
// replicas, no members, a duplicate member, a member that is not in `known_clusters`, a negative
// or non-finite weight, a zero total weight, or more replicas than members with weight.
absl::Status ValidateRing(const mcos::v1::Ring& ring, const std::set<std::string>& known_clusters);

// How many partitions change hands if `from` is replaced by `to`: per cluster, partitions that
// gain (in) or lose (out) a replica there. Bytes are left 0 (filled in once data is counted).
mcos::v1::MovementPlan PlanMovement(const mcos::v1::Ring& from, const mcos::v1::Ring& to);

}  // namespace mcos::placement
