// StorageService over gRPC: checks the caller's service credential and every input, then calls the
// Engine. Thread-safe. `engine` and `auth` must outlive this.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>

#include "common/service_auth.h"
#include "mcos/v1/storage.grpc.pb.h"
#include "storage/engine.h"

namespace mcos::storage {

class StorageGrpcService final : public mcos::v1::StorageService::Service {
 public:
  // `disk` answers DiskStatus (null: UNIMPLEMENTED).
  StorageGrpcService(Engine& engine, prometheus::Registry& registry, common::ServiceAuth& auth,
                     std::function<mcos::v1::DiskStatusResponse()> disk = nullptr);

  grpc::Status Put(grpc::ServerContext* context,
                   grpc::ServerReader<mcos::v1::StoragePutRequest>* reader,
                   mcos::v1::StoragePutResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const mcos::v1::StorageGetRequest* request,
                   grpc::ServerWriter<mcos::v1::StorageGetResponse>* writer) override;
  grpc::Status Stat(grpc::ServerContext* context, const mcos::v1::StorageStatRequest* request,
                    mcos::v1::StorageStatResponse* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const mcos::v1::StorageDeleteRequest* request,
                      mcos::v1::StorageDeleteResponse* response) override;
  grpc::Status List(grpc::ServerContext* context, const mcos::v1::StorageListRequest* request,
                    mcos::v1::StorageListResponse* response) override;
  grpc::Status ContainerUsage(grpc::ServerContext* context,
                              const mcos::v1::ContainerUsageRequest* request,
                              mcos::v1::ContainerUsageResponse* response) override;
  grpc::Status PartitionUsage(grpc::ServerContext* context,
                              const mcos::v1::PartitionUsageRequest* request,
                              mcos::v1::PartitionUsageResponse* response) override;
  grpc::Status PartitionDigests(grpc::ServerContext* context,
                                const mcos::v1::PartitionDigestsRequest* request,
                                mcos::v1::PartitionDigestsResponse* response) override;
  grpc::Status ScanPartition(grpc::ServerContext* context,
                             const mcos::v1::ScanPartitionRequest* request,
                             mcos::v1::ScanPartitionResponse* response) override;
  grpc::Status AddHolders(grpc::ServerContext* context,
                          const mcos::v1::StorageAddHoldersRequest* request,
                          mcos::v1::StorageAddHoldersResponse* response) override;
  grpc::Status ReleaseKept(grpc::ServerContext* context,
                           const mcos::v1::StorageReleaseKeptRequest* request,
                           mcos::v1::StorageReleaseKeptResponse* response) override;
  grpc::Status DiskStatus(grpc::ServerContext* context, const mcos::v1::DiskStatusRequest* request,
                          mcos::v1::DiskStatusResponse* response) override;

 private:
  Engine& engine_;
  common::ServiceAuth& auth_;
  const std::function<mcos::v1::DiskStatusResponse()> disk_;
  prometheus::Counter& bytes_in_;
  prometheus::Counter& bytes_out_;
};

// Checks that a key names a valid user, container and object.
absl::Status ValidateObjectKey(const mcos::v1::ObjectKey& key);

}  // namespace mcos::storage
