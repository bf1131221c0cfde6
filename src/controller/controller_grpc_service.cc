#include "controller/controller_grpc_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/names.h"

namespace mcos::controller {
namespace {

using common::ToGrpcStatus;

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ControllerGrpcService::Register(grpc::ServerContext* context,
                                             const mcos::v1::RegisterRequest* request,
                                             mcos::v1::RegisterResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return Reply(controller_.registry().Register(*request), response);
}

grpc::Status ControllerGrpcService::Heartbeat(grpc::ServerContext* context,
                                              const mcos::v1::HeartbeatRequest* request,
                                              mcos::v1::HeartbeatResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return ToGrpcStatus(controller_.registry().Heartbeat(request->service_id()));
}

grpc::Status ControllerGrpcService::ListServices(grpc::ServerContext* context,
                                                 const mcos::v1::ListServicesRequest* request,
                                                 mcos::v1::ListServicesResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  auto services = controller_.registry().ListServices(request->kind(), request->live_only());
  if (!services.ok()) return ToGrpcStatus(services.status());
  for (auto& s : *services) *response->add_services() = std::move(s);
  return grpc::Status::OK;
}

grpc::Status ControllerGrpcService::GetMetadataSnapshot(
    grpc::ServerContext* context, const mcos::v1::GetMetadataSnapshotRequest* request,
    mcos::v1::MetadataSnapshot* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return Reply(
      controller_.Snapshot(request->known_revision(), absl::Milliseconds(request->wait_ms()),
                           [context] { return context->IsCancelled(); }),
      response);
}

grpc::Status ControllerGrpcService::WatchCredentials(
    grpc::ServerContext* context, const mcos::v1::WatchCredentialsRequest* request,
    mcos::v1::CredentialsSnapshot* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->watcher().empty() || request->watcher().size() > 256) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "watcher must name the caller (1-256 bytes)"};
  }
  return Reply(controller_.users().Credentials(request->watcher(), request->known_revision(),
                                               absl::Milliseconds(request->wait_ms()),
                                               [context] { return context->IsCancelled(); }),
               response);
}

grpc::Status ControllerGrpcService::Authenticate(grpc::ServerContext* context,
                                                 const mcos::v1::LoginRequest* request,
                                                 mcos::v1::LoginResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return Reply(controller_.users().Login(request->user_name(), request->password(),
                                         common::LoginAddress(*context, /*trusted_caller=*/true)),
               response);
}

grpc::Status ControllerGrpcService::ListUserContainers(
    grpc::ServerContext* context, const mcos::v1::ListUserContainersRequest* request,
    mcos::v1::ListUserContainersResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  absl::Status s = common::ValidateOwnerId(request->user());
  if (s.ok()) s = common::ValidateListToken("prefix", request->prefix(), 255);
  if (s.ok()) s = common::ValidateListToken("marker", request->marker(), 255);
  if (!s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.ListContainers(*request), response);
}

grpc::Status ControllerGrpcService::GetContainer(grpc::ServerContext* context,
                                                 const mcos::v1::GetContainerRequest* request,
                                                 mcos::v1::Container* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  absl::Status s = common::ValidateOwnerId(request->user());
  if (s.ok()) s = common::ValidateContainerName(request->name());
  if (!s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.GetContainer(request->user(), request->name()), response);
}

grpc::Status ControllerGrpcService::CreateContainer(
    grpc::ServerContext* context, const mcos::v1::ControllerCreateContainerRequest* request,
    mcos::v1::Container* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return Reply(controller_.CreateContainer(request->user(), request->name(), request->option()),
               response);
}

grpc::Status ControllerGrpcService::DeleteContainer(
    grpc::ServerContext* context, const mcos::v1::ControllerDeleteContainerRequest* request,
    mcos::v1::ControllerDeleteContainerResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  absl::Status s = common::ValidateOwnerId(request->user());
  if (s.ok()) s = common::ValidateContainerName(request->name());
  if (!s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(controller_.DeleteContainer(request->user(), request->name()));
}

grpc::Status ControllerGrpcService::WatchMetadata(grpc::ServerContext* context,
                                                  const mcos::v1::WatchMetadataRequest*,
                                                  grpc::ServerWriter<mcos::v1::MetadataRow>*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  return {grpc::StatusCode::UNIMPLEMENTED,
          "metadata watches arrive with the federation; use GetMetadataSnapshot"};
}

grpc::Status ControllerGrpcService::ListFederationClusters(
    grpc::ServerContext* context, const mcos::v1::ListClustersRequest*,
    mcos::v1::ListClustersResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  auto clusters = controller_.ListClusters();
  if (!clusters.ok()) return ToGrpcStatus(clusters.status());
  for (auto& c : *clusters) *response->add_clusters() = std::move(c);
  return grpc::Status::OK;
}

grpc::Status ControllerGrpcService::EnqueueReplication(
    grpc::ServerContext* context, const mcos::v1::EnqueueReplicationRequest* request,
    mcos::v1::EnqueueReplicationResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->tasks_size() > 10000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 10000 tasks per call"};
  }
  return ToGrpcStatus(replication_.Enqueue({request->tasks().begin(), request->tasks().end()}));
}

grpc::Status ControllerGrpcService::ReportRepair(grpc::ServerContext* context,
                                                 const mcos::v1::RepairReport* request,
                                                 mcos::v1::RepairReportResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->server_id().empty() || request->server_id().size() > 256) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a repair report names its server (1-256 bytes)"};
  }
  if (request->status().links_size() > 1024) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 1024 links per repair report"};
  }
  if (request->moves_size() > 1024) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 1024 moves per repair report"};
  }
  for (const auto& m : request->moves()) {
    if (m.settled_size() > 64 || m.synced_size() > 64) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "a move report names at most 64 former layouts as settled or synced"};
    }
  }
  replication_.Report(request->server_id(), request->status());
  if (request->moves_size() > 0) {
    if (auto s = controller_.RecordMoves({request->moves().begin(), request->moves().end()});
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    // Retired at once when this report was the last one needed.
    if (auto retired = controller_.RetireMoves(); !retired.ok()) {
      return ToGrpcStatus(retired.status());
    }
  }
  return grpc::Status::OK;
}

grpc::Status ControllerGrpcService::QueuedReplications(
    grpc::ServerContext* context, const mcos::v1::QueuedReplicationsRequest* request,
    mcos::v1::QueuedReplicationsResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->keys_size() > 1000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 1000 keys per call"};
  }
  auto queued =
      controller_.store().QueuedReplications({request->keys().begin(), request->keys().end()});
  if (!queued.ok()) return ToGrpcStatus(queued.status());
  for (bool q : *queued) response->add_queued(q);
  return grpc::Status::OK;
}

grpc::Status ControllerGrpcService::ClaimReplications(
    grpc::ServerContext* context, const mcos::v1::ClaimReplicationsRequest* request,
    mcos::v1::ClaimReplicationsResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->limit() < 1 || request->limit() > 1000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "claim between 1 and 1000 replication tasks"};
  }
  if (request->lease_ms() < 1000 || request->lease_ms() > 600000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a claim's lease is 1 s to 10 min (lease_ms)"};
  }
  auto claimed = replication_.Claim(request->limit(), absl::Milliseconds(request->lease_ms()));
  if (!claimed.ok()) return ToGrpcStatus(claimed.status());
  *response = *std::move(claimed);
  return grpc::Status::OK;
}

grpc::Status ControllerGrpcService::FinishReplications(
    grpc::ServerContext* context, const mcos::v1::FinishReplicationsRequest* request,
    mcos::v1::FinishReplicationsResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (request->results_size() > 1000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 1000 results per call"};
  }
  return ToGrpcStatus(replication_.Finish(*request));
}

// ---- AdminService ---------------------------------------------------------------------------

absl::Status AdminGrpcService::RequireAdmin(const grpc::ServerContext& context) {
  auto token = common::BearerToken(context);
  if (!token.ok()) return token.status();
  auto claims = controller_.users().VerifyToken(*token);
  if (!claims.ok()) return claims.status();
  if (claims->role() != kRoleAdmin) {
    return absl::PermissionDeniedError(
        absl::StrCat("user '", claims->user(), "' is not an admin; log in as an admin"));
  }
  return absl::OkStatus();
}

grpc::Status AdminGrpcService::Login(grpc::ServerContext* context,
                                     const mcos::v1::LoginRequest* request,
                                     mcos::v1::LoginResponse* response) {
  return Reply(controller_.users().Login(request->user_name(), request->password(),
                                         common::LoginAddress(*context, /*trusted_caller=*/false)),
               response);
}

grpc::Status AdminGrpcService::ListUsers(grpc::ServerContext* context,
                                         const mcos::v1::ListUsersRequest*,
                                         mcos::v1::ListUsersResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  auto users = controller_.users().ListUsers();
  if (!users.ok()) return ToGrpcStatus(users.status());
  for (auto& u : *users) *response->add_users() = std::move(u);
  auto removed = controller_.users().ListRemovedUsers();
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (auto& u : *removed) *response->add_removed() = std::move(u);
  return grpc::Status::OK;
}

grpc::Status AdminGrpcService::AddUser(grpc::ServerContext* context,
                                       const mcos::v1::AddUserRequest* request,
                                       mcos::v1::UserInfo* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  if (!request->identity().empty()) {
    if (auto s = common::ValidateOwnerId(request->identity()); !s.ok()) return ToGrpcStatus(s);
  }
  return Reply(controller_.users().AddUser(request->name(), request->password(),
                                           request->role().empty() ? kRoleUser : request->role(),
                                           request->identity()),
               response);
}

grpc::Status AdminGrpcService::RemoveUser(grpc::ServerContext* context,
                                          const mcos::v1::RemoveUserRequest* request,
                                          mcos::v1::RemoveUserResponse*) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(controller_.users().RemoveUser(request->name()));
}

grpc::Status AdminGrpcService::SetPassword(grpc::ServerContext* context,
                                           const mcos::v1::SetPasswordRequest* request,
                                           mcos::v1::SetPasswordResponse*) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(controller_.users().SetPassword(request->name(), request->password()));
}

grpc::Status AdminGrpcService::ListClusters(grpc::ServerContext* context,
                                            const mcos::v1::ListClustersRequest*,
                                            mcos::v1::ListClustersResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  auto clusters = federation_.Clusters();
  if (!clusters.ok()) return ToGrpcStatus(clusters.status());
  for (auto& c : *clusters) *response->add_clusters() = std::move(c);
  return grpc::Status::OK;
}

grpc::Status AdminGrpcService::GetCluster(grpc::ServerContext* context,
                                          const mcos::v1::GetClusterRequest* request,
                                          mcos::v1::ClusterStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(federation_.Status(request->id()), response);
}

grpc::Status AdminGrpcService::AddCluster(grpc::ServerContext* context,
                                          const mcos::v1::AddClusterRequest* request,
                                          mcos::v1::ClusterInfo* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(federation_.AddCluster(request->controller_endpoint()), response);
}

grpc::Status AdminGrpcService::RemoveCluster(grpc::ServerContext* context,
                                             const mcos::v1::RemoveClusterRequest* request,
                                             mcos::v1::RemoveClusterResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  if (!request->force()) return ToGrpcStatus(federation_.RemoveCluster(request->id()));
  auto changes = federation_.DropCluster(request->id());
  if (!changes.ok()) return ToGrpcStatus(changes.status());
  for (auto& line : *changes) response->add_changes(std::move(line));
  return grpc::Status::OK;
}

grpc::Status AdminGrpcService::ListRings(grpc::ServerContext* context,
                                         const mcos::v1::ListRingsRequest*,
                                         mcos::v1::ListRingsResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  auto rings = controller_.ListRings();
  if (!rings.ok()) return ToGrpcStatus(rings.status());
  for (auto& r : *rings) *response->add_rings() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status AdminGrpcService::CreateRing(grpc::ServerContext* context,
                                          const mcos::v1::CreateRingRequest* request,
                                          mcos::v1::Ring* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.CreateRing(request->ring()), response);
}

grpc::Status AdminGrpcService::UpdateRing(grpc::ServerContext* context,
                                          const mcos::v1::UpdateRingRequest* request,
                                          mcos::v1::UpdateRingResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.UpdateRing(*request), response);
}

grpc::Status AdminGrpcService::ListOptions(grpc::ServerContext* context,
                                           const mcos::v1::ListOptionsRequest*,
                                           mcos::v1::ListOptionsResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  auto options = controller_.ListOptions();
  if (!options.ok()) return ToGrpcStatus(options.status());
  for (auto& o : *options) *response->add_options() = std::move(o);
  return grpc::Status::OK;
}

grpc::Status AdminGrpcService::AddOption(grpc::ServerContext* context,
                                         const mcos::v1::AddOptionRequest* request,
                                         mcos::v1::Option* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.AddOption(request->option()), response);
}

grpc::Status AdminGrpcService::SetOptionRing(grpc::ServerContext* context,
                                             const mcos::v1::SetOptionRingRequest* request,
                                             mcos::v1::SetOptionRingResponse* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.SetOptionRing(*request), response);
}

grpc::Status AdminGrpcService::GetRebalanceStatus(grpc::ServerContext* context,
                                                  const mcos::v1::GetRebalanceStatusRequest*,
                                                  mcos::v1::RebalanceStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.RebalanceStatus(), response);
}

grpc::Status AdminGrpcService::PauseRebalance(grpc::ServerContext* context,
                                              const mcos::v1::PauseRebalanceRequest*,
                                              mcos::v1::RebalanceStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  if (auto s = controller_.SetRebalancePaused(true); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.RebalanceStatus(), response);
}

grpc::Status AdminGrpcService::ResumeRebalance(grpc::ServerContext* context,
                                               const mcos::v1::ResumeRebalanceRequest*,
                                               mcos::v1::RebalanceStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  if (auto s = controller_.SetRebalancePaused(false); !s.ok()) return ToGrpcStatus(s);
  return Reply(controller_.RebalanceStatus(), response);
}

grpc::Status AdminGrpcService::SetRebalanceRate(grpc::ServerContext* context,
                                                const mcos::v1::SetRebalanceRateRequest* request,
                                                mcos::v1::RebalanceStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  if (auto s = controller_.SetRebalanceRate(request->max_mb_per_second()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  return Reply(controller_.RebalanceStatus(), response);
}

grpc::Status AdminGrpcService::RemoveOption(grpc::ServerContext* context,
                                            const mcos::v1::RemoveOptionRequest* request,
                                            mcos::v1::RemoveOptionResponse*) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(controller_.RemoveOption(request->name()));
}

grpc::Status AdminGrpcService::GetRepairStatus(grpc::ServerContext* context,
                                               const mcos::v1::GetRepairStatusRequest*,
                                               mcos::v1::RepairStatus* response) {
  if (auto s = RequireAdmin(*context); !s.ok()) return ToGrpcStatus(s);
  return Reply(replication_.Status(), response);
}

// ---- PeerControllerService ------------------------------------------------------------------

absl::StatusOr<std::string> PeerGrpcService::Caller(const grpc::ServerContext& context) const {
  if (peer_auth_ == nullptr) {
    if (auto s = cluster_auth_.CheckCaller(context); absl::IsPermissionDenied(s)) return s;
    return absl::UnauthenticatedError(
        "this cluster has no federation secret (--federation-secret-file), so it has no peers");
  }
  return peer_auth_->CallerName(context);
}

grpc::Status PeerGrpcService::Hello(grpc::ServerContext* context,
                                    const mcos::v1::HelloRequest* request,
                                    mcos::v1::HelloResponse* response) {
  auto caller = Caller(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Reply(federation_.Hello(*caller, *request), response);
}

grpc::Status PeerGrpcService::PullMetadata(grpc::ServerContext* context,
                                           const mcos::v1::PullMetadataRequest* request,
                                           grpc::ServerWriter<mcos::v1::MetadataRow>* writer) {
  auto caller = Caller(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (auto s = federation_.CheckMember(*caller); !s.ok()) return ToGrpcStatus(s);
  uint64_t after = request->after_revision();
  while (!context->IsCancelled()) {
    auto rows = controller_.metadata().RowsAfter(after, 1000);
    if (!rows.ok()) return ToGrpcStatus(rows.status());
    if (rows->empty()) return grpc::Status::OK;
    for (const auto& row : *rows) {
      if (!writer->Write(row)) {
        return {grpc::StatusCode::CANCELLED, "the caller stopped reading"};
      }
      after = row.revision();
    }
  }
  return {grpc::StatusCode::CANCELLED, "cancelled by the caller"};
}

grpc::Status PeerGrpcService::PushMetadata(grpc::ServerContext* context,
                                           const mcos::v1::PushMetadataRequest* request,
                                           mcos::v1::PushMetadataResponse* response) {
  auto caller = Caller(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (auto s = federation_.CheckMember(*caller); !s.ok()) return ToGrpcStatus(s);
  if (request->rows_size() > 10000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "at most 10000 rows per push"};
  }
  std::vector<mcos::v1::MetadataRow> rows(request->rows().begin(), request->rows().end());
  auto applied = controller_.metadata().Apply(rows);
  if (!applied.ok()) return ToGrpcStatus(applied.status());
  response->set_applied(*applied);
  return grpc::Status::OK;
}

grpc::Status PeerGrpcService::PeerHealth(grpc::ServerContext* context,
                                         const mcos::v1::PeerHealthRequest* request,
                                         mcos::v1::PeerHealthResponse* response) {
  auto caller = Caller(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Reply(federation_.Health(*request), response);
}

grpc::Status PeerGrpcService::DescribeForJoin(grpc::ServerContext* context,
                                              const mcos::v1::DescribeForJoinRequest*,
                                              grpc::ServerWriter<mcos::v1::MetadataRow>* writer) {
  auto caller = Caller(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto rows = controller_.JoinRows();
  if (!rows.ok()) return ToGrpcStatus(rows.status());
  for (const auto& row : *rows) {
    if (!writer->Write(row)) return {grpc::StatusCode::CANCELLED, "the caller stopped reading"};
  }
  return grpc::Status::OK;
}

}  // namespace mcos::controller
