// An Engine that keeps everything in memory: the RocksDB engine's twin for hermetic tests of the
// code above storage (coordinator, replication, repair). It follows the same rules
// (engine_rules.h) and passes the same contract test (tests/unit/storage/engine_contract_test.cc);
// it has no durability, no space limits and no chunk checksums to fail. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/engine.h"

namespace mcos::storage {

class MemoryEngine final : public Engine {
 public:
  MemoryEngine() = default;

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

 private:
  friend class MemoryPutStream;
  struct Stored {
    mcos::v1::ObjectRecord record;
    std::shared_ptr<const std::string> data;  // null for a tombstone
  };
  // Stores `record` with `data` unless a newer or equal version is stored; the rules of
  // PutStream::Commit.
  // (`keep_readable_ms`: StoragePutFinish's.)
  absl::StatusOr<WriteResult> Commit(const mcos::v1::StoragePutHeader& header,
                                     mcos::v1::ObjectRecord record, std::string data,
                                     uint32_t keep_readable_ms);

  absl::Mutex mu_;
  // By ObjectMetaKey, so that listings have the RocksDB engine's order.
  std::map<std::string, Stored> objects_ ABSL_GUARDED_BY(mu_);
  uint64_t next_data_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Versions kept readable after their commit (StoragePutFinish.keep_readable_ms), by
  // ObjectMetaKey, until they expire.
  struct Kept {
    Stored stored;
    absl::Time expires;
  };
  std::multimap<std::string, Kept> kept_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::storage
