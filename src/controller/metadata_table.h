// The federation metadata as one table of last-writer-wins rows (shared/DESIGN.md): users,
// removed users, containers, clusters, rings and options, kept in the controller's SQLite
// database. It stamps this cluster's changes with the hybrid logical clock, merges the rows
// peers send (a row wins if its stamp is newer), hands out the rows after a revision for peers to
// pull, and tells its observer about every row that won, so that the parts of the controller
// that cache or watch rows (containers, placement, credentials) follow. The peering
// (federation.h) and the controller's concerns (users, containers, rings and options, clusters)
// all go through it. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/version.h"
#include "google/protobuf/message.h"
#include "mcos/v1/controller.pb.h"
#include "metadata/sqlite_metadata_store.h"

namespace mcos::controller {

// The replicated tables.
inline constexpr char kUsersTable[] = "users";
// Identities of removed users (key: the identity; value: the user as it was, without its hash),
// until an admin gives one to a new user.
inline constexpr char kRemovedUsersTable[] = "removed_users";
inline constexpr char kContainersTable[] = "containers";
inline constexpr char kRingsTable[] = "rings";
inline constexpr char kOptionsTable[] = "options";
inline constexpr char kClustersTable[] = "clusters";
// Layouts options' data may still be on (FormerLayout; key: option/id), and each cluster's report
// on them (MoveReport; key: option/cluster).
inline constexpr char kFormerLayoutsTable[] = "former_layouts";
inline constexpr char kMoveReportsTable[] = "move_reports";
// Whether moving data is paused (RebalanceControl; key: control).
inline constexpr char kRebalanceTable[] = "rebalance";

// A row's value as its table's message; DATA_LOSS if it does not parse.
template <typename T>
absl::StatusOr<T> ParseRow(const mcos::v1::MetadataRow& row) {
  T value;
  if (!value.ParseFromString(row.value())) {
    return absl::DataLossError(
        absl::StrCat("metadata row ", row.table(), "/", row.key(), " cannot be parsed"));
  }
  return value;
}

class MetadataTable {
 public:
  // Called for every row that won, after it is stored and before Put or Apply returns;
  // `from_peer` tells rows merged from a peer from this cluster's own changes. Must not block.
  using Observer = std::function<void(const mcos::v1::MetadataRow& row, bool from_peer)>;

  // `store`, `clock` and `cluster_id` (set before the first change) must outlive this.
  MetadataTable(metadata::SqliteMetadataStore& store, common::Clock& clock,
                const std::string& cluster_id);

  // Set once, before the table is used.
  void SetObserver(Observer observer) { observer_ = std::move(observer); }
  // Called after every change this cluster makes (to push it to peers); set once, before
  // serving; must not block.
  void SetChangeListener(std::function<void()> listener) { changed_ = std::move(listener); }

  // A new stamp of this cluster.
  mcos::v1::Version Stamp();
  // Stamps made after this are newer than `hlc` (a stamp seen elsewhere).
  void Observe(uint64_t hlc) { hlc_.Observe(hlc); }
  // Stores this cluster's change of a row (`value` null: a tombstone), stamped now or with
  // `version` (bootstrap rows carry the lowest stamp, so that any change made anywhere in the
  // federation wins over them). Returns whether it won.
  absl::StatusOr<bool> Put(const std::string& table, const std::string& key,
                           const google::protobuf::Message* value,
                           const mcos::v1::Version* version = nullptr);
  // Merges rows from a peer, each by last writer wins; returns how many won. A row of an unknown
  // table, or whose value does not parse as its table's message, is INVALID_ARGUMENT and nothing
  // of the batch is applied.
  absl::StatusOr<uint32_t> Apply(const std::vector<mcos::v1::MetadataRow>& rows);
  // Rows stored after local revision `revision` (at most `limit`, in revision order).
  absl::StatusOr<std::vector<mcos::v1::MetadataRow>> RowsAfter(uint64_t revision, uint32_t limit);
  // The local revision of the newest row.
  uint64_t revision() { return store_.revision(); }

 private:
  metadata::SqliteMetadataStore& store_;
  common::Clock& clock_;
  const std::string& cluster_id_;
  common::HybridLogicalClock hlc_;
  Observer observer_;
  std::function<void()> changed_;
};

}  // namespace mcos::controller
