// Moving an option's data after its placement changed (docs/placement.md, "Moving data"): the
// reports of every cluster on the former layouts, their retirement, and the rebalance status.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "controller/controller.h"
#include "placement/layout.h"

namespace mcos::controller {
namespace {

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// `into` gains what `from` lists that it does not.
void Union(google::protobuf::RepeatedPtrField<std::string>& into,
           const google::protobuf::RepeatedPtrField<std::string>& from) {
  for (const auto& s : from) {
    if (!Contains(into, s)) *into.Add() = s;
  }
}

// The ring option `option` places data with now (nullopt when the option or its ring is gone).
absl::StatusOr<std::optional<mcos::v1::Ring>> CurrentRing(metadata::SqliteMetadataStore& store,
                                                          const std::string& option) {
  MCOS_ASSIGN_OR_RETURN(auto option_row, store.GetRow(kOptionsTable, option));
  if (!option_row || option_row->tombstone()) return std::nullopt;
  MCOS_ASSIGN_OR_RETURN(auto o, ParseRow<mcos::v1::Option>(*option_row));
  MCOS_ASSIGN_OR_RETURN(auto ring_row, store.GetRow(kRingsTable, o.ring()));
  if (!ring_row || ring_row->tombstone()) return std::nullopt;
  return ParseRow<mcos::v1::Ring>(*ring_row);
}

// Every cluster's move report, by (option, cluster).
using Reports = std::map<std::pair<std::string, std::string>, mcos::v1::MoveReport>;
absl::StatusOr<Reports> ParseReports(const std::vector<mcos::v1::MetadataRow>& rows) {
  Reports out;
  for (const auto& row : rows) {
    MCOS_ASSIGN_OR_RETURN(auto r, ParseRow<mcos::v1::MoveReport>(row));
    auto key = std::make_pair(r.option(), r.cluster());
    out[std::move(key)] = std::move(r);
  }
  return out;
}

// `reports`' report of `cluster` on `option` about its placement `ring` (null if none).
const mcos::v1::MoveReport* ReportOf(const Reports& reports, const std::string& option,
                                     const std::string& cluster, const mcos::v1::Ring& ring) {
  auto it = reports.find({option, cluster});
  if (it == reports.end()) return nullptr;
  const auto& r = it->second;
  return r.ring() == ring.id() && r.ring_version() == ring.version() ? &r : nullptr;
}

}  // namespace

absl::Status Controller::RecordMoves(const std::vector<mcos::v1::MoveReport>& moves) {
  absl::MutexLock lock(&write_mu_);
  for (mcos::v1::MoveReport report : moves) {
    MCOS_RETURN_IF_ERROR(common::ValidateUserName(report.option()));
    report.set_cluster(cluster_id_);
    const std::string key = absl::StrCat(report.option(), "/", cluster_id_);
    MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kMoveReportsTable, key));
    std::optional<mcos::v1::MoveReport> stored;
    if (row && !row->tombstone()) {
      MCOS_ASSIGN_OR_RETURN(stored, ParseRow<mcos::v1::MoveReport>(*row));
    }
    // A former layout once settled or synced for this placement stays so (another server of this
    // cluster, or this one after a restart, may not have got that far yet).
    if (stored && stored->ring() == report.ring() &&
        stored->ring_version() == report.ring_version()) {
      Union(*report.mutable_settled(), stored->settled());
      Union(*report.mutable_synced(), stored->synced());
      report.set_records_copied(std::max(report.records_copied(), stored->records_copied()));
      report.set_bytes_copied(std::max(report.bytes_copied(), stored->bytes_copied()));
    }
    // Stored when it says something new, and every 30 s for the counters (each change reaches
    // every controller, server and resolver of the federation).
    if (stored) {
      mcos::v1::MoveReport same = report;
      same.set_records_copied(stored->records_copied());
      same.set_bytes_copied(stored->bytes_copied());
      *same.mutable_reported() = stored->reported();
      const bool fresh =
          clock_.Now() - common::FromProtoTimestamp(stored->reported()) < absl::Seconds(30);
      if (same.SerializeAsString() == stored->SerializeAsString() &&
          (fresh || (report.records_copied() == stored->records_copied() &&
                     report.bytes_copied() == stored->bytes_copied()))) {
        continue;
      }
    }
    common::ToProtoTimestamp(clock_.Now(), report.mutable_reported());
    MCOS_RETURN_IF_ERROR(table_.Put(kMoveReportsTable, key, &report).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Controller::RetireMoves() {
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto former_rows,
                        store_->ListRows(kFormerLayoutsTable, "", "", 100000, false));
  if (former_rows.empty()) return 0;
  MCOS_ASSIGN_OR_RETURN(auto report_rows,
                        store_->ListRows(kMoveReportsTable, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(const Reports reports, ParseReports(report_rows));
  MCOS_ASSIGN_OR_RETURN(std::set<std::string> federation, KnownClusters());
  int retired = 0;
  std::set<std::string> still_moving;
  for (const auto& row : former_rows) {
    MCOS_ASSIGN_OR_RETURN(auto former, ParseRow<mcos::v1::FormerLayout>(row));
    MCOS_ASSIGN_OR_RETURN(auto option_row, store_->GetRow(kOptionsTable, former.option()));
    // An option that is gone took its data with its containers.
    bool done = !option_row || option_row->tombstone();
    if (!done) {
      MCOS_ASSIGN_OR_RETURN(const auto ring, CurrentRing(*store_, former.option()));
      if (ring) {
        MCOS_ASSIGN_OR_RETURN(auto compiled, placement::CompiledRing::Make(*ring));
        const auto holders = compiled.ReplicaCountsByCluster();
        size_t settled = 0;
        size_t synced = 0;
        for (const auto& c : federation) {
          const auto* r = ReportOf(reports, former.option(), c, *ring);
          if (r == nullptr) continue;
          if (Contains(r->settled(), former.id())) ++settled;
          if (holders.count(c) > 0 && Contains(r->synced(), former.id())) ++synced;
        }
        done = settled == federation.size() && synced == holders.size();
      }
    }
    if (!done) {
      still_moving.insert(former.option());
      continue;
    }
    MCOS_RETURN_IF_ERROR(table_.Put(kFormerLayoutsTable, row.key(), nullptr).status());
    common::LogInfo("option '", former.option(), "': every cluster holds what former layout ",
                    former.id(), " (ring '", former.ring().id(), "' version ",
                    former.ring().version(), ") placed; it is retired");
    ++retired;
  }
  // Reports of options whose data no longer moves are dropped with the last former layout.
  for (const auto& row : report_rows) {
    if (still_moving.count(row.key().substr(0, row.key().find('/'))) > 0) continue;
    MCOS_RETURN_IF_ERROR(table_.Put(kMoveReportsTable, row.key(), nullptr).status());
  }
  return retired;
}

absl::StatusOr<mcos::v1::RebalanceControl> Controller::RebalanceControl() {
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kRebalanceTable, "control"));
  if (!row || row->tombstone()) return mcos::v1::RebalanceControl();
  return ParseRow<mcos::v1::RebalanceControl>(*row);
}

absl::StatusOr<bool> Controller::RebalancePaused() {
  MCOS_ASSIGN_OR_RETURN(const auto control, RebalanceControl());
  return control.paused();
}

absl::StatusOr<bool> Controller::ChangeRebalanceControl(
    const std::function<void(mcos::v1::RebalanceControl&)>& change) {
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(mcos::v1::RebalanceControl control, RebalanceControl());
  const std::string before = control.SerializeAsString();
  change(control);
  if (control.SerializeAsString() == before) return false;
  common::ToProtoTimestamp(clock_.Now(), control.mutable_changed());
  MCOS_RETURN_IF_ERROR(table_.Put(kRebalanceTable, "control", &control).status());
  return true;
}

absl::Status Controller::SetRebalancePaused(bool paused) {
  MCOS_ASSIGN_OR_RETURN(
      const bool changed,
      ChangeRebalanceControl([&](mcos::v1::RebalanceControl& c) { c.set_paused(paused); }));
  if (changed) common::LogInfo(paused ? "moving data is paused" : "moving data is resumed");
  return absl::OkStatus();
}

absl::Status Controller::SetRebalanceRate(double mb_per_second) {
  if (!(mb_per_second >= 0 && mb_per_second <= 100000)) {
    return absl::InvalidArgumentError(
        "the rate must be between 0 (each server's --anti-entropy-mb-per-second) and 100000 "
        "MB/s");
  }
  MCOS_ASSIGN_OR_RETURN(const bool changed,
                        ChangeRebalanceControl([&](mcos::v1::RebalanceControl& c) {
                          c.set_max_mb_per_second(mb_per_second);
                        }));
  if (!changed) return absl::OkStatus();
  common::LogInfo("data moves at ", mb_per_second > 0
                                        ? absl::StrCat(mb_per_second, " MB/s per server")
                                        : std::string("each server's own anti-entropy rate"));
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::RebalanceStatus> Controller::RebalanceStatus() {
  mcos::v1::RebalanceStatus status;
  MCOS_ASSIGN_OR_RETURN(const auto control, RebalanceControl());
  const bool paused = control.paused();
  status.set_paused(paused);
  status.set_max_mb_per_second(control.max_mb_per_second());
  MCOS_ASSIGN_OR_RETURN(auto former_rows,
                        store_->ListRows(kFormerLayoutsTable, "", "", 100000, false));
  if (former_rows.empty()) return status;
  MCOS_ASSIGN_OR_RETURN(auto report_rows,
                        store_->ListRows(kMoveReportsTable, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(const Reports reports, ParseReports(report_rows));
  MCOS_ASSIGN_OR_RETURN(std::set<std::string> federation, KnownClusters());
  for (const auto& row : former_rows) {
    MCOS_ASSIGN_OR_RETURN(auto former, ParseRow<mcos::v1::FormerLayout>(row));
    auto* task = status.add_tasks();
    task->set_option(former.option());
    task->set_former_id(former.id());
    task->set_from_ring(former.ring().id());
    task->set_from_ring_version(former.ring().version());
    *task->mutable_started() = former.replaced();
    task->set_paused(paused);
    MCOS_ASSIGN_OR_RETURN(const auto ring, CurrentRing(*store_, former.option()));
    if (!ring) continue;
    task->set_to_ring(ring->id());
    task->set_to_ring_version(ring->version());
    MCOS_ASSIGN_OR_RETURN(auto compiled, placement::CompiledRing::Make(*ring));
    const auto partitions = compiled.ReplicaCountsByCluster();
    for (const auto& c : federation) {
      auto* progress = task->add_clusters();
      progress->set_cluster(c);
      if (auto it = partitions.find(c); it != partitions.end()) {
        progress->set_partitions(it->second);
      }
      if (const auto* report = ReportOf(reports, former.option(), c, *ring)) {
        progress->set_settled(Contains(report->settled(), former.id()));
        progress->set_synced(Contains(report->synced(), former.id()));
        progress->set_records_copied(report->records_copied());
        progress->set_bytes_copied(report->bytes_copied());
        *progress->mutable_reported() = report->reported();
      }
      if (progress->synced()) {
        task->set_partitions_done(task->partitions_done() + progress->partitions());
      } else {
        task->set_partitions_left(task->partitions_left() + progress->partitions());
      }
      task->set_bytes_moved(task->bytes_moved() + progress->bytes_copied());
    }
    // Progress: bytes against what the change counted, at the rate since it began.
    task->set_eta_seconds(-1);
    const double elapsed =
        absl::ToDoubleSeconds(clock_.Now() - common::FromProtoTimestamp(former.replaced()));
    if (elapsed > 0) task->set_bytes_per_second(static_cast<double>(task->bytes_moved()) / elapsed);
    if (former.bytes_to_move() > 0) {
      task->set_bytes_left(former.bytes_to_move() > task->bytes_moved()
                               ? former.bytes_to_move() - task->bytes_moved()
                               : 0);
      if (task->bytes_per_second() > 0) {
        task->set_eta_seconds(static_cast<int64_t>(static_cast<double>(task->bytes_left()) /
                                                   task->bytes_per_second()));
      }
    }
  }
  return status;
}

}  // namespace mcos::controller
