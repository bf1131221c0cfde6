#include "storage/engine_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "placement/placement.h"
#include "storage/engine.h"

namespace mcos::storage {

using mcos::v1::ObjectKey;
using mcos::v1::ObjectRecord;

namespace {
// Responses of List stop growing past this many bytes (the client then asks for the next page).
constexpr size_t kMaxListResponseBytes = 2u << 20;
}  // namespace

std::string ContainerPrefix(absl::string_view user, absl::string_view container) {
  std::string key;
  key.reserve(2 + user.size() + container.size());
  key.push_back(static_cast<char>(user.size()));
  key.append(user.data(), user.size());
  key.push_back(static_cast<char>(container.size()));
  key.append(container.data(), container.size());
  return key;
}

std::string ObjectMetaKey(absl::string_view user, absl::string_view container,
                          absl::string_view object) {
  std::string key = ContainerPrefix(user, container);
  key.append(object.data(), object.size());
  return key;
}

bool ParseObjectMetaKey(absl::string_view meta_key, ObjectKey* key) {
  if (meta_key.empty()) return false;
  const size_t user_len = static_cast<uint8_t>(meta_key[0]);
  if (meta_key.size() < 2 + user_len) return false;
  const size_t container_len = static_cast<uint8_t>(meta_key[1 + user_len]);
  if (meta_key.size() < 2 + user_len + container_len) return false;
  key->set_user(std::string(meta_key.substr(1, user_len)));
  key->set_container(std::string(meta_key.substr(2 + user_len, container_len)));
  key->set_object(std::string(meta_key.substr(2 + user_len + container_len)));
  return true;
}

std::string SupersededReason(const ObjectRecord& stored, const mcos::v1::Version& v) {
  return absl::StrCat("stored version ", common::VersionToString(stored.version()),
                      " is newer than or equal to ", common::VersionToString(v));
}

bool SupersededAtStart(const ObjectRecord* stored, const mcos::v1::StoragePutHeader& header) {
  return stored != nullptr && !header.version_at_finish() &&
         !CommitVersion(stored, header.version(), header.restamp(), header.repair());
}

bool IsPurgeable(const ObjectRecord& stored, const mcos::v1::Version& version) {
  return stored.tombstone() && common::CompareVersions(stored.version(), version) == 0;
}

bool IsReleasable(const ObjectRecord& stored, const mcos::v1::Version& version) {
  return common::CompareVersions(stored.version(), version) == 0;
}

absl::Status CheckPrecondition(mcos::v1::WritePrecondition precondition, const ObjectKey& key,
                               bool live) {
  if (precondition == mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST && live) {
    return absl::FailedPreconditionError(absl::StrCat(Describe(key), " already exists"));
  }
  if (precondition == mcos::v1::WRITE_PRECONDITION_MUST_EXIST && !live) {
    return absl::FailedPreconditionError(absl::StrCat(Describe(key), " not found"));
  }
  return absl::OkStatus();
}

bool AddHolders(ObjectRecord& record, const mcos::v1::Version& version,
                const std::vector<std::string>& holders) {
  if (record.tombstone() || common::CompareVersions(record.version(), version) != 0) return false;
  bool changed = false;
  for (const std::string& h : holders) {
    if (std::find(record.holders().begin(), record.holders().end(), h) != record.holders().end()) {
      continue;
    }
    record.add_holders(h);
    changed = true;
  }
  return changed;
}

std::optional<mcos::v1::Version> CommitVersion(const ObjectRecord* stored,
                                               const mcos::v1::Version& wanted, bool restamp,
                                               bool repair) {
  if (stored == nullptr || common::IsNewer(wanted, stored->version())) return wanted;
  if (repair && !stored->tombstone() && common::CompareVersions(wanted, stored->version()) == 0) {
    return wanted;
  }
  if (restamp) return common::RestampAbove(stored->version(), wanted);
  return std::nullopt;
}

ObjectRecord Tombstone(const mcos::v1::StorageDeleteRequest& request,
                       const mcos::v1::Version& version) {
  ObjectRecord tombstone;
  *tombstone.mutable_version() = version;
  tombstone.set_tombstone(true);
  tombstone.set_partition(request.partition());
  tombstone.set_option(request.option());
  common::ToProtoTimestamp(common::HlcTime(version.hlc()), tombstone.mutable_modified());
  *tombstone.mutable_created() = tombstone.modified();
  return tombstone;
}

// ---------------------------------------------------------------------------------------------
// Reads

absl::StatusOr<std::pair<uint64_t, uint64_t>> ReadRange(const mcos::v1::StorageGetRequest& request,
                                                        const ObjectRecord* stored) {
  const ObjectKey& key = request.key();
  if (stored == nullptr || stored->tombstone()) {
    return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
  }
  if (common::IsSet(request.version()) &&
      common::CompareVersions(request.version(), stored->version()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(key), " is at version ", common::VersionToString(stored->version()),
                     ", not the requested ", common::VersionToString(request.version())));
  }
  const uint64_t size = stored->size();
  if ((size > 0 && request.offset() >= size) || (size == 0 && request.offset() > 0)) {
    return absl::OutOfRangeError(absl::StrCat("offset ", request.offset(), " is past the end of ",
                                              Describe(key), ", which is ", size, " bytes long"));
  }
  uint64_t end = size;
  if (request.length() > 0 && request.length() < size - request.offset()) {
    end = request.offset() + request.length();
  }
  if (stored->chunk_size() == 0 && size > 0) {
    return absl::DataLossError(absl::StrCat("the record of ", Describe(key), " has no chunk size"));
  }
  return std::make_pair(uint64_t{request.offset()}, end);
}

// ---------------------------------------------------------------------------------------------
// Listings

std::string PrefixSuccessor(std::string s) {
  while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xFF) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<uint8_t>(s.back()) + 1);
  return s;
}

bool ParseRecordVersion(absl::string_view bytes, ObjectRecord& into) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  auto is = [](uint32_t tag, int field, WireFormatLite::WireType type) {
    return tag == WireFormatLite::MakeTag(field, type);
  };
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage();
    bool read = true;
    if (is(tag, ObjectRecord::kVersionFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
      read = WireFormatLite::ReadMessage(&in, into.mutable_version());
    } else if (is(tag, ObjectRecord::kTombstoneFieldNumber, WireFormatLite::WIRETYPE_VARINT)) {
      bool tombstone = false;
      read = WireFormatLite::ReadPrimitive<bool, WireFormatLite::TYPE_BOOL>(&in, &tombstone);
      into.set_tombstone(tombstone);
    } else if (is(tag, ObjectRecord::kHoldersFieldNumber,
                  WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
      read = WireFormatLite::ReadString(&in, into.add_holders());
    } else {
      read = WireFormatLite::SkipField(&in, tag);
    }
    if (!read) return false;
  }
}

void CopyRecordVersion(const ObjectRecord& from, ObjectRecord& into) {
  *into.mutable_version() = from.version();
  into.set_tombstone(from.tombstone());
  *into.mutable_holders() = from.holders();
}

absl::Status ListRecords(const mcos::v1::StorageListRequest& request, RecordCursor& cursor,
                         mcos::v1::StorageListResponse* out) {
  const std::string& prefix = request.prefix();
  const std::string& marker = request.marker();
  const std::string& delimiter = request.delimiter();
  uint32_t limit = request.limit() == 0 ? kDefaultListLimit : request.limit();
  limit = std::min(limit, kMaxListLimit);
  const bool after_marker = !marker.empty() && marker >= prefix;
  cursor.Seek(after_marker ? marker : prefix);
  mcos::v1::StorageListResponse& response = *out;
  auto& entries = *response.mutable_entries();
  uint32_t count = 0;
  size_t bytes = 0;
  std::string last;
  auto full = [&] { return count >= limit || bytes >= kMaxListResponseBytes; };
  // Moves past every name that starts with `p`.
  auto skip = [&](const std::string& p) {
    const std::string next = PrefixSuccessor(p);
    if (next.empty()) return false;
    cursor.Seek(next);
    return true;
  };
  while (cursor.Valid()) {
    const absl::string_view name = cursor.name();
    if (after_marker && name <= marker) {  // only the marker itself: we sought to it
      cursor.Next();
      continue;
    }
    // Parsed where it stays (on the page's arena, if any); taken back if it is not listed.
    mcos::v1::StorageListEntry* entry = entries.Add();
    const ObjectRecord& record = *entry->mutable_record();
    absl::StatusOr<size_t> record_bytes =
        cursor.ReadRecord(*entry->mutable_record(), request.versions_only());
    if (!record_bytes.ok()) {
      entries.RemoveLast();
      return record_bytes.status();
    }
    if (record.tombstone() && !request.include_tombstones()) {
      entries.RemoveLast();
      cursor.Next();
      continue;
    }
    if (!delimiter.empty()) {
      const size_t pos = name.find(delimiter, prefix.size());
      if (pos != absl::string_view::npos) {
        entries.RemoveLast();
        std::string common_prefix(name.substr(0, pos + delimiter.size()));
        if (after_marker && common_prefix <= marker) {
          if (!skip(common_prefix)) break;
          continue;
        }
        if (full()) {
          response.set_next_marker(last);
          break;
        }
        bytes += common_prefix.size() + 4;
        ++count;
        last = common_prefix;
        response.add_common_prefixes(std::move(common_prefix));
        if (!skip(last)) break;
        continue;
      }
    }
    if (full()) {
      entries.RemoveLast();
      response.set_next_marker(last);
      break;
    }
    entry->set_object(std::string(name));
    // The entry's size on the wire: its name and record, each with a tag and a length.
    bytes += name.size() + *record_bytes + 12;
    ++count;
    last = entry->object();
    cursor.Next();
  }
  return cursor.status();
}

// ---------------------------------------------------------------------------------------------
// Usage and digests

uint32_t UsageBucket(const ObjectKey& key) {
  return placement::PartitionOf(placement::ObjectHash(key.user(), key.container(), key.object()),
                                kUsageBucketBits);
}

absl::Status CheckPartitionPower(uint32_t power) {
  if (power < 1 || power > kUsageBucketBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("partition power ", power, " is outside 1..", kUsageBucketBits));
  }
  return absl::OkStatus();
}

uint64_t DigestShare(const ObjectKey& key, const mcos::v1::Version& version) {
  std::string bytes;
  bytes.reserve(key.user().size() + key.container().size() + key.object().size() +
                version.cluster().size() + 12);
  for (const std::string* part : {&key.user(), &key.container(), &key.object()}) {
    bytes.push_back(static_cast<char>(part->size()));
    bytes.append(*part);
  }
  for (int shift = 56; shift >= 0; shift -= 8) {
    bytes.push_back(static_cast<char>((version.hlc() >> shift) & 0xFF));
  }
  bytes.append(version.cluster());
  return common::Hash64(bytes);
}

absl::Status CheckDigestsRequest(const mcos::v1::PartitionDigestsRequest& request) {
  if (absl::Status s = CheckPartitionPower(request.partition_power()); !s.ok()) return s;
  if (request.partitions_size() > (1 << kUsageBucketBits)) {
    return absl::InvalidArgumentError(
        "at most 262144 partitions per digest request; ask for all (none named) instead");
  }
  for (uint32_t p : request.partitions()) {
    if (p >= (uint64_t{1} << request.partition_power())) {
      return absl::InvalidArgumentError(absl::StrCat("partition ", p, " is outside power ",
                                                     request.partition_power(), "'s partitions"));
    }
  }
  return absl::OkStatus();
}

DigestFolder::DigestFolder(const mcos::v1::PartitionDigestsRequest& request)
    : request_(request), wanted_(request.partitions().begin(), request.partitions().end()) {
  std::sort(wanted_.begin(), wanted_.end());
}

void DigestFolder::Add(uint32_t bucket, uint64_t count, uint64_t digest) {
  if (count == 0) return;
  const uint32_t partition = bucket >> (kUsageBucketBits - request_.partition_power());
  if (!wanted_.empty() && !std::binary_search(wanted_.begin(), wanted_.end(), partition)) return;
  const int n = response_.digests_size();
  if (n == 0 || response_.digests(n - 1).partition() != partition) {
    response_.add_digests()->set_partition(partition);
  }
  auto* d = response_.mutable_digests(response_.digests_size() - 1);
  d->set_object_count(d->object_count() + count);
  d->set_digest(d->digest() + digest);
}

mcos::v1::PartitionDigestsResponse DigestFolder::Finish() { return std::move(response_); }

// ---------------------------------------------------------------------------------------------
// The partition index

namespace {

std::string BucketBytes(uint32_t bucket) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(bucket >> (24 - 8 * i));
  return out;
}

uint32_t BucketOfPosition(absl::string_view position) {
  uint32_t bucket = 0;
  for (int i = 0; i < 4; ++i) bucket = (bucket << 8) | static_cast<uint8_t>(position[i]);
  return bucket;
}

}  // namespace

std::string IndexPosition(uint32_t bucket, absl::string_view meta_key) {
  return absl::StrCat(BucketBytes(bucket), meta_key);
}

absl::Status CheckScanRequest(const mcos::v1::ScanPartitionRequest& request) {
  MCOS_RETURN_IF_ERROR(CheckPartitionPower(request.partition_power()));
  if (request.partition() >= (uint64_t{1} << request.partition_power())) {
    return absl::InvalidArgumentError(absl::StrCat("partition ", request.partition(),
                                                   " is outside power ", request.partition_power(),
                                                   "'s partitions"));
  }
  if (request.limit() > kMaxScanLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("scan limit ", request.limit(), " is over ", kMaxScanLimit));
  }
  if (request.marker().empty()) return absl::OkStatus();
  ObjectKey key;
  if (request.marker().size() < 4 ||
      !ParseObjectMetaKey(absl::string_view(request.marker()).substr(4), &key) ||
      BucketOfPosition(request.marker()) >> (kUsageBucketBits - request.partition_power()) !=
          request.partition()) {
    return absl::InvalidArgumentError(
        "the scan marker is not a position in this partition: pass the previous page's "
        "next_marker unchanged");
  }
  return absl::OkStatus();
}

ScanPage::ScanPage(const mcos::v1::ScanPartitionRequest& request)
    : limit_(request.limit() == 0 ? kDefaultScanLimit : request.limit()) {
  const uint32_t shift = kUsageBucketBits - request.partition_power();
  begin_ = BucketBytes(request.partition() << shift);
  const uint64_t next = (uint64_t{request.partition()} + 1) << shift;
  if (next < (uint64_t{1} << kUsageBucketBits)) end_ = BucketBytes(static_cast<uint32_t>(next));
  // "After the marker" starts at its successor: the marker followed by a zero byte.
  if (!request.marker().empty()) begin_ = request.marker() + std::string(1, '\0');
}

bool ScanPage::Add(absl::string_view position, const ObjectKey& key, const ObjectRecord& record) {
  if (!end_.empty() && position >= end_) return false;
  if (static_cast<uint32_t>(page_.entries_size()) >= limit_) {
    page_.set_next_marker(last_);
    return false;
  }
  auto* entry = page_.add_entries();
  *entry->mutable_key() = key;
  *entry->mutable_record() = record;
  last_ = std::string(position);
  return true;
}

}  // namespace mcos::storage
