// gRPC adapters of the controller: the internal ControllerService and the public AdminService.
// Thread-safe. `controller` and `auth` must outlive them.
#pragma once

#include "common/service_auth.h"
#include "controller/controller.h"
#include "controller/federation.h"
#include "controller/replication_queue.h"
#include "mcos/v1/admin.grpc.pb.h"
#include "mcos/v1/controller.grpc.pb.h"
#include "mcos/v1/peer.grpc.pb.h"

namespace mcos::controller {

// Every call needs the cluster's service credential (common::ServiceAuth).
class ControllerGrpcService final : public mcos::v1::ControllerService::Service {
 public:
  ControllerGrpcService(Controller& controller, common::ServiceAuth& auth,
                        ReplicationQueue& replication)
      : controller_(controller), auth_(auth), replication_(replication) {}

  grpc::Status Register(grpc::ServerContext*, const mcos::v1::RegisterRequest* request,
                        mcos::v1::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const mcos::v1::HeartbeatRequest* request,
                         mcos::v1::HeartbeatResponse* response) override;
  grpc::Status ListServices(grpc::ServerContext*, const mcos::v1::ListServicesRequest* request,
                            mcos::v1::ListServicesResponse* response) override;
  grpc::Status WatchCredentials(grpc::ServerContext* context,
                                const mcos::v1::WatchCredentialsRequest* request,
                                mcos::v1::CredentialsSnapshot* response) override;
  grpc::Status GetMetadataSnapshot(grpc::ServerContext*,
                                   const mcos::v1::GetMetadataSnapshotRequest* request,
                                   mcos::v1::MetadataSnapshot* response) override;
  grpc::Status Authenticate(grpc::ServerContext*, const mcos::v1::LoginRequest* request,
                            mcos::v1::LoginResponse* response) override;
  grpc::Status ListUserContainers(grpc::ServerContext*,
                                  const mcos::v1::ListUserContainersRequest* request,
                                  mcos::v1::ListUserContainersResponse* response) override;
  grpc::Status GetContainer(grpc::ServerContext*, const mcos::v1::GetContainerRequest* request,
                            mcos::v1::Container* response) override;
  grpc::Status CreateContainer(grpc::ServerContext*,
                               const mcos::v1::ControllerCreateContainerRequest* request,
                               mcos::v1::Container* response) override;
  grpc::Status DeleteContainer(grpc::ServerContext*,
                               const mcos::v1::ControllerDeleteContainerRequest* request,
                               mcos::v1::ControllerDeleteContainerResponse* response) override;
  // Not served yet (the federation's metadata sync); still refuses callers without the credential.
  grpc::Status WatchMetadata(grpc::ServerContext* context,
                             const mcos::v1::WatchMetadataRequest* request,
                             grpc::ServerWriter<mcos::v1::MetadataRow>* writer) override;
  grpc::Status ListFederationClusters(grpc::ServerContext* context,
                                      const mcos::v1::ListClustersRequest* request,
                                      mcos::v1::ListClustersResponse* response) override;
  grpc::Status EnqueueReplication(grpc::ServerContext* context,
                                  const mcos::v1::EnqueueReplicationRequest* request,
                                  mcos::v1::EnqueueReplicationResponse* response) override;
  grpc::Status ReportRepair(grpc::ServerContext* context, const mcos::v1::RepairReport* request,
                            mcos::v1::RepairReportResponse* response) override;
  grpc::Status QueuedReplications(grpc::ServerContext* context,
                                  const mcos::v1::QueuedReplicationsRequest* request,
                                  mcos::v1::QueuedReplicationsResponse* response) override;
  grpc::Status ClaimReplications(grpc::ServerContext* context,
                                 const mcos::v1::ClaimReplicationsRequest* request,
                                 mcos::v1::ClaimReplicationsResponse* response) override;
  grpc::Status FinishReplications(grpc::ServerContext* context,
                                  const mcos::v1::FinishReplicationsRequest* request,
                                  mcos::v1::FinishReplicationsResponse* response) override;

 private:
  Controller& controller_;
  common::ServiceAuth& auth_;
  ReplicationQueue& replication_;
};

// Every call but Login needs an admin token. Calls of later issues (adding/removing clusters,
// rebalance, repair) answer UNIMPLEMENTED from the generated base class until they land.
class AdminGrpcService final : public mcos::v1::AdminService::Service {
 public:
  AdminGrpcService(Controller& controller, Federation& federation, ReplicationQueue& replication)
      : controller_(controller), federation_(federation), replication_(replication) {}

  grpc::Status Login(grpc::ServerContext*, const mcos::v1::LoginRequest* request,
                     mcos::v1::LoginResponse* response) override;
  grpc::Status ListUsers(grpc::ServerContext* context, const mcos::v1::ListUsersRequest* request,
                         mcos::v1::ListUsersResponse* response) override;
  grpc::Status AddUser(grpc::ServerContext* context, const mcos::v1::AddUserRequest* request,
                       mcos::v1::UserInfo* response) override;
  grpc::Status RemoveUser(grpc::ServerContext* context, const mcos::v1::RemoveUserRequest* request,
                          mcos::v1::RemoveUserResponse* response) override;
  grpc::Status SetPassword(grpc::ServerContext* context,
                           const mcos::v1::SetPasswordRequest* request,
                           mcos::v1::SetPasswordResponse* response) override;
  grpc::Status ListClusters(grpc::ServerContext* context,
                            const mcos::v1::ListClustersRequest* request,
                            mcos::v1::ListClustersResponse* response) override;
  grpc::Status GetCluster(grpc::ServerContext* context, const mcos::v1::GetClusterRequest* request,
                          mcos::v1::ClusterStatus* response) override;
  grpc::Status AddCluster(grpc::ServerContext* context, const mcos::v1::AddClusterRequest* request,
                          mcos::v1::ClusterInfo* response) override;
  grpc::Status RemoveCluster(grpc::ServerContext* context,
                             const mcos::v1::RemoveClusterRequest* request,
                             mcos::v1::RemoveClusterResponse* response) override;
  grpc::Status GetRepairStatus(grpc::ServerContext* context,
                               const mcos::v1::GetRepairStatusRequest* request,
                               mcos::v1::RepairStatus* response) override;
  grpc::Status ListRings(grpc::ServerContext* context, const mcos::v1::ListRingsRequest* request,
                         mcos::v1::ListRingsResponse* response) override;
  grpc::Status CreateRing(grpc::ServerContext* context, const mcos::v1::CreateRingRequest* request,
                          mcos::v1::Ring* response) override;
  grpc::Status UpdateRing(grpc::ServerContext* context, const mcos::v1::UpdateRingRequest* request,
                          mcos::v1::UpdateRingResponse* response) override;
  grpc::Status ListOptions(grpc::ServerContext* context,
                           const mcos::v1::ListOptionsRequest* request,
                           mcos::v1::ListOptionsResponse* response) override;
  grpc::Status AddOption(grpc::ServerContext* context, const mcos::v1::AddOptionRequest* request,
                         mcos::v1::Option* response) override;
  grpc::Status SetOptionRing(grpc::ServerContext* context,
                             const mcos::v1::SetOptionRingRequest* request,
                             mcos::v1::SetOptionRingResponse* response) override;
  grpc::Status RemoveOption(grpc::ServerContext* context,
                            const mcos::v1::RemoveOptionRequest* request,
                            mcos::v1::RemoveOptionResponse* response) override;
  grpc::Status GetRebalanceStatus(grpc::ServerContext* context,
                                  const mcos::v1::GetRebalanceStatusRequest* request,
                                  mcos::v1::RebalanceStatus* response) override;
  grpc::Status PauseRebalance(grpc::ServerContext* context,
                              const mcos::v1::PauseRebalanceRequest* request,
                              mcos::v1::RebalanceStatus* response) override;
  grpc::Status ResumeRebalance(grpc::ServerContext* context,
                               const mcos::v1::ResumeRebalanceRequest* request,
                               mcos::v1::RebalanceStatus* response) override;
  grpc::Status SetRebalanceRate(grpc::ServerContext* context,
                                const mcos::v1::SetRebalanceRateRequest* request,
                                mcos::v1::RebalanceStatus* response) override;

 private:
  absl::Status RequireAdmin(const grpc::ServerContext& context);
  Controller& controller_;
  Federation& federation_;
  ReplicationQueue& replication_;
};

// Controller-to-controller calls of the federation; every call needs the federation's peer
// credential (`peer_auth`, null when this cluster has no federation secret: then every call is
// refused, a user's token with PERMISSION_DENIED as `cluster_auth` tells, anything else with
// UNAUTHENTICATED).
class PeerGrpcService final : public mcos::v1::PeerControllerService::Service {
 public:
  PeerGrpcService(Controller& controller, Federation& federation,
                  const common::ServiceAuth& cluster_auth, common::ServiceAuth* peer_auth)
      : controller_(controller),
        federation_(federation),
        cluster_auth_(cluster_auth),
        peer_auth_(peer_auth) {}

  grpc::Status Hello(grpc::ServerContext* context, const mcos::v1::HelloRequest* request,
                     mcos::v1::HelloResponse* response) override;
  grpc::Status PullMetadata(grpc::ServerContext* context,
                            const mcos::v1::PullMetadataRequest* request,
                            grpc::ServerWriter<mcos::v1::MetadataRow>* writer) override;
  grpc::Status PushMetadata(grpc::ServerContext* context,
                            const mcos::v1::PushMetadataRequest* request,
                            mcos::v1::PushMetadataResponse* response) override;
  grpc::Status PeerHealth(grpc::ServerContext* context, const mcos::v1::PeerHealthRequest* request,
                          mcos::v1::PeerHealthResponse* response) override;
  grpc::Status DescribeForJoin(grpc::ServerContext* context,
                               const mcos::v1::DescribeForJoinRequest* request,
                               grpc::ServerWriter<mcos::v1::MetadataRow>* writer) override;

 private:
  // The calling cluster's name, or the refusal of a caller without the peer credential.
  absl::StatusOr<std::string> Caller(const grpc::ServerContext& context) const;
  Controller& controller_;
  Federation& federation_;
  const common::ServiceAuth& cluster_auth_;
  common::ServiceAuth* const peer_auth_;
};

}  // namespace mcos::controller
