#include "repair/anti_entropy.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "placement/layout.h"

namespace mcos::repair {
namespace {

// The engines keep digests and the index per 18-bit bucket (storage/engine_rules.h).
constexpr uint32_t kFinestPower = 18;
// Each drill-down step splits a range into 2^kSplitBits.
constexpr uint32_t kSplitBits = 4;
// Rings of more partitions are first compared in 2^kCoarsePower ranges (with a peer that shares
// every partition).
constexpr uint32_t kCoarsePower = 6;
// Records to copy are gathered over ranges and copied this many at a time (in parallel).
constexpr size_t kCopyBatch = 512;

using Digests = std::map<uint32_t, std::pair<uint64_t, uint64_t>>;  // partition -> (count, digest)

Digests ToMap(const mcos::v1::PartitionDigestsResponse& response) {
  Digests out;
  for (const auto& d : response.digests()) out[d.partition()] = {d.object_count(), d.digest()};
  return out;
}

std::pair<uint64_t, uint64_t> Lookup(const Digests& digests, uint32_t partition) {
  auto it = digests.find(partition);
  return it == digests.end() ? std::pair<uint64_t, uint64_t>{0, 0} : it->second;
}

std::string MapKey(const mcos::v1::ObjectKey& key) {
  return absl::StrCat(key.user(), std::string(1, '\0'), key.container(), std::string(1, '\0'),
                      key.object());
}

}  // namespace

absl::StatusOr<std::vector<SyncSet>> SyncSetsOf(const mcos::v1::MetadataSnapshot& snapshot,
                                                const std::string& cluster) {
  using Compiled = std::shared_ptr<const placement::CompiledRing>;
  auto compile = [](const mcos::v1::Ring& ring) -> absl::StatusOr<Compiled> {
    auto compiled = placement::CompiledRing::Make(ring);
    if (!compiled.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ring '", ring.id(), "': ", compiled.status().message()));
    }
    return std::make_shared<const placement::CompiledRing>(*std::move(compiled));
  };
  std::map<std::string, std::pair<Compiled, uint64_t>> rings;  // id -> (layout, version)
  for (const auto& ring : snapshot.rings()) {
    MCOS_ASSIGN_OR_RETURN(Compiled compiled, compile(ring));
    rings[ring.id()] = {std::move(compiled), ring.version()};
  }
  std::map<std::string, std::vector<const mcos::v1::FormerLayout*>> formers;
  for (const auto& f : snapshot.former_layouts()) formers[f.option()].push_back(&f);
  // Every cluster of the federation must report a former layout settled.
  std::set<std::string> federation = {cluster};
  for (const auto& c : snapshot.clusters()) federation.insert(c.id());
  auto settled_everywhere = [&](const std::string& option, const std::string& id) {
    size_t settled = 0;
    for (const auto& r : snapshot.move_reports()) {
      if (r.option() != option || federation.count(r.cluster()) == 0) continue;
      if (std::find(r.settled().begin(), r.settled().end(), id) != r.settled().end()) ++settled;
    }
    return settled == federation.size();
  };
  std::vector<SyncSet> sets;
  for (const auto& option : snapshot.options()) {
    auto ring = rings.find(option.ring());
    if (ring == rings.end()) continue;
    SyncSet set;
    set.option = option.name();
    set.ring = option.ring();
    set.ring_version = ring->second.second;
    if (!formers[option.name()].empty()) {
      set.move_bytes_per_second = snapshot.rebalance_mb_per_second() * 1e6;
    }
    // Every live layout of the option, the current one first.
    std::vector<Compiled> layouts = {ring->second.first};
    // Per layout, the clusters removed for good since (none for the current one).
    std::vector<std::set<std::string>> dropped = {{}};
    for (const auto* f : formers[option.name()]) {
      MCOS_ASSIGN_OR_RETURN(Compiled compiled, compile(f->ring()));
      layouts.push_back(std::move(compiled));
      dropped.emplace_back(f->dropped().begin(), f->dropped().end());
      set.former.push_back(f->id());
      // Nothing counts as synced while paused.
      if (!snapshot.rebalance_paused() && settled_everywhere(option.name(), f->id())) {
        set.settled_everywhere.push_back(f->id());
      }
    }
    uint32_t power = 0;
    for (const auto& l : layouts) power = std::max(power, l->partition_power());
    set.partition_power = power;
    const uint32_t partitions = uint32_t{1} << power;
    set.peers.resize(partitions);
    set.held.resize(partitions);
    for (uint32_t p = 0; p < partitions; ++p) {
      bool holds = false;
      std::vector<std::string> others;
      // Paused: only the former layouts count (they go on repairing each other; nothing is
      // copied into partitions a cluster holds only under the current layout).
      const bool paused = snapshot.rebalance_paused() && layouts.size() > 1;
      for (size_t k = paused ? 1 : 0; k < layouts.size(); ++k) {
        const placement::CompiledRing& l = *layouts[k];
        for (uint16_t i : l.Replicas(p >> (power - l.partition_power()))) {
          if (dropped[k].count(l.clusters()[i]) > 0) continue;
          if (l.clusters()[i] == cluster) {
            holds = true;
          } else if (std::find(others.begin(), others.end(), l.clusters()[i]) == others.end()) {
            others.push_back(l.clusters()[i]);
          }
        }
      }
      if (holds) {
        set.held[p] = true;
        set.peers[p] = std::move(others);
      }
    }
    const placement::CompiledRing& current = *layouts.front();
    for (uint32_t p = 0; p < current.partitions(); ++p) {
      for (uint16_t i : current.Replicas(p)) {
        if (current.clusters()[i] == cluster) ++set.current_partitions;
      }
    }
    set.current = layouts.front();
    sets.push_back(std::move(set));
  }
  return sets;
}

absl::Status Unreachable(const std::string& cluster) {
  return absl::UnavailableError(
      absl::StrCat("cluster '", cluster,
                   "' cannot be reached now (no server of it is known, or its last call failed "
                   "and no probe has succeeded since)"));
}

AntiEntropy::AntiEntropy(AntiEntropyOptions options, Topology topology, Replicas replicas,
                         common::Clock& clock, Observe observe)
    : options_(std::move(options)),
      topology_(std::move(topology)),
      replicas_(std::move(replicas)),
      clock_(clock),
      observe_(std::move(observe)),
      records_budget_(options_.records_per_second, clock),
      bytes_budget_(options_.bytes_per_second, clock),
      yield_(options_.foreground_calls, options_.foreground_share, clock) {}

std::map<std::string, PeerSyncStatus> AntiEntropy::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

std::map<std::string, MoveStatus> AntiEntropy::Moves() const {
  absl::MutexLock lock(&mu_);
  return moves_;
}

absl::Status AntiEntropy::RunOnce(common::Pacer& pacer) {
  const absl::Time started = clock_.Now();
  MCOS_ASSIGN_OR_RETURN(std::vector<SyncSet> sets, topology_());
  std::shared_ptr<replication::Replica> local = replicas_(options_.cluster);
  if (!local) {
    return absl::UnavailableError(absl::StrCat("anti-entropy: no storage service of cluster '",
                                               options_.cluster, "' is known yet"));
  }
  // This pass's view per peer; `failed` peers get no new last_full_pass.
  std::map<std::string, PeerSyncStatus> pass;
  std::map<std::string, bool> failed;
  // Per option whose data moves: whether every peer was compared and every copy made, and what
  // was copied.
  struct Moved {
    bool clean = true;
    uint64_t records = 0;
    uint64_t bytes = 0;
  };
  std::map<std::string, Moved> moved;
  std::set<std::string> live_formers;
  for (const SyncSet& set : sets) {
    for (const auto& id : set.former) {
      first_seen_.try_emplace(id, started);
      live_formers.insert(id);
    }
  }
  std::erase_if(first_seen_, [&](const auto& e) { return live_formers.count(e.first) == 0; });
  // While data moves, copies go at the rate the operator set for moves, if any.
  double rate = options_.bytes_per_second;
  for (const SyncSet& set : sets) {
    if (set.move_bytes_per_second > 0) rate = set.move_bytes_per_second;
  }
  {
    absl::MutexLock budget(&budget_mu_);
    bytes_budget_.SetRate(rate);
  }
  stopped_ = false;
  absl::Status result;
  for (const SyncSet& set : sets) {
    Moved* move = set.former.empty() ? nullptr : &moved[set.option];
    std::map<std::string, std::vector<uint32_t>> shared;
    for (uint32_t p = 0; p < set.peers.size(); ++p) {
      for (const std::string& c : set.peers[p]) {
        if (c != options_.cluster) shared[c].push_back(p);
      }
    }
    if (shared.empty()) continue;
    mcos::v1::PartitionDigestsRequest all;
    all.set_option(set.option);
    all.set_partition_power(set.partition_power);
    auto local_digests = local->PartitionDigests(all, clock_.Now() + options_.call_timeout);
    if (!local_digests.ok()) {
      result = absl::Status(local_digests.status().code(),
                            absl::StrCat("anti-entropy: this cluster's digests of option '",
                                         set.option, "': ", local_digests.status().message()));
      for (const auto& [peer, unused] : shared) failed[peer] = true;
      if (move != nullptr) move->clean = false;
      continue;
    }
    const Digests mine = ToMap(*local_digests);
    for (const auto& [peer_name, partitions] : shared) {
      PeerSyncStatus& ps = pass[peer_name];
      const PeerSyncStatus before = ps;
      std::shared_ptr<replication::Replica> peer = replicas_(peer_name);
      absl::Status s = peer ? SyncWithPeer(set, mine, partitions, *local, *peer, pacer, ps)
                            : Unreachable(peer_name);
      if (!s.ok()) {
        failed[peer_name] = true;
        ps.last_error = std::string(s.message());
      }
      if (move != nullptr) {
        move->clean = move->clean && s.ok() && ps.repair_failures == before.repair_failures;
        move->records += ps.records_repaired - before.records_repaired;
        move->bytes += ps.bytes_repaired - before.bytes_repaired;
      }
      if (stopped_) break;
    }
    if (stopped_) break;
  }
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  for (auto& [peer_name, ps] : pass) {
    PeerSyncStatus& total = status_[peer_name];
    total.records_repaired += ps.records_repaired;
    total.bytes_repaired += ps.bytes_repaired;
    total.repair_failures += ps.repair_failures;
    total.bytes_exchanged += ps.bytes_exchanged;
    if (stopped_) continue;  // an interrupted pass says nothing about the rest
    total.partitions_compared = ps.partitions_compared;
    total.partitions_out_of_sync = ps.partitions_out_of_sync;
    total.last_error = ps.last_error;
    if (!failed[peer_name]) total.last_full_pass = now;
  }
  std::map<std::string, MoveStatus> moves;
  for (const SyncSet& set : sets) {
    if (set.former.empty()) continue;
    MoveStatus m;
    if (auto it = moves_.find(set.option); it != moves_.end()) m = it->second;
    const Moved& pass_moved = moved[set.option];
    m.records_copied += pass_moved.records;
    m.bytes_copied += pass_moved.bytes;
    if (m.ring != set.ring || m.ring_version != set.ring_version) m.synced.clear();
    m.ring = set.ring;
    m.ring_version = set.ring_version;
    m.partitions = set.current_partitions;
    m.former = set.former.size();
    m.settled.clear();
    for (const auto& id : set.former) {
      if (now - first_seen_[id] >= options_.move_settle) m.settled.push_back(id);
    }
    // Synced: a whole pass that began once every cluster had settled the former layout (so no
    // write anywhere still went to its holders alone).
    if (!stopped_ && pass_moved.clean) {
      for (const auto& id : set.settled_everywhere) {
        if (std::find(m.synced.begin(), m.synced.end(), id) == m.synced.end()) {
          m.synced.push_back(id);
        }
      }
    }
    std::erase_if(m.synced, [&](const std::string& id) {
      return std::find(set.former.begin(), set.former.end(), id) == set.former.end();
    });
    moves[set.option] = std::move(m);
  }
  moves_ = std::move(moves);
  return result;
}

bool AntiEntropy::Pace(common::Pacer& pacer, absl::Duration wait) {
  if (!stopped_ && !pacer.Pause(wait)) stopped_ = true;
  return !stopped_;
}

absl::Status AntiEntropy::SyncWithPeer(const SyncSet& set, const Digests& mine,
                                       const std::vector<uint32_t>& partitions,
                                       replication::Replica& local, replication::Replica& peer,
                                       common::Pacer& pacer, PeerSyncStatus& ps) {
  const uint32_t power = set.partition_power;
  // The partitions to compare one by one: all of them, or (when the peer shares every partition
  // and there are many) those of the coarse ranges whose digests differ. Digests add up, so this
  // cluster's coarse digests are folded from its per-partition ones; in sync, a pass then costs
  // one small call per peer and option.
  std::vector<uint32_t> candidates = partitions;
  if (power > kCoarsePower && partitions.size() == (size_t{1} << power)) {
    mcos::v1::PartitionDigestsRequest coarse;
    coarse.set_option(set.option);
    coarse.set_partition_power(kCoarsePower);
    auto theirs = peer.PartitionDigests(coarse, clock_.Now() + options_.call_timeout);
    if (!theirs.ok()) return theirs.status();
    ps.bytes_exchanged += coarse.ByteSizeLong() + theirs->ByteSizeLong();
    const Digests peer_coarse = ToMap(*theirs);
    Digests my_coarse;
    for (const auto& [p, d] : mine) {
      auto& sum = my_coarse[p >> (power - kCoarsePower)];
      sum.first += d.first;
      sum.second += d.second;
    }
    candidates.clear();
    for (uint32_t r = 0; r < (uint32_t{1} << kCoarsePower); ++r) {
      if (Lookup(my_coarse, r) == Lookup(peer_coarse, r)) continue;
      const uint32_t shift = power - kCoarsePower;
      for (uint32_t p = r << shift; p < ((r + 1) << shift); ++p) candidates.push_back(p);
    }
  }
  ps.partitions_compared += partitions.size();
  if (candidates.empty()) return absl::OkStatus();
  mcos::v1::PartitionDigestsRequest asked;
  asked.set_option(set.option);
  asked.set_partition_power(power);
  if (candidates.size() < partitions.size()) {
    for (uint32_t p : candidates) asked.add_partitions(p);
  }
  auto theirs = peer.PartitionDigests(asked, clock_.Now() + options_.call_timeout);
  if (!theirs.ok()) return theirs.status();
  ps.bytes_exchanged += asked.ByteSizeLong() + theirs->ByteSizeLong();
  const Digests peer_digests = ToMap(*theirs);
  struct Differing {
    uint32_t partition;
    uint64_t local_count;
    uint64_t peer_count;
  };
  std::vector<Differing> differing;
  for (uint32_t p : candidates) {
    const auto m = Lookup(mine, p);
    const auto t = Lookup(peer_digests, p);
    if (m != t) differing.push_back({p, m.first, t.first});
  }
  ps.partitions_out_of_sync += differing.size();
  if (differing.empty()) return absl::OkStatus();
  // Several partitions at once: each costs a few calls that mostly wait on the peer.
  const size_t threads = std::min<size_t>(
      static_cast<size_t>(std::max(1, options_.parallel_partitions)), differing.size());
  absl::Mutex merge_mu;
  absl::Status first_error;
  std::atomic<size_t> next{0};
  auto reconcile = [&] {
    Work work;
    work.copies = std::max(1, options_.parallel_copies / static_cast<int>(threads));
    absl::Status error;
    for (size_t i = next++; i < differing.size() && !stopped_; i = next++) {
      const Differing& d = differing[i];
      absl::Status s = Reconcile(set.option, {set.partition_power, d.partition}, d.local_count,
                                 d.peer_count, local, peer, pacer, work);
      if (!s.ok() && error.ok()) error = s;
    }
    absl::Status copied = CopyPending(local, peer, pacer, work);
    if (error.ok()) error = copied;
    absl::MutexLock lock(&merge_mu);
    ps.records_repaired += work.ps.records_repaired;
    ps.bytes_repaired += work.ps.bytes_repaired;
    ps.repair_failures += work.ps.repair_failures;
    ps.bytes_exchanged += work.ps.bytes_exchanged;
    if (!error.ok() && first_error.ok()) first_error = error;
  };
  std::vector<std::thread> workers;
  for (size_t w = 1; w < threads; ++w) workers.emplace_back(reconcile);
  reconcile();
  for (auto& t : workers) t.join();
  return first_error;
}

absl::Status AntiEntropy::Reconcile(const std::string& option, Range range, uint64_t local_count,
                                    uint64_t peer_count, replication::Replica& local,
                                    replication::Replica& peer, common::Pacer& pacer, Work& work) {
  if (peer_count == 0) return absl::OkStatus();  // nothing to pull; the peer pulls from here
  if (range.power >= kFinestPower || std::max(local_count, peer_count) <= options_.leaf_records) {
    return Repair(option, range, local, peer, pacer, work);
  }
  const uint32_t power = std::min(kFinestPower, range.power + kSplitBits);
  const uint32_t shift = power - range.power;
  mcos::v1::PartitionDigestsRequest finer;
  finer.set_option(option);
  finer.set_partition_power(power);
  for (uint32_t i = 0; i < (uint32_t{1} << shift); ++i) {
    finer.add_partitions((range.partition << shift) | i);
  }
  const absl::Time deadline = clock_.Now() + options_.call_timeout;
  auto mine = local.PartitionDigests(finer, deadline);
  if (!mine.ok()) return mine.status();
  auto theirs = peer.PartitionDigests(finer, deadline);
  if (!theirs.ok()) return theirs.status();
  work.ps.bytes_exchanged += finer.ByteSizeLong() + theirs->ByteSizeLong();
  const Digests m = ToMap(*mine);
  const Digests t = ToMap(*theirs);
  absl::Status first_error;
  for (uint32_t sub : finer.partitions()) {
    const auto a = Lookup(m, sub);
    const auto b = Lookup(t, sub);
    if (a == b) continue;
    absl::Status s = Reconcile(option, {power, sub}, a.first, b.first, local, peer, pacer, work);
    if (!s.ok() && first_error.ok()) first_error = s;
    if (stopped_) break;
  }
  return first_error;
}

absl::StatusOr<std::map<std::string, mcos::v1::ScanPartitionEntry>> AntiEntropy::ScanAll(
    replication::Replica& replica, const std::string& option, Range range, common::Pacer& pacer,
    uint64_t* bytes) {
  std::map<std::string, mcos::v1::ScanPartitionEntry> out;
  mcos::v1::ScanPartitionRequest request;
  request.set_option(option);
  request.set_partition_power(range.power);
  request.set_partition(range.partition);
  do {
    auto page = replica.ScanPartition(request, clock_.Now() + options_.call_timeout);
    if (!page.ok()) {
      return absl::Status(page.status().code(), absl::StrCat("scan of cluster '", replica.cluster(),
                                                             "': ", page.status().message()));
    }
    if (bytes != nullptr) *bytes += request.ByteSizeLong() + page->ByteSizeLong();
    for (auto& entry : *page->mutable_entries()) {
      std::string k = MapKey(entry.key());
      out.emplace(std::move(k), std::move(entry));
    }
    request.set_marker(page->next_marker());
    absl::Duration wait;
    {
      absl::MutexLock lock(&budget_mu_);
      wait = records_budget_.Spend(page->entries_size());
    }
    if (!Pace(pacer, wait)) break;
  } while (!request.marker().empty());
  return out;
}

absl::Status AntiEntropy::Repair(const std::string& option, Range range,
                                 replication::Replica& local, replication::Replica& peer,
                                 common::Pacer& pacer, Work& work) {
  MCOS_ASSIGN_OR_RETURN(auto theirs, ScanAll(peer, option, range, pacer, &work.ps.bytes_exchanged));
  if (stopped_) return absl::OkStatus();
  MCOS_ASSIGN_OR_RETURN(auto mine, ScanAll(local, option, range, pacer, nullptr));
  for (auto& [k, entry] : theirs) {
    auto held = mine.find(k);
    if (held != mine.end() &&
        !common::IsNewer(entry.record().version(), held->second.record().version())) {
      continue;
    }
    work.pending.push_back(std::move(entry));
  }
  if (work.pending.size() < kCopyBatch) return absl::OkStatus();
  return CopyPending(local, peer, pacer, work);
}

absl::Status AntiEntropy::CopyPending(replication::Replica& local, replication::Replica& peer,
                                      common::Pacer& pacer, Work& work) {
  std::vector<mcos::v1::ScanPartitionEntry> batch;
  batch.swap(work.pending);
  if (batch.empty() || stopped_) return absl::OkStatus();
  // Several copies at once: each ends with a durable commit here, and concurrent commits share
  // their fsync (RocksDB's group commit), so one at a time would wait on the disk for each.
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<size_t> next{0};
  // The deadline allows for the pauses: half the byte rate, times the share of the time copies
  // take while users are served.
  double rate;
  {
    absl::MutexLock budget(&budget_mu_);
    rate = bytes_budget_.rate();
  }
  double deadline_rate = rate > 0 ? std::min(20e6, rate / 2) : 20e6;
  if (options_.foreground_share > 0 && options_.foreground_share < 1) {
    deadline_rate *= options_.foreground_share;
  }
  auto copy = [&] {
    // Each chunk read (and each copy's end) spends its bytes of the rate and its time of the
    // foreground's share; the pause comes before the next read.
    absl::Time mark = clock_.Now();
    auto pace = [&](size_t bytes) {
      absl::Duration wait;
      {
        absl::MutexLock budget(&budget_mu_);
        wait = bytes_budget_.Spend(static_cast<double>(bytes));
      }
      wait = std::max(wait, yield_.After(clock_.Now() - mark));
      const bool go = Pace(pacer, wait);
      mark = clock_.Now();
      return go;
    };
    const std::function<bool(size_t)> after_chunk = pace;
    for (size_t i = next++; i < batch.size() && !stopped_; i = next++) {
      const mcos::v1::ScanPartitionEntry& entry = batch[i];
      const uint64_t size = entry.record().tombstone() ? 0 : entry.record().size();
      auto ack =
          replication::Copy(peer, local, entry.key(), entry.record(),
                            replication::CopyDeadline(size, options_.call_timeout, deadline_rate),
                            nullptr, after_chunk);
      {
        absl::MutexLock lock(&mu);
        if (ack.ok()) {
          if (ack->applied) {
            ++work.ps.records_repaired;
            work.ps.bytes_repaired += size;
            if (observe_) observe_(entry.record().version());
          }
        } else if (!absl::IsFailedPrecondition(ack.status()) && !absl::IsNotFound(ack.status()) &&
                   !stopped_) {
          // (FAILED_PRECONDITION, NOT_FOUND: the peer replaced or deleted it meanwhile; the next
          // pass compares again. Stopped: a pause cancelled it.)
          ++work.ps.repair_failures;
          if (first_error.ok()) first_error = ack.status();
        }
      }
      if (!pace(0)) return;
    }
  };
  std::vector<std::thread> workers;
  const size_t n = std::min<size_t>(std::max(1, work.copies), batch.size());
  for (size_t w = 1; w < n; ++w) workers.emplace_back(copy);
  copy();
  for (auto& t : workers) t.join();
  return first_error;
}

}  // namespace mcos::repair
