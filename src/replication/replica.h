// One cluster's copy of the objects, as the coordinator sees it (shared/DESIGN.md, "Inside a
// server"): this cluster's storage service, or a peer cluster's ClusterService. Plain C++ over
// blocking gRPC calls; every call has a deadline. The coordinator, the replication queue and
// the tests use only this interface. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mcos/v1/cluster.pb.h"
#include "mcos/v1/common.pb.h"
#include "mcos/v1/storage.pb.h"

namespace mcos::storage {
class Engine;
}

namespace mcos::replication {

// Content up to this size goes to a peer cluster in one message (ClusterPutSmallObject).
inline constexpr uint64_t kSmallWriteMax = uint64_t{1} << 20;

// A streamed replica write (ReplicaWriter) over the network holds at most about this many bytes
// not yet sent before its writer should wait (buffered()), and says so when it is below the low
// mark again.
inline constexpr uint64_t kWriterHighWater = uint64_t{8} << 20;
inline constexpr uint64_t kWriterLowWater = uint64_t{4} << 20;

// A replica's answer to a write.
struct WriteAck {
  // False when the replica already held a newer or equal version (not an error).
  bool applied = false;
  mcos::v1::Version stored_version;
  // An applied delete's: what the replica held before (UNKNOWN when it does not say).
  mcos::v1::WritePrior prior = mcos::v1::WRITE_PRIOR_UNKNOWN;
};

// One object version being read, chunk by chunk.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual const mcos::v1::ObjectRecord& record() const = 0;
  // The next chunk into `data`; false at the end or on an error (Finish tells which).
  virtual bool Next(std::string* data) = 0;
  // How the read ended: OK once every byte was read.
  virtual absl::Status Finish() = 0;
  // Stops the read (Finish then answers CANCELLED).
  virtual void Cancel() = 0;
};

// One replica write pushed as the content arrives (Replica::OpenWrite): opened with the header,
// then chunks, then Finish with the version to store and the content's size and digests. The
// replica stores nothing unless Finish's checks pass (an unfinished write commits nowhere);
// Abort, or destroying an unfinished writer, leaves what it held as it was. Not thread-safe
// except buffered(), which any thread may read.
class ReplicaWriter {
 public:
  virtual ~ReplicaWriter() = default;
  // Adds the next chunk (at most 1 MiB). A writer over the network may return before the chunk is
  // sent (buffered() then counts it). An error ends the write: nothing is stored.
  virtual absl::Status Append(std::string data) = 0;
  // Bytes appended and not yet handed to the network.
  virtual uint64_t buffered() const { return 0; }
  // Stores `record`'s version (its size, etag and checksum are checked against what arrived) and
  // answers like Put.
  virtual absl::StatusOr<WriteAck> Finish(const mcos::v1::ObjectRecord& record,
                                          absl::Time deadline) = 0;
  // Ends the write without storing anything.
  virtual void Abort() = 0;
};

class Replica {
 public:
  virtual ~Replica() = default;
  virtual const std::string& cluster() const = 0;
  // True when calls are plain function calls in this process (no network, no other thread):
  // the coordinator makes them on the caller's thread instead of handing them to its own.
  virtual bool in_process() const { return false; }
  // The newest version held, tombstones included. NOT_FOUND if the replica holds nothing.
  virtual absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                                      absl::Time deadline) = 0;
  // Whether StatAsync returns before the stat is answered (else it answers on the caller's thread).
  virtual bool stats_async() const { return false; }
  // Stat, answered through `done`: once, on another thread (gRPC's) when stats_async(), else
  // before it returns.
  virtual void StatAsync(
      const mcos::v1::ObjectKey& key, absl::Time deadline,
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
      std::function<void(absl::StatusOr<mcos::v1::ObjectRecord>)> done) {
    done(Stat(key, deadline));
  }
  // Opens a read of the object (of exactly `version` when given; FAILED_PRECONDITION if the
  // replica holds another). NOT_FOUND for nothing or a tombstone.
  virtual absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key,
                                                             uint64_t offset, uint64_t length,
                                                             const mcos::v1::Version* version,
                                                             absl::Time deadline) = 0;
  // Stores the version `record` describes (its size, etag and checksum are checked) with the
  // content `source` yields; nothing is stored unless all of it arrives.
  virtual absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                       absl::Time deadline) = 0;
  // Whether PutAsync and DeleteAsync return before the write is answered (else they answer on the
  // caller's thread). Even then, a write refused or failed at once may be answered before they
  // return: a caller must not hold a lock `done` takes.
  virtual bool writes_async() const { return false; }
  // Put of content held whole in memory (at most kSmallWriteMax bytes), answered through `done`
  // once: on another thread (gRPC's, or a storage engine's committing thread in this process)
  // when writes_async(), else before it returns. `done` must not block.
  virtual void PutAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                        std::shared_ptr<const std::string> data, absl::Time deadline,
                        std::function<void(absl::StatusOr<WriteAck>)> done);
  // A create's or an update's write (the coordinator has not stored it yet): as Put, but stored
  // only when nothing newer is held and `precondition` holds for what is: MUST_NOT_EXIST (a
  // create) nothing live, MUST_EXIST (an update) a live version. Not applied otherwise, `prior`
  // saying what this replica holds: LIVE (a live version, newer or older; `stored_version` is it)
  // or ABSENT (nothing, or a tombstone: `stored_version` is its version). Applied, `prior` says
  // what it held (ABSENT for a create, LIVE for an update). UNIMPLEMENTED where a replica cannot.
  virtual absl::StatusOr<WriteAck> PutIf(const mcos::v1::ObjectKey& key,
                                         const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                         absl::Time deadline,
                                         mcos::v1::WritePrecondition precondition);
  // PutIf of content held whole in memory, answered as PutAsync.
  virtual void PutIfAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                          std::shared_ptr<const std::string> data, absl::Time deadline,
                          mcos::v1::WritePrecondition precondition,
                          std::function<void(absl::StatusOr<WriteAck>)> done);
  // Delete, answered through `done` likewise.
  virtual void DeleteAsync(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone, absl::Time deadline,
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
      std::function<void(absl::StatusOr<WriteAck>)> done) {
    done(Delete(key, tombstone, deadline));
  }
  // The content of exactly `version` of `key` when this replica holds it whole in memory (a
  // small upload's InlineReplica), else null.
  virtual std::shared_ptr<const std::string> InMemory(const mcos::v1::ObjectKey& /*key*/,
                                                      const mcos::v1::Version& /*version*/) const {
    return nullptr;
  }
  // Opens a write pushed chunk by chunk (ReplicaWriter). `header` gives the record's content type,
  // metadata, partition and option and a provisional version; Finish gives the version stored.
  // `on_drained`, when not null, is called (on another thread, no lock held) when buffered() falls
  // below kWriterLowWater after an Append took it to kWriterHighWater or more. `deadline` bounds
  // the whole write. UNIMPLEMENTED for replicas that take no streamed writes.
  virtual absl::StatusOr<std::unique_ptr<ReplicaWriter>> OpenWrite(
      const mcos::v1::ObjectKey& /*key*/, const mcos::v1::ObjectRecord& /*header*/,
      absl::Time /*deadline*/, const std::function<void()>& /*on_drained*/) {
    return absl::UnimplementedError("this replica takes no streamed writes");
  }
  // Replaces a corrupt copy of the version `record` describes (StoragePutHeader.repair) with the
  // content `source` yields, checked against the record's checksum; a write like Put otherwise.
  // UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<WriteAck> Repair(const mcos::v1::ObjectKey& key,
                                          const mcos::v1::ObjectRecord& record,
                                          ObjectReader& source, absl::Time deadline) {
    return absl::UnimplementedError("only this cluster's storage repairs its own copies");
  }
  // The coordinating cluster's own commit of an upload it holds whole in memory: `header` as
  // StorageService.Put takes it (restamp, precondition, holders), then `data`, then `finish`;
  // answers as that call does (FAILED_PRECONDITION when the precondition fails, INVALID_ARGUMENT
  // when the size or a digest does not match: nothing stored). Saves a stream per small upload.
  // UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<mcos::v1::StoragePutResponse> StoreUpload(
      const mcos::v1::StoragePutHeader& /*header*/, absl::string_view /*data*/,
      const mcos::v1::StoragePutFinish& /*finish*/, absl::Time /*deadline*/) {
    return absl::UnimplementedError("only this cluster's storage stores a coordinator's upload");
  }
  // StoreUpload, answered through `done` as PutAsync is (`data` is read before this returns).
  virtual void StoreUploadAsync(
      const mcos::v1::StoragePutHeader& header, absl::string_view data,
      const mcos::v1::StoragePutFinish& finish, absl::Time deadline,
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
      std::function<void(absl::StatusOr<mcos::v1::StoragePutResponse>)> done) {
    done(StoreUpload(header, data, finish, deadline));
  }
  // Writes the tombstone `tombstone` (its version, partition and option), also when nothing is
  // held. A replica write: applied only above what is held.
  virtual absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key,
                                          const mcos::v1::ObjectRecord& tombstone,
                                          absl::Time deadline) = 0;
  // One page of the replica's listing into `out` (empty; it may live on an arena).
  virtual absl::Status List(const mcos::v1::StorageListRequest& request, absl::Time deadline,
                            mcos::v1::StorageListResponse* out) = 0;
  // The coordinating cluster's own delete: like Delete, but when a newer or equal version is held
  // the tombstone is written just above it (StorageDeleteRequest.restamp) and applied; the answer
  // names the version written. UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<WriteAck> DeleteAbove(const mcos::v1::ObjectKey& key,
                                               const mcos::v1::ObjectRecord& tombstone,
                                               absl::Time deadline) {
    return absl::UnimplementedError("only this cluster's storage writes a coordinator's delete");
  }
  // DeleteAbove, answered through `done` as DeleteAsync is; with MUST_EXIST as `precondition`
  // (a cluster's delete of an object no other cluster holds) FAILED_PRECONDITION when nothing live
  // is held (UNIMPLEMENTED unless writes_async()).
  virtual void DeleteAboveAsync(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone, absl::Time deadline,
      mcos::v1::WritePrecondition precondition,
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
      std::function<void(absl::StatusOr<WriteAck>)> done) {
    if (precondition != mcos::v1::WRITE_PRECONDITION_NONE) {
      done(absl::UnimplementedError("a conditional delete is for this cluster's own storage"));
      return;
    }
    done(DeleteAbove(key, tombstone, deadline));
  }
  // Tombstone reaping: forgets the tombstone of exactly `version` here (StorageDeleteRequest.
  // purge); applied=false when another version is held, NOT_FOUND when nothing is.
  // UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<WriteAck> Purge(const mcos::v1::ObjectKey& key,
                                         const mcos::v1::Version& version, absl::Time deadline) {
    return absl::UnimplementedError("only this cluster's storage purges its own tombstones");
  }
  // Moving data: forgets the record of exactly `version` here, live or a tombstone
  // (StorageDeleteRequest.release); applied=false when another version is held, NOT_FOUND when
  // nothing is. UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<WriteAck> Release(const mcos::v1::ObjectKey& key,
                                           const mcos::v1::Version& version, absl::Time deadline) {
    return absl::UnimplementedError("only this cluster's storage releases its own copies");
  }
  // A peer cluster's side of tombstone reaping (ClusterCheckTombstones, ClusterPurgeTombstones).
  // UNIMPLEMENTED for replicas that are not a peer cluster.
  virtual absl::StatusOr<mcos::v1::CheckTombstonesResponse> CheckTombstones(
      const mcos::v1::CheckTombstonesRequest& request, absl::Time deadline) {
    return absl::UnimplementedError("only a peer cluster answers for its tombstones");
  }
  virtual absl::StatusOr<mcos::v1::PurgeTombstonesResponse> PurgeTombstones(
      const mcos::v1::PurgeTombstonesRequest& request, absl::Time deadline) {
    return absl::UnimplementedError("only a peer cluster purges its tombstones");
  }
  // This copy's digests of one option's partitions (StorageService.PartitionDigests), and one page
  // of one partition's records (StorageService.ScanPartition): what anti-entropy compares.
  // UNIMPLEMENTED for replicas that hold no whole copy (InlineReplica).
  virtual absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request, absl::Time deadline) {
    return absl::UnimplementedError("this replica keeps no partition digests");
  }
  virtual absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request, absl::Time deadline) {
    return absl::UnimplementedError("this replica keeps no partition index");
  }
  // Adds `holders` to the holders recorded with exactly `version` of `key` here (ObjectRecord.
  // holders): the coordinator learned that they took it. False when another version is held.
  // UNIMPLEMENTED for replicas that are not this cluster's storage.
  virtual absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key,
                                          const mcos::v1::Version& version,
                                          const std::vector<std::string>& holders,
                                          absl::Time deadline) {
    return absl::UnimplementedError("only this cluster's storage records holders");
  }
  // AddHolders without waiting for it, where this cluster's storage takes writes without
  // blocking (writes_async: recorded with the storage engine's next group of commits), else with
  // the caller waiting up to 5 s. Its outcome is not reported: a holder not recorded is asked
  // for again by reads.
  virtual void AddHoldersLater(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                               const std::vector<std::string>& holders) {
    AddHolders(key, version, holders, absl::Now() + absl::Seconds(5)).IgnoreError();
  }
  // The coordinator is done sending `version` of `key` from here: a copy in storage kept readable
  // for it once replaced (StoragePutFinish.keep_readable_ms) may go. Best effort; nothing for
  // replicas that keep nothing.
  virtual void ReleaseKept(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version) {}
};

// The record of a tombstone with `version`, as replicas are given it.
mcos::v1::ObjectRecord TombstoneRecord(const mcos::v1::Version& version, uint32_t partition,
                                       const std::string& option);

// Gives `to` the version `record` describes, read from `from` (a tombstone becomes a delete).
// With `from_version`, the content is the one `from` holds as that version, stored at `to` as
// `record`'s version (a coordinator that stamps its write again above a newer version it met).
// `after_chunk`, if set, is called with each chunk's size once it is read from `from` (a
// background copy paces itself there); false cancels the copy (CANCELLED).
absl::StatusOr<WriteAck> Copy(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
                              const mcos::v1::ObjectRecord& record, absl::Time deadline,
                              const mcos::v1::Version* from_version = nullptr,
                              const std::function<bool(size_t)>& after_chunk = {});

// This cluster's storage service (the channel carries the service credential).
std::unique_ptr<Replica> StorageReplica(std::string cluster,
                                        const std::shared_ptr<grpc::Channel>& channel);
// A peer cluster's servers (ClusterService; the channel carries the peer credential).
// `coordinator` names this cluster in the writes it sends.
std::unique_ptr<Replica> PeerReplica(std::string cluster, std::string coordinator,
                                     const std::shared_ptr<grpc::Channel>& channel);

// A storage engine in this process (not owned; it must outlive the replica), without gRPC: for
// hermetic tests over storage::MemoryEngine. Calls are synchronous; deadlines do not apply.
std::unique_ptr<Replica> EngineReplica(std::string cluster, storage::Engine& engine);

// A copy held in memory (a small upload the coordinator still has): serves Stat and Open of
// `record`'s version of its one object from `data`; everything else is UNIMPLEMENTED. Saves
// reading the object back from storage for each replica it is sent to.
std::unique_ptr<Replica> InlineReplica(std::string cluster, mcos::v1::ObjectRecord record,
                                       std::string data);

// Copy without blocking, when it can be: `to` takes writes that way (writes_async()) and the
// write is a tombstone or `from` holds the content in memory (InMemory). Then starts it on the
// caller's thread and returns true; `done` is called once, on another thread when `to` is
// remote. Else returns false and never calls `done` (use Copy).
bool CopyAsync(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
               const mcos::v1::ObjectRecord& record, absl::Time deadline,
               const mcos::v1::Version* from_version,
               std::function<void(absl::StatusOr<WriteAck>)> done);

// Content held whole in memory as an ObjectReader (of `record`).
std::unique_ptr<ObjectReader> MemoryReader(mcos::v1::ObjectRecord record,
                                           std::shared_ptr<const std::string> data);

// Replaces `to`'s corrupt copy of `record`'s version with `from`'s (Replica::Repair).
absl::StatusOr<WriteAck> RepairCopy(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
                                    const mcos::v1::ObjectRecord& record, absl::Time deadline);

// Deadline of a copy of `size` bytes: `base` plus the time at `bytes_per_second`.
absl::Time CopyDeadline(uint64_t size, absl::Duration base, double bytes_per_second = 20e6);

}  // namespace mcos::replication
