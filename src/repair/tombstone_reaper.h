// Tombstone reaping (shared/DESIGN.md, "Repair"): a deleted object leaves a tombstone at every
// replica so that no older copy anywhere can bring it back; the reaper forgets tombstones once
// that can no longer happen, never after a bare time window.
//
// Each partition is reaped by one cluster of its replica set (ReaperOf: the partitions are dealt
// round the replica set's clusters in name order, so that the work is shared). A pass scans that
// cluster's partitions for tombstones at least `min_age` old and, a batch at a
// time, asks every cluster of the federation (ClusterCheckTombstones): each cluster of the
// partition's replica set must hold the tombstone (or a newer version of the object), and no
// cluster may still have a replication task queued for the object. Only the tombstones that every
// cluster confirmed are purged, at every cluster of the replica set (StorageDeleteRequest.purge:
// exactly that tombstone, never a newer version). A cluster that cannot be asked (down, or not
// found yet) keeps the whole batch alive until it is back and confirms; so does a cluster that
// misses a tombstone until anti-entropy or its queue gives it the tombstone. `min_age` covers what
// the confirmations cannot see: writes still in flight with an older version (an upload that began
// before the delete and is still streaming), and clocks that disagree.
//
// Thread-compatible: one pass at a time (the Daemon runs it); Status() from any thread.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "mcos/v1/cluster.pb.h"
#include "repair/anti_entropy.h"
#include "replication/replica.h"

namespace mcos::repair {

// The cluster that reaps `partition`, of its replica set `replica_set` (sorted by name).
const std::string& ReaperOf(const std::vector<std::string>& replica_set, uint32_t partition);

struct TombstoneReaperOptions {
  // This cluster.
  std::string cluster;
  // Tombstones younger than this are kept whatever the clusters say.
  absl::Duration min_age = absl::Hours(1);
  // Tombstones asked about per call (at most 1000, the peers' limit).
  uint32_t batch = 256;
  // Records of this cluster's partitions scanned per second, at most (0: no limit).
  double records_per_second = 20000;
  absl::Duration call_timeout = absl::Seconds(10);
};

struct ReaperStatus {
  // Since start: tombstones forgotten by every cluster of their replica set.
  uint64_t reaped = 0;
  // At the last pass: tombstones old enough that were kept, and the clusters that had not
  // confirmed them.
  uint64_t waiting = 0;
  std::set<std::string> waiting_on;
  // Why the last pass stopped early or a purge failed (empty when none did).
  std::string last_error;
};

class TombstoneReaper {
 public:
  struct Topology {
    // The partitions this cluster holds and their replica sets (SyncSetsOf).
    std::vector<SyncSet> sets;
    // Every cluster of the federation, this one included.
    std::vector<std::string> clusters;
  };
  using TopologyFn = std::function<absl::StatusOr<Topology>()>;
  // One cluster's answers (this cluster's too): ClusterCheckTombstones and ClusterPurgeTombstones.
  using Check = std::function<absl::StatusOr<mcos::v1::CheckTombstonesResponse>(
      const std::string& cluster, const mcos::v1::CheckTombstonesRequest&, absl::Time deadline)>;
  using Purge = std::function<absl::StatusOr<mcos::v1::PurgeTombstonesResponse>(
      const std::string& cluster, const mcos::v1::PurgeTombstonesRequest&, absl::Time deadline)>;

  // This cluster's storage (scanned); null when it cannot be reached now.
  using Local = std::function<std::shared_ptr<replication::Replica>()>;

  // `clock` must outlive the reaper.
  TombstoneReaper(TombstoneReaperOptions options, TopologyFn topology, Local local, Check check,
                  Purge purge, common::Clock& clock);

  // One sweep over the partitions this cluster reaps. Fails when the topology or this cluster's
  // storage cannot be read; tombstones some cluster did not confirm are kept and counted.
  absl::Status RunOnce(common::Pacer& pacer);

  ReaperStatus Status() const;

 private:
  // Asks every cluster about `batch` (tombstones of one partition whose replica set is
  // `replica_set`) and purges the confirmed ones at every cluster of the replica set.
  absl::Status ReapBatch(const Topology& topology, const std::vector<std::string>& replica_set,
                         std::vector<mcos::v1::TombstoneRef>& batch, ReaperStatus& pass);

  const TombstoneReaperOptions options_;
  const TopologyFn topology_;
  const Local local_;
  const Check check_;
  const Purge purge_;
  common::Clock& clock_;
  common::RateBudget records_budget_;
  mutable absl::Mutex mu_;
  ReaperStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::repair
