#include "resolver/resolver.h"

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "placement/placement.h"

namespace mcos::resolver {

using placement::ObjectHash;
using placement::PartitionOf;
using placement::PlacementResult;
using placement::PlacePartition;

void Resolver::SetSnapshot(const mcos::v1::MetadataSnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  if (snapshot_ && snapshot_->revision() == snapshot.revision()) return;
  snapshot_ = snapshot;
  rings_.clear();
  options_.clear();
  for (const auto& r : snapshot.rings()) rings_[r.id()] = r;
  for (const auto& o : snapshot.options()) options_[o.name()] = o;
}

bool Resolver::has_snapshot() {
  absl::MutexLock lock(&mu_);
  return snapshot_.has_value();
}

absl::StatusOr<mcos::v1::ResolveResponse> Resolver::Resolve(
    const mcos::v1::ResolveRequest& request) {
  if (request.keys_size() > kMaxResolveBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a batch of ", request.keys_size(), " keys is over the limit of ", kMaxResolveBatch));
  }
  for (const auto& k : request.keys()) {
    MCOS_RETURN_IF_ERROR(common::ValidateUserName(k.user()));
    MCOS_RETURN_IF_ERROR(common::ValidateContainerName(k.container()));
    MCOS_RETURN_IF_ERROR(common::ValidateObjectName(k.object()));
  }
  mcos::v1::ResolveResponse response;
  for (const auto& k : request.keys()) {
    auto* p = response.add_placements();
    std::string option_name = request.option();
    if (option_name.empty()) {
      auto looked_up = lookup_(k.user(), k.container());
      if (!looked_up.ok()) {
        p->set_error(std::string(looked_up.status().message()));
        continue;
      }
      option_name = *looked_up;
    }
    if (refresh_) {
      // A name this resolver has not seen yet may be newer than its snapshot: reload once.
      bool known;
      {
        absl::MutexLock lock(&mu_);
        auto o = options_.find(option_name);
        known = o != options_.end() && rings_.count(o->second.ring()) > 0;
      }
      if (!known) refresh_();
    }
    absl::MutexLock lock(&mu_);
    if (!snapshot_) {
      return absl::UnavailableError("the resolver has not loaded the rings yet; retry shortly");
    }
    auto o = options_.find(option_name);
    if (o == options_.end()) {
      p->set_error(absl::StrCat("option '", option_name, "' does not exist"));
      continue;
    }
    auto r = rings_.find(o->second.ring());
    if (r == rings_.end()) {
      p->set_error(absl::StrCat("ring '", o->second.ring(), "' of option '", option_name,
                                "' does not exist"));
      continue;
    }
    const mcos::v1::Ring& ring = r->second;
    const uint32_t partition =
        PartitionOf(ObjectHash(k.user(), k.container(), k.object()), ring.partition_power());
    PlacementResult placed = PlacePartition(ring, partition);
    p->set_ring_id(ring.id());
    p->set_ring_version(ring.version());
    p->set_partition(partition);
    p->set_option(option_name);
    const uint32_t replicas = static_cast<uint32_t>(placed.replicas.size());
    p->set_write_concern(o->second.write_concern() != 0 ? o->second.write_concern()
                                                        : replicas / 2 + 1);
    for (auto& c : placed.replicas) p->add_replicas(std::move(c));
    for (auto& c : placed.handoffs) p->add_handoffs(std::move(c));
  }
  return response;
}

}  // namespace mcos::resolver
