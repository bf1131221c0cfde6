#include "placement/ring.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "placement/layout.h"

namespace mcos::placement {

absl::Status ValidateRing(const mcos::v1::Ring& ring, const std::set<std::string>& known_clusters) {
  if (auto s = common::ValidateUserName(ring.id()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ring id: ", s.message()));
  }
  if (ring.partition_power() < kMinPartitionPower || ring.partition_power() > kMaxPartitionPower) {
    return absl::InvalidArgumentError(absl::StrCat("partition power ", ring.partition_power(),
                                                   " is outside ", kMinPartitionPower, "..",
                                                   kMaxPartitionPower));
  }
  if (ring.replicas() == 0) return absl::InvalidArgumentError("a ring needs at least 1 replica");
  if (ring.replicas() > kMaxReplicas) {
    return absl::InvalidArgumentError(
        absl::StrCat(ring.replicas(), " replicas is more than the limit of ", kMaxReplicas));
  }
  if (ring.members().empty()) return absl::InvalidArgumentError("a ring needs members");
  if (ring.members_size() > kMaxMembers) {
    return absl::InvalidArgumentError(
        absl::StrCat(ring.members_size(), " members is more than the limit of ", kMaxMembers));
  }
  std::set<std::string> seen;
  double total = 0;
  uint32_t weighted = 0;
  for (const auto& m : ring.members()) {
    if (!seen.insert(m.cluster()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster '", m.cluster(), "' is a member twice"));
    }
    if (known_clusters.count(m.cluster()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster '", m.cluster(), "' is not in the federation; add it first (known: ",
          absl::StrJoin(known_clusters, ", "), ")"));
    }
    if (!std::isfinite(m.weight()) || m.weight() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("member '", m.cluster(), "' has weight ",
                                                     m.weight(), "; weights are finite and >= 0"));
    }
    if (auto s = common::ValidateListToken("region", m.region(), 64); !s.ok()) return s;
    total += m.weight();
    if (m.weight() > 0) ++weighted;
  }
  if (total <= 0) return absl::InvalidArgumentError("the members' total weight is zero");
  if (ring.replicas() > weighted) {
    return absl::InvalidArgumentError(absl::StrCat("the ring wants ", ring.replicas(),
                                                   " replicas but has only ", weighted,
                                                   " member(s) with weight"));
  }
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::MovementPlan> PlanMovement(const mcos::v1::Ring& from,
                                                    const mcos::v1::Ring& to,
                                                    const std::vector<uint64_t>* bytes) {
  MCOS_ASSIGN_OR_RETURN(const CompiledRing a, CompiledRing::Make(from));
  MCOS_ASSIGN_OR_RETURN(const CompiledRing b, CompiledRing::Make(to));
  mcos::v1::MovementPlan plan;
  const uint32_t power = std::max(from.partition_power(), to.partition_power());
  const uint64_t partitions = uint64_t{1} << power;
  plan.set_partitions_total(partitions);
  if (bytes != nullptr && bytes->size() != partitions) {
    return absl::InternalError(absl::StrCat("movement plan: ", bytes->size(), " byte counts for ",
                                            partitions, " partitions"));
  }
  struct Io {
    uint64_t in = 0, out = 0, bytes_in = 0, bytes_out = 0;
  };
  std::map<std::string, Io> per_cluster;
  std::vector<absl::string_view> old_set, new_set;
  for (uint64_t p = 0; p < partitions; ++p) {
    // A partition of the finer ring maps to the coarser ring's partition by its top bits.
    old_set.clear();
    new_set.clear();
    for (uint16_t k : a.Replicas(static_cast<uint32_t>(p >> (power - from.partition_power())))) {
      old_set.emplace_back(a.clusters()[k]);
    }
    for (uint16_t k : b.Replicas(static_cast<uint32_t>(p >> (power - to.partition_power())))) {
      new_set.emplace_back(b.clusters()[k]);
    }
    auto has = [](const std::vector<absl::string_view>& v, absl::string_view c) {
      return std::find(v.begin(), v.end(), c) != v.end();
    };
    const uint64_t b = bytes != nullptr ? (*bytes)[p] : 0;
    bool moved = false;
    for (const auto c : new_set) {
      if (has(old_set, c)) continue;
      auto& io = per_cluster[std::string(c)];
      ++io.in;
      io.bytes_in += b;
      moved = true;
    }
    for (const auto c : old_set) {
      if (has(new_set, c)) continue;
      auto& io = per_cluster[std::string(c)];
      ++io.out;
      io.bytes_out += b;
      moved = true;
    }
    if (moved) {
      plan.set_partitions_moved(plan.partitions_moved() + 1);
      plan.set_bytes_moved(plan.bytes_moved() + b);
    }
  }
  for (const auto& [cluster, io] : per_cluster) {
    auto* m = plan.add_clusters();
    m->set_cluster(cluster);
    m->set_partitions_in(io.in);
    m->set_partitions_out(io.out);
    m->set_bytes_in(io.bytes_in);
    m->set_bytes_out(io.bytes_out);
  }
  return plan;
}

}  // namespace mcos::placement
