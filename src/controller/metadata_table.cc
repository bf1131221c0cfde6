#include "controller/metadata_table.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "mcos/v1/admin.pb.h"

namespace mcos::controller {
namespace {

// INVALID_ARGUMENT unless `row` is a row of a replicated table whose value parses.
absl::Status CheckPeerRow(const mcos::v1::MetadataRow& row) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata row ", row.table(), "/", row.key(), " ", why));
  };
  if (row.key().empty() || row.key().size() > 2048) return bad("has no key or one too long");
  if (!row.has_version() || row.version().hlc() == 0 || row.version().cluster().empty()) {
    return bad("has no version stamp");
  }
  if (row.tombstone()) return absl::OkStatus();
  bool parsed = false;
  if (row.table() == kUsersTable || row.table() == kRemovedUsersTable) {
    parsed = mcos::v1::User().ParseFromString(row.value());
  } else if (row.table() == kContainersTable) {
    parsed = mcos::v1::Container().ParseFromString(row.value());
  } else if (row.table() == kClustersTable) {
    parsed = mcos::v1::ClusterInfo().ParseFromString(row.value());
  } else if (row.table() == kRingsTable) {
    parsed = mcos::v1::Ring().ParseFromString(row.value());
  } else if (row.table() == kOptionsTable) {
    parsed = mcos::v1::Option().ParseFromString(row.value());
  } else if (row.table() == kFormerLayoutsTable) {
    parsed = mcos::v1::FormerLayout().ParseFromString(row.value());
  } else if (row.table() == kMoveReportsTable) {
    parsed = mcos::v1::MoveReport().ParseFromString(row.value());
  } else if (row.table() == kRebalanceTable) {
    parsed = mcos::v1::RebalanceControl().ParseFromString(row.value());
  } else {
    return bad("belongs to no replicated table");
  }
  return parsed ? absl::OkStatus() : bad("does not parse as its table's message");
}

}  // namespace

MetadataTable::MetadataTable(metadata::SqliteMetadataStore& store, common::Clock& clock,
                             const std::string& cluster_id)
    : store_(store), clock_(clock), cluster_id_(cluster_id), hlc_(clock) {}

mcos::v1::Version MetadataTable::Stamp() {
  mcos::v1::Version v;
  v.set_hlc(hlc_.Now());
  v.set_cluster(cluster_id_);
  return v;
}

absl::StatusOr<bool> MetadataTable::Put(const std::string& table, const std::string& key,
                                        const google::protobuf::Message* value,
                                        const mcos::v1::Version* version) {
  mcos::v1::MetadataRow row;
  row.set_table(table);
  row.set_key(key);
  if (value != nullptr) {
    row.set_value(value->SerializeAsString());
  } else {
    row.set_tombstone(true);
  }
  *row.mutable_version() = version != nullptr ? *version : Stamp();
  common::ToProtoTimestamp(clock_.Now(), row.mutable_modified());
  MCOS_ASSIGN_OR_RETURN(const bool won, store_.MergeRow(row));
  if (won) {
    if (observer_) observer_(row, /*from_peer=*/false);
    if (changed_) changed_();
  }
  return won;
}

absl::StatusOr<uint32_t> MetadataTable::Apply(const std::vector<mcos::v1::MetadataRow>& rows) {
  for (const auto& row : rows) MCOS_RETURN_IF_ERROR(CheckPeerRow(row));
  uint32_t applied = 0;
  for (const auto& row : rows) {
    hlc_.Observe(row.version().hlc());
    MCOS_ASSIGN_OR_RETURN(const bool won, store_.MergeRow(row));
    if (!won) continue;
    ++applied;
    if (observer_) observer_(row, /*from_peer=*/true);
  }
  return applied;
}

absl::StatusOr<std::vector<mcos::v1::MetadataRow>> MetadataTable::RowsAfter(uint64_t revision,
                                                                            uint32_t limit) {
  return store_.RowsAfter(revision, limit);
}

}  // namespace mcos::controller
