// The storage engine interface: versioned objects keyed by (user, container, object), data kept in
// checksummed chunks. Implementations are thread-safe. Names are assumed valid (the gRPC layer
// checks them); versions come from the caller and decide every conflict (highest wins).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mcos/v1/storage.pb.h"

namespace mcos::storage {

// Chunk size used for the data of new objects (part of the record, so it may change later).
inline constexpr uint32_t kChunkSize = uint32_t{1} << 20;
// Largest data message a client may send in one piece.
inline constexpr size_t kMaxClientChunkBytes = size_t{1} << 20;
// Listing limits (API.md).
inline constexpr uint32_t kDefaultListLimit = 1000;
inline constexpr uint32_t kMaxListLimit = 10000;

// Outcome of a write that did not fail.
struct WriteResult {
  // False when the stored version was newer or equal, so nothing changed.
  bool applied = false;
  // The record stored now (the new one, or the one that won).
  mcos::v1::ObjectRecord record;
  std::string reason;
  // An applied delete's: what was held before it (a live version, or nothing / a tombstone).
  mcos::v1::WritePrior prior = mcos::v1::WRITE_PRIOR_UNKNOWN;
};

// A write's outcome as StorageService.Put answers it.
inline mcos::v1::StoragePutResponse ToPutResponse(WriteResult result) {
  mcos::v1::StoragePutResponse response;
  response.set_applied(result.applied);
  *response.mutable_record() = std::move(result.record);
  response.set_reason(std::move(result.reason));
  return response;
}

// One streaming upload. Not thread-safe. Destroying it without a successful Commit() discards
// everything it wrote, leaving the previous version as it was.
class PutStream {
 public:
  virtual ~PutStream() = default;
  // Set when the header's version was already superseded when the stream began: the caller can
  // answer with it at once without sending data; Append is then a no-op.
  virtual const std::optional<WriteResult>& superseded() const = 0;
  // Adds the next bytes of content. UNAVAILABLE/INTERNAL if the disk write fails.
  virtual absl::Status Append(absl::string_view data) = 0;
  // Makes the version visible atomically and durably, unless a newer one is stored by then.
  // INVALID_ARGUMENT if the content does not match the size/md5/sha256 of the header or the
  // size/md5 of `finish` (the client's trailing values); FAILED_PRECONDITION if the header's
  // precondition does not hold; RESOURCE_EXHAUSTED if the disk is full.
  virtual absl::StatusOr<WriteResult> Commit(const mcos::v1::StoragePutFinish& finish) = 0;
};

// Reads one version, chunk by chunk, from a consistent snapshot. Not thread-safe.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual const mcos::v1::ObjectRecord& record() const = 0;
  // Fills `out` with the next piece of the requested range; returns false at the end.
  // DATA_LOSS if the piece is missing or fails its checksum (nothing of it is returned).
  virtual absl::StatusOr<bool> Next(std::string* out) = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Begins an upload. INVALID_ARGUMENT for a header without a version.
  virtual absl::StatusOr<std::unique_ptr<PutStream>> BeginPut(
      const mcos::v1::StoragePutHeader& header) = 0;
  // Opens a byte range of the newest version, or of `version` when set: the stored one, or one
  // replaced since its commit within its StoragePutFinish.keep_readable_ms. NOT_FOUND if missing
  // or deleted; OUT_OF_RANGE if `offset` is past the end; FAILED_PRECONDITION if `version` is set
  // and neither stored nor kept readable.
  virtual absl::StatusOr<std::unique_ptr<ObjectReader>> OpenReader(
      const mcos::v1::StorageGetRequest& request) = 0;
  // Stops keeping `version` of `key` readable once replaced (StoragePutFinish.keep_readable_ms)
  // before its time; nothing for a version not kept.
  virtual void ReleaseKept(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version) = 0;
  // Adds `holders` to ObjectRecord.holders of exactly `version` of `key` (without a sync of its
  // own); false when another version, a tombstone or nothing is held.
  virtual absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key,
                                          const mcos::v1::Version& version,
                                          const std::vector<std::string>& holders) = 0;
  // NOT_FOUND if missing, or deleted and !include_tombstone.
  virtual absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                                      bool include_tombstone) = 0;
  // Writes a tombstone (see StorageService.Delete).
  virtual absl::StatusOr<WriteResult> Delete(const mcos::v1::StorageDeleteRequest& request) = 0;

  // A write's answer through a callback: `done` runs once, without blocking (it answers a call).
  using WriteDone = std::function<void(absl::StatusOr<WriteResult>)>;
  // PutStream::Commit of `stream` (which is destroyed before `done` runs), answered through
  // `done`: where the engine groups commits (RocksDbEngine: one synced write for every commit
  // waiting, from its committing thread), the caller does not wait for the disk and `done` runs
  // on that thread; else before this returns.
  // NOLINTBEGIN(performance-unnecessary-value-param): sinks; the grouping engines keep them
  virtual void CommitAsync(std::unique_ptr<PutStream> stream, mcos::v1::StoragePutFinish finish,
                           WriteDone done) {
    absl::StatusOr<WriteResult> result = stream->Commit(finish);
    stream.reset();
    done(std::move(result));
  }
  // AddHolders, without a result: where the engine groups commits, recorded with its next group
  // (the caller does not wait), else before it returns.
  virtual void AddHoldersAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                               const std::vector<std::string>& holders) {
    AddHolders(key, version, holders).IgnoreError();
  }
  // Delete, answered through `done` as CommitAsync is.
  virtual void DeleteAsync(mcos::v1::StorageDeleteRequest request, WriteDone done) {
    done(Delete(request));
  }
  // NOLINTEND(performance-unnecessary-value-param)
  // One page of a listing, into `out` (empty; it may live on an arena, so that a page of
  // thousands of records is built and dropped without a heap allocation per field).
  virtual absl::Status List(const mcos::v1::StorageListRequest& request,
                            mcos::v1::StorageListResponse* out) = 0;
  // Live objects and bytes per container of `user`, in the order asked.
  virtual absl::StatusOr<mcos::v1::ContainerUsageResponse> Usage(
      const mcos::v1::ContainerUsageRequest& request) = 0;
  // Objects and bytes per partition of one option's live objects (request checked by the caller).
  virtual absl::StatusOr<mcos::v1::PartitionUsageResponse> PartitionUsage(
      const mcos::v1::PartitionUsageRequest& request) = 0;
  // Per-partition digests of one option's records, tombstones included (engine_rules.h,
  // DigestShare); INVALID_ARGUMENT for a bad power or partition (CheckDigestsRequest).
  virtual absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request) = 0;
  // One page of one option's records in a partition (tombstones included), in index order
  // (engine_rules.h, ScanPage); INVALID_ARGUMENT per CheckScanRequest.
  virtual absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request) = 0;
};

}  // namespace mcos::storage
