// Releasing what a cluster no longer holds (docs/placement.md, "Moving data"). Once an option's
// former layouts are retired, a cluster that holds records of partitions its current layout
// places elsewhere drops them, each only once every cluster that holds the partition now holds
// that version or a newer one (ClusterCheckTombstones' `held`). A record some holder lacks (a
// write that reached only the former holders, late) is copied to it first and released in a later
// pass. Options whose data still moves are left alone: their former holders are still read.
//
// Thread-compatible: one pass at a time (the Daemon runs it); Status() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "repair/anti_entropy.h"
#include "repair/tombstone_reaper.h"

namespace mcos::repair {

struct ReleaserOptions {
  // This cluster.
  std::string cluster;
  // Records asked about per call (at most 1000, the peers' limit).
  uint32_t batch = 256;
  // Records scanned per second, at most (0: no limit).
  double records_per_second = 20000;
  absl::Duration call_timeout = absl::Seconds(10);
};

struct ReleaserStatus {
  // Since start: copies dropped here, and copies given to a holder that lacked them first.
  uint64_t released = 0;
  uint64_t handed_over = 0;
  // At the last pass: records of partitions held elsewhere that were kept (a holder could not
  // confirm them yet).
  uint64_t kept = 0;
  std::string last_error;
};

class Releaser {
 public:
  // Every option's sync set (SyncSetsOf).
  using Topology = AntiEntropy::Topology;
  // A cluster's replica (this cluster's storage for options.cluster); null when unreachable.
  using Replicas = AntiEntropy::Replicas;
  // A holder's answer on records (ClusterCheckTombstones).
  using Check = TombstoneReaper::Check;

  Releaser(ReleaserOptions options, Topology topology, Replicas replicas, Check check,
           common::Clock& clock);

  // One sweep over every option whose data does not move. Fails when the topology or this
  // cluster's storage cannot be read; records a holder did not confirm are kept and counted.
  absl::Status RunOnce(common::Pacer& pacer);

  ReleaserStatus Status() const;

 private:
  // Releases what `holders` confirm of `batch` (records of one partition), hands over the rest.
  absl::Status ReleaseBatch(replication::Replica& local, const std::vector<std::string>& holders,
                            std::vector<mcos::v1::ScanPartitionEntry>& batch, ReleaserStatus& pass);

  const ReleaserOptions options_;
  const Topology topology_;
  const Replicas replicas_;
  const Check check_;
  common::Clock& clock_;
  common::RateBudget records_budget_;
  mutable absl::Mutex mu_;
  ReleaserStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::repair
