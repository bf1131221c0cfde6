// A cluster that joins the federation with users, containers and objects of its own
// (docs/design.md, "The federation"): the check that refuses a merge that cannot be made, before
// anything is recorded, and what admitting it records so that its data moves under the
// federation's placement like any other move (docs/placement.md, "Moving data").
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "controller/controller.h"
#include "placement/layout.h"

namespace mcos::controller {
namespace {

// The tables a joining cluster describes, in the order they are checked.
constexpr const char* kJoinTables[] = {kUsersTable,   kRemovedUsersTable, kContainersTable,
                                       kRingsTable,   kOptionsTable,      kFormerLayoutsTable,
                                       kClustersTable};

// The identity that owns a user's data (User.uid; the name for users made before identities).
std::string IdentityOf(const mcos::v1::User& u) { return u.uid().empty() ? u.name() : u.uid(); }

std::string Made(const mcos::v1::User& u) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", common::FromProtoTimestamp(u.created()),
                          absl::UTCTimeZone());
}

// Whether two rings place every partition on the same clusters.
bool SamePlacement(const mcos::v1::Ring& a, const mcos::v1::Ring& b) {
  return a.partition_power() == b.partition_power() && a.replicas() == b.replicas() &&
         a.layout().SerializeAsString() == b.layout().SerializeAsString();
}

}  // namespace

absl::StatusOr<std::vector<mcos::v1::MetadataRow>> Controller::JoinRows() {
  std::vector<mcos::v1::MetadataRow> out;
  for (const char* table : kJoinTables) {
    MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(table, "", "", UINT32_MAX, false));
    for (auto& row : rows) {
      if (std::string(table) == kUsersTable) {
        // The hash stays with this cluster's controllers until it is a member.
        MCOS_ASSIGN_OR_RETURN(auto user, ParseRow<mcos::v1::User>(row));
        user.clear_password_hash();
        row.set_value(user.SerializeAsString());
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

absl::StatusOr<Controller::Admission> Controller::AdmitCluster(
    mcos::v1::ClusterInfo joiner, const std::vector<mcos::v1::MetadataRow>& rows,
    const std::map<std::string, uint64_t>& stored) {
  MCOS_RETURN_IF_ERROR(common::ValidateClusterName(joiner.id()));
  const std::string& name = joiner.id();
  absl::MutexLock lock(&write_mu_);
  Admission admission;
  MCOS_ASSIGN_OR_RETURN(auto member, store_->GetRow(kClustersTable, name));
  if (member && !member->tombstone()) {
    admission.member_already = true;  // added again (a new address): nothing to merge
    return admission;
  }
  // Theirs, by table and key; the newest stamp among them.
  std::map<std::string, std::map<std::string, const mcos::v1::MetadataRow*>> theirs;
  uint64_t newest = 0;
  for (const auto& row : rows) {
    if (row.tombstone()) continue;
    theirs[row.table()][row.key()] = &row;
    newest = std::max(newest, row.version().hlc());
  }
  auto ours = [&](const std::string& table,
                  const std::string& key) -> absl::StatusOr<std::optional<mcos::v1::MetadataRow>> {
    MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(table, key));
    if (!row || row->tombstone()) return std::nullopt;
    return row;
  };
  const bool has_data = !theirs[kContainersTable].empty();
  std::vector<std::string> conflicts;

  // Clusters: one with data joins alone (two federations' placements do not merge).
  MCOS_ASSIGN_OR_RETURN(const std::set<std::string> known, KnownClusters());
  for (const auto& [peer, row] : theirs[kClustersTable]) {
    if (peer == name || known.count(peer) > 0 || !has_data) continue;
    conflicts.push_back(absl::StrCat(
        "it is peered with cluster '", peer,
        "', which this federation does not have: a cluster joins with its data alone (to join "
        "that federation instead, run `mcos admin cluster add` at one of its clusters, naming "
        "this one)"));
  }
  // Users: one name, one person. The bootstrap user 'admin' becomes this federation's.
  std::map<std::string, std::string> their_identities;  // identity -> user name
  for (const auto& [user_name, row] : theirs[kUsersTable]) {
    MCOS_ASSIGN_OR_RETURN(auto user, ParseRow<mcos::v1::User>(*row));
    their_identities[IdentityOf(user)] = user_name;
    MCOS_ASSIGN_OR_RETURN(auto mine_row, ours(kUsersTable, user_name));
    if (!mine_row || user_name == "admin") continue;
    MCOS_ASSIGN_OR_RETURN(auto mine, ParseRow<mcos::v1::User>(*mine_row));
    if (IdentityOf(mine) == IdentityOf(user) &&
        mine.created().SerializeAsString() == user.created().SerializeAsString()) {
      continue;  // the same user, known to both from an earlier peering
    }
    conflicts.push_back(absl::StrCat("user '", user_name, "' is another user there (made ",
                                     Made(user), ") than here (made ", Made(mine), ")"));
  }
  // Identities of removed users keep their data for a new user: neither side's may be the
  // other's live user.
  MCOS_ASSIGN_OR_RETURN(auto our_users, store_->ListRows(kUsersTable, "", "", UINT32_MAX, false));
  std::set<std::string> our_identities;
  for (const auto& row : our_users) {
    MCOS_ASSIGN_OR_RETURN(auto user, ParseRow<mcos::v1::User>(row));
    our_identities.insert(IdentityOf(user));
    // One identity, two users (it was given to a user of another name on one side).
    auto same = their_identities.find(IdentityOf(user));
    if (same != their_identities.end() && same->second != user.name()) {
      conflicts.push_back(absl::StrCat("identity '", IdentityOf(user), "' is user '", same->second,
                                       "''s there and '", user.name(), "''s here"));
    }
  }
  for (const auto& [identity, row] : theirs[kRemovedUsersTable]) {
    MCOS_ASSIGN_OR_RETURN(auto mine, ours(kRemovedUsersTable, identity));
    if (!mine && our_identities.count(identity) > 0) {
      conflicts.push_back(
          absl::StrCat("identity '", identity, "' is a removed user's there and a user's here"));
    }
  }
  MCOS_ASSIGN_OR_RETURN(auto our_removed,
                        store_->ListRows(kRemovedUsersTable, "", "", UINT32_MAX, false));
  for (const auto& row : our_removed) {
    if (their_identities.count(row.key()) > 0 && theirs[kRemovedUsersTable].count(row.key()) == 0) {
      conflicts.push_back(
          absl::StrCat("identity '", row.key(), "' is a removed user's here and a user's there"));
    }
  }
  // Containers: one owner's container of one name keeps one option.
  for (const auto& [key, row] : theirs[kContainersTable]) {
    MCOS_ASSIGN_OR_RETURN(auto mine_row, ours(kContainersTable, key));
    if (!mine_row) continue;
    MCOS_ASSIGN_OR_RETURN(auto container, ParseRow<mcos::v1::Container>(*row));
    MCOS_ASSIGN_OR_RETURN(auto mine, ParseRow<mcos::v1::Container>(*mine_row));
    if (container.option() != mine.option()) {
      conflicts.push_back(absl::StrCat("container '", key, "' uses option '", container.option(),
                                       "' there and '", mine.option(), "' here"));
    }
  }
  // One default option.
  std::string their_default;
  for (const auto& [option, row] : theirs[kOptionsTable]) {
    MCOS_ASSIGN_OR_RETURN(auto o, ParseRow<mcos::v1::Option>(*row));
    if (o.is_default()) their_default = option;
  }
  MCOS_ASSIGN_OR_RETURN(auto our_options,
                        store_->ListRows(kOptionsTable, "", "", UINT32_MAX, false));
  for (const auto& row : our_options) {
    MCOS_ASSIGN_OR_RETURN(auto o, ParseRow<mcos::v1::Option>(row));
    if (o.is_default() && !their_default.empty() && their_default != o.name()) {
      conflicts.push_back(
          absl::StrCat("its default option is '", their_default, "', this one's '", o.name(), "'"));
    }
  }
  if (!conflicts.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster '", name, "' cannot join with its data: ", absl::StrJoin(conflicts, "; "),
        ". Nothing was recorded at either cluster; change these at one of them (remove or "
        "re-create the user or container) and add it again"));
  }

  // Its row first: every cluster of the federation learns where it is before its data's
  // former layouts reach them.
  joiner.clear_state();
  joiner.clear_last_seen();
  joiner.clear_version();
  MCOS_RETURN_IF_ERROR(table_.Put(kClustersTable, name, &joiner).status());
  if (!has_data) return admission;

  // Its data stays readable where it is until the mover has it under the federation's placement:
  // each option it uses keeps its placement there as a former layout wherever the federation
  // places that option otherwise. The federation's options and rings win over its own of the
  // same names, so this cluster's rows of those are stamped again, newer than any of its, and
  // after the former layouts (peers apply rows in that order).
  table_.Observe(newest);
  std::set<std::string> used;
  for (const auto& [key, row] : theirs[kContainersTable]) {
    MCOS_ASSIGN_OR_RETURN(auto c, ParseRow<mcos::v1::Container>(*row));
    used.insert(c.option());
  }
  for (const auto& option : used) {
    auto their_option_row = theirs[kOptionsTable].find(option);
    if (their_option_row == theirs[kOptionsTable].end()) continue;
    MCOS_ASSIGN_OR_RETURN(auto their_option, ParseRow<mcos::v1::Option>(*their_option_row->second));
    auto their_ring_row = theirs[kRingsTable].find(their_option.ring());
    if (their_ring_row == theirs[kRingsTable].end()) continue;
    MCOS_ASSIGN_OR_RETURN(auto their_ring, ParseRow<mcos::v1::Ring>(*their_ring_row->second));
    // The option as the merged federation has it: ours where we have it, else theirs.
    MCOS_ASSIGN_OR_RETURN(auto mine_row, ours(kOptionsTable, option));
    std::string ring_id = their_option.ring();
    if (mine_row) {
      MCOS_ASSIGN_OR_RETURN(auto mine, ParseRow<mcos::v1::Option>(*mine_row));
      ring_id = mine.ring();
    }
    MCOS_ASSIGN_OR_RETURN(auto ring_row, ours(kRingsTable, ring_id));
    if (!ring_row) continue;  // theirs comes along: the placement does not change
    MCOS_ASSIGN_OR_RETURN(auto ring, ParseRow<mcos::v1::Ring>(*ring_row));
    if (SamePlacement(their_ring, ring)) continue;
    MCOS_RETURN_IF_ERROR(CheckFormerLayouts({option}));
    // Each holder the federation's ring gives a partition copies it from the joiner.
    uint64_t to_copy = 0;
    if (auto b = stored.find(option); b != stored.end()) {
      MCOS_ASSIGN_OR_RETURN(auto compiled, placement::CompiledRing::Make(ring));
      uint64_t copies = 0;
      for (const auto& [cluster, partitions] : compiled.ReplicaCountsByCluster()) {
        if (cluster != name) copies += partitions;
      }
      const uint64_t partitions = uint64_t{1} << ring.partition_power();
      to_copy = static_cast<uint64_t>(static_cast<double>(b->second) * static_cast<double>(copies) /
                                      static_cast<double>(partitions));
    }
    MCOS_ASSIGN_OR_RETURN(std::string key, KeepFormerLayout(option, their_ring, ring, to_copy));
    admission.former_layouts.push_back(std::move(key));
    admission.moving.push_back(option);
  }
  // `prototype` gives the table's message type.
  auto restamp = [&](auto prototype, const char* table, const std::string& key) -> absl::Status {
    using T = decltype(prototype);
    MCOS_ASSIGN_OR_RETURN(auto mine_row, ours(table, key));
    if (!mine_row) return absl::OkStatus();
    if (std::string(table) != kUsersTable && mine_row->value() == theirs[table][key]->value()) {
      return absl::OkStatus();
    }
    MCOS_ASSIGN_OR_RETURN(T mine, ParseRow<T>(*mine_row));
    MCOS_RETURN_IF_ERROR(table_.Put(table, key, &mine).status());
    ++admission.restamped;
    return absl::OkStatus();
  };
  for (const auto& [key, row] : theirs[kRingsTable]) {
    MCOS_RETURN_IF_ERROR(restamp(mcos::v1::Ring(), kRingsTable, key));
  }
  for (const auto& [key, row] : theirs[kOptionsTable]) {
    MCOS_RETURN_IF_ERROR(restamp(mcos::v1::Option(), kOptionsTable, key));
  }
  if (theirs[kUsersTable].count("admin") > 0) {
    MCOS_RETURN_IF_ERROR(restamp(mcos::v1::User(), kUsersTable, "admin"));
  }
  common::LogInfo("admitting cluster '", name, "' with its data: ", theirs[kContainersTable].size(),
                  " container(s); ",
                  admission.moving.empty()
                      ? std::string("none of its options changes placement")
                      : absl::StrCat("option(s) ", absl::StrJoin(admission.moving, ", "),
                                     " move their data to this federation's placement"),
                  "; ", admission.restamped, " row(s) of this federation kept over its own");
  return admission;
}

absl::Status Controller::UndoAdmission(const std::string& joiner, const Admission& admission) {
  if (admission.member_already) return absl::OkStatus();
  absl::MutexLock lock(&write_mu_);
  for (const auto& key : admission.former_layouts) {
    MCOS_RETURN_IF_ERROR(table_.Put(kFormerLayoutsTable, key, nullptr).status());
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kClustersTable, joiner, nullptr).status());
  common::LogInfo("cluster '", joiner, "' was not admitted after all: its row and ",
                  admission.former_layouts.size(), " former layout(s) were dropped");
  return absl::OkStatus();
}

}  // namespace mcos::controller
