// The RocksDB storage engine.
//
// On-disk format (part of the data format: change only with a migration):
//   column family "meta":    ObjectMetaKey(user, container, object) -> ObjectRecord (protobuf)
//       ObjectMetaKey = u8 len(user) | user | u8 len(container) | container | object, so that one
//       (user, container) is a contiguous range sorted bytewise by object name.
//   column family "data":    DataKey(data_id, index) -> u64le XXH3(payload, seed) | payload
//       data_id is 16 random bytes per upload; index is u64 big-endian; seed = XXH3(DataKey), so a
//       chunk read under the wrong key fails its checksum too. Integrated BlobDB keeps large
//       chunks in blob files. For the chunks of a record's data file (index >= the record's
//       file_first_chunk) the value is the u64le checksum alone.
//   data files: <path>/objects/<hex data_id>, the chunks from file_first_chunk on, back to back at
//       (index - file_first_chunk) * chunk_size, the last padded with zeros to 4 KiB. An upload's
//       chunks past the first 8 go there, or all of them when its header declares more than 8
//       MiB: written once, with direct I/O (data_file.h), instead of through a memtable, a flush
//       and RocksDB's blob CRC32C (software in Debian's build: a third of a large upload's CPU).
//   column family "usage":   ContainerPrefix(user, container) -> i64le objects | i64le bytes,
//       and PartitionUsageKey(option, bucket) -> the same, where bucket = the top 18 bits of the
//       object hash (placement.h) and the key is 0x00 'p' | u8 len(option) | option | u32be
//       bucket (0x00 cannot start a container prefix: user names are not empty);
//       DigestKey(option, bucket) = 0x00 'd' | ... the same -> u64le records | u64le digest (the
//       sum of DigestShare over the bucket's records, tombstones included, engine_rules.h); and
//       0x00 "m-digests-v1", present once the digest records are complete (a database from
//       before them gets them built at open). Changed only by merges (an adding merge operator,
//       modulo 2^64) in the same batch as each commit.
//   column family "index":   u8 len(option) | option | IndexPosition(bucket, ObjectMetaKey) ->
//   empty:
//       every record (tombstones included) by option and partition, for ScanPartition. Kept in the
//       same batch as each commit; 0x00 "m-index-v1" in "usage" is present once it is complete (a
//       database from before it gets it built at open).
//   column family "uploads": data_id -> ObjectMetaKey of an upload in progress. Written with its
//       first chunk (synced before its data file is created) and deleted by its commit; anything
//       left at open time is the debris of a crashed upload, and its chunks and data file are
//       deleted then. A replaced or deleted version's data file is named here too (value empty)
//       by the batch that deletes its record, until ReclaimOnce removes the file.
//
// Space: a replaced or deleted object's chunks are deleted in its commit batch, and their key range
// is compacted within about a second (ReclaimOnce), which deletes the blob files left without live
// data and the data files that no snapshot (a download under way, a kept version) can still read;
// the live data of blob files shared with deleted objects is rewritten (CollectGarbageOnce) once
// garbage reaches a quarter of all blob bytes, or a quarter of one file while the disk is nearly
// full. So space amplification stays under about 4/3 of live data. Below the free-space floor
// (SpaceGuard) new data is refused (RESOURCE_EXHAUSTED); deletes go on; an ENOSPC from RocksDB
// releases the space reserve and resumes the database.
//
// Durability: chunks are written without fsync; the commit fdatasyncs the data file (and fsyncs its
// directory), then writes the commit batch (record, last chunk, the file's chunk checksums,
// deletion of the replaced version's data) with WriteOptions::sync, which fsyncs the WAL and with
// it every chunk written there before. So an acknowledged put survives kill -9 and power loss; an
// unacknowledged one either becomes visible whole or not at all. The cost is one fsync per commit
// (concurrent commits share one through RocksDB's group commit; those through CommitAsync and
// DeleteAsync share one through the committing thread's batch, which no caller waits on, and are
// answered only once it is synced), two more for a data file. The
// first 8 chunks (8 MiB) of an upload of undeclared size go through the WAL, so small objects are
// written twice (WAL, then the flushed blob/SST file); the double is bounded by
// max_total_wal_bytes (64 MiB) plus one memtable (32 MiB), after which the WAL files are deleted.
//
// Kept versions: a commit whose finish asks for keep_readable_ms takes a RocksDB snapshot right
// after its batch (under the object's lock), so that the version stays readable by its exact
// version for that long even once replaced. Deleted data that such a snapshot still sees is
// compacted away by ReclaimOnce only once the snapshot is released.
//
// Thread-safety: all methods may be called concurrently. Commits of the same object serialize on
// one of kLockStripes mutexes, which makes the read-compare-write of versions atomic.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/engine.h"
#include "storage/engine_rules.h"
#include "storage/space_guard.h"

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
  // The WAL is kept to at most about this size: past it, RocksDB flushes the memtables that hold
  // the oldest log. Small objects' data is on disk twice (WAL, then blob file) only until then.
  uint64_t max_total_wal_bytes = uint64_t{64} << 20;
  // Free-space floor and reserve (not owned; may be null: no checks). Must outlive the engine.
  SpaceGuard* space = nullptr;
};

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
  void ReleaseKept(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version) override;
  absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                  const std::vector<std::string>& holders) override;
  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              bool include_tombstone) override;
  absl::StatusOr<WriteResult> Delete(const mcos::v1::StorageDeleteRequest& request) override;
  // Small uploads (held in memory, no data file) and deletes are committed by the committing
  // thread: it takes every commit waiting, checks each under its object's lock, writes them all
  // with one synced write and then answers them (a group commit in which no thread waits for
  // another's fsync). Other uploads commit on the caller's thread.
  void CommitAsync(std::unique_ptr<PutStream> stream, mcos::v1::StoragePutFinish finish,
                   WriteDone done) override;
  void DeleteAsync(mcos::v1::StorageDeleteRequest request, WriteDone done) override;
  void AddHoldersAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                       const std::vector<std::string>& holders) override;
  absl::Status List(const mcos::v1::StorageListRequest& request,
                    mcos::v1::StorageListResponse* out) override;
  absl::StatusOr<mcos::v1::ContainerUsageResponse> Usage(
      const mcos::v1::ContainerUsageRequest& request) override;
  absl::StatusOr<mcos::v1::PartitionUsageResponse> PartitionUsage(
      const mcos::v1::PartitionUsageRequest& request) override;
  absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request) override;
  absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request) override;

  // Number of uploads whose debris was removed by Open().
  int recovered_uploads() const { return recovered_uploads_; }

  // Compacts the key ranges of data deleted since the last call (replaced or deleted objects,
  // interrupted uploads), so that RocksDB drops their chunks and deletes the blob files that no
  // longer hold live data. Returns how many ranges it compacted. The storage app calls it every
  // second; without it, space came back only when enough new writes triggered compactions.
  absl::StatusOr<int> ReclaimOnce();
  // Rewrites the live data of blob files that hold garbage (chunks of deleted objects that share
  // a file with live ones) so that the files can be deleted. Runs when garbage is at least a
  // quarter of all blob bytes, or with `urgent` (the disk is nearly full) whenever there is some;
  // rewrites the oldest files up to where that frees the most garbage while the rewritten files
  // are at least a quarter garbage and their live data fits in half of `free_bytes`. Returns
  // whether it compacted. (RocksDB's own blob GC is off: it would rewrite the oldest files in
  // every compaction, garbage or not.)
  absl::StatusOr<bool> CollectGarbageOnce(bool urgent, uint64_t free_bytes);
  // Bytes of live object data and of everything RocksDB keeps on disk (SST + blob + WAL files),
  // and of the data files.
  struct DiskUsage {
    uint64_t sst_bytes = 0;
    uint64_t blob_bytes = 0;
    uint64_t file_bytes = 0;
  };
  DiskUsage disk_usage();
  // The raw database, for tests that damage it on purpose.
  rocksdb::DB* db_for_test() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* data_cf_for_test() { return data_cf_; }
  rocksdb::ColumnFamilyHandle* usage_cf_for_test() { return usage_cf_; }
  rocksdb::ColumnFamilyHandle* index_cf_for_test() { return index_cf_; }
  rocksdb::ColumnFamilyHandle* meta_cf_for_test() { return meta_cf_; }
  rocksdb::ColumnFamilyHandle* uploads_cf_for_test() { return uploads_cf_; }
  // The path of the data file of `data_id` (it may not exist).
  std::string DataFilePath(absl::string_view data_id) const;

 private:
  friend class RocksDbPutStream;
  friend class RocksDbObjectReader;
  friend class RocksDbDelete;
  static constexpr size_t kLockStripes = 64;

  // One object's write in the committing thread's queue.
  struct Grouped {
    std::string meta_key;
    // Holding the object's lock: reads what is held and adds the write to `batch`, or answers
    // without writing (refused or failed).
    std::function<std::optional<absl::StatusOr<WriteResult>>(rocksdb::WriteBatch& batch)> add;
    // Still holding it, once the batch is written: the answer.
    std::function<WriteResult()> written;
    // A delete: written once more on its own after the disk filled (it frees space).
    bool frees_space = false;
    // False for a record of holders: a group of only those is written without a sync.
    bool durable = true;
    WriteDone done;
  };
  void Group(Grouped grouped);
  // The committing thread: commits what waits, group by group, until the engine closes.
  void CommitGroups();
  // Commits `group` (the commits of one object at most once: a later one waits for the next).
  void CommitGroup(std::vector<Grouped>& group);

  explicit RocksDbEngine(RocksDbOptions options);
  // Creates the data file directory if missing.
  absl::Status OpenObjectsDir();
  absl::Status RemoveUploadDebris();
  // One pass over the data files at open, after RemoveUploadDebris (nothing is being written):
  // removes those that no record names (a database restored from an older moment than its data
  // files leaves them) and adds up the sizes of the rest.
  absl::Status ScanDataFiles();
  static size_t StripeOf(absl::string_view meta_key);
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
  // Adds (sign = 1) or takes away (sign = -1) `record`'s share of its partition's digest, and its
  // entry in the partition index.
  void AddDigest(rocksdb::WriteBatch& batch, const mcos::v1::ObjectKey& key,
                 const mcos::v1::ObjectRecord& record, int sign);
  // Builds the digest records from the object records if the database has none yet.
  absl::Status BuildDigests();
  // Builds the partition index from the object records if the database has none yet.
  absl::Status BuildPartitionIndex();
  // Calls `visit(bucket, first, second)` for each per-bucket record of `kind` and `option`.
  absl::Status ScanBuckets(char kind, absl::string_view option,
                           const std::function<void(uint32_t, uint64_t, uint64_t)>& visit);
  void AddUsage(rocksdb::WriteBatch& batch, absl::string_view meta_key, int64_t objects,
                int64_t bytes);
  // Adds the deletion of a record's data to `batch`.
  void DeleteData(const mcos::v1::ObjectRecord& record, rocksdb::WriteBatch& batch);
  // Queues the data of `record` (its chunks' key range, its data file) for ReclaimOnce; called
  // once the batch deleting them (DeleteData) is written.
  void QueueReclaim(const mcos::v1::ObjectRecord& record);
  // Removes the data file of `data_id` if it exists, and takes its size off file_bytes_.
  void RemoveDataFile(absl::string_view data_id);
  // `status` of a failed data file write, after releasing the space reserve if the disk is full.
  absl::Status FileFailed(const absl::Status& status);
  // The sequence number of the oldest snapshot of the database (UINT64_MAX: none).
  uint64_t OldestSnapshot();
  // Keeps `record` (just committed under `meta_key`, whose lock the caller holds) readable for
  // `ms` milliseconds.
  void Keep(const std::string& meta_key, const mcos::v1::ObjectRecord& record, uint32_t ms);
  // A kept version of `meta_key`, if any: its record and snapshot.
  struct Kept {
    std::shared_ptr<const rocksdb::Snapshot> snapshot;
    mcos::v1::ObjectRecord record;
    absl::Time expires;
  };
  std::optional<Kept> FindKept(const std::string& meta_key, const mcos::v1::Version& version);
  // Drops the expired kept versions; the sequence number of the oldest snapshot still kept
  // (UINT64_MAX: none).
  uint64_t ExpireKept();
  // A snapshot of now, released when the last holder lets go.
  std::shared_ptr<const rocksdb::Snapshot> SharedSnapshot();
  // After a write failed with ENOSPC: gives back the space reserve and resumes RocksDB (which
  // stops writing after such an error). OK if RocksDB resumed.
  absl::Status RecoverFromNoSpace(const rocksdb::Status& cause);
  // Checks that `incoming` more bytes fit above the free-space floor.
  absl::Status CheckSpace(uint64_t incoming);
  rocksdb::WriteOptions CommitWriteOptions() const;

  RocksDbOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* uploads_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* usage_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* index_cf_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::array<absl::Mutex, kLockStripes> locks_;
  int recovered_uploads_ = 0;
  absl::Mutex reclaim_mu_;
  // [begin, end) data keys whose chunks were deleted and await compaction, with the sequence
  // number at which they were (at most).
  struct Reclaim {
    std::string begin;
    std::string end;
    uint64_t sequence;
  };
  std::vector<Reclaim> reclaim_ ABSL_GUARDED_BY(reclaim_mu_);
  // Data files of replaced or deleted versions, removed once no snapshot from before the sequence
  // number of their deletion is left.
  struct ReclaimFile {
    std::string data_id;
    uint64_t sequence;
  };
  std::vector<ReclaimFile> reclaim_files_ ABSL_GUARDED_BY(reclaim_mu_);
  std::string objects_dir_;  // the data files: <path>/objects/<hex data_id>
  std::atomic<uint64_t> file_bytes_{0};
  absl::Mutex kept_mu_;
  std::multimap<std::string, Kept> kept_ ABSL_GUARDED_BY(kept_mu_);
  // Compact all object data next time (set at open).
  bool reclaim_all_ ABSL_GUARDED_BY(reclaim_mu_) = false;
  absl::Mutex resume_mu_;
  absl::Mutex group_mu_;
  std::deque<Grouped> grouped_ ABSL_GUARDED_BY(group_mu_);
  bool closing_ ABSL_GUARDED_BY(group_mu_) = false;
  std::thread committer_;  // started by Open
};

}  // namespace mcos::storage
