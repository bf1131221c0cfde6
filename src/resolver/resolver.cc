#include "resolver/resolver.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "placement/placement.h"

namespace mcos::resolver {

using placement::ObjectHash;
using placement::PartitionOf;

namespace {

template <typename Former>
bool Dropped(const Former& f, const std::string& cluster) {
  return std::find(f.dropped.begin(), f.dropped.end(), cluster) != f.dropped.end();
}

}  // namespace

void Resolver::SetSnapshot(const mcos::v1::MetadataSnapshot& snapshot) {
  if (snapshot.unchanged()) return;
  std::map<std::string, RingEntry> old_rings;
  std::map<std::string, Former> old_formers;  // by id
  {
    absl::MutexLock lock(&mu_);
    if (revision_ && *revision_ == snapshot.revision()) return;
    old_rings = rings_;
    for (const auto& [option, list] : formers_) {
      for (const auto& f : list) old_formers[f.id] = f;
    }
  }
  // Decode layouts outside the lock; an unchanged ring keeps its decoded form.
  std::map<std::string, RingEntry> rings;
  for (const auto& r : snapshot.rings()) {
    RingEntry entry{r.version(), r.stamp().SerializeAsString(), nullptr, {}};
    // Members of weight 0 hold nothing (a drained cluster): listings need not ask them.
    for (const auto& m : r.members()) {
      if (m.weight() > 0) entry.members.push_back(m.cluster());
    }
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
  std::map<std::string, std::vector<Former>> formers;
  for (const auto& f : snapshot.former_layouts()) {
    const std::vector<std::string> dropped(f.dropped().begin(), f.dropped().end());
    if (auto old = old_formers.find(f.id());
        old != old_formers.end() && old->second.dropped == dropped) {
      formers[f.option()].push_back(old->second);
      continue;
    }
    auto compiled = placement::CompiledRing::Make(f.ring());
    if (!compiled.ok()) {
      // Writes would then miss the clusters that hold the option's data: refuse them instead.
      common::LogWarning("former layout ", f.id(), " of option '", f.option(),
                         "' cannot be used: ", compiled.status().message());
      formers[f.option()].push_back({f.id(), nullptr, {}, dropped});
      continue;
    }
    Former former{
        f.id(), std::make_shared<const placement::CompiledRing>(*std::move(compiled)), {}, dropped};
    for (const auto& m : f.ring().members()) {
      if (m.weight() > 0 && !Dropped(former, m.cluster())) former.members.push_back(m.cluster());
    }
    formers[f.option()].push_back(std::move(former));
  }
  absl::MutexLock lock(&mu_);
  revision_ = snapshot.revision();
  rings_ = std::move(rings);
  formers_ = std::move(formers);
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
    std::vector<Former> formers;
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
      if (auto f = formers_.find(option_name); f != formers_.end()) formers = f->second;
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
    if (!formers.empty()) {
      // The data moves: writes go to every live layout's set, reads and listings ask them all.
      *p->add_write_sets()->mutable_clusters() = p->replicas();
      const uint64_t hash = ObjectHash(k.user(), k.container(), k.object());
      for (const auto& f : formers) {
        if (f.compiled == nullptr) {
          p->Clear();
          p->set_error(absl::StrCat("option '", option_name, "' moves its data from layout ", f.id,
                                    ", which cannot be read here; retry shortly"));
          break;
        }
        mcos::v1::ReplicaSet set;
        // The replica set only: handoffs are for the current layout.
        for (uint16_t i : f.compiled->Replicas(PartitionOf(hash, f.compiled->partition_power()))) {
          const std::string& c = f.compiled->clusters()[i];
          if (Dropped(f, c)) continue;
          if (std::find(p->replicas().begin(), p->replicas().end(), c) == p->replicas().end()) {
            p->add_replicas(c);
          }
          set.add_clusters(c);
        }
        // A set of removed clusters only held what is lost with them.
        if (set.clusters_size() > 0) *p->add_write_sets() = std::move(set);
        for (const auto& m : f.members) {
          if (std::find(members.begin(), members.end(), m) == members.end()) members.push_back(m);
        }
      }
      if (!p->error().empty()) continue;
    }
    for (auto& m : members) p->add_ring_members(std::move(m));
  }
  return response;
}

}  // namespace mcos::resolver
