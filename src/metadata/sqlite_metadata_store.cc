#include "metadata/sqlite_metadata_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::metadata {
namespace {

// Schema migrations: entry i takes the schema from version i to i+1. Never edit an entry that
// has shipped; append a new one.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE metadata(
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  hlc INTEGER NOT NULL,
  cluster TEXT NOT NULL,
  tombstone INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  modified_ms INTEGER NOT NULL,
  PRIMARY KEY (tbl, key)) STRICT;
CREATE INDEX metadata_by_revision ON metadata(revision);
CREATE TABLE services(
  id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  endpoint TEXT NOT NULL,
  state INTEGER NOT NULL,
  registered_ms INTEGER NOT NULL,
  last_ok_ms INTEGER NOT NULL,
  misses INTEGER NOT NULL,
  state_changed_ms INTEGER NOT NULL) STRICT;
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
)sql",
    // 1 -> 2: what limits a service that is up (ServiceInfo.condition).
    R"sql(
ALTER TABLE services ADD COLUMN condition TEXT NOT NULL DEFAULT '';
)sql",
    // 2 -> 3: writes that a replica cluster missed (the replication queue; local, not
    // replicated). One row per (target, object): a newer version replaces an older one.
    R"sql(
CREATE TABLE replication_queue(
  target TEXT NOT NULL,
  object_key BLOB NOT NULL,
  task BLOB NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_ms INTEGER NOT NULL,
  enqueued_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  PRIMARY KEY (target, object_key)) STRICT;
CREATE INDEX replication_queue_due ON replication_queue(next_attempt_ms);
)sql",
    // 3 -> 4: more about a service (ServiceInfo.detail: a storage node's disk and floor).
    R"sql(
ALTER TABLE services ADD COLUMN detail TEXT NOT NULL DEFAULT '';
)sql",
    // 4 -> 5: tombstone reaping asks whether an object has a task queued (for any target).
    R"sql(
CREATE INDEX replication_queue_by_key ON replication_queue(object_key);
)sql",
};

absl::Status FromSqlite(int rc, sqlite3* db, absl::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return absl::OkStatus();
  std::string msg =
      absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xFF) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          absl::StrCat(what,
                       ": the disk of the cluster's database is full; free space on it "
                       "(delete objects, or grow the filesystem) and retry"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  absl::Status status() const { return FromSqlite(rc_, db_, "prepare"); }
  Statement& Bind(int i, absl::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, absl::string_view s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  // Makes the statement ready to run again (its bindings are then replaced).
  void Reset() { sqlite3_reset(stmt_); }
  std::string Text(int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }
  std::string Blob(int col) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr const char* kRowColumns =
    "tbl, key, value, hlc, cluster, tombstone, revision, modified_ms";

mcos::v1::MetadataRow ReadRow(Statement& s) {
  mcos::v1::MetadataRow row;
  row.set_table(s.Text(0));
  row.set_key(s.Text(1));
  row.set_value(s.Blob(2));
  row.mutable_version()->set_hlc(static_cast<uint64_t>(s.Int(3)));
  row.mutable_version()->set_cluster(s.Text(4));
  row.set_tombstone(s.Int(5) != 0);
  row.set_revision(static_cast<uint64_t>(s.Int(6)));
  common::ToProtoTimestamp(absl::FromUnixMillis(s.Int(7)), row.mutable_modified());
  return row;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteMetadataStore>> SqliteMetadataStore::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = FromSqlite(rc, db, absl::StrCat("open database ", path));
    sqlite3_close(db);
    return absl::UnavailableError(s.message());
  }
  std::unique_ptr<SqliteMetadataStore> store(new SqliteMetadataStore(db));
  absl::MutexLock lock(&store->mu_);
  sqlite3_busy_timeout(db, 5000);
  MCOS_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  MCOS_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  MCOS_RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys=ON"));
  MCOS_RETURN_IF_ERROR(store->Migrate());
  Statement s(db, "SELECT COALESCE(MAX(revision), 0) FROM metadata");
  MCOS_RETURN_IF_ERROR(s.status());
  if (s.Step() == SQLITE_ROW) store->revision_ = static_cast<uint64_t>(s.Int(0));
  return store;
}

SqliteMetadataStore::~SqliteMetadataStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status SqliteMetadataStore::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return FromSqlite(rc, nullptr, msg);
  }
  return absl::OkStatus();
}

absl::Status SqliteMetadataStore::Migrate() {
  MCOS_RETURN_IF_ERROR(Exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"));
  int64_t version = 0;
  {
    Statement s(db_, "SELECT version FROM schema_version");
    MCOS_RETURN_IF_ERROR(s.status());
    if (s.Step() == SQLITE_ROW) {
      version = s.Int(0);
    } else {
      MCOS_RETURN_IF_ERROR(Exec("INSERT INTO schema_version(version) VALUES (0)"));
    }
  }
  const auto known = static_cast<int64_t>(std::size(kMigrations));
  if (version > known) {
    return absl::FailedPreconditionError(absl::StrCat("the database has schema version ", version,
                                                      " but this build knows only ", known,
                                                      ": run a newer mcos-controller"));
  }
  for (; version < known; ++version) {
    MCOS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    absl::Status s = Exec(kMigrations[version]);
    if (s.ok()) {
      s = Exec(absl::StrCat("UPDATE schema_version SET version = ", version + 1).c_str());
    }
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    }
    MCOS_RETURN_IF_ERROR(Exec("COMMIT"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteMetadataStore::MergeRow(const mcos::v1::MetadataRow& row) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, R"sql(
INSERT INTO metadata(tbl, key, value, hlc, cluster, tombstone, revision, modified_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT(tbl, key) DO UPDATE SET
  value = excluded.value, hlc = excluded.hlc, cluster = excluded.cluster,
  tombstone = excluded.tombstone, revision = excluded.revision, modified_ms = excluded.modified_ms
WHERE excluded.hlc > metadata.hlc
   OR (excluded.hlc = metadata.hlc AND excluded.cluster > metadata.cluster))sql");
  MCOS_RETURN_IF_ERROR(s.status());
  const int64_t modified_ms = absl::ToUnixMillis(common::FromProtoTimestamp(row.modified()));
  s.Bind(1, row.table())
      .Bind(2, row.key())
      .BindBlob(3, row.value())
      .Bind(4, static_cast<int64_t>(row.version().hlc()))
      .Bind(5, row.version().cluster())
      .Bind(6, int64_t{row.tombstone() ? 1 : 0})
      .Bind(7, static_cast<int64_t>(revision_ + 1))
      .Bind(8, modified_ms);
  MCOS_RETURN_IF_ERROR(FromSqlite(s.Step(), db_, "store metadata row"));
  const bool applied = sqlite3_changes(db_) > 0;
  if (applied) ++revision_;
  return applied;
}

absl::StatusOr<std::optional<mcos::v1::MetadataRow>> SqliteMetadataStore::GetRow(
    absl::string_view table, absl::string_view key) {
  absl::MutexLock lock(&mu_);
  Statement s(
      db_,
      absl::StrCat("SELECT ", kRowColumns, " FROM metadata WHERE tbl = ?1 AND key = ?2").c_str());
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, table).Bind(2, key);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return ReadRow(s);
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "read metadata row"));
  return std::nullopt;
}

absl::StatusOr<std::vector<mcos::v1::MetadataRow>> SqliteMetadataStore::ListRows(
    absl::string_view table, absl::string_view prefix, absl::string_view after_key, uint32_t limit,
    bool include_tombstones) {
  absl::MutexLock lock(&mu_);
  // Keys compare bytewise (BINARY collation); the prefix range is [prefix, prefix + 0xFF...).
  Statement s(db_, absl::StrCat("SELECT ", kRowColumns,
                                " FROM metadata WHERE tbl = ?1 AND key >= ?2 AND key > ?3"
                                " AND substr(key, 1, length(?2)) = ?2"
                                " AND (?4 OR tombstone = 0) ORDER BY key LIMIT ?5")
                       .c_str());
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, table)
      .Bind(2, prefix)
      .Bind(3, after_key)
      .Bind(4, int64_t{include_tombstones ? 1 : 0})
      .Bind(5, static_cast<int64_t>(limit));
  std::vector<mcos::v1::MetadataRow> rows;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) rows.push_back(ReadRow(s));
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "list metadata rows"));
  return rows;
}

absl::StatusOr<std::vector<mcos::v1::MetadataRow>> SqliteMetadataStore::RowsAfter(uint64_t revision,
                                                                                  uint32_t limit) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, absl::StrCat("SELECT ", kRowColumns,
                                " FROM metadata WHERE revision > ?1 ORDER BY revision LIMIT ?2")
                       .c_str());
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, static_cast<int64_t>(revision)).Bind(2, static_cast<int64_t>(limit));
  std::vector<mcos::v1::MetadataRow> rows;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) rows.push_back(ReadRow(s));
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "read metadata changes"));
  return rows;
}

uint64_t SqliteMetadataStore::revision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

absl::Status SqliteMetadataStore::UpsertService(const mcos::v1::ServiceInfo& service) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, R"sql(
INSERT INTO services(id, kind, endpoint, state, registered_ms, last_ok_ms, misses, state_changed_ms,
  condition, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, endpoint = excluded.endpoint,
  state = excluded.state, registered_ms = excluded.registered_ms, last_ok_ms = excluded.last_ok_ms,
  misses = excluded.misses, state_changed_ms = excluded.state_changed_ms,
  condition = excluded.condition, detail = excluded.detail)sql");
  MCOS_RETURN_IF_ERROR(s.status());
  auto ms = [](const google::protobuf::Timestamp& t) {
    return absl::ToUnixMillis(common::FromProtoTimestamp(t));
  };
  s.Bind(1, service.id())
      .Bind(2, int64_t{service.kind()})
      .Bind(3, service.endpoint())
      .Bind(4, int64_t{service.state()})
      .Bind(5, ms(service.registered()))
      .Bind(6, ms(service.last_ok()))
      .Bind(7, int64_t{service.consecutive_misses()})
      .Bind(8, ms(service.state_changed()))
      .Bind(9, service.condition())
      .Bind(10, service.detail());
  return FromSqlite(s.Step(), db_, "store service");
}

absl::StatusOr<std::vector<mcos::v1::ServiceInfo>> SqliteMetadataStore::ListServices() {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "SELECT id, kind, endpoint, state, registered_ms, last_ok_ms, misses, "
              "state_changed_ms, condition, detail FROM services ORDER BY kind, id");
  MCOS_RETURN_IF_ERROR(s.status());
  std::vector<mcos::v1::ServiceInfo> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    mcos::v1::ServiceInfo info;
    info.set_id(s.Text(0));
    info.set_kind(static_cast<mcos::v1::ServiceKind>(s.Int(1)));
    info.set_endpoint(s.Text(2));
    info.set_state(static_cast<mcos::v1::ServiceState>(s.Int(3)));
    common::ToProtoTimestamp(absl::FromUnixMillis(s.Int(4)), info.mutable_registered());
    common::ToProtoTimestamp(absl::FromUnixMillis(s.Int(5)), info.mutable_last_ok());
    info.set_consecutive_misses(static_cast<uint32_t>(s.Int(6)));
    common::ToProtoTimestamp(absl::FromUnixMillis(s.Int(7)), info.mutable_state_changed());
    info.set_condition(s.Text(8));
    info.set_detail(s.Text(9));
    out.push_back(std::move(info));
  }
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "list services"));
  return out;
}

absl::StatusOr<std::optional<std::string>> SqliteMetadataStore::GetSetting(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT value FROM settings WHERE key = ?1");
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, key);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) return s.Text(0);
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "read setting"));
  return std::nullopt;
}

absl::Status SqliteMetadataStore::SetSetting(absl::string_view key, absl::string_view value) {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "INSERT INTO settings(key, value) VALUES (?1, ?2) "
              "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, key).Bind(2, value);
  return FromSqlite(s.Step(), db_, "store setting");
}

// ---- replication queue ------------------------------------------------------------------------

absl::Status SqliteMetadataStore::EnqueueReplication(const mcos::v1::ReplicationTask& task,
                                                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  // A task for an older version than the one queued for the same object is dropped; a newer one
  // replaces it (the replica needs only the newest).
  Statement old(db_, "SELECT task FROM replication_queue WHERE target = ?1 AND object_key = ?2");
  MCOS_RETURN_IF_ERROR(old.status());
  const std::string key = task.key().SerializeAsString();
  old.Bind(1, task.target()).BindBlob(2, key);
  if (old.Step() == SQLITE_ROW) {
    mcos::v1::ReplicationTask queued;
    if (queued.ParseFromString(old.Blob(0)) &&
        common::CompareVersions(queued.version(), task.version()) >= 0) {
      return absl::OkStatus();
    }
  }
  Statement s(db_, R"sql(
INSERT INTO replication_queue(target, object_key, task, attempts, next_attempt_ms, enqueued_ms,
  last_error)
VALUES (?1, ?2, ?3, 0, ?4, ?4, ?5)
ON CONFLICT(target, object_key) DO UPDATE SET task = excluded.task, attempts = 0,
  next_attempt_ms = excluded.next_attempt_ms, last_error = excluded.last_error)sql");
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, task.target())
      .BindBlob(2, key)
      .BindBlob(3, task.SerializeAsString())
      .Bind(4, absl::ToUnixMillis(now))
      .Bind(5, task.reason());
  return FromSqlite(s.Step(), db_, "queue a replication");
}

absl::StatusOr<std::vector<QueuedReplication>> SqliteMetadataStore::ClaimReplications(
    absl::Time now, uint32_t limit, absl::Duration lease) {
  absl::MutexLock lock(&mu_);
  MCOS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Cleanup rollback = [this] { Exec("ROLLBACK").IgnoreError(); };
  Statement s(db_, R"sql(
SELECT task, attempts, enqueued_ms, last_error, target, object_key FROM replication_queue
WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2)sql");
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, absl::ToUnixMillis(now)).Bind(2, int64_t{limit});
  std::vector<QueuedReplication> out;
  std::vector<std::pair<std::string, std::string>> rows;  // (target, object_key)
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    QueuedReplication q;
    if (!q.task.ParseFromString(s.Blob(0))) {
      return absl::DataLossError("a replication_queue row cannot be parsed");
    }
    q.attempts = static_cast<int>(s.Int(1));
    q.enqueued = absl::FromUnixMillis(s.Int(2));
    q.last_error = s.Text(3);
    rows.emplace_back(s.Text(4), s.Blob(5));
    out.push_back(std::move(q));
  }
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "read the replication queue"));
  Statement lease_row(db_, R"sql(
UPDATE replication_queue SET next_attempt_ms = ?3 WHERE target = ?1 AND object_key = ?2)sql");
  MCOS_RETURN_IF_ERROR(lease_row.status());
  for (const auto& [target, key] : rows) {
    lease_row.Reset();
    lease_row.Bind(1, target).BindBlob(2, key).Bind(3, absl::ToUnixMillis(now + lease));
    MCOS_RETURN_IF_ERROR(FromSqlite(lease_row.Step(), db_, "lease a replication"));
  }
  MCOS_RETURN_IF_ERROR(Exec("COMMIT"));
  std::move(rollback).Cancel();
  return out;
}

absl::Status SqliteMetadataStore::FinishReplication(const mcos::v1::ReplicationTask& task,
                                                    std::optional<absl::Time> retry_at,
                                                    absl::string_view error) {
  absl::MutexLock lock(&mu_);
  const std::string key = task.key().SerializeAsString();
  if (!retry_at) {
    // Only the task that was done: a newer version queued meanwhile stays.
    Statement s(
        db_, "DELETE FROM replication_queue WHERE target = ?1 AND object_key = ?2 AND task = ?3");
    MCOS_RETURN_IF_ERROR(s.status());
    s.Bind(1, task.target()).BindBlob(2, key).BindBlob(3, task.SerializeAsString());
    return FromSqlite(s.Step(), db_, "finish a replication");
  }
  Statement s(db_, R"sql(
UPDATE replication_queue SET attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4
WHERE target = ?1 AND object_key = ?2)sql");
  MCOS_RETURN_IF_ERROR(s.status());
  s.Bind(1, task.target()).BindBlob(2, key).Bind(3, absl::ToUnixMillis(*retry_at)).Bind(4, error);
  return FromSqlite(s.Step(), db_, "reschedule a replication");
}

absl::StatusOr<std::vector<bool>> SqliteMetadataStore::QueuedReplications(
    const std::vector<mcos::v1::ObjectKey>& keys) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT 1 FROM replication_queue WHERE object_key = ?1 LIMIT 1");
  MCOS_RETURN_IF_ERROR(s.status());
  std::vector<bool> out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    s.Reset();
    s.BindBlob(1, key.SerializeAsString());
    const int rc = s.Step();
    if (rc != SQLITE_ROW)
      MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "look up the replication queue"));
    out.push_back(rc == SQLITE_ROW);
  }
  return out;
}

absl::StatusOr<std::vector<ReplicationBacklog>> SqliteMetadataStore::ReplicationBacklogs() {
  absl::MutexLock lock(&mu_);
  Statement s(db_, R"sql(
SELECT target, COUNT(*), MIN(enqueued_ms) FROM replication_queue GROUP BY target ORDER BY target)sql");
  MCOS_RETURN_IF_ERROR(s.status());
  std::vector<ReplicationBacklog> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back({s.Text(0), static_cast<uint64_t>(s.Int(1)), absl::FromUnixMillis(s.Int(2))});
  }
  MCOS_RETURN_IF_ERROR(FromSqlite(rc, db_, "count the replication queue"));
  return out;
}

}  // namespace mcos::metadata
