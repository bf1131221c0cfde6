#include "storage/rocksdb_engine.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "placement/placement.h"
#include "storage/data_file.h"
#include "storage/engine_rules.h"

namespace mcos::storage {
namespace {

using mcos::v1::ObjectKey;
using mcos::v1::ObjectRecord;

constexpr char kMetaCf[] = "meta";
constexpr char kDataCf[] = "data";
constexpr char kUploadsCf[] = "uploads";
constexpr char kUsageCf[] = "usage";
constexpr char kIndexCf[] = "index";
constexpr size_t kDataIdBytes = 16;
constexpr size_t kChecksumBytes = 8;
// Records with at most this many chunks have them deleted one by one; larger ones by a range
// tombstone (cheaper to write, slightly more costly to read past until compacted).
constexpr uint64_t kPointDeleteMaxChunks = 16;
// Chunks of one upload that go through the WAL; the rest go to the upload's data file (see
// WriteFullChunk).
constexpr uint64_t kWalChunks = 8;

// RocksDB's messages name files and paths of the node: they go to the log, and callers get the
// kind of failure and what it hit.
absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat(what, ": not found"));
  common::LogWarning(what, ": ", s.ToString());
  if (s.IsNoSpace()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what,
        ": the cluster is out of space (its storage disk is full); delete objects or add "
        "capacity, then retry"));
  }
  if (s.IsPathNotFound()) {
    return absl::DataLossError(
        absl::StrCat(what, ": a data file of the storage node is missing (see its log)"));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(
        absl::StrCat(what, ": the storage node found corrupt data (see its log)"));
  }
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(absl::StrCat(what, ": invalid"));
  if (s.IsNotSupported()) return absl::UnimplementedError(absl::StrCat(what, ": not supported"));
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() || s.IsIOError() || s.IsIncomplete()) {
    return absl::UnavailableError(
        absl::StrCat(what, ": the storage node had an I/O error (see its log); retry"));
  }
  return absl::InternalError(absl::StrCat(what, ": storage engine error (see the node's log)"));
}

// RocksDB's info log, sent to the process log (warnings and errors only) instead of a LOG file in
// the database directory: on a full disk a LOG file fails to grow, and Debian's RocksDB (built with
// assertions) aborts on the next write to a file that failed.
class ProcessLogger final : public rocksdb::Logger {
 public:
  ProcessLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), format, ap);
    common::LogWarning("rocksdb: ", buf);
  }
};

// A compaction that meets corrupt data (only blob garbage collection re-reads object data, and
// checks it) fails alone instead of stopping the database: RocksDB's default makes that a fatal
// background error, after which every write fails until a restart, the write that replaces the
// corrupt copy included. Object data carries its own checksums, checked on every read and by the
// scrubber, which replaces the copy; the collection then finds only garbage where it failed.
class CompactionCorruptionListener final : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override {
    if (reason != rocksdb::BackgroundErrorReason::kCompaction || !error->IsCorruption()) return;
    common::LogWarning("a compaction met corrupt data (", error->ToString(),
                       "); it is abandoned and writes go on: the scrubber replaces the corrupt "
                       "copy from a peer");
    *error = rocksdb::Status::OK();
  }
};

void PutU64BigEndian(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void EncodeFixed64Le(char* buf, uint64_t v) {
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint64_t DecodeFixed64Le(const char* buf) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(buf[i]);
  return v;
}

void EncodeUsage(char* buf, int64_t objects, int64_t bytes) {
  EncodeFixed64Le(buf, static_cast<uint64_t>(objects));
  EncodeFixed64Le(buf + 8, static_cast<uint64_t>(bytes));
}

// Adds pairs of 64-bit words, wrapping: (objects, bytes) of usage records, (records, digest) of
// digest records. The merge operator of the usage column family.
class UsageAddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    uint64_t first = 0, second = 0;
    for (const rocksdb::Slice* s : {existing, &value}) {
      if (s == nullptr) continue;
      if (s->size() != 16) return false;  // corrupt: RocksDB reports it
      first += DecodeFixed64Le(s->data());
      second += DecodeFixed64Le(s->data() + 8);
    }
    new_value->resize(16);
    EncodeFixed64Le(new_value->data(), first);
    EncodeFixed64Le(new_value->data() + 8, second);
    return true;
  }
  const char* Name() const override { return "mcos.UsageAdd"; }
};

std::string NewDataId() {
  std::string id(kDataIdBytes, '\0');
  MCOS_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), kDataIdBytes) == 1);
  return id;
}

}  // namespace

std::string DataKey(absl::string_view data_id, uint64_t index) {
  std::string key(data_id);
  PutU64BigEndian(&key, index);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Upload

class RocksDbPutStream final : public PutStream {
 public:
  RocksDbPutStream(RocksDbEngine& engine, mcos::v1::StoragePutHeader header,
                   std::optional<WriteResult> superseded)
      : engine_(engine),
        header_(std::move(header)),
        meta_key_(
            ObjectMetaKey(header_.key().user(), header_.key().container(), header_.key().object())),
        data_id_(NewDataId()),
        superseded_(std::move(superseded)),
        content_(header_) {}

  ~RocksDbPutStream() override {
    if (!committed_) Discard();
  }

  const std::optional<WriteResult>& superseded() const override { return superseded_; }

  absl::Status Append(absl::string_view data) override {
    if (superseded_ || failed_) return absl::OkStatus();
    return content_.Add(data, [&] {
      // Meanwhile, its MD5 is computed on a side thread.
      for (absl::string_view rest = data; !rest.empty();) {
        rest.remove_prefix(buffer_.Append(rest.substr(0, kChunkSize - buffer_.size())));
        if (buffer_.size() == kChunkSize) {
          if (auto s = WriteFullChunk(); !s.ok()) {
            failed_ = true;
            return s;
          }
        }
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<WriteResult> Commit(const mcos::v1::StoragePutFinish& finish) override {
    if (superseded_) {
      committed_ = true;
      return *superseded_;
    }
    MCOS_RETURN_IF_ERROR(Prepare(finish));
    absl::MutexLock lock(&engine_.LockFor(meta_key_));
    rocksdb::WriteBatch batch;
    if (auto decided = AddTo(batch)) return *std::move(decided);
    const rocksdb::Status written = engine_.db_->Write(engine_.CommitWriteOptions(), &batch);
    if (written.IsNoSpace()) engine_.RecoverFromNoSpace(written).IgnoreError();
    MCOS_RETURN_IF_ERROR(FromRocksDb(written, absl::StrCat("commit ", Describe(header_.key()))));
    return Written();
  }

  // Whether the engine's committing thread may commit it: all of it is in memory (no data file;
  // its one chunk goes into the commit's batch).
  bool Groupable() const { return !file_ && !intent_written_; }

  // The first part of a commit, on the caller's thread: checks the content against the header
  // and `finish` and makes the record.
  absl::Status Prepare(const mcos::v1::StoragePutFinish& finish) {
    if (failed_) return absl::UnavailableError("an earlier chunk write failed; nothing was stored");
    MCOS_ASSIGN_OR_RETURN(record_, content_.Finish(finish));
    if (!buffer_.empty() && InFile(next_index_)) MCOS_RETURN_IF_ERROR(WriteFileChunk());
    if (file_) {
      // The file's data, and its name in the directory, are durable before the record that
      // points at them.
      if (engine_.options_.sync_commits) {
        MCOS_RETURN_IF_ERROR(file_->Sync());
        MCOS_RETURN_IF_ERROR(DataFile::SyncDirectory(engine_.objects_dir_));
      }
      record_.set_file_first_chunk(file_first_);
      file_.reset();
    }
    record_.set_chunk_size(kChunkSize);
    record_.set_chunk_count(next_index_ + (buffer_.empty() ? 0 : 1));
    record_.set_data_id(data_id_);
    keep_readable_ms_ = finish.keep_readable_ms();
    return absl::OkStatus();
  }

  // Holding the object's lock, after Prepare: reads what is stored and adds the commit to
  // `batch`; or answers without writing (a newer version is held; the precondition fails).
  std::optional<absl::StatusOr<WriteResult>> AddTo(rocksdb::WriteBatch& batch) {
    absl::StatusOr<std::optional<ObjectRecord>> read = engine_.ReadRecord(meta_key_);
    if (!read.ok()) return read.status();
    current_ = *std::move(read);
    const std::optional<mcos::v1::Version> version = CommitVersion(
        current_ ? &*current_ : nullptr, record_.version(), header_.restamp(), header_.repair());
    if (!version) {
      // The destructor discards our chunks.
      return WriteResult{false, *current_, SupersededReason(*current_, record_.version())};
    }
    *record_.mutable_version() = *version;
    const bool live = current_ && !current_->tombstone();
    if (absl::Status s = CheckPrecondition(header_.precondition(), header_.key(), live); !s.ok()) {
      return s;
    }
    *record_.mutable_created() = live ? current_->created() : record_.modified();

    if (!buffer_.empty()) AddChunk(batch);
    for (size_t i = 0; i < file_sums_.size(); ++i) {
      char sum[kChecksumBytes];
      EncodeFixed64Le(sum, file_sums_[i]);
      batch.Put(engine_.data_cf_, DataKey(data_id_, file_first_ + i),
                rocksdb::Slice(sum, kChecksumBytes));
    }
    batch.Put(engine_.meta_cf_, meta_key_, record_.SerializeAsString());
    if (intent_written_) batch.Delete(engine_.uploads_cf_, data_id_);
    if (current_) engine_.DeleteData(*current_, batch);
    engine_.AddUsage(
        batch, meta_key_, live ? 0 : 1,
        static_cast<int64_t>(record_.size()) - static_cast<int64_t>(live ? current_->size() : 0));
    if (live) engine_.AddPartitionUsage(batch, header_.key(), *current_, -1);
    engine_.AddPartitionUsage(batch, header_.key(), record_, +1);
    if (current_) engine_.AddDigest(batch, header_.key(), *current_, -1);
    engine_.AddDigest(batch, header_.key(), record_, +1);
    return std::nullopt;
  }

  // Holding the object's lock, once the batch of AddTo is written.
  WriteResult Written() {
    if (current_) engine_.QueueReclaim(*current_);
    if (keep_readable_ms_ > 0) engine_.Keep(meta_key_, record_, keep_readable_ms_);
    committed_ = true;
    return WriteResult{true, std::move(record_), ""};
  }

  const std::string& meta_key() const { return meta_key_; }

 private:
  // Whether chunk `index` goes to the data file: past the first kWalChunks, or every chunk of an
  // upload whose size says it will have more than that.
  bool InFile(uint64_t index) const {
    return file_ || index >= kWalChunks ||
           (header_.has_size() && header_.size() > uint64_t{kWalChunks} * kChunkSize);
  }

  // Writes the buffered full chunk. The first kWalChunks chunks of an upload go through the WAL
  // (the commit's fsync makes them durable: one fsync for a small object; the flush writes them
  // once more); later ones, or all of an upload declared larger, go to its data file, so a large
  // object is written to disk once and never through RocksDB's memtables, flushes and software
  // CRC32C.
  absl::Status WriteFullChunk() {
    MCOS_RETURN_IF_ERROR(engine_.CheckSpace(0));
    if (InFile(next_index_)) return WriteFileChunk();
    rocksdb::WriteBatch batch;
    if (!intent_written_) batch.Put(engine_.uploads_cf_, data_id_, meta_key_);
    AddChunk(batch);
    const rocksdb::Status written = engine_.db_->Write(rocksdb::WriteOptions(), &batch);
    if (written.IsNoSpace()) engine_.RecoverFromNoSpace(written).IgnoreError();
    MCOS_RETURN_IF_ERROR(FromRocksDb(written, "write chunk"));
    intent_written_ = true;
    return absl::OkStatus();
  }

  // Appends the buffered bytes as the next chunk to the data file (created with the first one),
  // and empties the buffer. The upload's intent record is durable before the file is created, so
  // that a crash can never leave a file on disk that no intent names.
  absl::Status WriteFileChunk() {
    if (!file_) {
      if (!intent_written_) {
        rocksdb::WriteBatch intent;
        intent.Put(engine_.uploads_cf_, data_id_, meta_key_);
        MCOS_RETURN_IF_ERROR(FromRocksDb(engine_.db_->Write(engine_.CommitWriteOptions(), &intent),
                                         "record the upload"));
        intent_written_ = true;
      } else if (engine_.options_.sync_commits) {
        MCOS_RETURN_IF_ERROR(FromRocksDb(engine_.db_->SyncWAL(), "sync upload intent"));
      }
      absl::StatusOr<DataFile> created = DataFile::Create(engine_.DataFilePath(data_id_));
      if (!created.ok()) return engine_.FileFailed(created.status());
      file_.emplace(*std::move(created));
      file_first_ = next_index_;
    }
    file_sums_.push_back(
        common::ChunkChecksum(buffer_.view(), common::Hash64(DataKey(data_id_, next_index_))));
    const uint64_t before = file_->size();
    const absl::Status appended = file_->Append(buffer_);
    engine_.file_bytes_.fetch_add(file_->size() - before);
    if (!appended.ok()) return engine_.FileFailed(appended);
    ++next_index_;
    buffer_.clear();
    return absl::OkStatus();
  }

  // Adds the buffered bytes as the next chunk to `batch` and empties the buffer.
  void AddChunk(rocksdb::WriteBatch& batch) {
    const std::string key = DataKey(data_id_, next_index_);
    char sum[kChecksumBytes];
    EncodeFixed64Le(sum, common::ChunkChecksum(buffer_.view(), common::Hash64(key)));
    const rocksdb::Slice key_slice(key);
    const rocksdb::Slice parts[2] = {rocksdb::Slice(sum, kChecksumBytes),
                                     rocksdb::Slice(buffer_.data(), buffer_.size())};
    batch.Put(engine_.data_cf_, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 2));
    ++next_index_;
    buffer_.clear();
  }

  // Deletes whatever this upload wrote (best effort: Open() removes what remains after a crash).
  void Discard() {
    if (!intent_written_) return;
    if (file_first_ != kNoFile) {
      file_.reset();
      engine_.RemoveDataFile(data_id_);
    }
    ObjectRecord mine;
    mine.set_data_id(data_id_);
    mine.set_chunk_count(std::min(next_index_, file_first_));  // the file's sums are not written
    rocksdb::WriteBatch batch;
    engine_.DeleteData(mine, batch);
    batch.Delete(engine_.uploads_cf_, data_id_);
    auto s = engine_.db_->Write(rocksdb::WriteOptions(), &batch);
    if (s.IsNoSpace() && engine_.RecoverFromNoSpace(s).ok()) {
      s = engine_.db_->Write(rocksdb::WriteOptions(), &batch);
    }
    if (!s.ok()) {
      common::LogWarning("cannot discard an interrupted upload of ", Describe(header_.key()), ": ",
                         s.ToString(), " (it is removed at the next start)");
      return;
    }
    engine_.QueueReclaim(mine);
  }

  RocksDbEngine& engine_;
  mcos::v1::StoragePutHeader header_;
  std::string meta_key_;
  std::string data_id_;
  std::optional<WriteResult> superseded_;
  UploadContent content_;
  AlignedBuffer buffer_{kChunkSize};
  uint64_t next_index_ = 0;
  static constexpr uint64_t kNoFile = UINT64_MAX;
  std::optional<DataFile> file_;     // open while the upload writes it
  uint64_t file_first_ = kNoFile;    // the first chunk in the file
  std::vector<uint64_t> file_sums_;  // the checksums of the chunks in the file
  bool intent_written_ = false;
  bool committed_ = false;
  bool failed_ = false;
  ObjectRecord record_;                  // the new version's, from Prepare
  std::optional<ObjectRecord> current_;  // what AddTo found stored
  uint32_t keep_readable_ms_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Download

class RocksDbObjectReader final : public ObjectReader {
 public:
  RocksDbObjectReader(RocksDbEngine& engine, std::shared_ptr<const rocksdb::Snapshot> snapshot,
                      std::optional<DataFile> file, ObjectKey key, ObjectRecord record,
                      uint64_t begin, uint64_t end)
      : engine_(engine),
        snapshot_(std::move(snapshot)),
        file_(std::move(file)),
        key_(std::move(key)),
        record_(std::move(record)),
        pos_(begin),
        end_(end) {}

  const ObjectRecord& record() const override { return record_; }

  absl::StatusOr<bool> Next(std::string* out) override {
    if (pos_ >= end_) return false;
    const uint64_t chunk_size = record_.chunk_size();
    const uint64_t index = pos_ / chunk_size;
    const std::string key = DataKey(record_.data_id(), index);
    const uint64_t expected =
        index + 1 < record_.chunk_count() ? chunk_size : record_.size() - index * chunk_size;
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_.get();
    // Our own XXH3 checksum (below) covers every chunk end to end; RocksDB's blob CRC32c is
    // computed in software by Debian's portable build and would cost half of the read CPU.
    ro.verify_checksums = false;
    rocksdb::PinnableSlice value;  // the checksum and the payload, or the checksum only
    const rocksdb::Status s = engine_.db_->Get(ro, engine_.data_cf_, key, &value);
    if (s.IsNotFound()) {
      return absl::DataLossError(absl::StrCat("chunk ", index, " of ", Describe(key_),
                                              " is missing on this storage node"));
    }
    MCOS_RETURN_IF_ERROR(FromRocksDb(s, absl::StrCat("read ", Describe(key_))));
    absl::string_view payload(value.data(), value.size());
    payload.remove_prefix(std::min(payload.size(), kChecksumBytes));
    if (file_ && index >= record_.file_first_chunk()) {
      const uint64_t slot = index - record_.file_first_chunk();
      MCOS_RETURN_IF_ERROR(file_->ReadAt(slot * chunk_size, expected, file_chunk_));
      payload = file_chunk_.view();
    }
    if (value.size() < kChecksumBytes || payload.size() != expected ||
        DecodeFixed64Le(value.data()) != common::ChunkChecksum(payload, common::Hash64(key))) {
      return absl::DataLossError(
          absl::StrCat("chunk ", index, " of ", Describe(key_),
                       " is corrupt (checksum mismatch) on this storage node"));
    }
    const uint64_t within = pos_ - index * chunk_size;
    const uint64_t n = std::min(end_ - pos_, expected - within);
    out->assign(payload.data() + within, n);
    pos_ += n;
    return true;
  }

 private:
  RocksDbEngine& engine_;
  const std::shared_ptr<const rocksdb::Snapshot> snapshot_;
  const std::optional<DataFile> file_;    // the record's data file, if it has one
  AlignedBuffer file_chunk_{kChunkSize};  // the last chunk read from it
  ObjectKey key_;
  ObjectRecord record_;
  uint64_t pos_;
  uint64_t end_;
};

// ---------------------------------------------------------------------------------------------
// Engine

RocksDbEngine::RocksDbEngine(RocksDbOptions options) : options_(std::move(options)) {}

RocksDbEngine::~RocksDbEngine() {
  {
    absl::MutexLock lock(&group_mu_);
    closing_ = true;
  }
  if (committer_.joinable()) committer_.join();  // once it committed what waits
  {
    absl::MutexLock lock(&kept_mu_);
    kept_.clear();  // their snapshots, before the database closes
  }
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
}

absl::StatusOr<std::unique_ptr<RocksDbEngine>> RocksDbEngine::Open(const RocksDbOptions& options) {
  std::unique_ptr<RocksDbEngine> engine(new RocksDbEngine(options));
  std::error_code ec;
  std::filesystem::create_directories(options.path,
                                      ec);  // RocksDB logs an error when it is missing

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1u << 20;
  db_options.max_total_wal_size = options.max_total_wal_bytes;
  // No preallocation of WAL files (1.1 memtables each): on a small or nearly full disk it takes
  // space that statvfs then reports as used, and the floor would trip early.
  db_options.allow_fallocate = false;
  db_options.info_log = std::make_shared<ProcessLogger>();
  db_options.listeners.push_back(std::make_shared<CompactionCorruptionListener>());
  // Open replays the WAL into memtables without flushing them at once, so that a node can start on
  // a nearly full disk (the WAL files stay until the next flush).
  db_options.avoid_flush_during_recovery = true;
  // A writer waiting for its write group's leader sleeps at once instead of spinning with
  // sched_yield for up to 100 us: on two cores the spin takes the CPU the leader needs.
  db_options.enable_write_thread_adaptive_yield = false;

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.checksum = rocksdb::kXXH3;  // hardware-speed; Debian's CRC32c is the software one

  // Memtables are kept small but for object data: after a full disk, RocksDB resumes writing only
  // once the largest memtable size is free.
  rocksdb::ColumnFamilyOptions unused;
  unused.write_buffer_size = 1u << 20;
  rocksdb::ColumnFamilyOptions meta;
  meta.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  meta.write_buffer_size = std::min<size_t>(8u << 20, options.data_write_buffer_bytes);

  rocksdb::ColumnFamilyOptions data;
  data.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  data.write_buffer_size = options.data_write_buffer_bytes;
  data.max_write_buffer_number = options.max_write_buffers;
  data.enable_blob_files = true;
  data.min_blob_size = options.min_blob_bytes;
  data.blob_file_size = 256u << 20;
  data.blob_compression_type = rocksdb::kNoCompression;  // object data is mostly incompressible
  // RocksDB's own blob GC would rewrite the live blobs of the oldest files in every compaction,
  // garbage or not: objects are mostly written once, so that is write amplification for nothing.
  // CollectGarbageOnce turns it on for one compaction when files hold enough garbage.
  data.enable_blob_garbage_collection = false;
  data.compression = rocksdb::kLZ4Compression;

  rocksdb::ColumnFamilyOptions uploads;
  uploads.write_buffer_size = 4u << 20;
  rocksdb::ColumnFamilyOptions usage;
  usage.write_buffer_size = 4u << 20;
  usage.merge_operator = std::make_shared<UsageAddOperator>();

  rocksdb::ColumnFamilyOptions index;
  index.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  index.write_buffer_size = 4u << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, unused},
                                                      {kMetaCf, meta},
                                                      {kDataCf, data},
                                                      {kUploadsCf, uploads},
                                                      {kUsageCf, usage},
                                                      {kIndexCf, index}};
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, cfs, &engine->handles_, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && absl::StrContains(s.ToString(), "lock")) {
      return absl::UnavailableError(absl::StrCat("storage directory ", options.path,
                                                 " is in use by another process: ", s.ToString()));
    }
    return FromRocksDb(s, absl::StrCat("open storage at ", options.path));
  }
  engine->db_.reset(raw);
  engine->meta_cf_ = engine->handles_[1];
  engine->data_cf_ = engine->handles_[2];
  engine->uploads_cf_ = engine->handles_[3];
  engine->usage_cf_ = engine->handles_[4];
  engine->index_cf_ = engine->handles_[5];
  MCOS_RETURN_IF_ERROR(engine->OpenObjectsDir());
  MCOS_RETURN_IF_ERROR(engine->RemoveUploadDebris());
  MCOS_RETURN_IF_ERROR(engine->ScanDataFiles());
  MCOS_RETURN_IF_ERROR(engine->BuildDigests());
  MCOS_RETURN_IF_ERROR(engine->BuildPartitionIndex());
  {
    // Deletions made before a crash may not have been compacted: count their garbage now.
    absl::MutexLock lock(&engine->reclaim_mu_);
    engine->reclaim_all_ = true;
  }
  engine->committer_ = std::thread([e = engine.get()] { e->CommitGroups(); });
  return engine;
}

absl::Status RocksDbEngine::OpenObjectsDir() {
  objects_dir_ = options_.path + "/objects";
  std::error_code ec;
  std::filesystem::create_directory(objects_dir_, ec);
  if (ec) {
    return FileError(ec.value(), "create the data file directory", objects_dir_);
  }
  std::filesystem::permissions(objects_dir_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  return absl::OkStatus();
}

absl::Status RocksDbEngine::RemoveUploadDebris() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), uploads_cf_));
  rocksdb::WriteBatch batch;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string data_id = it->key().ToString();
    const std::string begin = DataKey(data_id, 0);
    const std::string end = DataKey(data_id, UINT64_MAX);
    batch.DeleteRange(data_cf_, begin, end);
    batch.Delete(data_cf_, end);
    batch.Delete(uploads_cf_, data_id);
    RemoveDataFile(data_id);
    {
      absl::MutexLock lock(&reclaim_mu_);
      reclaim_.push_back(Reclaim{begin, end, 0});
    }
    ++recovered_uploads_;
  }
  MCOS_RETURN_IF_ERROR(FromRocksDb(it->status(), "scan interrupted uploads"));
  if (recovered_uploads_ > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    MCOS_RETURN_IF_ERROR(FromRocksDb(db_->Write(wo, &batch), "remove interrupted uploads"));
    common::LogInfo("removed the data of ", recovered_uploads_, " interrupted upload(s)");
  }
  return absl::OkStatus();
}

absl::Status RocksDbEngine::ScanDataFiles() {
  // A committed version's data file has its chunks' checksums under its data id in the data
  // family (written in the commit batch, deleted with the version); an upload under way has an
  // intent in the uploads family (synced before its file was created).
  std::unique_ptr<rocksdb::Iterator> data(db_->NewIterator(rocksdb::ReadOptions(), data_cf_));
  uint64_t bytes = 0;
  int orphans = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(objects_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name.size() == 2 * kDataIdBytes &&
                      name.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (ours) {
      const std::string data_id = absl::HexStringToBytes(name);
      data->Seek(DataKey(data_id, 0));
      MCOS_RETURN_IF_ERROR(FromRocksDb(data->status(), "look up the chunks of a data file"));
      std::string intent;
      const rocksdb::Status s =
          data->Valid() && data->key().starts_with(data_id)
              ? rocksdb::Status::OK()
              : db_->Get(rocksdb::ReadOptions(), uploads_cf_, data_id, &intent);
      if (!s.ok() && !s.IsNotFound()) return FromRocksDb(s, "look up the upload of a data file");
      if (s.IsNotFound()) {
        std::error_code remove_ec;
        if (std::filesystem::remove(entry.path(), remove_ec)) {
          ++orphans;
          continue;
        }
        FileError(remove_ec.value(), "remove a data file no record names", entry.path().string())
            .IgnoreError();  // logged; it stays, counted below
      }
    }
    std::error_code size_ec;
    const uintmax_t size = entry.file_size(size_ec);
    if (!size_ec) bytes += size;
  }
  if (ec) return FileError(ec.value(), "list the data files", objects_dir_);
  // Set once the debris is gone (RemoveDataFile's subtractions before this are overwritten).
  file_bytes_.store(bytes);
  if (orphans > 0) {
    common::LogWarning("removed ", orphans,
                       " data file(s) that no object record names (the database is older than "
                       "its data files, e.g. restored from a backup)");
  }
  return absl::OkStatus();
}

size_t RocksDbEngine::StripeOf(absl::string_view meta_key) {
  return common::Hash64(meta_key) % kLockStripes;
}

absl::Mutex& RocksDbEngine::LockFor(absl::string_view meta_key) {
  return locks_[StripeOf(meta_key)];
}

rocksdb::WriteOptions RocksDbEngine::CommitWriteOptions() const {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_commits;
  return wo;
}

absl::StatusOr<std::optional<ObjectRecord>> RocksDbEngine::ReadRecord(
    absl::string_view meta_key, const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(ro, meta_cf_, rocksdb::Slice(meta_key.data(), meta_key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  MCOS_RETURN_IF_ERROR(FromRocksDb(s, "read object record"));
  ObjectRecord record;
  if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError("an object record on this storage node cannot be parsed");
  }
  return record;
}

void RocksDbEngine::AddUsage(rocksdb::WriteBatch& batch, absl::string_view meta_key,
                             int64_t objects, int64_t bytes) {
  if (objects == 0 && bytes == 0) return;
  // The container prefix is the meta key without the object name.
  const size_t user_len = static_cast<uint8_t>(meta_key[0]);
  const size_t container_len = static_cast<uint8_t>(meta_key[1 + user_len]);
  const absl::string_view prefix = meta_key.substr(0, 2 + user_len + container_len);
  char value[16];
  EncodeUsage(value, objects, bytes);
  batch.Merge(usage_cf_, rocksdb::Slice(prefix.data(), prefix.size()), rocksdb::Slice(value, 16));
}

namespace {

// Keys of per-bucket records in the usage column family: 0x00 | kind | u8 len(option) | option |
// u32be bucket. 0x00 cannot start a container prefix (user names are not empty).
constexpr char kPartitionUsageKind = 'p';
constexpr char kDigestKind = 'd';
// Present once the digest records are complete (written with the first open that knew them).
rocksdb::Slice DigestsBuiltKey() { return {"\0m-digests-v1", 13}; }
// Present once the partition index is complete (a database from before it gets it built at open).
rocksdb::Slice IndexBuiltKey() { return {"\0m-index-v1", 11}; }

// The partition index's key of a record: u8 len(option) | option | IndexPosition.
std::string IndexPrefix(absl::string_view option) {
  std::string k(1, static_cast<char>(option.size()));
  k.append(option.data(), option.size());
  return k;
}
std::string IndexKey(absl::string_view option, uint32_t bucket, const ObjectKey& key) {
  return IndexPrefix(option) +
         IndexPosition(bucket, ObjectMetaKey(key.user(), key.container(), key.object()));
}

std::string BucketPrefix(char kind, absl::string_view option) {
  std::string key(1, '\0');
  key.push_back(kind);
  key.push_back(static_cast<char>(option.size()));
  key.append(option.data(), option.size());
  return key;
}

std::string BucketKey(char kind, absl::string_view option, uint32_t bucket) {
  std::string k = BucketPrefix(kind, option);
  for (int shift = 24; shift >= 0; shift -= 8) k.push_back(static_cast<char>(bucket >> shift));
  return k;
}

}  // namespace

void RocksDbEngine::AddPartitionUsage(rocksdb::WriteBatch& batch, const ObjectKey& key,
                                      const ObjectRecord& record, int sign) {
  if (record.option().empty() || record.tombstone()) return;
  char value[16];
  EncodeUsage(value, sign, sign * static_cast<int64_t>(record.size()));
  batch.Merge(usage_cf_, BucketKey(kPartitionUsageKind, record.option(), UsageBucket(key)),
              rocksdb::Slice(value, 16));
}

void RocksDbEngine::AddDigest(rocksdb::WriteBatch& batch, const ObjectKey& key,
                              const ObjectRecord& record, int sign) {
  const uint64_t share = DigestShare(key, record.version());
  char value[16];
  // Unsigned arithmetic: the merge adds modulo 2^64, so adding the negation subtracts.
  EncodeFixed64Le(value, sign > 0 ? uint64_t{1} : ~uint64_t{0});
  EncodeFixed64Le(value + 8, sign > 0 ? share : uint64_t{0} - share);
  const uint32_t bucket = UsageBucket(key);
  batch.Merge(usage_cf_, BucketKey(kDigestKind, record.option(), bucket),
              rocksdb::Slice(value, 16));
  // The index entry goes with the record's share: a replaced record's entry is deleted and the
  // new one's put (the same key unless the option changed; in one batch, the put wins).
  const std::string index_key = IndexKey(record.option(), bucket, key);
  if (sign > 0) {
    batch.Put(index_cf_, index_key, rocksdb::Slice());
  } else {
    batch.Delete(index_cf_, index_key);
  }
}

absl::Status RocksDbEngine::BuildDigests() {
  std::string built;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), usage_cf_, DigestsBuiltKey(), &built);
  if (s.ok()) return absl::OkStatus();
  if (!s.IsNotFound()) return FromRocksDb(s, "read the digest marker");
  // A database written before digests existed: add up every record once.
  std::map<std::string, std::pair<uint64_t, uint64_t>> buckets;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  uint64_t records = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ObjectKey key;
    ObjectRecord record;
    if (!ParseObjectMetaKey(absl::string_view(it->key().data(), it->key().size()), &key) ||
        !record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("an object record on this storage node cannot be parsed");
    }
    auto& [count, digest] = buckets[BucketKey(kDigestKind, record.option(), UsageBucket(key))];
    ++count;
    digest += DigestShare(key, record.version());
    ++records;
  }
  MCOS_RETURN_IF_ERROR(FromRocksDb(it->status(), "scan object records"));
  rocksdb::WriteBatch batch;
  const std::string begin = BucketPrefix(kDigestKind, "").substr(0, 2);
  batch.DeleteRange(usage_cf_, begin, PrefixSuccessor(begin));
  for (const auto& [k, v] : buckets) {
    char value[16];
    EncodeFixed64Le(value, v.first);
    EncodeFixed64Le(value + 8, v.second);
    batch.Put(usage_cf_, k, rocksdb::Slice(value, 16));
  }
  batch.Put(usage_cf_, DigestsBuiltKey(), "1");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  MCOS_RETURN_IF_ERROR(FromRocksDb(db_->Write(wo, &batch), "write partition digests"));
  if (records > 0) common::LogInfo("built the partition digests of ", records, " object record(s)");
  return absl::OkStatus();
}

absl::Status RocksDbEngine::BuildPartitionIndex() {
  std::string built;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), usage_cf_, IndexBuiltKey(), &built);
  if (s.ok()) return absl::OkStatus();
  if (!s.IsNotFound()) return FromRocksDb(s, "read the partition index marker");
  // A database written before the index existed: index every record once, in batches.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  uint64_t records = 0;
  rocksdb::WriteBatch batch;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ObjectKey key;
    ObjectRecord record;
    if (!ParseObjectMetaKey(absl::string_view(it->key().data(), it->key().size()), &key) ||
        !record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("an object record on this storage node cannot be parsed");
    }
    batch.Put(index_cf_, IndexKey(record.option(), UsageBucket(key), key), rocksdb::Slice());
    if (++records % 10000 == 0) {
      MCOS_RETURN_IF_ERROR(FromRocksDb(db_->Write(wo, &batch), "write the partition index"));
      batch.Clear();
    }
  }
  MCOS_RETURN_IF_ERROR(FromRocksDb(it->status(), "scan object records"));
  batch.Put(usage_cf_, IndexBuiltKey(), "1");
  MCOS_RETURN_IF_ERROR(FromRocksDb(db_->Write(wo, &batch), "write the partition index"));
  if (records > 0) common::LogInfo("built the partition index of ", records, " object record(s)");
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::ScanPartitionResponse> RocksDbEngine::ScanPartition(
    const mcos::v1::ScanPartitionRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckScanRequest(request));
  ScanPage page(request);
  const std::string prefix = IndexPrefix(request.option());
  // One snapshot for the index and the records, so that each entry has its record.
  std::shared_ptr<const rocksdb::Snapshot> snapshot = SharedSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, index_cf_));
  for (it->Seek(prefix + page.begin()); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const absl::string_view position(it->key().data() + prefix.size(),
                                     it->key().size() - prefix.size());
    ObjectKey key;
    if (position.size() < 4 || !ParseObjectMetaKey(position.substr(4), &key)) {
      return absl::DataLossError("a partition index entry on this storage node is corrupt");
    }
    MCOS_ASSIGN_OR_RETURN(std::optional<ObjectRecord> record,
                          ReadRecord(position.substr(4), snapshot.get()));
    if (!record) continue;  // cannot happen: entries and records change in one batch
    if (!page.Add(position, key, *record)) break;
  }
  MCOS_RETURN_IF_ERROR(FromRocksDb(it->status(), "scan the partition index"));
  return page.Finish();
}

absl::StatusOr<mcos::v1::PartitionDigestsResponse> RocksDbEngine::PartitionDigests(
    const mcos::v1::PartitionDigestsRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckDigestsRequest(request));
  DigestFolder folder(request);
  MCOS_RETURN_IF_ERROR(ScanBuckets(kDigestKind, request.option(),
                                   [&](uint32_t bucket, uint64_t count, uint64_t digest) {
                                     folder.Add(bucket, count, digest);
                                   }));
  return folder.Finish();
}

absl::Status RocksDbEngine::ScanBuckets(
    char kind, absl::string_view option,
    const std::function<void(uint32_t, uint64_t, uint64_t)>& visit) {
  const std::string prefix = BucketPrefix(kind, option);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), usage_cf_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() != prefix.size() + 4 || it->value().size() != 16) {
      return absl::DataLossError("a partition usage record on this storage node is corrupt");
    }
    uint32_t bucket = 0;
    for (size_t i = 0; i < 4; ++i) {
      bucket = (bucket << 8) | static_cast<uint8_t>(k[prefix.size() + i]);
    }
    visit(bucket, DecodeFixed64Le(it->value().data()), DecodeFixed64Le(it->value().data() + 8));
  }
  return FromRocksDb(it->status(), "read partition usage");
}

absl::StatusOr<mcos::v1::PartitionUsageResponse> RocksDbEngine::PartitionUsage(
    const mcos::v1::PartitionUsageRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckPartitionPower(request.partition_power()));
  const uint32_t power = request.partition_power();
  mcos::v1::PartitionUsageResponse response;
  MCOS_RETURN_IF_ERROR(ScanBuckets(
      kPartitionUsageKind, request.option(), [&](uint32_t bucket, uint64_t first, uint64_t second) {
        const auto objects = static_cast<int64_t>(first);
        const auto bytes = static_cast<int64_t>(second);
        if (objects == 0 && bytes == 0) return;
        const uint32_t partition = bucket >> (kUsageBucketBits - power);
        if (response.partitions_size() == 0 ||
            response.partitions(response.partitions_size() - 1).partition() != partition) {
          response.add_partitions()->set_partition(partition);
        }
        auto* p = response.mutable_partitions(response.partitions_size() - 1);
        p->set_object_count(p->object_count() +
                            static_cast<uint64_t>(std::max<int64_t>(objects, 0)));
        p->set_bytes_used(p->bytes_used() + static_cast<uint64_t>(std::max<int64_t>(bytes, 0)));
      }));
  return response;
}

absl::StatusOr<mcos::v1::ContainerUsageResponse> RocksDbEngine::Usage(
    const mcos::v1::ContainerUsageRequest& request) {
  mcos::v1::ContainerUsageResponse response;
  for (const auto& container : request.containers()) {
    const std::string key = ContainerPrefix(request.user(), container);
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), usage_cf_, key, &value);
    auto* u = response.add_usage();
    u->set_container(container);
    if (s.IsNotFound()) continue;
    MCOS_RETURN_IF_ERROR(FromRocksDb(s, "read container usage"));
    if (value.size() != 16) return absl::DataLossError("a container usage record is corrupt");
    u->set_object_count(static_cast<uint64_t>(
        std::max<int64_t>(0, static_cast<int64_t>(DecodeFixed64Le(value.data())))));
    u->set_bytes_used(static_cast<uint64_t>(
        std::max<int64_t>(0, static_cast<int64_t>(DecodeFixed64Le(value.data() + 8)))));
  }
  return response;
}

absl::Status RocksDbEngine::CheckSpace(uint64_t incoming) {
  return options_.space != nullptr ? options_.space->CheckWrite(incoming) : absl::OkStatus();
}

absl::Status RocksDbEngine::RecoverFromNoSpace(const rocksdb::Status& cause) {
  absl::MutexLock lock(&resume_mu_);
  common::LogWarning("the storage disk is full (", cause.ToString(),
                     "): releasing the space reserve and resuming the database");
  if (options_.space != nullptr) options_.space->ReleaseReserve();
  // RocksDB's own recovery (its SstFileManager) may be under way: it checks the free space every
  // 5 s and resumes once a memtable's worth is free. Meanwhile Resume() answers Busy.
  rocksdb::Status s;
  const absl::Time deadline = absl::Now() + absl::Seconds(12);
  while (true) {
    s = db_->Resume();
    if (!s.IsBusy() || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!s.ok()) common::LogWarning("cannot resume the database yet: ", s.ToString());
  return FromRocksDb(s, "resume after a full disk");
}

void RocksDbEngine::QueueReclaim(const ObjectRecord& record) {
  const std::string& data_id = record.data_id();
  if (data_id.empty() || record.chunk_count() == 0) return;
  const uint64_t sequence = db_->GetLatestSequenceNumber();
  absl::MutexLock lock(&reclaim_mu_);
  if (record.has_file_first_chunk()) reclaim_files_.push_back(ReclaimFile{data_id, sequence});
  reclaim_.push_back(
      Reclaim{DataKey(data_id, 0), DataKey(data_id, record.chunk_count()), sequence});
}

std::string RocksDbEngine::DataFilePath(absl::string_view data_id) const {
  std::string path = objects_dir_;
  path.push_back('/');
  path += absl::BytesToHexString(data_id);
  return path;
}

absl::Status RocksDbEngine::FileFailed(const absl::Status& status) {
  if (absl::IsResourceExhausted(status) && options_.space != nullptr) {
    // The disk is full: the reserve makes room for the deletes that free space.
    options_.space->ReleaseReserve();
  }
  return status;
}

void RocksDbEngine::RemoveDataFile(absl::string_view data_id) {
  const std::string path = DataFilePath(data_id);
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (::unlink(path.c_str()) != 0) {
    if (errno != ENOENT) FileError(errno, "remove a data file", path).IgnoreError();
    return;
  }
  if (exists) file_bytes_.fetch_sub(static_cast<uint64_t>(st.st_size));
}

uint64_t RocksDbEngine::OldestSnapshot() {
  uint64_t oldest = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kOldestSnapshotSequence, &oldest) ||
      oldest == 0) {
    return UINT64_MAX;  // none
  }
  return oldest;
}

std::shared_ptr<const rocksdb::Snapshot> RocksDbEngine::SharedSnapshot() {
  rocksdb::DB* db = db_.get();
  return {db->GetSnapshot(), [db](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); }};
}

void RocksDbEngine::Keep(const std::string& meta_key, const ObjectRecord& record, uint32_t ms) {
  Kept kept{SharedSnapshot(), record, absl::Now() + absl::Milliseconds(ms)};
  absl::MutexLock lock(&kept_mu_);
  kept_.emplace(meta_key, std::move(kept));
}

std::optional<RocksDbEngine::Kept> RocksDbEngine::FindKept(const std::string& meta_key,
                                                           const mcos::v1::Version& version) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&kept_mu_);
  for (auto [it, end] = kept_.equal_range(meta_key); it != end; ++it) {
    if (it->second.expires > now &&
        common::CompareVersions(it->second.record.version(), version) == 0) {
      return it->second;
    }
  }
  return std::nullopt;
}

void RocksDbEngine::ReleaseKept(const ObjectKey& key, const mcos::v1::Version& version) {
  const std::string meta_key = ObjectMetaKey(key.user(), key.container(), key.object());
  std::optional<Kept> released;  // its snapshot goes outside the lock
  absl::MutexLock lock(&kept_mu_);
  for (auto [it, end] = kept_.equal_range(meta_key); it != end; ++it) {
    if (common::CompareVersions(it->second.record.version(), version) == 0) {
      released = std::move(it->second);
      kept_.erase(it);
      return;
    }
  }
}

uint64_t RocksDbEngine::ExpireKept() {
  const absl::Time now = absl::Now();
  uint64_t oldest = UINT64_MAX;
  std::vector<Kept> expired;  // released outside the lock
  absl::MutexLock lock(&kept_mu_);
  for (auto it = kept_.begin(); it != kept_.end();) {
    if (it->second.expires <= now) {
      expired.push_back(std::move(it->second));
      it = kept_.erase(it);
    } else {
      oldest = std::min(oldest, it->second.snapshot->GetSequenceNumber());
      ++it;
    }
  }
  return oldest;
}

absl::StatusOr<int> RocksDbEngine::ReclaimOnce() {
  std::vector<std::pair<std::string, std::string>> ranges;
  bool all = false;
  // Data deleted after a kept version's snapshot is still seen by it: compacting it now would
  // keep it, so it waits until the snapshot is released.
  const uint64_t oldest_kept = ExpireKept();
  // A data file is read outside RocksDB: any snapshot that may still see its record (a kept
  // version's or a reader's) keeps it.
  const uint64_t oldest_snapshot = OldestSnapshot();
  std::vector<std::string> files;
  {
    absl::MutexLock lock(&reclaim_mu_);
    std::vector<ReclaimFile> waiting_files;
    for (ReclaimFile& f : reclaim_files_) {
      if (f.sequence <= oldest_snapshot) {
        files.push_back(std::move(f.data_id));
      } else {
        waiting_files.push_back(std::move(f));
      }
    }
    reclaim_files_.swap(waiting_files);
  }
  if (!files.empty()) {
    rocksdb::WriteBatch done;
    for (const std::string& data_id : files) {
      RemoveDataFile(data_id);
      done.Delete(uploads_cf_, data_id);
    }
    // Not synced: a crash before the next synced write only makes Open remove them again.
    MCOS_RETURN_IF_ERROR(
        FromRocksDb(db_->Write(rocksdb::WriteOptions(), &done), "record removed data files"));
  }
  {
    absl::MutexLock lock(&reclaim_mu_);
    std::vector<Reclaim> waiting;
    for (Reclaim& r : reclaim_) {
      if (r.sequence <= oldest_kept) {
        ranges.emplace_back(std::move(r.begin), std::move(r.end));
      } else {
        waiting.push_back(std::move(r));
      }
    }
    reclaim_.swap(waiting);
    std::swap(all, reclaim_all_);
  }
  if (ranges.empty() && !all) return static_cast<int>(files.size());
  rocksdb::CompactRangeOptions cro;
  // To the last level, where the deletions themselves are dropped too.
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  // Many ranges: one compaction of the whole data family costs less than many (its SST files
  // hold only chunk references, the chunks live in blob files).
  constexpr size_t kMaxRanges = 16;
  if (all || ranges.size() > kMaxRanges) {
    MCOS_RETURN_IF_ERROR(
        FromRocksDb(db_->CompactRange(cro, data_cf_, nullptr, nullptr), "reclaim space"));
    return static_cast<int>(ranges.size() + files.size());
  }
  for (const auto& [begin, end] : ranges) {
    const rocksdb::Slice b(begin), e(end);
    MCOS_RETURN_IF_ERROR(FromRocksDb(db_->CompactRange(cro, data_cf_, &b, &e), "reclaim space"));
  }
  return static_cast<int>(ranges.size() + files.size());
}

absl::StatusOr<bool> RocksDbEngine::CollectGarbageOnce(bool urgent, uint64_t free_bytes) {
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(data_cf_, &meta);
  std::vector<rocksdb::BlobMetaData>& files = meta.blob_files;
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.blob_file_number < b.blob_file_number; });
  uint64_t total = 0, garbage = 0;
  for (const auto& f : files) {
    total += f.total_blob_bytes;
    garbage += f.garbage_blob_bytes;
  }
  if (garbage == 0 || (!urgent && garbage * 4 < total)) return false;
  // RocksDB rewrites the live blobs of the oldest `cutoff` fraction of files in a compaction. Pick
  // the prefix of files (oldest first) that frees the most garbage while it is at least a quarter
  // garbage and its live data fits in half the free space (the copy needs room until the old
  // files go).
  size_t best = 0;
  uint64_t best_garbage = 0, prefix_garbage = 0, prefix_live = 0;
  for (size_t k = 0; k < files.size(); ++k) {
    prefix_garbage += files[k].garbage_blob_bytes;
    prefix_live += files[k].total_blob_bytes - files[k].garbage_blob_bytes;
    if (prefix_live > free_bytes / 2) break;
    if (prefix_garbage * 4 >= prefix_garbage + prefix_live && prefix_garbage > best_garbage) {
      best = k + 1;
      best_garbage = prefix_garbage;
    }
  }
  if (best == 0) return false;
  const double cutoff = static_cast<double>(best) / static_cast<double>(files.size());
  auto set_gc = [&](bool on) {
    return FromRocksDb(
        db_->SetOptions(data_cf_, {{"enable_blob_garbage_collection", on ? "true" : "false"},
                                   {"blob_garbage_collection_age_cutoff", absl::StrCat(cutoff)}}),
        "set the blob garbage collection options");
  };
  MCOS_RETURN_IF_ERROR(set_gc(true));
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  const rocksdb::Status compacted = db_->CompactRange(cro, data_cf_, nullptr, nullptr);
  MCOS_RETURN_IF_ERROR(set_gc(false));
  if (compacted.IsNoSpace()) RecoverFromNoSpace(compacted).IgnoreError();
  MCOS_RETURN_IF_ERROR(FromRocksDb(compacted, "collect blob garbage"));
  common::LogInfo("blob garbage collection: rewrote the live data of the oldest ", best, " of ",
                  files.size(), " blob files to free ", best_garbage >> 20, " MiB (", garbage >> 20,
                  " of ", total >> 20, " MiB of blob data were garbage)");
  return true;
}

RocksDbEngine::DiskUsage RocksDbEngine::disk_usage() {
  DiskUsage usage;
  uint64_t v = 0;
  for (auto* cf : handles_) {
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kTotalSstFilesSize, &v)) {
      usage.sst_bytes += v;
    }
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kTotalBlobFileSize, &v)) {
      usage.blob_bytes += v;
    }
  }
  usage.file_bytes = file_bytes_.load();
  return usage;
}

void RocksDbEngine::DeleteData(const ObjectRecord& record, rocksdb::WriteBatch& batch) {
  if (record.data_id().empty() || record.chunk_count() == 0) return;
  // The data file, if any, is removed by ReclaimOnce once no snapshot can read it; until then
  // (and across a crash) an entry in the uploads family names it as debris.
  if (record.has_file_first_chunk()) batch.Put(uploads_cf_, record.data_id(), rocksdb::Slice());
  const uint64_t chunks = record.chunk_count();
  if (chunks <= kPointDeleteMaxChunks) {
    for (uint64_t i = 0; i < chunks; ++i) batch.Delete(data_cf_, DataKey(record.data_id(), i));
  } else {
    batch.DeleteRange(data_cf_, DataKey(record.data_id(), 0), DataKey(record.data_id(), chunks));
  }
}

absl::StatusOr<std::unique_ptr<PutStream>> RocksDbEngine::BeginPut(
    const mcos::v1::StoragePutHeader& header) {
  if (!common::IsSet(header.version())) {
    return absl::InvalidArgumentError("the put header has no version stamp");
  }
  MCOS_RETURN_IF_ERROR(CheckSpace(header.has_size() ? header.size() : 0));
  const std::string meta_key =
      ObjectMetaKey(header.key().user(), header.key().container(), header.key().object());
  MCOS_ASSIGN_OR_RETURN(std::optional<ObjectRecord> current, ReadRecord(meta_key));
  std::optional<WriteResult> superseded;
  if (SupersededAtStart(current ? &*current : nullptr, header)) {
    superseded = WriteResult{false, *current, SupersededReason(*current, header.version())};
  }
  return std::make_unique<RocksDbPutStream>(*this, header, std::move(superseded));
}

absl::StatusOr<std::unique_ptr<ObjectReader>> RocksDbEngine::OpenReader(
    const mcos::v1::StorageGetRequest& request) {
  const ObjectKey& key = request.key();
  const std::string meta_key = ObjectMetaKey(key.user(), key.container(), key.object());
  std::shared_ptr<const rocksdb::Snapshot> snapshot = SharedSnapshot();
  MCOS_ASSIGN_OR_RETURN(std::optional<ObjectRecord> record, ReadRecord(meta_key, snapshot.get()));
  if (request.has_version() && record &&
      common::CompareVersions(record->version(), request.version()) != 0) {
    // A version replaced since its commit, kept readable for a while.
    if (std::optional<Kept> kept = FindKept(meta_key, request.version())) {
      snapshot = std::move(kept->snapshot);
      record = std::move(kept->record);
    }
  }
  MCOS_ASSIGN_OR_RETURN(auto range, ReadRange(request, record ? &*record : nullptr));
  std::optional<DataFile> file;
  if (record->has_file_first_chunk() && range.first < range.second) {
    // The snapshot keeps the file: ReclaimOnce removes a replaced version's file only once no
    // snapshot older than the replacement is left.
    absl::StatusOr<DataFile> opened = DataFile::Open(DataFilePath(record->data_id()));
    if (absl::IsNotFound(opened.status())) {
      return absl::DataLossError(
          absl::StrCat("the data file of ", Describe(key), " is missing on this storage node"));
    }
    MCOS_RETURN_IF_ERROR(opened.status());
    file.emplace(*std::move(opened));
  }
  return std::make_unique<RocksDbObjectReader>(*this, std::move(snapshot), std::move(file), key,
                                               *std::move(record), range.first, range.second);
}

absl::StatusOr<bool> RocksDbEngine::AddHolders(const ObjectKey& key,
                                               const mcos::v1::Version& version,
                                               const std::vector<std::string>& holders) {
  const std::string meta_key = ObjectMetaKey(key.user(), key.container(), key.object());
  absl::MutexLock lock(&LockFor(meta_key));
  MCOS_ASSIGN_OR_RETURN(std::optional<ObjectRecord> current, ReadRecord(meta_key));
  if (!current || !storage::AddHolders(*current, version, holders)) return false;
  // Not synced on its own: the next synced write carries it, and a crash before that forgets
  // holders, which reads then ask for again.
  MCOS_RETURN_IF_ERROR(FromRocksDb(
      db_->Put(rocksdb::WriteOptions(), meta_cf_, meta_key, current->SerializeAsString()),
      absl::StrCat("record the holders of ", Describe(key))));
  return true;
}

void RocksDbEngine::AddHoldersAsync(const ObjectKey& key, const mcos::v1::Version& version,
                                    const std::vector<std::string>& holders) {
  Grouped g;
  g.meta_key = ObjectMetaKey(key.user(), key.container(), key.object());
  g.add = [this, meta_key = g.meta_key, version,
           holders](rocksdb::WriteBatch& batch) -> std::optional<absl::StatusOr<WriteResult>> {
    absl::StatusOr<std::optional<ObjectRecord>> current = ReadRecord(meta_key);
    if (!current.ok()) return current.status();
    if (!*current || !storage::AddHolders(**current, version, holders)) return WriteResult{};
    batch.Put(meta_cf_, meta_key, (*current)->SerializeAsString());
    return std::nullopt;
  };
  g.written = [] { return WriteResult{true, {}, ""}; };
  g.durable = false;
  g.done = [](const absl::StatusOr<WriteResult>&) {};  // as AddHolders' callers, ignored
  Group(std::move(g));
}

absl::StatusOr<ObjectRecord> RocksDbEngine::Stat(const ObjectKey& key, bool include_tombstone) {
  MCOS_ASSIGN_OR_RETURN(std::optional<ObjectRecord> record,
                        ReadRecord(ObjectMetaKey(key.user(), key.container(), key.object())));
  if (!record || (record->tombstone() && !include_tombstone)) {
    return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
  }
  return *std::move(record);
}

// A delete (a tombstone, or a purge of one): checked and added to a batch under the object's
// lock, by Delete on the caller's thread or by the committing thread in a group.
class RocksDbDelete {
 public:
  RocksDbDelete(RocksDbEngine& engine, mcos::v1::StorageDeleteRequest request)
      : engine_(engine),
        request_(std::move(request)),
        meta_key_(ObjectMetaKey(request_.key().user(), request_.key().container(),
                                request_.key().object())) {}

  const std::string& meta_key() const { return meta_key_; }

  // Holding the object's lock: reads what is stored and adds the delete to `batch`; or answers
  // without writing.
  std::optional<absl::StatusOr<WriteResult>> AddTo(rocksdb::WriteBatch& batch) {
    const ObjectKey& key = request_.key();
    absl::StatusOr<std::optional<ObjectRecord>> read = engine_.ReadRecord(meta_key_);
    if (!read.ok()) return read.status();
    current_ = *std::move(read);
    if (request_.purge()) {
      if (!current_) return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
      if (!IsPurgeable(*current_, request_.version())) {
        return WriteResult{false, *current_, "another version is held"};
      }
      batch.Delete(engine_.meta_cf_, meta_key_);
      engine_.AddDigest(batch, key, *current_, -1);  // and its partition index entry
      return std::nullopt;
    }
    if (request_.release()) {
      if (!current_) return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
      if (!IsReleasable(*current_, request_.version())) {
        return WriteResult{false, *current_, "another version is held"};
      }
      batch.Delete(engine_.meta_cf_, meta_key_);
      engine_.DeleteData(*current_, batch);
      if (!current_->tombstone()) {
        engine_.AddUsage(batch, meta_key_, -1, -static_cast<int64_t>(current_->size()));
        engine_.AddPartitionUsage(batch, key, *current_, -1);
      }
      engine_.AddDigest(batch, key, *current_, -1);
      return std::nullopt;
    }
    const std::optional<mcos::v1::Version> version =
        CommitVersion(current_ ? &*current_ : nullptr, request_.version(), request_.restamp());
    if (!version) {
      return WriteResult{false, *current_, SupersededReason(*current_, request_.version())};
    }
    live_ = current_ && !current_->tombstone();
    if (absl::Status s = CheckPrecondition(request_.precondition(), key, live_); !s.ok()) return s;
    tombstone_ = Tombstone(request_, *version);
    batch.Put(engine_.meta_cf_, meta_key_, tombstone_.SerializeAsString());
    if (current_) engine_.DeleteData(*current_, batch);
    if (live_) {
      engine_.AddUsage(batch, meta_key_, -1, -static_cast<int64_t>(current_->size()));
      engine_.AddPartitionUsage(batch, key, *current_, -1);
    }
    if (current_) engine_.AddDigest(batch, key, *current_, -1);
    engine_.AddDigest(batch, key, tombstone_, +1);
    return std::nullopt;
  }

  // Holding the object's lock, once the batch of AddTo is written.
  WriteResult Written() {
    if (request_.purge()) return WriteResult{true, *std::move(current_), ""};
    if (current_) engine_.QueueReclaim(*current_);
    if (request_.release()) return WriteResult{true, *std::move(current_), ""};
    return WriteResult{true, std::move(tombstone_), "",
                       live_ ? mcos::v1::WRITE_PRIOR_LIVE : mcos::v1::WRITE_PRIOR_ABSENT};
  }

  std::string What() const {
    return absl::StrCat(request_.purge()     ? "purge the tombstone of "
                        : request_.release() ? "release the copy of "
                                             : "delete ",
                        Describe(request_.key()));
  }

 private:
  RocksDbEngine& engine_;
  const mcos::v1::StorageDeleteRequest request_;
  const std::string meta_key_;
  std::optional<ObjectRecord> current_;
  ObjectRecord tombstone_;
  bool live_ = false;
};

absl::StatusOr<WriteResult> RocksDbEngine::Delete(const mcos::v1::StorageDeleteRequest& request) {
  if (!common::IsSet(request.version())) {
    return absl::InvalidArgumentError("the delete request has no version stamp");
  }
  RocksDbDelete del(*this, request);
  absl::MutexLock lock(&LockFor(del.meta_key()));
  rocksdb::WriteBatch batch;
  if (auto decided = del.AddTo(batch)) return *std::move(decided);
  rocksdb::Status written = db_->Write(CommitWriteOptions(), &batch);
  if (written.IsNoSpace() && RecoverFromNoSpace(written).ok()) {
    // A delete frees space: it must work on a full disk (the reserve made room for it).
    written = db_->Write(CommitWriteOptions(), &batch);
  }
  MCOS_RETURN_IF_ERROR(FromRocksDb(written, del.What()));
  return del.Written();
}

// ---------------------------------------------------------------------------------------------
// Group commit

void RocksDbEngine::CommitAsync(std::unique_ptr<PutStream> stream,
                                mcos::v1::StoragePutFinish finish, WriteDone done) {
  // Only this engine's BeginPut makes the streams it is given.
  auto* put = static_cast<RocksDbPutStream*>(stream.get());
  if (put->superseded() || !put->Groupable()) {
    Engine::CommitAsync(std::move(stream), std::move(finish), std::move(done));
    return;
  }
  if (absl::Status prepared = put->Prepare(finish); !prepared.ok()) {
    stream.reset();
    done(prepared);
    return;
  }
  std::shared_ptr<RocksDbPutStream> owned(static_cast<RocksDbPutStream*>(stream.release()));
  Grouped g;
  g.meta_key = owned->meta_key();
  g.add = [owned](rocksdb::WriteBatch& batch) { return owned->AddTo(batch); };
  g.written = [owned] { return owned->Written(); };
  g.done = std::move(done);
  Group(std::move(g));
}

void RocksDbEngine::DeleteAsync(mcos::v1::StorageDeleteRequest request, WriteDone done) {
  if (!common::IsSet(request.version())) {
    done(absl::InvalidArgumentError("the delete request has no version stamp"));
    return;
  }
  auto del = std::make_shared<RocksDbDelete>(*this, std::move(request));
  Grouped g;
  g.meta_key = del->meta_key();
  g.add = [del](rocksdb::WriteBatch& batch) { return del->AddTo(batch); };
  g.written = [del] { return del->Written(); };
  g.frees_space = true;
  g.done = std::move(done);
  Group(std::move(g));
}

void RocksDbEngine::Group(Grouped grouped) {
  {
    absl::MutexLock lock(&group_mu_);
    if (!closing_) {
      grouped_.push_back(std::move(grouped));
      return;
    }
  }
  // Only a caller racing the engine's destruction gets here.
  grouped.done(absl::UnavailableError("the storage engine is closing; nothing was written"));
}

void RocksDbEngine::CommitGroups() {
  pthread_setname_np(pthread_self(), "committer");
  std::vector<Grouped> group;
  while (true) {
    {
      absl::MutexLock lock(&group_mu_);
      group_mu_.Await(absl::Condition(
          +[](RocksDbEngine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->group_mu_) {
            return e->closing_ || !e->grouped_.empty();
          },
          this));
      if (grouped_.empty()) return;  // closing, and nothing is left
      for (auto& g : grouped_) group.push_back(std::move(g));
      grouped_.clear();
    }
    CommitGroup(group);
    group.clear();
  }
}

void RocksDbEngine::CommitGroup(std::vector<Grouped>& group) {
  size_t next = 0;
  while (next < group.size()) {
    // The commits up to one of an object already among them (it goes in the next batch), under
    // their objects' locks, taken in one order (as no other thread takes more than one).
    const size_t first = next;
    std::bitset<kLockStripes> held;
    absl::flat_hash_set<absl::string_view> keys;
    for (; next < group.size() && keys.insert(group[next].meta_key).second; ++next) {
      held[StripeOf(group[next].meta_key)] = true;
    }
    for (size_t stripe = 0; stripe < kLockStripes; ++stripe) {
      if (held[stripe]) locks_[stripe].Lock();
    }
    rocksdb::WriteBatch batch;
    std::vector<std::optional<absl::StatusOr<WriteResult>>> answers;
    bool durable = false;
    for (size_t i = first; i < next; ++i) {
      answers.push_back(group[i].add(batch));
      durable = durable || (group[i].durable && !answers.back());
    }
    absl::Status written = absl::OkStatus();
    if (batch.Count() > 0) {
      rocksdb::WriteOptions options = CommitWriteOptions();
      options.sync = options.sync && durable;
      rocksdb::Status s = db_->Write(options, &batch);
      if (s.IsNoSpace() && RecoverFromNoSpace(s).ok()) {
        // Deletes free space: each is written again on its own (the reserve made room for
        // them); the uploads fail.
        for (size_t i = first; i < next; ++i) {
          Grouped& g = group[i];
          auto& answer = answers[i - first];
          if (answer) continue;
          if (!g.frees_space) {
            answer = FromRocksDb(s, "commit an upload");
            continue;
          }
          rocksdb::WriteBatch alone;
          answer = g.add(alone);
          if (answer) continue;
          rocksdb::Status again = db_->Write(CommitWriteOptions(), &alone);
          answer = again.ok() ? absl::StatusOr<WriteResult>(g.written())
                              : FromRocksDb(again, "delete on a full disk");
        }
      }
      written = FromRocksDb(s, "commit a group of writes");
    }
    for (size_t i = first; i < next; ++i) {
      auto& answer = answers[i - first];
      if (!answer)
        answer = written.ok() ? absl::StatusOr<WriteResult>(group[i].written()) : written;
    }
    for (size_t stripe = 0; stripe < kLockStripes; ++stripe) {
      if (held[stripe]) locks_[stripe].Unlock();
    }
    for (size_t i = first; i < next; ++i) {
      WriteDone done = std::move(group[i].done);
      group[i].add = nullptr;  // the stream or delete goes before its answer
      group[i].written = nullptr;
      done(*std::move(answers[i - first]));
    }
  }
}

namespace {

// The records of one (user, container) whose names start with a prefix, from a RocksDB iterator.
class RocksDbRecordCursor final : public RecordCursor {
 public:
  RocksDbRecordCursor(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* meta_cf, std::string base,
                      const std::string& prefix)
      : base_(std::move(base)), upper_(PrefixSuccessor(base_ + prefix)), upper_slice_(upper_) {
    rocksdb::ReadOptions ro;
    if (!upper_.empty()) ro.iterate_upper_bound = &upper_slice_;
    it_.reset(db.NewIterator(ro, meta_cf));
  }
  void Seek(absl::string_view name) override { it_->Seek(base_ + std::string(name)); }
  bool Valid() const override { return it_->Valid(); }
  absl::string_view name() const override {
    const rocksdb::Slice k = it_->key();
    return {k.data() + base_.size(), k.size() - base_.size()};
  }
  absl::StatusOr<size_t> ReadRecord(ObjectRecord& into, bool versions_only) const override {
    const rocksdb::Slice value = it_->value();
    const bool parsed =
        versions_only ? ParseRecordVersion(absl::string_view(value.data(), value.size()), into)
                      : into.ParseFromArray(value.data(), static_cast<int>(value.size()));
    if (!parsed) {
      return absl::DataLossError(absl::StrCat("the record of object '", name(),
                                              "' on this storage node cannot be parsed"));
    }
    return value.size();
  }
  void Next() override { it_->Next(); }
  absl::Status status() const override { return FromRocksDb(it_->status(), "list objects"); }

 private:
  const std::string base_;
  const std::string upper_;
  const rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

absl::Status RocksDbEngine::List(const mcos::v1::StorageListRequest& request,
                                 mcos::v1::StorageListResponse* out) {
  RocksDbRecordCursor cursor(*db_, meta_cf_, ContainerPrefix(request.user(), request.container()),
                             request.prefix());
  return ListRecords(request, cursor, out);
}

}  // namespace mcos::storage
