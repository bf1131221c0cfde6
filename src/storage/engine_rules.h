// The rules every Engine follows, in one place so that the RocksDB engine and its in-memory twin
// cannot drift apart: the content checks of an upload, write preconditions, the byte range of a
// read, listing with prefix/marker/delimiter, and the digests that anti-entropy compares. The
// engines only store; what they store and answer is decided here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "mcos/v1/storage.pb.h"
#include "storage/upload_content.h"

namespace mcos::storage {

// Usage and digests are kept per bucket: the top kUsageBucketBits bits of the object hash
// (placement.h), so that any partition power up to it can be answered by summing buckets.
inline constexpr uint32_t kUsageBucketBits = 18;  // = placement::kMaxPartitionPower

// The order in which every engine keeps and lists objects: u8 len(user) | user | u8 len(container)
// | container | object, so that one (user, container) is a contiguous range sorted bytewise by
// object name. (The RocksDB engine's on-disk key: never change it.)
std::string ContainerPrefix(absl::string_view user, absl::string_view container);
std::string ObjectMetaKey(absl::string_view user, absl::string_view container,
                          absl::string_view object);
// Splits an ObjectMetaKey back into its parts; false if it is malformed.
bool ParseObjectMetaKey(absl::string_view meta_key, mcos::v1::ObjectKey* key);

// Adds `holders` (deduplicated, in their order) to `record`'s holders when it is exactly the live
// `version`; true when it changed.
bool AddHolders(mcos::v1::ObjectRecord& record, const mcos::v1::Version& version,
                const std::vector<std::string>& holders);

// The version a write of `wanted` commits with over `stored` (nullptr: nothing stored): `wanted`
// when it is newer; else, with `restamp` (StoragePutHeader.restamp), the next version of the
// writer's cluster above the stored one (common::RestampAbove); with `repair`
// (StoragePutHeader.repair) also `wanted` when it is the stored live version itself (its data is
// replaced); else nullopt: superseded, the write changes nothing.
std::optional<mcos::v1::Version> CommitVersion(const mcos::v1::ObjectRecord* stored,
                                               const mcos::v1::Version& wanted, bool restamp,
                                               bool repair = false);
// Whether an upload is superseded before its data arrives (PutStream::superseded): what is stored
// wins over the header's version, which is final (not version_at_finish).
bool SupersededAtStart(const mcos::v1::ObjectRecord* stored,
                       const mcos::v1::StoragePutHeader& header);
std::string SupersededReason(const mcos::v1::ObjectRecord& stored, const mcos::v1::Version& v);
// Whether a purge (StorageDeleteRequest.purge) of the tombstone of `version` forgets `stored`: only
// that very tombstone.
bool IsPurgeable(const mcos::v1::ObjectRecord& stored, const mcos::v1::Version& version);
// Whether a release (StorageDeleteRequest.release) of `version` applies to `stored`: exactly that
// version, live or a tombstone.
bool IsReleasable(const mcos::v1::ObjectRecord& stored, const mcos::v1::Version& version);
// FAILED_PRECONDITION unless `precondition` holds, given whether a live version is stored.
absl::Status CheckPrecondition(mcos::v1::WritePrecondition precondition,
                               const mcos::v1::ObjectKey& key, bool live);

// The tombstone a delete request writes, with `version` (CommitVersion's).
mcos::v1::ObjectRecord Tombstone(const mcos::v1::StorageDeleteRequest& request,
                                 const mcos::v1::Version& version);

// The byte range [begin, end) a read of `stored` (nullptr: nothing stored) asks for. NOT_FOUND for
// nothing or a tombstone; FAILED_PRECONDITION if the request names another version;
// OUT_OF_RANGE past the end; DATA_LOSS for a record without a chunk size.
absl::StatusOr<std::pair<uint64_t, uint64_t>> ReadRange(const mcos::v1::StorageGetRequest& request,
                                                        const mcos::v1::ObjectRecord* stored);

// The records of one (user, container) in bytewise order of object name, as an engine holds them.
class RecordCursor {
 public:
  virtual ~RecordCursor() = default;
  // Moves to the first object whose name is >= `name`.
  virtual void Seek(absl::string_view name) = 0;
  // False past the last object whose name starts with the listing's prefix.
  virtual bool Valid() const = 0;
  virtual absl::string_view name() const = 0;
  // Fills `into` (empty) with the current object's record (with `versions_only`, only its version,
  // tombstone and holders); returns how many bytes its whole serialized form takes (the page's
  // size is counted from these, so a page ends at the same name either way).
  virtual absl::StatusOr<size_t> ReadRecord(mcos::v1::ObjectRecord& into,
                                            bool versions_only) const = 0;
  virtual void Next() = 0;
  // An error that ended the iteration early.
  virtual absl::Status status() const = 0;
};

// One page of a listing (StorageService.List) into `out` (empty, maybe on an arena: the records
// are parsed into it where they stay), read from `cursor`, which yields the names that start with
// the request's prefix.
absl::Status ListRecords(const mcos::v1::StorageListRequest& request, RecordCursor& cursor,
                         mcos::v1::StorageListResponse* out);

// Parses a serialized ObjectRecord's version, tombstone and holders into `into` (empty), skipping
// its other fields without copying them; false if `bytes` is not a record.
bool ParseRecordVersion(absl::string_view bytes, mcos::v1::ObjectRecord& into);
// The same, from a record held in memory.
void CopyRecordVersion(const mcos::v1::ObjectRecord& from, mcos::v1::ObjectRecord& into);

// The smallest string greater than every string that starts with `s`; empty if there is none.
std::string PrefixSuccessor(std::string s);

// Usage and digest bucket of an object.
uint32_t UsageBucket(const mcos::v1::ObjectKey& key);
// INVALID_ARGUMENT unless 1 <= power <= kUsageBucketBits.
absl::Status CheckPartitionPower(uint32_t power);

// One record's share of its partition's digest: a hash of its key and version. A partition's
// digest is the sum (mod 2^64) of its records' shares, tombstones included, so it does not depend
// on the order of writes, and an engine can keep it up to date by adding and subtracting shares.
// Part of what clusters compare: never change it.
uint64_t DigestShare(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version);

// Adds up per-bucket (count, digest) pairs into per-partition digests at `request`'s power,
// keeping only the partitions it asks for (all when none) that hold records. `buckets` must be in
// ascending bucket order.
class DigestFolder {
 public:
  explicit DigestFolder(const mcos::v1::PartitionDigestsRequest& request);
  void Add(uint32_t bucket, uint64_t count, uint64_t digest);
  mcos::v1::PartitionDigestsResponse Finish();

 private:
  const mcos::v1::PartitionDigestsRequest& request_;
  std::vector<uint32_t> wanted_;  // sorted; empty: all
  mcos::v1::PartitionDigestsResponse response_;
};

// INVALID_ARGUMENT for a bad partition power or a partition outside it.
absl::Status CheckDigestsRequest(const mcos::v1::PartitionDigestsRequest& request);

// ---- The partition index (StorageService.ScanPartition) ----
// Records of one option in the order of (bucket, ObjectMetaKey); a partition at any power is a
// contiguous range of it. A record's position is IndexPosition: u32 big-endian bucket |
// ObjectMetaKey, which is also the page marker the scan answers.
inline constexpr uint32_t kDefaultScanLimit = 1000;
inline constexpr uint32_t kMaxScanLimit = 10000;
std::string IndexPosition(uint32_t bucket, absl::string_view meta_key);
// INVALID_ARGUMENT for a bad power, a partition outside it, a limit over kMaxScanLimit, or a
// marker that is not a position inside the partition.
absl::Status CheckScanRequest(const mcos::v1::ScanPartitionRequest& request);
// One page of a scan: the engine feeds it records in index order from begin() (exclusive of the
// request's marker) while Add answers true, and stops at end() (empty: no bound). The request must
// have passed CheckScanRequest and must outlive the page.
class ScanPage {
 public:
  explicit ScanPage(const mcos::v1::ScanPartitionRequest& request);
  const std::string& begin() const { return begin_; }
  const std::string& end() const { return end_; }
  // Adds the record at `position`; false (nothing added) once the page is full or `position` is
  // at or past end(): the scan stops there.
  bool Add(absl::string_view position, const mcos::v1::ObjectKey& key,
           const mcos::v1::ObjectRecord& record);
  mcos::v1::ScanPartitionResponse Finish() { return std::move(page_); }

 private:
  std::string begin_;
  std::string end_;
  uint32_t limit_;
  std::string last_;
  mcos::v1::ScanPartitionResponse page_;
};

}  // namespace mcos::storage
