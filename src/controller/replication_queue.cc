#include "controller/replication_queue.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::controller {

ReplicationQueue::ReplicationQueue(Controller& controller, const common::LocalRoute* route,
                                   common::ServiceAuth* peer_auth, absl::Duration period)
    : controller_(controller), route_(route), peer_auth_(peer_auth), period_(period) {}

ReplicationQueue::~ReplicationQueue() { Stop(); }

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

void ReplicationQueue::Start() {
  if (worker_.joinable()) return;
  worker_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(period_)) RunOnce();
  });
}

void ReplicationQueue::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<replication::Replica> ReplicationQueue::Local() {
  auto storage = controller_.registry().ListServices(mcos::v1::SERVICE_KIND_STORAGE, true);
  if (!storage.ok() || storage->empty()) return nullptr;
  const std::string& endpoint = storage->front().endpoint();
  absl::MutexLock lock(&mu_);
  if (local_ == nullptr || endpoint != storage_endpoint_) {
    storage_endpoint_ = endpoint;
    local_ = replication::StorageReplica(controller_.cluster_id(), route_->Connect(endpoint));
  }
  return local_;
}

std::shared_ptr<replication::Replica> ReplicationQueue::Peer(const std::string& cluster) {
  if (peer_auth_ == nullptr) return nullptr;
  auto clusters = controller_.ListClusters();
  if (!clusters.ok()) return nullptr;
  for (const auto& c : *clusters) {
    if (c.id() != cluster || c.server_endpoints().empty()) continue;
    const std::string& endpoint = c.server_endpoints(0);
    absl::MutexLock lock(&mu_);
    auto& [known, replica] = peers_[cluster];
    if (replica == nullptr || known != endpoint) {
      known = endpoint;
      replica = replication::PeerReplica(cluster, controller_.cluster_id(),
                                         common::ConnectInternal(endpoint, *peer_auth_));
    }
    return replica;
  }
  return nullptr;
}

absl::Status ReplicationQueue::Deliver(const mcos::v1::ReplicationTask& task) {
  auto peer = Peer(task.target());
  if (peer == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("no server of cluster '", task.target(), "' is known here"));
  }
  const absl::Time stat_deadline = absl::Now() + absl::Seconds(5);
  if (task.tombstone()) {
    return peer
        ->Delete(task.key(),
                 replication::TombstoneRecord(task.version(), task.partition(), task.option()),
                 stat_deadline)
        .status();
  }
  auto local = Local();
  if (local == nullptr) return absl::UnavailableError("this cluster's storage service is down");
  // Send what this cluster holds now if it is the queued version or newer (a replica needs only
  // the newest).
  auto record = local->Stat(task.key(), stat_deadline);
  if (!record.ok()) {
    if (absl::IsNotFound(record.status())) {
      return absl::DataLossError("this cluster no longer holds the object to send");
    }
    return record.status();
  }
  if (common::IsNewer(task.version(), record->version())) {
    return absl::DataLossError("this cluster holds only an older version than the one to send");
  }
  const absl::Time deadline =
      replication::CopyDeadline(record->tombstone() ? 0 : record->size(), absl::Seconds(10));
  return replication::Copy(*local, *peer, task.key(), *record, deadline).status();
}

int ReplicationQueue::RunOnce() {
  auto due = controller_.store().DueReplications(absl::Now(), 256);
  if (!due.ok()) {
    common::LogWarning("replication queue: ", due.status().message());
    return 0;
  }
  int delivered = 0;
  std::set<std::string> unreachable;  // skip a target's other tasks this round once one failed
  for (const auto& q : *due) {
    if (stop_.HasBeenNotified()) break;
    if (unreachable.count(q.task.target()) > 0) continue;
    const absl::Status s = Deliver(q.task);
    absl::Status stored;
    if (s.ok() || absl::IsDataLoss(s)) {
      if (!s.ok()) {
        common::LogWarning("replication queue: dropping ", q.task.key().container(), "/",
                           q.task.key().object(), " for cluster '", q.task.target(),
                           "': ", s.message());
      } else {
        ++delivered;
      }
      stored = controller_.store().FinishReplication(q.task, std::nullopt, "");
    } else {
      unreachable.insert(q.task.target());
      const absl::Duration backoff =
          std::min(absl::Seconds(5), absl::Milliseconds(250) * (1 << std::min(q.attempts, 6)));
      stored = controller_.store().FinishReplication(q.task, absl::Now() + backoff, s.message());
    }
    if (!stored.ok()) common::LogWarning("replication queue: ", stored.message());
  }
  if (delivered > 0) {
    common::LogInfo("replication queue: delivered ", delivered, " missed write(s)");
  }
  return delivered;
}

}  // namespace mcos::controller
