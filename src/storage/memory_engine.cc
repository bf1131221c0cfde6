#include "storage/memory_engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "storage/engine_rules.h"

namespace mcos::storage {

using mcos::v1::ObjectKey;
using mcos::v1::ObjectRecord;

namespace {

std::string MetaKey(const ObjectKey& key) {
  return ObjectMetaKey(key.user(), key.container(), key.object());
}

// Splits an ObjectMetaKey made by MetaKey (always well formed).
ObjectKey KeyOf(absl::string_view meta_key) {
  ObjectKey key;
  const size_t user_len = static_cast<uint8_t>(meta_key[0]);
  const size_t container_len = static_cast<uint8_t>(meta_key[1 + user_len]);
  key.set_user(std::string(meta_key.substr(1, user_len)));
  key.set_container(std::string(meta_key.substr(2 + user_len, container_len)));
  key.set_object(std::string(meta_key.substr(2 + user_len + container_len)));
  return key;
}

class MemoryObjectReader final : public ObjectReader {
 public:
  MemoryObjectReader(ObjectRecord record, std::shared_ptr<const std::string> data, uint64_t begin,
                     uint64_t end)
      : record_(std::move(record)), data_(std::move(data)), pos_(begin), end_(end) {}

  const ObjectRecord& record() const override { return record_; }

  // Pieces end at chunk boundaries, as the RocksDB engine's do.
  absl::StatusOr<bool> Next(std::string* out) override {
    if (pos_ >= end_) return false;
    const uint64_t chunk_end = (pos_ / record_.chunk_size() + 1) * record_.chunk_size();
    const uint64_t n = std::min(end_, chunk_end) - pos_;
    out->assign(*data_, pos_, n);
    pos_ += n;
    return true;
  }

 private:
  ObjectRecord record_;
  std::shared_ptr<const std::string> data_;
  uint64_t pos_;
  uint64_t end_;
};

}  // namespace

class MemoryPutStream final : public PutStream {
 public:
  MemoryPutStream(MemoryEngine& engine, mcos::v1::StoragePutHeader header,
                  std::optional<WriteResult> superseded)
      : engine_(engine),
        header_(std::move(header)),
        superseded_(std::move(superseded)),
        content_(header_) {}

  const std::optional<WriteResult>& superseded() const override { return superseded_; }

  absl::Status Append(absl::string_view data) override {
    if (superseded_) return absl::OkStatus();
    MCOS_RETURN_IF_ERROR(content_.Add(data));
    data_.append(data.data(), data.size());
    return absl::OkStatus();
  }

  absl::StatusOr<WriteResult> Commit(const mcos::v1::StoragePutFinish& finish) override {
    if (superseded_) return *superseded_;
    MCOS_ASSIGN_OR_RETURN(ObjectRecord record, content_.Finish(finish));
    return engine_.Commit(header_, std::move(record), std::move(data_), finish.keep_readable_ms());
  }

 private:
  MemoryEngine& engine_;
  mcos::v1::StoragePutHeader header_;
  std::optional<WriteResult> superseded_;
  UploadContent content_;
  std::string data_;
};

absl::StatusOr<std::unique_ptr<PutStream>> MemoryEngine::BeginPut(
    const mcos::v1::StoragePutHeader& header) {
  if (!common::IsSet(header.version())) {
    return absl::InvalidArgumentError("the put header has no version stamp");
  }
  std::optional<WriteResult> superseded;
  {
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(MetaKey(header.key()));
    if (it != objects_.end() && SupersededAtStart(&it->second.record, header)) {
      superseded = WriteResult{false, it->second.record,
                               SupersededReason(it->second.record, header.version())};
    }
  }
  return std::make_unique<MemoryPutStream>(*this, header, std::move(superseded));
}

absl::StatusOr<WriteResult> MemoryEngine::Commit(const mcos::v1::StoragePutHeader& header,
                                                 ObjectRecord record, std::string data,
                                                 uint32_t keep_readable_ms) {
  absl::MutexLock lock(&mu_);
  Stored& stored = objects_[MetaKey(header.key())];
  const bool exists = stored.record.has_version();
  const std::optional<mcos::v1::Version> version = CommitVersion(
      exists ? &stored.record : nullptr, record.version(), header.restamp(), header.repair());
  if (!version) {
    return WriteResult{false, stored.record, SupersededReason(stored.record, record.version())};
  }
  *record.mutable_version() = *version;
  const bool live = exists && !stored.record.tombstone();
  if (absl::Status s = CheckPrecondition(header.precondition(), header.key(), live); !s.ok()) {
    if (!exists) objects_.erase(MetaKey(header.key()));
    return s;
  }
  record.set_chunk_size(kChunkSize);
  record.set_chunk_count((data.size() + kChunkSize - 1) / kChunkSize);
  record.set_data_id(absl::StrCat("memory-", ++next_data_id_));
  *record.mutable_created() = live ? stored.record.created() : record.modified();
  stored.record = record;
  stored.data = std::make_shared<const std::string>(std::move(data));
  const absl::Time now = absl::Now();
  for (auto it = kept_.begin(); it != kept_.end();) {
    it = it->second.expires <= now ? kept_.erase(it) : std::next(it);
  }
  if (keep_readable_ms > 0) {
    kept_.emplace(MetaKey(header.key()), Kept{stored, now + absl::Milliseconds(keep_readable_ms)});
  }
  return WriteResult{true, std::move(record), ""};
}

absl::StatusOr<std::unique_ptr<ObjectReader>> MemoryEngine::OpenReader(
    const mcos::v1::StorageGetRequest& request) {
  absl::MutexLock lock(&mu_);
  const std::string meta_key = MetaKey(request.key());
  const Stored* stored = nullptr;
  if (auto it = objects_.find(meta_key); it != objects_.end()) stored = &it->second;
  if (request.has_version() && stored != nullptr &&
      common::CompareVersions(stored->record.version(), request.version()) != 0) {
    // A version replaced since its commit, kept readable for a while.
    const absl::Time now = absl::Now();
    for (auto [it, end] = kept_.equal_range(meta_key); it != end; ++it) {
      if (it->second.expires > now &&
          common::CompareVersions(it->second.stored.record.version(), request.version()) == 0) {
        stored = &it->second.stored;
        break;
      }
    }
  }
  MCOS_ASSIGN_OR_RETURN(auto range,
                        ReadRange(request, stored == nullptr ? nullptr : &stored->record));
  return std::make_unique<MemoryObjectReader>(stored->record, stored->data, range.first,
                                              range.second);
}

void MemoryEngine::ReleaseKept(const ObjectKey& key, const mcos::v1::Version& version) {
  absl::MutexLock lock(&mu_);
  for (auto [it, end] = kept_.equal_range(MetaKey(key)); it != end; ++it) {
    if (common::CompareVersions(it->second.stored.record.version(), version) == 0) {
      kept_.erase(it);
      return;
    }
  }
}

absl::StatusOr<bool> MemoryEngine::AddHolders(const ObjectKey& key,
                                              const mcos::v1::Version& version,
                                              const std::vector<std::string>& holders) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(MetaKey(key));
  return it != objects_.end() && storage::AddHolders(it->second.record, version, holders);
}

absl::StatusOr<ObjectRecord> MemoryEngine::Stat(const ObjectKey& key, bool include_tombstone) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(MetaKey(key));
  if (it == objects_.end() || (it->second.record.tombstone() && !include_tombstone)) {
    return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
  }
  return it->second.record;
}

absl::StatusOr<WriteResult> MemoryEngine::Delete(const mcos::v1::StorageDeleteRequest& request) {
  if (!common::IsSet(request.version())) {
    return absl::InvalidArgumentError("the delete request has no version stamp");
  }
  absl::MutexLock lock(&mu_);
  const std::string meta_key = MetaKey(request.key());
  auto it = objects_.find(meta_key);
  if (request.purge() || request.release()) {
    if (it == objects_.end()) {
      return absl::NotFoundError(absl::StrCat(Describe(request.key()), " not found"));
    }
    if (request.purge() ? !IsPurgeable(it->second.record, request.version())
                        : !IsReleasable(it->second.record, request.version())) {
      return WriteResult{false, it->second.record, "another version is held"};
    }
    WriteResult purged{true, it->second.record, ""};
    objects_.erase(it);
    return purged;
  }
  const std::optional<mcos::v1::Version> version = CommitVersion(
      it != objects_.end() ? &it->second.record : nullptr, request.version(), request.restamp());
  if (!version) {
    return WriteResult{false, it->second.record,
                       SupersededReason(it->second.record, request.version())};
  }
  const bool live = it != objects_.end() && !it->second.record.tombstone();
  MCOS_RETURN_IF_ERROR(CheckPrecondition(request.precondition(), request.key(), live));
  Stored& stored = objects_[meta_key];
  stored.record = Tombstone(request, *version);
  stored.data.reset();
  return WriteResult{true, stored.record, "",
                     live ? mcos::v1::WRITE_PRIOR_LIVE : mcos::v1::WRITE_PRIOR_ABSENT};
}

absl::Status MemoryEngine::List(const mcos::v1::StorageListRequest& request,
                                mcos::v1::StorageListResponse* out) {
  // The names of one (user, container) that start with the prefix, over the map itself (the
  // lock is held while it is used).
  class Cursor final : public RecordCursor {
   public:
    Cursor(const std::map<std::string, Stored>& objects, std::string base,
           const std::string& prefix)
        : objects_(objects), base_(std::move(base)), prefix_(base_ + prefix), it_(objects.end()) {}
    void Seek(absl::string_view name) override {
      it_ = objects_.lower_bound(absl::StrCat(base_, name));
    }
    bool Valid() const override {
      return it_ != objects_.end() && absl::StartsWith(it_->first, prefix_);
    }
    absl::string_view name() const override {
      return absl::string_view(it_->first).substr(base_.size());
    }
    absl::StatusOr<size_t> ReadRecord(ObjectRecord& into, bool versions_only) const override {
      const ObjectRecord& record = it_->second.record;
      if (versions_only) {
        CopyRecordVersion(record, into);
      } else {
        into = record;
      }
      return record.ByteSizeLong();
    }
    void Next() override { ++it_; }
    absl::Status status() const override { return absl::OkStatus(); }

   private:
    const std::map<std::string, Stored>& objects_;
    const std::string base_;
    const std::string prefix_;
    std::map<std::string, Stored>::const_iterator it_;
  };
  absl::MutexLock lock(&mu_);
  Cursor cursor(objects_, ContainerPrefix(request.user(), request.container()), request.prefix());
  return ListRecords(request, cursor, out);
}

absl::StatusOr<mcos::v1::ContainerUsageResponse> MemoryEngine::Usage(
    const mcos::v1::ContainerUsageRequest& request) {
  absl::MutexLock lock(&mu_);
  mcos::v1::ContainerUsageResponse response;
  for (const auto& container : request.containers()) {
    auto* u = response.add_usage();
    u->set_container(container);
    const std::string base = ContainerPrefix(request.user(), container);
    for (auto it = objects_.lower_bound(base);
         it != objects_.end() && absl::StartsWith(it->first, base); ++it) {
      if (it->second.record.tombstone()) continue;
      u->set_object_count(u->object_count() + 1);
      u->set_bytes_used(u->bytes_used() + it->second.record.size());
    }
  }
  return response;
}

absl::StatusOr<mcos::v1::PartitionUsageResponse> MemoryEngine::PartitionUsage(
    const mcos::v1::PartitionUsageRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckPartitionPower(request.partition_power()));
  std::map<uint32_t, mcos::v1::PartitionUsage> partitions;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [meta_key, stored] : objects_) {
      const ObjectRecord& r = stored.record;
      if (r.tombstone() || r.option().empty() || r.option() != request.option()) continue;
      const uint32_t partition =
          UsageBucket(KeyOf(meta_key)) >> (kUsageBucketBits - request.partition_power());
      auto& p = partitions[partition];
      p.set_partition(partition);
      p.set_object_count(p.object_count() + 1);
      p.set_bytes_used(p.bytes_used() + r.size());
    }
  }
  mcos::v1::PartitionUsageResponse response;
  for (auto& [partition, usage] : partitions) *response.add_partitions() = std::move(usage);
  return response;
}

absl::StatusOr<mcos::v1::PartitionDigestsResponse> MemoryEngine::PartitionDigests(
    const mcos::v1::PartitionDigestsRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckDigestsRequest(request));
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> buckets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [meta_key, stored] : objects_) {
      if (stored.record.option() != request.option()) continue;
      const ObjectKey key = KeyOf(meta_key);
      auto& [count, digest] = buckets[UsageBucket(key)];
      ++count;
      digest += DigestShare(key, stored.record.version());
    }
  }
  DigestFolder folder(request);
  for (const auto& [bucket, v] : buckets) folder.Add(bucket, v.first, v.second);
  return folder.Finish();
}

absl::StatusOr<mcos::v1::ScanPartitionResponse> MemoryEngine::ScanPartition(
    const mcos::v1::ScanPartitionRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckScanRequest(request));
  ScanPage page(request);
  // No index here: every record is placed, and the partition's sorted (a twin for tests).
  std::map<std::string, std::pair<ObjectKey, ObjectRecord>> index;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [meta_key, stored] : objects_) {
      if (stored.record.option() != request.option()) continue;
      ObjectKey key = KeyOf(meta_key);
      std::string position = IndexPosition(UsageBucket(key), meta_key);
      if (position < page.begin() || (!page.end().empty() && position >= page.end())) continue;
      index.emplace(std::move(position), std::make_pair(std::move(key), stored.record));
    }
  }
  for (const auto& [position, entry] : index) {
    if (!page.Add(position, entry.first, entry.second)) break;
  }
  return page.Finish();
}

}  // namespace mcos::storage
