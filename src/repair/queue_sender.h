// The replication queue's sender (shared/DESIGN.md, "Repair": hinted handoff), run by the
// cluster's servers on the daemon base: the queue itself stays in the controller's database
// (durable, one row per target and object, the newest version winning), the bytes move here. A
// pass claims due tasks (each leased to this server, so that several servers of one cluster share
// the work and a server that dies leaves its tasks to the next claim after the lease), sends each
// from this cluster's copy (a tombstone as a delete; an object only when this cluster holds the
// queued version or a newer one, which is then what is sent), and reports every outcome: done, or
// tried again after a backoff of 0.25 s doubling to 5 s. A target that fails is skipped for the
// rest of the pass. A task whose object this cluster no longer holds is dropped (anti-entropy
// covers what it was for).
//
// Thread-compatible: one pass at a time (the Daemon runs it); Status() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "mcos/v1/controller.pb.h"
#include "repair/anti_entropy.h"
#include "replication/replica.h"

namespace mcos::repair {

struct QueueSenderOptions {
  // This cluster.
  std::string cluster;
  // Tasks claimed per call, and how long they stay this server's.
  uint32_t batch = 256;
  absl::Duration lease = absl::Minutes(1);
};

struct QueueSenderStatus {
  // Since start: tasks delivered, dropped (nothing left to send), and failed attempts.
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t failures = 0;
};

class QueueSender {
 public:
  // The controller's queue: claim due tasks, report outcomes.
  using Claim = std::function<absl::StatusOr<mcos::v1::ClaimReplicationsResponse>(
      const mcos::v1::ClaimReplicationsRequest&)>;
  using Finish = std::function<absl::Status(const mcos::v1::FinishReplicationsRequest&)>;
  // A cluster's replica (this cluster's storage for options.cluster); null when it cannot be
  // reached now.
  using Replicas = AntiEntropy::Replicas;

  QueueSender(QueueSenderOptions options, Claim claim, Finish finish, Replicas replicas);

  // Claims and sends due tasks until none is due (or the pacer says stop). Fails only when the
  // queue cannot be read or written.
  absl::Status RunOnce(common::Pacer& pacer);

  QueueSenderStatus Status() const;

 private:
  // Sends one task; DATA_LOSS when there is nothing to send any more (dropped).
  absl::Status Deliver(const mcos::v1::ReplicationTask& task);

  const QueueSenderOptions options_;
  const Claim claim_;
  const Finish finish_;
  const Replicas replicas_;
  mutable absl::Mutex mu_;
  QueueSenderStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::repair
