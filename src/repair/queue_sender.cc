#include "repair/queue_sender.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::repair {

QueueSender::QueueSender(QueueSenderOptions options, Claim claim, Finish finish, Replicas replicas)
    : options_(std::move(options)),
      claim_(std::move(claim)),
      finish_(std::move(finish)),
      replicas_(std::move(replicas)) {}

QueueSenderStatus QueueSender::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

absl::Status QueueSender::Deliver(const mcos::v1::ReplicationTask& task) {
  std::shared_ptr<replication::Replica> peer = replicas_(task.target());
  if (peer == nullptr) return Unreachable(task.target());
  const absl::Time stat_deadline = absl::Now() + absl::Seconds(5);
  if (task.tombstone()) {
    return peer
        ->Delete(task.key(),
                 replication::TombstoneRecord(task.version(), task.partition(), task.option()),
                 stat_deadline)
        .status();
  }
  std::shared_ptr<replication::Replica> local = replicas_(options_.cluster);
  if (local == nullptr) return absl::UnavailableError("this cluster's storage cannot be reached");
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
  auto ack = replication::Copy(*local, *peer, task.key(), *record, deadline);
  if (!ack.ok()) return ack.status();
  if (!record->tombstone() &&
      (ack->applied || common::CompareVersions(ack->stored_version, record->version()) == 0)) {
    // This cluster's copy records that the target holds it too (reads then need not ask it).
    local->AddHolders(task.key(), record->version(), {task.target()}, stat_deadline).IgnoreError();
  }
  return absl::OkStatus();
}

absl::Status QueueSender::RunOnce(common::Pacer& pacer) {
  mcos::v1::ClaimReplicationsRequest claim;
  claim.set_limit(std::clamp<uint32_t>(options_.batch, 1, 1000));
  claim.set_lease_ms(static_cast<uint32_t>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(options_.lease), 1000, 600000)));
  while (true) {
    MCOS_ASSIGN_OR_RETURN(mcos::v1::ClaimReplicationsResponse due, claim_(claim));
    if (due.tasks().empty()) return absl::OkStatus();
    mcos::v1::FinishReplicationsRequest finished;
    QueueSenderStatus pass;
    std::set<std::string> unreachable;  // a target that failed is skipped for the rest
    bool stopped = false;
    for (const auto& claimed : due.tasks()) {
      const mcos::v1::ReplicationTask& task = claimed.task();
      // Ends the pass at a stop; the tasks not tried stay leased and are claimed again after it.
      if (!stopped && !pacer.Pause(absl::ZeroDuration())) stopped = true;
      if (stopped) break;
      mcos::v1::FinishedReplication& result = *finished.add_results();
      *result.mutable_task() = task;
      const absl::Status s = unreachable.count(task.target()) > 0
                                 ? absl::UnavailableError("an earlier task to it failed")
                                 : Deliver(task);
      if (s.ok() || absl::IsDataLoss(s)) {
        result.set_done(true);
        if (s.ok()) {
          ++pass.delivered;
        } else {
          ++pass.dropped;
          result.set_error(std::string(s.message()));
          common::LogWarning("replication queue: dropping ", task.key().container(), "/",
                             task.key().object(), " for cluster '", task.target(),
                             "': ", s.message());
        }
        continue;
      }
      unreachable.insert(task.target());
      ++pass.failures;
      const int64_t backoff_ms =
          std::min<int64_t>(5000, int64_t{250} << std::min<uint32_t>(claimed.attempts(), 6));
      result.set_retry_after_ms(static_cast<uint32_t>(backoff_ms));
      result.set_error(std::string(s.message()));
    }
    MCOS_RETURN_IF_ERROR(finish_(finished));
    {
      absl::MutexLock lock(&mu_);
      status_.delivered += pass.delivered;
      status_.dropped += pass.dropped;
      status_.failures += pass.failures;
    }
    if (pass.delivered > 0) {
      common::LogInfo("replication queue: delivered ", pass.delivered, " missed write(s)");
    }
    // Claim again only while tasks went out: the ones that failed are due after their backoff.
    if (stopped || pass.delivered + pass.dropped == 0) return absl::OkStatus();
  }
}

}  // namespace mcos::repair
