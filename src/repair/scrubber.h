// The scrubber (shared/DESIGN.md, "Repair"): re-reads this cluster's stored objects at a bounded
// rate, which verifies every chunk's checksum, and replaces a copy that fails them with a peer's
// intact copy of the same version (Replica::Repair: the data of exactly that version is
// replaced, checked against the record's SHA-256). Reads that meet a corrupt copy here hand it
// over (Suspect) and it is repaired at once, ahead of the sweep.
//
// A pass repairs the suspects, then, when a sweep is due (`sweep_period` after the last one
// ended, or after the start), sweeps every partition of every option this cluster holds, page by
// page (ScanPartition), checking the suspects again between pages. Thread-compatible: one pass at a
// time (the Daemon runs it); Suspect and Status may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "repair/anti_entropy.h"

namespace mcos::repair {

struct ScrubberOptions {
  // This cluster.
  std::string cluster;
  // Object data read per second, at most (0: no limit).
  double bytes_per_second = 20e6;
  // A sweep starts this long after the last one ended; zero: no sweeps (suspects only).
  absl::Duration sweep_period = absl::Hours(24);
  absl::Duration call_timeout = absl::Seconds(10);
};

struct ScrubberStatus {
  uint64_t objects_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t corrupt_found = 0;
  uint64_t repaired = 0;
  // Corrupt copies no peer could replace yet (tried again next sweep).
  uint64_t unrepaired = 0;
  uint64_t sweeps_completed = 0;
  absl::Time last_sweep_ended = absl::InfinitePast();
};

class Scrubber {
 public:
  // `topology` and `replicas` as AntiEntropy's; a partition's peers are where intact copies are
  // looked for.
  Scrubber(ScrubberOptions options, AntiEntropy::Topology topology, AntiEntropy::Replicas replicas,
           common::Clock& clock);

  // A copy of `record`'s version here failed its checksums on a read: repaired next pass.
  void Suspect(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record);

  absl::Status RunOnce(common::Pacer& pacer);
  ScrubberStatus Status() const;

 private:
  // Reads this cluster's copy of `record`'s version; on DATA_LOSS replaces it from one of
  // `peers`. Returns false when the pass must end (stopping).
  bool Check(replication::Replica& local, const mcos::v1::ObjectKey& key,
             const mcos::v1::ObjectRecord& record, const std::vector<std::string>& peers,
             common::Pacer& pacer);
  // Replaces this cluster's corrupt copy from a peer holding the same version; when a peer that
  // might hold it cannot be reached, the copy is a suspect again for the next pass (at most
  // kMaxRetries times).
  void Replace(replication::Replica& local, const mcos::v1::ObjectKey& key,
               const mcos::v1::ObjectRecord& record, const std::vector<std::string>& peers);
  // Repairs the suspects (their peers from `sets`); false when the pass must end.
  bool RepairSuspects(replication::Replica& local, const std::vector<SyncSet>& sets,
                      common::Pacer& pacer);

  const ScrubberOptions options_;
  const AntiEntropy::Topology topology_;
  const AntiEntropy::Replicas replicas_;
  common::Clock& clock_;
  common::RateBudget bytes_budget_;
  mutable absl::Mutex mu_;
  ScrubberStatus status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<mcos::v1::ObjectKey, mcos::v1::ObjectRecord>> suspects_
      ABSL_GUARDED_BY(mu_);
  // Corrupt copies whose peers could not be reached, by object and version (RetryId): how often
  // tried.
  static std::string RetryId(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record);
  static constexpr int kMaxRetries = 120;
  std::map<std::string, int> retries_ ABSL_GUARDED_BY(mu_);
  // The first sweep is a sweep_period after the start (a process start is busy enough).
  absl::Time next_sweep_;
};

}  // namespace mcos::repair
