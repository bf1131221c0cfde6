// The controller's SQLite database: federation metadata as last-writer-wins rows (users,
// containers, clusters, rings, options), the local service registry, and local settings.
// Schema migrations run at Open (schema_version table). WAL mode with synchronous=FULL, so a
// committed change survives a crash. Thread-safe: one connection behind a mutex.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mcos/v1/admin.pb.h"
#include "mcos/v1/common.pb.h"
#include "mcos/v1/controller.pb.h"

struct sqlite3;

namespace mcos::metadata {

// A write a replica cluster missed, waiting in the replication queue.
struct QueuedReplication {
  mcos::v1::ReplicationTask task;
  int attempts = 0;
  absl::Time enqueued;
  std::string last_error;
};
// The queue's size for one target cluster.
struct ReplicationBacklog {
  std::string target;
  uint64_t tasks = 0;
  absl::Time oldest;
};

class SqliteMetadataStore {
 public:
  // Opens or creates the database at `path` (":memory:" for tests) and migrates it.
  // UNAVAILABLE if it cannot be opened; DATA_LOSS if it is not an MCOS database.
  static absl::StatusOr<std::unique_ptr<SqliteMetadataStore>> Open(const std::string& path);
  ~SqliteMetadataStore();

  // Stores `row` unless a row with the same (table, key) has a newer or equal version. Returns
  // whether it was stored; on success the stored row gets the next local revision.
  absl::StatusOr<bool> MergeRow(const mcos::v1::MetadataRow& row);
  // NOT_FOUND is not an error here: nullopt when there is no row (tombstones are returned).
  absl::StatusOr<std::optional<mcos::v1::MetadataRow>> GetRow(absl::string_view table,
                                                              absl::string_view key);
  // Rows of `table` whose key starts with `prefix`, after `after_key`, sorted by key bytewise.
  absl::StatusOr<std::vector<mcos::v1::MetadataRow>> ListRows(absl::string_view table,
                                                              absl::string_view prefix,
                                                              absl::string_view after_key,
                                                              uint32_t limit,
                                                              bool include_tombstones);
  // Rows stored after local revision `revision`, in revision order (for watchers and peers).
  absl::StatusOr<std::vector<mcos::v1::MetadataRow>> RowsAfter(uint64_t revision, uint32_t limit);
  uint64_t revision();

  // The local service registry (not replicated).
  absl::Status UpsertService(const mcos::v1::ServiceInfo& service);
  absl::StatusOr<std::vector<mcos::v1::ServiceInfo>> ListServices();

  // The replication queue (local): a task per (target, object), the newest version winning; at
  // most `limit` due tasks in order of their next attempt, each then leased (not due again) until
  // `now + lease`; a finished task is removed (unless a newer one replaced it), a failed one
  // rescheduled at `retry_at`.
  absl::Status EnqueueReplication(const mcos::v1::ReplicationTask& task, absl::Time now);
  absl::StatusOr<std::vector<QueuedReplication>> ClaimReplications(absl::Time now, uint32_t limit,
                                                                   absl::Duration lease);
  absl::Status FinishReplication(const mcos::v1::ReplicationTask& task,
                                 std::optional<absl::Time> retry_at, absl::string_view error);
  absl::StatusOr<std::vector<ReplicationBacklog>> ReplicationBacklogs();
  // For each key, whether the queue has a task for it (for any target), in order.
  absl::StatusOr<std::vector<bool>> QueuedReplications(
      const std::vector<mcos::v1::ObjectKey>& keys);

  // Local settings (cluster id, ...).
  absl::StatusOr<std::optional<std::string>> GetSetting(absl::string_view key);
  absl::Status SetSetting(absl::string_view key, absl::string_view value);

 private:
  explicit SqliteMetadataStore(sqlite3* db) : db_(db) {}
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mcos::metadata
