// Wires the controller: the core over SQLite, its ControllerService and AdminService, the health
// poller thread, and the start-up check of the cluster's storage service (SEED.md: the controller
// checks the storage service first, then serves). Used by mcos-controller and mcos-cluster.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "common/daemon.h"
#include "common/tls.h"
#include "controller/controller.h"
#include "controller/controller_grpc_service.h"
#include "events/event_bus.h"

namespace mcos::controller {

// HealthProbe over grpc.health.v1, one cached channel per endpoint. Thread-safe.
class GrpcHealthProbe final : public HealthProbe {
 public:
  absl::Status Check(const std::string& endpoint, const std::string& service,
                     absl::Duration timeout) override;
  absl::StatusOr<mcos::v1::DiskStatusResponse> StorageDisk(const std::string& endpoint,
                                                           absl::Duration timeout) override;
  // How endpoints are reached (TLS, or this process's in-process channel); before the first Check.
  void set_route(common::LocalRoute route) {
    absl::MutexLock lock(&mu_);
    route_ = std::move(route);
  }

 private:
  absl::Mutex mu_;
  common::LocalRoute route_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

class ControllerApp {
 public:
  // Opens the database and builds the services (not serving yet). The controller calls the
  // cluster's services with `tls` (plaintext when it has no CA).
  static absl::StatusOr<std::unique_ptr<ControllerApp>> Create(const ControllerOptions& options,
                                                               const common::TlsFiles& tls = {});
  ~ControllerApp();

  std::vector<grpc::Service*> services() {
    return {&controller_service_, &admin_service_, &peer_service_};
  }
  Controller& controller() { return *controller_; }
  Federation& federation() { return *federation_; }
  // This controller's address as peer clusters reach it (its cluster's row in the federation).
  absl::Status SetSelfEndpoint(const std::string& endpoint) {
    return federation_->SetSelf(endpoint);
  }

  // Waits (up to `timeout`) until the storage service at `storage_endpoint` answers its health
  // check and registers it; UNAVAILABLE if it never does. Empty endpoint: skipped.
  absl::Status CheckAndRegisterStorage(const std::string& storage_endpoint, absl::Duration timeout);
  // In mcos-cluster: the services of this process are reached through its in-process channel.
  // Before CheckAndRegisterStorage.
  void SetLocalRoute(common::LocalRoute route);
  // Starts the health poller and the federation's peer workers.
  void StartBackground();
  void Stop();

 private:
  // Connects the event bus and publishes every service and peer state change on it.
  absl::Status StartEvents(const ControllerOptions& options);
  ControllerApp(std::unique_ptr<GrpcHealthProbe> probe, std::unique_ptr<Controller> controller,
                const ControllerOptions& options, const common::TlsFiles& tls);
  std::unique_ptr<GrpcHealthProbe> probe_;
  std::unique_ptr<Controller> controller_;
  common::ServiceAuth auth_;
  std::unique_ptr<common::ServiceAuth> peer_auth_;  // null without a federation secret
  std::unique_ptr<Federation> federation_;
  std::unique_ptr<ReplicationQueue> replication_;
  // Service and peer up/down events (null without --nats); set before the background starts.
  std::unique_ptr<events::EventBus> events_;
  common::LocalRoute route_;
  ControllerGrpcService controller_service_;
  AdminGrpcService admin_service_;
  PeerGrpcService peer_service_;
  absl::Notification stop_;
  std::unique_ptr<common::Daemon> poller_;  // the services' health checks
  std::unique_ptr<common::Daemon> mover_;   // retires former layouts once their data moved
};

}  // namespace mcos::controller
