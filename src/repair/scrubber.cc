#include "repair/scrubber.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::repair {
namespace {

std::string Describe(const mcos::v1::ObjectKey& key) {
  return absl::StrCat("object '", key.container(), "/", key.object(), "' of '", key.user(), "'");
}

}  // namespace

Scrubber::Scrubber(ScrubberOptions options, AntiEntropy::Topology topology,
                   AntiEntropy::Replicas replicas, common::Clock& clock)
    : options_(std::move(options)),
      topology_(std::move(topology)),
      replicas_(std::move(replicas)),
      clock_(clock),
      bytes_budget_(options_.bytes_per_second, clock),
      next_sweep_(clock.Now() + options_.sweep_period) {}

void Scrubber::Suspect(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record) {
  absl::MutexLock lock(&mu_);
  if (suspects_.size() < 10000) suspects_.emplace_back(key, record);
}

ScrubberStatus Scrubber::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

absl::Status Scrubber::RunOnce(common::Pacer& pacer) {
  MCOS_ASSIGN_OR_RETURN(std::vector<SyncSet> sets, topology_());
  std::shared_ptr<replication::Replica> local = replicas_(options_.cluster);
  if (!local) {
    return absl::UnavailableError(absl::StrCat("scrubber: no storage service of cluster '",
                                               options_.cluster, "' is known yet"));
  }
  if (!RepairSuspects(*local, sets, pacer)) return absl::OkStatus();
  if (options_.sweep_period <= absl::ZeroDuration()) return absl::OkStatus();
  if (clock_.Now() < next_sweep_) return absl::OkStatus();
  for (const SyncSet& set : sets) {
    for (uint32_t p = 0; p < set.held.size(); ++p) {
      if (!set.held[p]) continue;
      mcos::v1::ScanPartitionRequest request;
      request.set_option(set.option);
      request.set_partition_power(set.partition_power);
      request.set_partition(p);
      request.set_limit(200);
      do {
        auto page = local->ScanPartition(request, clock_.Now() + options_.call_timeout);
        if (!page.ok()) {
          return {page.status().code(),
                  absl::StrCat("scrubber: scan of this cluster's partition ", p, " of option '",
                               set.option, "': ", page.status().message())};
        }
        for (const auto& entry : page->entries()) {
          if (entry.record().tombstone()) continue;
          if (!Check(*local, entry.key(), entry.record(), set.peers[p], pacer)) {
            return absl::OkStatus();
          }
        }
        if (!RepairSuspects(*local, sets, pacer)) return absl::OkStatus();
        request.set_marker(page->next_marker());
      } while (!request.marker().empty());
    }
  }
  const absl::Time now = clock_.Now();
  next_sweep_ = now + options_.sweep_period;
  absl::MutexLock lock(&mu_);
  ++status_.sweeps_completed;
  status_.last_sweep_ended = now;
  return absl::OkStatus();
}

bool Scrubber::RepairSuspects(replication::Replica& local, const std::vector<SyncSet>& sets,
                              common::Pacer& pacer) {
  std::vector<std::pair<mcos::v1::ObjectKey, mcos::v1::ObjectRecord>> suspects;
  {
    absl::MutexLock lock(&mu_);
    suspects.swap(suspects_);
  }
  for (const auto& [key, record] : suspects) {
    std::vector<std::string> peers;
    for (const SyncSet& set : sets) {
      if (set.option == record.option() && record.partition() < set.peers.size()) {
        peers = set.peers[record.partition()];
      }
    }
    if (!Check(local, key, record, peers, pacer)) return false;
  }
  return true;
}

bool Scrubber::Check(replication::Replica& local, const mcos::v1::ObjectKey& key,
                     const mcos::v1::ObjectRecord& record, const std::vector<std::string>& peers,
                     common::Pacer& pacer) {
  absl::Status read;
  uint64_t bytes = 0;
  auto reader = local.Open(key, 0, 0, &record.version(),
                           replication::CopyDeadline(record.size(), options_.call_timeout));
  if (reader.ok()) {
    std::string data;
    while ((*reader)->Next(&data)) bytes += data.size();
    read = (*reader)->Finish();
  } else {
    read = reader.status();
  }
  {
    absl::MutexLock lock(&mu_);
    ++status_.objects_checked;
    status_.bytes_checked += bytes;
  }
  // (NOT_FOUND, FAILED_PRECONDITION: replaced or deleted since the scan; other errors: the
  // storage service is busy or away, and the next sweep reads it again.)
  if (absl::IsDataLoss(read)) {
    {
      absl::MutexLock lock(&mu_);
      // Counted once: a copy waiting to be tried again (retries_) was counted when first found.
      if (retries_.count(RetryId(key, record)) == 0) ++status_.corrupt_found;
    }
    Replace(local, key, record, peers);
  }
  return pacer.Pause(bytes_budget_.Spend(static_cast<double>(std::max(bytes, record.size()))));
}

std::string Scrubber::RetryId(const mcos::v1::ObjectKey& key,
                              const mcos::v1::ObjectRecord& record) {
  return absl::StrCat(Describe(key), " ", common::VersionToString(record.version()));
}

void Scrubber::Replace(replication::Replica& local, const mcos::v1::ObjectKey& key,
                       const mcos::v1::ObjectRecord& record,
                       const std::vector<std::string>& peers) {
  std::string why = "no peer cluster holds this version";
  // Whether a peer that may hold it could not be asked now (then it is tried again next pass).
  bool unreachable = false;
  for (const std::string& peer_name : peers) {
    std::shared_ptr<replication::Replica> peer = replicas_(peer_name);
    if (!peer) {
      unreachable = true;
      why = std::string(Unreachable(peer_name).message());
      continue;
    }
    auto ack = replication::RepairCopy(
        *peer, local, key, record, replication::CopyDeadline(record.size(), options_.call_timeout));
    if (!ack.ok() &&
        (absl::IsUnavailable(ack.status()) || absl::IsDeadlineExceeded(ack.status()))) {
      unreachable = true;
    }
    if (ack.ok() && ack->applied) {
      common::LogWarning("scrubber: this cluster's copy of ", Describe(key), " version ",
                         common::VersionToString(record.version()),
                         " failed its checksums; replaced it with cluster '", peer_name, "''s");
      absl::MutexLock lock(&mu_);
      ++status_.repaired;
      retries_.erase(RetryId(key, record));
      return;
    }
    why = ack.ok() ? "this cluster holds another version now" : std::string(ack.status().message());
    if (ack.ok()) return;  // replaced or deleted meanwhile: nothing to repair
  }
  const std::string id = RetryId(key, record);
  if (unreachable) {
    absl::MutexLock lock(&mu_);
    // Again next pass (about a second), for a while; then the next sweep finds it.
    if (++retries_[id] <= kMaxRetries) {
      suspects_.emplace_back(key, record);
      return;
    }
    retries_.erase(id);
  }
  common::LogError("scrubber: this cluster's copy of ", Describe(key), " version ",
                   common::VersionToString(record.version()),
                   " fails its checksums and could not be replaced: ", why);
  absl::MutexLock lock(&mu_);
  ++status_.unrepaired;
}

}  // namespace mcos::repair
