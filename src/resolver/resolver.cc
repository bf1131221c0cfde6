#include "resolver/resolver.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "placement/placement.h"

namespace mcos::resolver {

using placement::ObjectHash;
using placement::PartitionOf;

void Resolver::SetSnapshot(const mcos::v1::MetadataSnapshot& snapshot) {
  if (snapshot.unchanged()) return;
  std::map<std::string, RingEntry> old_rings;
  {
    absl::MutexLock lock(&mu_);
    if (revision_ && *revision_ == snapshot.revision()) return;
    old_rings = rings_;
  }
  // Decode layouts outside the lock; an unchanged ring keeps its decoded form.
  std::map<std::string, RingEntry> rings;
  for (const auto& r : snapshot.rings()) {
    RingEntry entry{r.version(), r.stamp().SerializeAsString(), nullptr, {}};
    for (const auto& m : r.members()) entry.members.push_back(m.cluster());
    auto old = old_rings.find(r.id());
    if (old != old_rings.end() && old->second.version == entry.version &&
        old->second.stamp == entry.stamp) {
      rings[r.id()] = old->second;
      continue;
    }
    auto compiled = placement::CompiledRing::Make(r);
    if (!compiled.ok()) {
      common::LogWarning("ring '", r.id(), "' version ", r.version(),
                         " cannot be used: ", compiled.status().message());
      continue;
    }
    entry.compiled = std::make_shared<const placement::CompiledRing>(*std::move(compiled));
    rings[r.id()] = std::move(entry);
  }
  absl::MutexLock lock(&mu_);
  revision_ = snapshot.revision();
  rings_ = std::move(rings);
  options_.clear();
  for (const auto& o : snapshot.options()) options_[o.name()] = o;
}

bool Resolver::has_snapshot() {
  absl::MutexLock lock(&mu_);
  return revision_.has_value();
}

uint64_t Resolver::revision() {
  absl::MutexLock lock(&mu_);
  return revision_.value_or(0);
}

absl::StatusOr<mcos::v1::ResolveResponse> Resolver::Resolve(
    const mcos::v1::ResolveRequest& request) {
  if (request.keys_size() > kMaxResolveBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a batch of ", request.keys_size(), " keys is over the limit of ", kMaxResolveBatch));
  }
  for (const auto& k : request.keys()) {
    MCOS_RETURN_IF_ERROR(common::ValidateOwnerId(k.user()));
    MCOS_RETURN_IF_ERROR(common::ValidateContainerName(k.container()));
    MCOS_RETURN_IF_ERROR(common::ValidateObjectName(k.object()));
  }
  mcos::v1::ResolveResponse response;
  bool refreshed = false;
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
    if (refresh_ && !refreshed) {
      // A name this resolver has not seen yet may be newer than its snapshot: reload once.
      bool known;
      {
        absl::MutexLock lock(&mu_);
        auto o = options_.find(option_name);
        known = o != options_.end() && rings_.count(o->second.ring()) > 0;
      }
      if (!known) {
        refresh_();
        refreshed = true;  // once per request, however many keys name unknown options
      }
    }
    std::shared_ptr<const placement::CompiledRing> ring;
    uint64_t ring_version = 0;
    std::string ring_id;
    uint32_t write_concern = 0;
    bool degraded = false;
    std::vector<std::string> members;
    {
      absl::MutexLock lock(&mu_);
      if (!revision_) {
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
                                  "' does not exist or cannot be read"));
        continue;
      }
      ring = r->second.compiled;
      ring_version = r->second.version;
      ring_id = r->first;
      write_concern = o->second.write_concern();
      degraded = o->second.mode() == mcos::v1::OPTION_MODE_DEGRADED;
      members = r->second.members;
    }
    const uint32_t partition =
        PartitionOf(ObjectHash(k.user(), k.container(), k.object()), ring->partition_power());
    auto placed = ring->Place(partition);
    p->set_ring_id(ring_id);
    p->set_ring_version(ring_version);
    p->set_partition(partition);
    p->set_option(option_name);
    const auto replicas = static_cast<uint32_t>(placed.replicas.size());
    p->set_write_concern(write_concern != 0 ? write_concern : replicas / 2 + 1);
    for (auto& c : placed.replicas) p->add_replicas(std::move(c));
    for (auto& c : placed.handoffs) p->add_handoffs(std::move(c));
    p->set_degraded(degraded);
    for (auto& m : members) p->add_ring_members(std::move(m));
  }
  return response;
}

}  // namespace mcos::resolver
