// A client of mcos.v1.StorageService for servers, tools, benchmarks and tests: streams uploads and
// downloads in chunks (never a whole object in memory) and turns gRPC errors into absl::Status.
// Thread-safe (gRPC stubs are).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "mcos/v1/storage.grpc.pb.h"

namespace mcos::storage {

// Fills up to `capacity` bytes at `buffer` with the next bytes of content; returns how many (0 at
// the end) or an error that aborts the upload.
using ChunkSource = std::function<absl::StatusOr<size_t>(char* buffer, size_t capacity)>;
// Receives the next piece of downloaded content; an error aborts the download.
using ChunkSink = std::function<absl::Status(absl::string_view data)>;

using common::ConnectInsecure;

class StorageClient {
 public:
  explicit StorageClient(std::shared_ptr<grpc::Channel> channel,
                         absl::Duration unary_deadline = absl::Seconds(30));

  // Uploads the content produced by `source` in chunks of `chunk_bytes` (at most 1 MiB).
  absl::StatusOr<mcos::v1::StoragePutResponse> Put(const mcos::v1::StoragePutHeader& header,
                                                   const ChunkSource& source,
                                                   size_t chunk_bytes = size_t{1} << 20);
  absl::StatusOr<mcos::v1::StoragePutResponse> PutBytes(const mcos::v1::StoragePutHeader& header,
                                                        absl::string_view content);
  // Downloads; `sink` gets the data in order. Returns the record.
  absl::StatusOr<mcos::v1::ObjectRecord> Get(const mcos::v1::StorageGetRequest& request,
                                             const ChunkSink& sink);
  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              bool include_tombstone = false);
  absl::StatusOr<mcos::v1::StorageDeleteResponse> Delete(const mcos::v1::StorageDeleteRequest& r);
  absl::StatusOr<mcos::v1::StorageListResponse> List(const mcos::v1::StorageListRequest& request);

  mcos::v1::StorageService::Stub& stub() { return *stub_; }

 private:
  void SetDeadline(grpc::ClientContext& context) const;
  std::unique_ptr<mcos::v1::StorageService::Stub> stub_;
  absl::Duration unary_deadline_;
};

}  // namespace mcos::storage
