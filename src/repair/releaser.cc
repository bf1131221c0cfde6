#include "repair/releaser.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mcos::repair {

Releaser::Releaser(ReleaserOptions options, Topology topology, Replicas replicas, Check check,
                   common::Clock& clock)
    : options_(std::move(options)),
      topology_(std::move(topology)),
      replicas_(std::move(replicas)),
      check_(std::move(check)),
      clock_(clock),
      records_budget_(options_.records_per_second, clock) {}

ReleaserStatus Releaser::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

absl::Status Releaser::RunOnce(common::Pacer& pacer) {
  MCOS_ASSIGN_OR_RETURN(std::vector<SyncSet> sets, topology_());
  // Every pass reads this cluster's digests (one local call per option): a write that reached a
  // former holder after its layout was retired shows there and is handed over and released.
  std::shared_ptr<replication::Replica> local = replicas_(options_.cluster);
  if (!local) {
    return absl::UnavailableError(absl::StrCat("releasing copies: no storage service of cluster '",
                                               options_.cluster, "' is known yet"));
  }
  const uint32_t batch_size = std::clamp<uint32_t>(options_.batch, 1, 1000);
  ReleaserStatus pass;
  absl::Status result;
  bool stopped = false;
  for (const SyncSet& set : sets) {
    if (!set.former.empty() || set.current == nullptr || stopped || !result.ok()) continue;
    // Partitions this cluster holds records of: one digest call answers them all.
    mcos::v1::PartitionDigestsRequest all;
    all.set_option(set.option);
    all.set_partition_power(set.partition_power);
    auto digests = local->PartitionDigests(all, clock_.Now() + options_.call_timeout);
    if (!digests.ok()) {
      result = absl::Status(digests.status().code(),
                            absl::StrCat("releasing copies: this cluster's digests of option '",
                                         set.option, "': ", digests.status().message()));
      break;
    }
    for (const auto& d : digests->digests()) {
      const uint32_t p = d.partition();
      if (d.object_count() == 0 || p >= set.held.size() || set.held[p]) continue;
      std::vector<std::string> holders;
      for (uint16_t i : set.current->Replicas(p)) holders.push_back(set.current->clusters()[i]);
      mcos::v1::ScanPartitionRequest scan;
      scan.set_option(set.option);
      scan.set_partition_power(set.partition_power);
      scan.set_partition(p);
      std::vector<mcos::v1::ScanPartitionEntry> batch;
      do {
        auto page = local->ScanPartition(scan, clock_.Now() + options_.call_timeout);
        if (!page.ok()) {
          result =
              absl::Status(page.status().code(),
                           absl::StrCat("releasing copies: scanning partition ", p, " of option '",
                                        set.option, "': ", page.status().message()));
          break;
        }
        for (auto& entry : *page->mutable_entries()) {
          batch.push_back(std::move(entry));
          if (batch.size() >= batch_size) {
            // The view the pass began with must still hold (the option may move again).
            MCOS_ASSIGN_OR_RETURN(const std::vector<SyncSet> now, topology_());
            if (now != sets) return absl::OkStatus();  // the next pass starts over
            if (absl::Status s = ReleaseBatch(*local, holders, batch, pass); !s.ok()) result = s;
          }
        }
        scan.set_marker(page->next_marker());
        const absl::Duration wait = records_budget_.Spend(page->entries_size());
        if (wait > absl::ZeroDuration() && !pacer.Pause(wait)) stopped = true;
      } while (!scan.marker().empty() && !stopped && result.ok());
      if (!batch.empty() && result.ok() && !stopped) {
        MCOS_ASSIGN_OR_RETURN(const std::vector<SyncSet> now, topology_());
        if (now != sets) return absl::OkStatus();
        if (absl::Status s = ReleaseBatch(*local, holders, batch, pass); !s.ok()) result = s;
      }
      if (stopped || !result.ok()) break;
    }
  }
  absl::MutexLock lock(&mu_);
  if (pass.released > 0) {
    common::LogInfo("released ", pass.released,
                    " copies of partitions this cluster no longer holds (their holders hold them)");
  }
  status_.released += pass.released;
  status_.handed_over += pass.handed_over;
  if (!stopped) status_.kept = pass.kept;
  status_.last_error = result.ok() ? pass.last_error : std::string(result.message());
  return result;
}

absl::Status Releaser::ReleaseBatch(replication::Replica& local,
                                    const std::vector<std::string>& holders,
                                    std::vector<mcos::v1::ScanPartitionEntry>& batch,
                                    ReleaserStatus& pass) {
  std::vector<mcos::v1::ScanPartitionEntry> entries;
  entries.swap(batch);
  mcos::v1::CheckTombstonesRequest check;
  for (const auto& e : entries) {
    auto* ref = check.add_tombstones();
    *ref->mutable_key() = e.key();
    *ref->mutable_version() = e.record().version();
  }
  const size_t n = entries.size();
  std::vector<bool> confirmed(n, true);
  for (const std::string& holder : holders) {
    auto answer = check_(holder, check, clock_.Now() + options_.call_timeout);
    if (answer.ok() && static_cast<size_t>(answer->checks_size()) != n) {
      answer =
          absl::DataLossError(absl::StrCat("cluster '", holder, "' answered ",
                                           answer->checks_size(), " checks for ", n, " records"));
    }
    if (!answer.ok()) {
      std::fill(confirmed.begin(), confirmed.end(), false);
      pass.last_error = absl::StrCat("cluster '", holder, "': ", answer.status().message());
      continue;
    }
    std::shared_ptr<replication::Replica> to;
    for (size_t i = 0; i < n; ++i) {
      if (answer->checks(static_cast<int>(i)).held()) continue;
      confirmed[i] = false;
      // It lacks this version: hand it over (applied only above what it holds).
      if (to == nullptr) to = replicas_(holder);
      if (to == nullptr) continue;
      const auto& e = entries[i];
      auto copied = replication::Copy(
          local, *to, e.key(), e.record(),
          replication::CopyDeadline(e.record().tombstone() ? 0 : e.record().size(),
                                    options_.call_timeout));
      if (copied.ok()) {
        ++pass.handed_over;
      } else {
        pass.last_error = absl::StrCat("handing a copy over to cluster '", holder,
                                       "': ", copied.status().message());
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!confirmed[i]) {
      ++pass.kept;
      continue;
    }
    auto released = local.Release(entries[i].key(), entries[i].record().version(),
                                  clock_.Now() + options_.call_timeout);
    if (released.ok() && released->applied) {
      ++pass.released;
    } else if (!released.ok() && !absl::IsNotFound(released.status())) {
      return released.status();
    }
  }
  return absl::OkStatus();
}

}  // namespace mcos::repair
