// The RocksDB storage engine.
//
// On-disk format (part of the data format: change only with a migration):
//   column family "meta":    ObjectMetaKey(user, container, object) -> ObjectRecord (protobuf)
//       ObjectMetaKey = u8 len(user) | user | u8 len(container) | container | object, so that one
//       (user, container) is a contiguous range sorted bytewise by object name.
//   column family "data":    DataKey(data_id, index) -> u64le XXH3(payload, seed) | payload
//       data_id is 16 random bytes per upload; index is u64 big-endian; seed = XXH3(DataKey), so a
//       chunk read under the wrong key fails its checksum too. Integrated BlobDB keeps large
//       chunks in blob files.
//   column family "usage":   ContainerPrefix(user, container) -> i64le objects | i64le bytes,
//       and PartitionUsageKey(option, bucket) -> the same, where bucket = the top 18 bits of the
//       object hash (placement.h) and the key is 0x00 'p' | u8 len(option) | option | u32be
//       bucket (0x00 cannot start a container prefix: user names are not empty). Changed only by
//       merges (an adding merge operator) in the same batch as each commit.
//   column family "uploads": data_id -> ObjectMetaKey of an upload in progress. Written with its
//       first chunk and deleted by its commit; anything left at open time is the debris of a
//       crashed upload, and its chunks are deleted then.
//
// Durability: chunks are written without fsync; the commit batch (record, last chunk, deletion of
// the replaced version's data) is written with WriteOptions::sync, which fsyncs the WAL and with it
// every chunk written before. So an acknowledged put survives kill -9 and power loss; an
// unacknowledged one either becomes visible whole or not at all. The cost is one fsync per commit
// (concurrent commits share one through RocksDB's group commit) and writing data twice (WAL, then
// the flushed blob/SST file).
//
// Thread-safety: all methods may be called concurrently. Commits of the same object serialize on
// one of kLockStripes mutexes, which makes the read-compare-write of versions atomic.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "storage/engine.h"

namespace mcos::storage {

struct RocksDbOptions {
  std::string path;
  // Memtable size of the data column family; up to max_write_buffers of them may be in memory.
  size_t data_write_buffer_bytes = 32u << 20;
  int max_write_buffers = 3;
  size_t block_cache_bytes = 32u << 20;
  // Values this large or larger go to blob files.
  size_t min_blob_bytes = 64u << 10;
  // fsync the WAL on every commit (turn off only for benchmarks of the non-durable path).
  bool sync_commits = true;
};

std::string ObjectMetaKey(absl::string_view user, absl::string_view container,
                          absl::string_view object);
std::string DataKey(absl::string_view data_id, uint64_t index);

class RocksDbEngine final : public Engine {
 public:
  // Opens (creating if missing) the database and deletes the debris of interrupted uploads.
  // UNAVAILABLE if the directory is locked by another process; DATA_LOSS if the DB is corrupt.
  static absl::StatusOr<std::unique_ptr<RocksDbEngine>> Open(const RocksDbOptions& options);
  ~RocksDbEngine() override;

  absl::StatusOr<std::unique_ptr<PutStream>> BeginPut(
      const mcos::v1::StoragePutHeader& header) override;
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenReader(
      const mcos::v1::StorageGetRequest& request) override;
  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              bool include_tombstone) override;
  absl::StatusOr<WriteResult> Delete(const mcos::v1::StorageDeleteRequest& request) override;
  absl::StatusOr<mcos::v1::StorageListResponse> List(
      const mcos::v1::StorageListRequest& request) override;
  absl::StatusOr<mcos::v1::ContainerUsageResponse> Usage(
      const mcos::v1::ContainerUsageRequest& request) override;
  absl::StatusOr<mcos::v1::PartitionUsageResponse> PartitionUsage(
      const mcos::v1::PartitionUsageRequest& request) override;

  // Number of uploads whose debris was removed by Open().
  int recovered_uploads() const { return recovered_uploads_; }
  // The raw database, for tests that damage it on purpose.
  rocksdb::DB* db_for_test() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* data_cf_for_test() { return data_cf_; }

 private:
  friend class RocksDbPutStream;
  friend class RocksDbObjectReader;
  static constexpr size_t kLockStripes = 64;

  explicit RocksDbEngine(RocksDbOptions options);
  absl::Status RemoveUploadDebris();
  absl::Mutex& LockFor(absl::string_view meta_key);
  // Reads the stored record; nullopt if none.
  absl::StatusOr<std::optional<mcos::v1::ObjectRecord>> ReadRecord(
      absl::string_view meta_key, const rocksdb::Snapshot* snapshot = nullptr);
  // Adds a change of a container's live object count and bytes to `batch` (a merge: concurrent
  // commits to one container add up without a lock).
  // Adds +1 object / its bytes (sign = 1) or takes them away (sign = -1) from the option's
  // partition usage of `record`'s object.
  void AddPartitionUsage(rocksdb::WriteBatch& batch, const mcos::v1::ObjectKey& key,
                         const mcos::v1::ObjectRecord& record, int sign);
  void AddUsage(rocksdb::WriteBatch& batch, absl::string_view meta_key, int64_t objects,
                int64_t bytes);
  // Adds the deletion of a record's data to `batch`.
  void DeleteData(const mcos::v1::ObjectRecord& record, rocksdb::WriteBatch& batch);
  rocksdb::WriteOptions CommitWriteOptions() const;

  RocksDbOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* uploads_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* usage_cf_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::array<absl::Mutex, kLockStripes> locks_;
  int recovered_uploads_ = 0;
};

}  // namespace mcos::storage
