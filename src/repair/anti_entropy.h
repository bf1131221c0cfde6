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
#include "placement/layout.h"
#include "replication/replica.h"

namespace mcos::repair {

// One option's partitions: whether this cluster holds each, and the other clusters of its replica
// set (empty when this cluster is not one of them). While the option's data moves (its former
// layouts are live), a partition's replica set is the union of its sets under the current layout
// and every former one, at the finest partition power among them: anti-entropy then pulls into
// the new holders what the former ones hold (it is the mover), and the reaper asks them all.
struct SyncSet {
  std::string option;
  uint32_t partition_power = 0;
  std::vector<bool> held;                       // indexed by partition
  std::vector<std::vector<std::string>> peers;  // indexed by partition
  // The option's current ring and its version.
  std::string ring;
  uint64_t ring_version = 0;
  // The ids of its live former layouts (FormerLayout.id; empty when its data does not move), and
  // how many partitions of the current layout (at its own power) this cluster holds.
  std::vector<std::string> former;
  uint64_t current_partitions = 0;
  // The former layouts that every cluster of the federation reports settled (MoveReport).
  std::vector<std::string> settled_everywhere;
  // The option's current layout (which clusters hold each partition now).
  std::shared_ptr<const placement::CompiledRing> current;
  // While its data moves: the bytes per second copies may take, as set federation-wide
  // (SetRebalanceRate; 0: AntiEntropyOptions::bytes_per_second).
  double move_bytes_per_second = 0;
  friend bool operator==(const SyncSet&, const SyncSet&) = default;
};

// The sync sets of `cluster` under the rings, options and former layouts of `snapshot`: one per
// option (those that place no partition here too: every cluster reports on every move, and
// releases what it no longer holds). INVALID_ARGUMENT for a ring whose layout cannot be read.
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
  // User calls served by this cluster so far (ServerApp counts them), and the share of the time
  // copies may take while such calls arrive (common::ForegroundYield; >= 1: copies never give
  // way; the share is of all copying threads together). They pause between chunks to stay within
  // it, so a move does not take the CPU and disk from the users' calls; with no calls for 500 ms
  // they go at the full rate.
  std::function<uint64_t()> foreground_calls;
  double foreground_share = 0.25;
  // Deadline of each digest or scan call; copies get this plus their bytes at 20 MB/s (less
  // while they give way to the foreground or a lower rate is set).
  absl::Duration call_timeout = absl::Seconds(10);
  // How long a former layout must have been known here before it counts as settled at this
  // cluster: by then no write this cluster coordinates still uses only the former placement
  // (those resolved before it was known have ended). Docs/placement.md, "Moving data".
  absl::Duration move_settle = absl::Seconds(60);
};

// What the last pass found of one option whose data moves (reported to the controller as a
// MoveReport).
struct MoveStatus {
  std::string ring;
  uint64_t ring_version = 0;
  // Former layouts known here for at least move_settle.
  std::vector<std::string> settled;
  // Former layouts every cluster had settled before the pass began, and from whose holders the
  // pass copied everything newer (every peer compared, every copy made).
  std::vector<std::string> synced;
  uint64_t partitions = 0;
  // Former layouts live.
  uint64_t former = 0;
  // Since start: records and bytes copied into this option from its peers.
  uint64_t records_copied = 0;
  uint64_t bytes_copied = 0;
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
  // Per option whose data moves, as of the last pass that ended (an option whose data no longer
  // moves is left out).
  std::map<std::string, MoveStatus> Moves() const;

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
  common::ForegroundYield yield_;
  mutable absl::Mutex mu_;
  std::map<std::string, PeerSyncStatus> status_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, MoveStatus> moves_ ABSL_GUARDED_BY(mu_);
  // When each former layout was first in a pass's topology (only the pass's thread uses it).
  std::map<std::string, absl::Time> first_seen_;
  // Set during a pass once its pacer said stop (read by the copying threads too).
  std::atomic<bool> stopped_{false};
};

}  // namespace mcos::repair
