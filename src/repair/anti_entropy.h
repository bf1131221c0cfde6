// Anti-entropy (shared/DESIGN.md, "Repair"): this cluster pulls from the other clusters of each
// partition's replica set whatever they hold newer than it does, tombstones included, so that a
// cluster back from an outage, a lost replication queue or a restore from an old copy of its data
// converges with no event and no operator.
//
// A pass, per option this cluster is a replica of: one PartitionDigests call to this cluster's
// storage answers every partition's (records, digest), and each peer is asked for the same (of
// the partitions it shares; with a peer that shares all of a ring of over 64 partitions, first
// for 64 coarse ranges, then for the partitions of the ranges that differ); partitions whose
// digests differ are split into 16 finer ranges (digests at a partition power 4 higher, up to the
// engines' 18 bits) until a range holds at most `leaf_records` records on either side, and only
// those ranges are scanned (ScanPartition) and compared key by key. A record the peer holds newer
// is copied from the peer (replication::Copy, the replica write of the coordinators: applied only
// above what is held, so never older over newer). Records this cluster holds newer are left to the
// peer's own pass. When nothing differs a pass costs one digest call per peer and option.
//
// Thread-compatible: one pass at a time (the Daemon runs it); Status() may be called from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "mcos/v1/controller.pb.h"
#include "replication/replica.h"

namespace mcos::repair {

// One option's partitions: whether this cluster holds each, and the other clusters of its replica
// set (empty when this cluster is not one of them).
struct SyncSet {
  std::string option;
  uint32_t partition_power = 0;
  std::vector<bool> held;                       // indexed by partition
  std::vector<std::vector<std::string>> peers;  // indexed by partition
  friend bool operator==(const SyncSet&, const SyncSet&) = default;
};

// The sync sets of `cluster` under the rings and options of `snapshot`: every option whose ring
// places a partition at `cluster`. INVALID_ARGUMENT for a ring
// whose layout cannot be read.
absl::StatusOr<std::vector<SyncSet>> SyncSetsOf(const mcos::v1::MetadataSnapshot& snapshot,
                                                const std::string& cluster);

// Why a peer's replica is null where repair asks for one (AntiEntropy::Replicas): UNAVAILABLE
// naming the cluster (no server of it is known, or the breaker keeps it out).
absl::Status Unreachable(const std::string& cluster);

struct AntiEntropyOptions {
  // This cluster.
  std::string cluster;
  // Records scanned per second and bytes copied per second, at most (0: no limit).
  double records_per_second = 20000;
  double bytes_per_second = 50e6;
  // Ranges are scanned once they hold at most this many records on either side.
  uint32_t leaf_records = 256;
  // Copies made at once (each a replica write here, with its own fsync unless they share one).
  int parallel_copies = 8;
  // Differing partitions reconciled at once with one peer (each a few digest and scan calls,
  // which wait on the network rather than the CPU); the copies are shared out among them.
  int parallel_partitions = 4;
  // Deadline of each digest or scan call; copies get this plus their bytes at 20 MB/s.
  absl::Duration call_timeout = absl::Seconds(10);
};

// What anti-entropy saw of one peer cluster.
struct PeerSyncStatus {
  // Partitions compared with the peer in the last pass, and how many of them differed.
  uint64_t partitions_compared = 0;
  uint64_t partitions_out_of_sync = 0;
  // Since start: records and bytes copied from the peer, records that could not be.
  uint64_t records_repaired = 0;
  uint64_t bytes_repaired = 0;
  uint64_t repair_failures = 0;
  // Since start: bytes of the digest and scan messages exchanged with the peer (both ways;
  // copied objects are in bytes_repaired).
  uint64_t bytes_exchanged = 0;
  // End of the last pass that compared every shared partition with the peer.
  absl::Time last_full_pass = absl::InfinitePast();
  // Why the last pass could not compare with the peer (empty when it could).
  std::string last_error;
};

class AntiEntropy {
 public:
  // The option's partitions and replica sets, current at the time of the call.
  using Topology = std::function<absl::StatusOr<std::vector<SyncSet>>()>;
  // A cluster's replica (this cluster's storage for options.cluster); null when it cannot be
  // reached now.
  using Replicas = std::function<std::shared_ptr<replication::Replica>(const std::string&)>;
  // Called with every version copied here (the server's clock observes it), from the pass's
  // copying threads, several at once: it must be thread-safe.
  using Observe = std::function<void(const mcos::v1::Version&)>;

  AntiEntropy(AntiEntropyOptions options, Topology topology, Replicas replicas,
              common::Clock& clock, Observe observe = nullptr);

  // One sweep over every partition this cluster shares with a peer. Fails only when the topology
  // or this cluster's own storage cannot be read; a peer that fails is skipped (its status says
  // why) and compared again next pass.
  absl::Status RunOnce(common::Pacer& pacer);

  std::map<std::string, PeerSyncStatus> Status() const;

 private:
  struct Range {
    uint32_t power;
    uint32_t partition;
  };
  using Digests = std::map<uint32_t, std::pair<uint64_t, uint64_t>>;  // partition -> (n, digest)
  // What one of the threads reconciling a peer's partitions gathers: its counts (added to the
  // peer's status at the end), and the records the peer holds newer, waiting to be copied.
  struct Work {
    PeerSyncStatus ps;
    std::vector<mcos::v1::ScanPartitionEntry> pending;
    int copies = 1;  // copies it makes at once
  };
  // Compares one option's `partitions` with `peer` (`mine`: this cluster's digests of them) and
  // repairs what differs.
  absl::Status SyncWithPeer(const SyncSet& set, const Digests& mine,
                            const std::vector<uint32_t>& partitions, replication::Replica& local,
                            replication::Replica& peer, common::Pacer& pacer, PeerSyncStatus& ps);
  // Drills into one range whose digests differ, down to ranges small enough to scan.
  absl::Status Reconcile(const std::string& option, Range range, uint64_t local_count,
                         uint64_t peer_count, replication::Replica& local,
                         replication::Replica& peer, common::Pacer& pacer, Work& work);
  // Scans one range on both sides and gathers what the peer holds newer into work.pending,
  // copied once a batch is full (and at the end of each peer's pass).
  absl::Status Repair(const std::string& option, Range range, replication::Replica& local,
                      replication::Replica& peer, common::Pacer& pacer, Work& work);
  // Copies the gathered records from `peer`, work.copies at once.
  absl::Status CopyPending(replication::Replica& local, replication::Replica& peer,
                           common::Pacer& pacer, Work& work);
  // Every record of a range at `replica`, by user/container/object.
  absl::StatusOr<std::map<std::string, mcos::v1::ScanPartitionEntry>> ScanAll(
      replication::Replica& replica, const std::string& option, Range range, common::Pacer& pacer,
      uint64_t* bytes);
  // Pauses `wait` (a rate limit); false, and stopped_ set, when the pass must end.
  bool Pace(common::Pacer& pacer, absl::Duration wait);

  const AntiEntropyOptions options_;
  const Topology topology_;
  const Replicas replicas_;
  common::Clock& clock_;
  const Observe observe_;
  absl::Mutex budget_mu_;  // the budgets are spent by several threads
  common::RateBudget records_budget_ ABSL_GUARDED_BY(budget_mu_);
  common::RateBudget bytes_budget_ ABSL_GUARDED_BY(budget_mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, PeerSyncStatus> status_ ABSL_GUARDED_BY(mu_);
  // Set during a pass once its pacer said stop (read by the copying threads too).
  std::atomic<bool> stopped_{false};
};

}  // namespace mcos::repair
