// ClusterService (shared/API.md): the replica side of the federation's data path, on every
// server, for peer clusters only (the federation's peer credential; anything else is refused).
// Each call is a replica operation on this cluster's storage with the coordinator's version: a
// write older than or equal to what is stored is ignored (applied = false), so retries and
// replays are harmless. A replica write stores nothing unless the header's `size` bytes all
// arrive and match its checksums. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <functional>

#include "common/arena_messages.h"
#include "mcos/v1/cluster.grpc.pb.h"
#include "replication/replica.h"

namespace mcos::server {

class ServerApp;

class ClusterGrpcService final
    : public mcos::v1::ClusterService::WithCallbackMethod_ClusterReplicate<
          mcos::v1::ClusterService::WithCallbackMethod_ClusterListObjects<
              mcos::v1::ClusterService::Service>> {
 public:
  // `registry` takes the streams' per-operation counts.
  ClusterGrpcService(ServerApp& app, prometheus::Registry& registry);

  // A peer's stream of small replica operations (on gRPC's callback API; each operation is done
  // on the coordinator's threads for this cluster, several at once).
  grpc::ServerBidiReactor<mcos::v1::ClusterReplicateRequest, mcos::v1::ClusterReplicateResponse>*
  ClusterReplicate(grpc::CallbackServerContext* context) override;

  grpc::Status ClusterCreateObject(grpc::ServerContext* context,
                                   grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
                                   mcos::v1::ClusterWriteResponse* response) override;
  grpc::Status ClusterUpdateObject(grpc::ServerContext* context,
                                   grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
                                   mcos::v1::ClusterWriteResponse* response) override;
  grpc::Status ClusterPutSmallObject(grpc::ServerContext* context,
                                     const mcos::v1::ClusterPutSmallObjectRequest* request,
                                     mcos::v1::ClusterWriteResponse* response) override;
  grpc::Status ClusterStatObject(grpc::ServerContext* context,
                                 const mcos::v1::ClusterStatObjectRequest* request,
                                 mcos::v1::ClusterStatObjectResponse* response) override;
  grpc::Status ClusterDownloadObject(
      grpc::ServerContext* context, const mcos::v1::ClusterDownloadObjectRequest* request,
      grpc::ServerWriter<mcos::v1::ClusterDownloadObjectResponse>* writer) override;
  grpc::Status ClusterDeleteObject(grpc::ServerContext* context,
                                   const mcos::v1::ClusterDeleteObjectRequest* request,
                                   mcos::v1::ClusterWriteResponse* response) override;
  // A page of this cluster's copy of a container, listed on the streams' threads into a page on
  // the call's arena (list_messages_).
  grpc::ServerUnaryReactor* ClusterListObjects(grpc::CallbackServerContext* context,
                                               const mcos::v1::StorageListRequest* request,
                                               mcos::v1::StorageListResponse* response) override;
  grpc::Status ClusterPartitionDigests(grpc::ServerContext* context,
                                       const mcos::v1::PartitionDigestsRequest* request,
                                       mcos::v1::PartitionDigestsResponse* response) override;
  grpc::Status ClusterCheckTombstones(grpc::ServerContext* context,
                                      const mcos::v1::CheckTombstonesRequest* request,
                                      mcos::v1::CheckTombstonesResponse* response) override;
  grpc::Status ClusterPurgeTombstones(grpc::ServerContext* context,
                                      const mcos::v1::PurgeTombstonesRequest* request,
                                      mcos::v1::PurgeTombstonesResponse* response) override;
  grpc::Status ClusterScanPartition(grpc::ServerContext* context,
                                    const mcos::v1::ScanPartitionRequest* request,
                                    mcos::v1::ScanPartitionResponse* response) override;

 private:
  friend class ReplicateReactor;
  // One operation of a ClusterReplicate stream, done here (it blocks on the storage): what its own
  // call would answer.
  mcos::v1::ClusterReplicateAnswer Do(const mcos::v1::ClusterReplicateOp& op, absl::Time deadline);
  // The same for a write (put, create, update, delete) when this cluster's storage takes writes
  // without blocking (an engine in this process: Replica::writes_async): started on the caller's
  // thread and answered through `done` (on the engine's committing thread, or before it returns if
  // refused at once); the op's data is moved out. False, and nothing done, for any other.
  bool DoAsync(mcos::v1::ClusterReplicateOp& op,
               const std::function<void(mcos::v1::ClusterReplicateAnswer)>& done);
  // The answer to operation `id` of `kind` (counted): `write`, or the error of `status`.
  mcos::v1::ClusterReplicateAnswer Answer(uint64_t id, const char* kind, const grpc::Status& status,
                                          mcos::v1::ClusterWriteResponse write);
  // Counts one of the stream's operations (replicated_).
  void Count(const char* kind, const grpc::Status& status);
  // Whether this cluster's storage is an engine in this process (reads take microseconds).
  bool ReadsInProcess();
  // Whether it takes writes without blocking (DoAsync).
  bool WritesInProcess();
  // ServerOptions::replication_stream_lifetime.
  absl::Duration StreamLifetime() const;
  // Runs `task` on the threads that do the streams' operations.
  void Run(std::function<void()> task);
  // The work of ClusterPutSmallObject, ClusterDeleteObject and ClusterStatObject once the caller
  // is known to be a peer, for the unary calls and the stream alike.
  // `precondition`: a create's or an update's write (ClusterReplicateOp create, update), stored
  // only over nothing live, or over a live version (Replica::PutIf).
  grpc::Status PutSmall(
      const mcos::v1::ClusterPutSmallObjectRequest& request, absl::Time deadline,
      mcos::v1::ClusterWriteResponse& response,
      mcos::v1::WritePrecondition precondition = mcos::v1::WRITE_PRECONDITION_NONE);
  // The record a small replica write declares, once the request is checked.
  absl::StatusOr<mcos::v1::ObjectRecord> CheckSmall(
      const mcos::v1::ClusterPutSmallObjectRequest& request) const;
  grpc::Status DeleteReplica(const mcos::v1::ClusterDeleteObjectRequest& request,
                             absl::Time deadline, mcos::v1::ClusterWriteResponse& response);
  static absl::Status CheckDelete(const mcos::v1::ClusterDeleteObjectRequest& request);
  // What this cluster did with a replica write (`with_prior`: a create's, update's or delete's).
  void FillWrite(const replication::WriteAck& ack, bool with_prior,
                 mcos::v1::ClusterWriteResponse& response) const;
  grpc::Status StatReplica(const mcos::v1::ClusterStatObjectRequest& request, absl::Time deadline,
                           mcos::v1::ClusterStatObjectResponse& response);
  // A peer's read of this cluster's storage (digests, scans): `read` on its replica once the
  // request's option field is checked.
  grpc::Status ReadLocal(
      const grpc::ServerContext& context, const std::string& option,
      const std::function<absl::Status(replication::Replica&, absl::Time)>& read);
  grpc::Status Put(grpc::ServerContext* context,
                   grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
                   mcos::v1::ClusterWriteResponse* response);
  // Stores the version `record` describes with the content `source` yields in this cluster's
  // storage and answers what it did.
  grpc::Status Store(absl::Time deadline, const mcos::v1::ObjectKey& key,
                     const mcos::v1::ObjectRecord& record, replication::ObjectReader& source,
                     mcos::v1::ClusterWriteResponse& response,
                     mcos::v1::WritePrecondition precondition = mcos::v1::WRITE_PRECONDITION_NONE);
  // A replica write streamed while its coordinator still receives the upload
  // (ClusterPutObjectHeader.version_at_finish): pushed to this cluster's storage as it arrives,
  // stored only once its finish message arrives and the content matches it.
  grpc::Status PutStreamed(grpc::ServerContext& context,
                           grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>& reader,
                           const mcos::v1::ClusterPutObjectHeader& header,
                           mcos::v1::ClusterWriteResponse& response);
  ServerApp& app_;
  common::ArenaMessages<mcos::v1::StorageListRequest, mcos::v1::StorageListResponse> list_messages_;
  // ClusterReplicate's operations, by kind and code (each unary call is counted by the server's
  // interceptor; the stream's operations are not calls).
  prometheus::Family<prometheus::Counter>& replicated_;
};

}  // namespace mcos::server
