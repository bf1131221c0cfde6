#include "controller/replication_queue.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::controller {

absl::Status ReplicationQueue::Enqueue(const std::vector<mcos::v1::ReplicationTask>& tasks) {
  for (const auto& t : tasks) {
    if (!t.has_key() || !t.has_version() || t.version().hlc() == 0) {
      return absl::InvalidArgumentError("a replication task needs a key and a version");
    }
    MCOS_RETURN_IF_ERROR(common::ValidateClusterName(t.target()));
    MCOS_RETURN_IF_ERROR(common::ValidateContainerName(t.key().container()));
    MCOS_RETURN_IF_ERROR(common::ValidateObjectName(t.key().object()));
  }
  const absl::Time now = absl::Now();
  for (const auto& t : tasks) {
    MCOS_RETURN_IF_ERROR(controller_.store().EnqueueReplication(t, now));
  }
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::RepairStatus> ReplicationQueue::Status() {
  MCOS_ASSIGN_OR_RETURN(auto backlogs, controller_.store().ReplicationBacklogs());
  mcos::v1::RepairStatus status;
  const absl::Time now = absl::Now();
  uint64_t total = 0;
  for (const auto& b : backlogs) {
    auto* link = status.add_links();
    link->set_from_cluster(controller_.cluster_id());
    link->set_to_cluster(b.target);
    link->set_backlog(b.tasks);
    common::ToProtoTimestamp(b.oldest, link->mutable_oldest_unreplicated());
    link->set_lag_seconds(absl::ToDoubleSeconds(now - b.oldest));
    total += b.tasks;
  }
  status.set_queued_tasks(total);
  absl::MutexLock lock(&mu_);
  for (auto it = reports_.begin(); it != reports_.end();) {
    if (now - it->second.second > absl::Minutes(10)) {
      it = reports_.erase(it);
      continue;
    }
    const mcos::v1::RepairStatus& r = it->second.first;
    for (const auto& l : r.links()) {
      // Several servers of one cluster may run anti-entropy: the link shows their sums, and the
      // newest full pass.
      mcos::v1::RepairStatus::Link* link = nullptr;
      for (auto& known : *status.mutable_links()) {
        if (known.from_cluster() == l.from_cluster() && known.to_cluster() == l.to_cluster()) {
          link = &known;
        }
      }
      if (link == nullptr) {
        link = status.add_links();
        link->set_from_cluster(l.from_cluster());
        link->set_to_cluster(l.to_cluster());
      }
      link->set_partitions_compared(std::max(link->partitions_compared(), l.partitions_compared()));
      link->set_partitions_out_of_sync(
          std::max(link->partitions_out_of_sync(), l.partitions_out_of_sync()));
      if (l.last_full_pass().seconds() > link->last_full_pass().seconds()) {
        *link->mutable_last_full_pass() = l.last_full_pass();
      }
      link->set_records_repaired(link->records_repaired() + l.records_repaired());
      link->set_bytes_repaired(link->bytes_repaired() + l.bytes_repaired());
      link->set_anti_entropy_bytes_exchanged(link->anti_entropy_bytes_exchanged() +
                                             l.anti_entropy_bytes_exchanged());
      if (!l.last_error().empty()) link->set_last_error(l.last_error());
    }
    status.set_objects_audited(status.objects_audited() + r.objects_audited());
    status.set_bytes_audited(status.bytes_audited() + r.bytes_audited());
    status.set_corrupt_copies_found(status.corrupt_copies_found() + r.corrupt_copies_found());
    status.set_corrupt_copies_repaired(status.corrupt_copies_repaired() +
                                       r.corrupt_copies_repaired());
    status.set_corrupt_copies_unrepaired(status.corrupt_copies_unrepaired() +
                                         r.corrupt_copies_unrepaired());
    if (r.last_scrub().seconds() > status.last_scrub().seconds()) {
      *status.mutable_last_scrub() = r.last_scrub();
    }
    status.set_tombstones_reaped(status.tombstones_reaped() + r.tombstones_reaped());
    status.set_tombstones_waiting(status.tombstones_waiting() + r.tombstones_waiting());
    for (const auto& c : r.tombstones_waiting_on()) {
      const auto& on = status.tombstones_waiting_on();
      if (std::find(on.begin(), on.end(), c) == on.end()) status.add_tombstones_waiting_on(c);
    }
    ++it;
  }
  return status;
}

void ReplicationQueue::Report(const std::string& server_id, const mcos::v1::RepairStatus& status) {
  absl::MutexLock lock(&mu_);
  reports_[server_id] = {status, absl::Now()};
}

absl::StatusOr<mcos::v1::ClaimReplicationsResponse> ReplicationQueue::Claim(uint32_t limit,
                                                                            absl::Duration lease) {
  MCOS_ASSIGN_OR_RETURN(auto due, controller_.store().ClaimReplications(absl::Now(), limit, lease));
  mcos::v1::ClaimReplicationsResponse response;
  if (due.empty()) return response;  // (the servers' senders ask often)
  MCOS_ASSIGN_OR_RETURN(const auto clusters, controller_.ListClusters());
  std::set<std::string> members = {controller_.cluster_id()};
  for (const auto& c : clusters) members.insert(c.id());
  std::map<std::string, int> gone;
  for (auto& q : due) {
    if (members.count(q.task.target()) == 0) {
      // Its target left the federation (removed after a drain, or dropped for good): there is
      // nobody to send it to, and its replicas are now elsewhere.
      MCOS_RETURN_IF_ERROR(controller_.store().FinishReplication(q.task, std::nullopt, ""));
      ++gone[q.task.target()];
      continue;
    }
    auto* claimed = response.add_tasks();
    *claimed->mutable_task() = std::move(q.task);
    claimed->set_attempts(static_cast<uint32_t>(q.attempts));
  }
  for (const auto& [target, n] : gone) {
    common::LogInfo("replication queue: dropped ", n, " task(s) for cluster '", target,
                    "', which is no longer in the federation");
  }
  return response;
}

absl::Status ReplicationQueue::Finish(const mcos::v1::FinishReplicationsRequest& request) {
  for (const auto& r : request.results()) {
    if (!r.has_task() || !r.task().has_key()) {
      return absl::InvalidArgumentError("a finished replication names its task");
    }
  }
  const absl::Time now = absl::Now();
  for (const auto& r : request.results()) {
    std::optional<absl::Time> retry;
    if (!r.done()) retry = now + absl::Milliseconds(r.retry_after_ms());
    MCOS_RETURN_IF_ERROR(controller_.store().FinishReplication(r.task(), retry, r.error()));
  }
  return absl::OkStatus();
}

}  // namespace mcos::controller
