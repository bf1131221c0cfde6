// The cluster's replication queue (shared/DESIGN.md, "Repair": hinted handoff): writes that a
// replica cluster missed, recorded durably in the controller's database by the coordinating
// servers (ControllerService.EnqueueReplication). The servers' queue senders (repair::QueueSender)
// claim due tasks, each leased to one of them, send them from this cluster's copy, and report the
// outcome: done, or tried again after a backoff (0.25 s doubling to 5 s) until the cluster takes
// them. The queue survives restarts of every process; a newer version of an object replaces an
// older one queued for the same cluster. GetRepairStatus shows the backlog per target cluster.
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/controller.h"
#include "mcos/v1/admin.pb.h"
#include "mcos/v1/controller.pb.h"

namespace mcos::controller {

class ReplicationQueue {
 public:
  explicit ReplicationQueue(Controller& controller) : controller_(controller) {}

  // INVALID_ARGUMENT for a task without key, version or target.
  absl::Status Enqueue(const std::vector<mcos::v1::ReplicationTask>& tasks);
  // At most `limit` due tasks, leased to the caller for `lease` (ControllerService.
  // ClaimReplications).
  absl::StatusOr<mcos::v1::ClaimReplicationsResponse> Claim(uint32_t limit, absl::Duration lease);
  // The outcomes of claimed tasks (ControllerService.FinishReplications). INVALID_ARGUMENT for a
  // result without its task.
  absl::Status Finish(const mcos::v1::FinishReplicationsRequest& request);
  // Backlog per target cluster, with what the servers' repair daemons reported last (Report).
  absl::StatusOr<mcos::v1::RepairStatus> Status();
  // The latest report of a server's repair daemons (ControllerService.ReportRepair).
  void Report(const std::string& server_id, const mcos::v1::RepairStatus& status);

 private:
  Controller& controller_;
  absl::Mutex mu_;
  // The servers' latest repair reports, and when they came.
  std::map<std::string, std::pair<mcos::v1::RepairStatus, absl::Time>> reports_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::controller
