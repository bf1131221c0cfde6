#include "repair/tombstone_reaper.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::repair {

const std::string& ReaperOf(const std::vector<std::string>& replica_set, uint32_t partition) {
  return replica_set[partition % replica_set.size()];
}

TombstoneReaper::TombstoneReaper(TombstoneReaperOptions options, TopologyFn topology, Local local,
                                 Check check, Purge purge, common::Clock& clock)
    : options_(std::move(options)),
      topology_(std::move(topology)),
      local_(std::move(local)),
      check_(std::move(check)),
      purge_(std::move(purge)),
      clock_(clock),
      records_budget_(options_.records_per_second, clock) {}

ReaperStatus TombstoneReaper::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

absl::Status TombstoneReaper::RunOnce(common::Pacer& pacer) {
  MCOS_ASSIGN_OR_RETURN(Topology topology, topology_());
  std::shared_ptr<replication::Replica> local = local_();
  if (!local) {
    return absl::UnavailableError(absl::StrCat("tombstone reaping: no storage service of cluster '",
                                               options_.cluster, "' is known yet"));
  }
  const uint32_t batch_size = std::clamp<uint32_t>(options_.batch, 1, 1000);
  ReaperStatus pass;
  absl::Status result;
  bool stopped = false;
  for (const SyncSet& set : topology.sets) {
    // While an option's data moves, its tombstones wait: its replica sets are changing.
    if (!set.former.empty()) continue;
    for (uint32_t p = 0; p < set.held.size() && !stopped && result.ok(); ++p) {
      if (!set.held[p]) continue;
      std::vector<std::string> replica_set = set.peers[p];
      replica_set.push_back(options_.cluster);
      std::sort(replica_set.begin(), replica_set.end());
      if (ReaperOf(replica_set, p) != options_.cluster) continue;  // another cluster reaps it
      const absl::Time oldest_reapable = clock_.Now() - options_.min_age;
      mcos::v1::ScanPartitionRequest scan;
      scan.set_option(set.option);
      scan.set_partition_power(set.partition_power);
      scan.set_partition(p);
      std::vector<mcos::v1::TombstoneRef> batch;
      do {
        auto page = local->ScanPartition(scan, clock_.Now() + options_.call_timeout);
        if (!page.ok()) {
          result =
              absl::Status(page.status().code(),
                           absl::StrCat("tombstone reaping: scanning partition ", p, " of option '",
                                        set.option, "': ", page.status().message()));
          break;
        }
        for (auto& entry : *page->mutable_entries()) {
          const mcos::v1::ObjectRecord& r = entry.record();
          if (!r.tombstone() || common::HlcTime(r.version().hlc()) > oldest_reapable) continue;
          mcos::v1::TombstoneRef& ref = batch.emplace_back();
          *ref.mutable_key() = std::move(*entry.mutable_key());
          *ref.mutable_version() = r.version();
          if (batch.size() >= batch_size) {
            if (absl::Status s = ReapBatch(topology, replica_set, batch, pass); !s.ok()) result = s;
          }
        }
        scan.set_marker(page->next_marker());
        const absl::Duration wait = records_budget_.Spend(page->entries_size());
        if (wait > absl::ZeroDuration() && !pacer.Pause(wait)) stopped = true;
      } while (!scan.marker().empty() && !stopped && result.ok());
      if (!batch.empty() && result.ok()) {
        if (absl::Status s = ReapBatch(topology, replica_set, batch, pass); !s.ok()) result = s;
      }
    }
  }
  // A pass that ended because the view changed is not a failure; its counts are partial.
  const bool restarted = absl::IsAborted(result);
  if (restarted) result = absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (!pass.last_error.empty() && pass.last_error != status_.last_error) {
    common::LogWarning("tombstone reaping: ", pass.last_error);  // once, not per batch
  }
  status_.reaped += pass.reaped;
  if (!stopped && !restarted) {  // a pass cut short saw only some partitions
    status_.waiting = pass.waiting;
    status_.waiting_on = std::move(pass.waiting_on);
  }
  status_.last_error = result.ok() ? pass.last_error : std::string(result.message());
  return result;
}

absl::Status TombstoneReaper::ReapBatch(const Topology& topology,
                                        const std::vector<std::string>& replica_set,
                                        std::vector<mcos::v1::TombstoneRef>& batch,
                                        ReaperStatus& pass) {
  // A pass can outlast a change of the rings or of the federation (a pass that began before this
  // cluster was federated saw itself as the only replica): the view it began with must still
  // hold, or the pass ends here and the next one starts over with the new view.
  MCOS_ASSIGN_OR_RETURN(const Topology now, topology_());
  if (now.clusters != topology.clusters || now.sets != topology.sets) {
    batch.clear();
    return absl::AbortedError(
        "the rings or the federation's clusters changed during the pass; the next pass starts "
        "over");
  }
  mcos::v1::CheckTombstonesRequest check;
  for (auto& ref : batch) *check.add_tombstones() = std::move(ref);
  batch.clear();
  const int n = check.tombstones_size();
  std::vector<bool> confirmed(static_cast<size_t>(n), true);
  // The federation's clusters and the replica set's (whatever the list of clusters says).
  std::vector<std::string> clusters = topology.clusters;
  clusters.insert(clusters.end(), replica_set.begin(), replica_set.end());
  std::sort(clusters.begin(), clusters.end());
  clusters.erase(std::unique(clusters.begin(), clusters.end()), clusters.end());
  for (const std::string& cluster : clusters) {
    const bool in_set =
        std::find(replica_set.begin(), replica_set.end(), cluster) != replica_set.end();
    auto answer = check_(cluster, check, clock_.Now() + options_.call_timeout);
    if (answer.ok() && answer->checks_size() != n) {
      answer = absl::DataLossError(absl::StrCat("cluster '", cluster, "' answered ",
                                                answer->checks_size(), " checks for ", n,
                                                " tombstones"));
    }
    if (!answer.ok()) {
      // Unconfirmed: everything in the batch waits for this cluster.
      std::fill(confirmed.begin(), confirmed.end(), false);
      pass.waiting_on.insert(cluster);
      continue;
    }
    for (int i = 0; i < n; ++i) {
      const auto& c = answer->checks(i);
      if ((in_set && !c.held()) || c.queued() || c.young()) {
        confirmed[static_cast<size_t>(i)] = false;
        pass.waiting_on.insert(cluster);
      }
    }
  }
  mcos::v1::PurgeTombstonesRequest purge;
  for (int i = 0; i < n; ++i) {
    if (confirmed[static_cast<size_t>(i)]) {
      *purge.add_tombstones() = check.tombstones(i);
    } else {
      ++pass.waiting;
    }
  }
  if (purge.tombstones().empty()) return absl::OkStatus();
  // The peers first: a tombstone this cluster still holds when a peer's purge failed is reaped
  // again next pass (a purge of what is not held changes nothing).
  std::vector<std::string> order;
  for (const std::string& c : replica_set) {
    if (c != options_.cluster) order.push_back(c);
  }
  order.push_back(options_.cluster);
  for (const std::string& cluster : order) {
    auto purged = purge_(cluster, purge, clock_.Now() + options_.call_timeout);
    if (!purged.ok()) {
      pass.last_error =
          absl::StrCat("purging ", purge.tombstones_size(), " tombstone(s) at cluster '", cluster,
                       "': ", purged.status().message());
      return absl::OkStatus();  // the others are reaped next pass
    }
  }
  pass.reaped += static_cast<uint64_t>(purge.tombstones_size());
  return absl::OkStatus();
}

}  // namespace mcos::repair
