// The cluster's replication queue (shared/DESIGN.md, "Repair": hinted handoff): writes that a
// replica cluster missed, recorded durably in the controller's database by the coordinating
// servers (ControllerService.EnqueueReplication), and sent to that cluster later from this
// cluster's copy, retrying with backoff (0.25 s doubling to 5 s) until it takes them. The queue
// survives restarts of every process; a newer version of an object replaces an older one queued
// for the same cluster. GetRepairStatus shows the backlog per target cluster. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/service_auth.h"
#include "controller/controller.h"
#include "mcos/v1/admin.pb.h"
#include "replication/replica.h"

namespace mcos::controller {

class ReplicationQueue {
 public:
  // `route` reaches this cluster's storage service; `peer_auth` (null without a federation) the
  // peers' servers. Both, and `controller`, must outlive this.
  ReplicationQueue(Controller& controller, const common::LocalRoute* route,
                   common::ServiceAuth* peer_auth, absl::Duration period = absl::Milliseconds(500));
  ~ReplicationQueue();

  // INVALID_ARGUMENT for a task without key, version or target.
  absl::Status Enqueue(const std::vector<mcos::v1::ReplicationTask>& tasks);
  // Backlog per target cluster, with what the servers' repair daemons reported last (Report).
  absl::StatusOr<mcos::v1::RepairStatus> Status();
  // The latest report of a server's repair daemons (ControllerService.ReportRepair).
  void Report(const std::string& server_id, const mcos::v1::RepairStatus& status);

  void Start();
  void Stop();
  // Works through the due tasks once; returns how many were delivered.
  int RunOnce();

 private:
  std::shared_ptr<replication::Replica> Local();
  std::shared_ptr<replication::Replica> Peer(const std::string& cluster);
  absl::Status Deliver(const mcos::v1::ReplicationTask& task);

  Controller& controller_;
  const common::LocalRoute* const route_;
  common::ServiceAuth* const peer_auth_;
  const absl::Duration period_;
  absl::Notification stop_;
  std::thread worker_;
  absl::Mutex mu_;
  std::string storage_endpoint_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<replication::Replica> local_ ABSL_GUARDED_BY(mu_);
  // The servers' latest repair reports, and when they came.
  std::map<std::string, std::pair<mcos::v1::RepairStatus, absl::Time>> reports_
      ABSL_GUARDED_BY(mu_);
  // Per peer cluster: its server endpoint and replica.
  std::map<std::string, std::pair<std::string, std::shared_ptr<replication::Replica>>> peers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::controller
