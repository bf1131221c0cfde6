#include "controller/controller_app.h"

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "events/nats_config.h"
#include "events/nats_event_bus.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mcos/v1/events.pb.h"
#include "mcos/v1/storage.grpc.pb.h"

namespace mcos::controller {

absl::StatusOr<mcos::v1::DiskStatusResponse> GrpcHealthProbe::StorageDisk(
    const std::string& endpoint, absl::Duration timeout) {
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    auto& c = channels_[endpoint];
    if (!c) c = route_.Connect(endpoint);  // (it sends the service credential too)
    channel = c;
  }
  auto stub = mcos::v1::StorageService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  mcos::v1::DiskStatusResponse resp;
  const grpc::Status s = stub->DiskStatus(&ctx, mcos::v1::DiskStatusRequest(), &resp);
  if (!s.ok()) return common::FromGrpcStatus(s);
  return resp;
}

absl::Status GrpcHealthProbe::Check(const std::string& endpoint, const std::string& service,
                                    absl::Duration timeout) {
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    auto& c = channels_[endpoint];
    if (!c) c = route_.Connect(endpoint);
    channel = c;
  }
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return common::FromGrpcStatus(s);
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::FailedPreconditionError(
        absl::StrCat(endpoint, " is not serving", service.empty() ? "" : " ", service));
  }
  return absl::OkStatus();
}

namespace {

std::unique_ptr<common::ServiceAuth> MakePeerAuth(const ControllerOptions& options,
                                                  const std::string& cluster) {
  if (options.peer_key.empty()) return nullptr;
  return std::make_unique<common::ServiceAuth>(options.peer_key, cluster, options.user_token_key,
                                               common::CredentialScope::kFederation);
}

FederationOptions ToFederationOptions(const ControllerOptions& options) {
  FederationOptions f;
  f.federation_id = options.federation_id;
  f.region = options.region;
  f.advertise = options.advertise;
  f.sync_period = options.federation_sync_period;
  return f;
}

}  // namespace

ControllerApp::ControllerApp(std::unique_ptr<GrpcHealthProbe> probe,
                             std::unique_ptr<Controller> controller,
                             const ControllerOptions& options, const common::TlsFiles& tls)
    : probe_(std::move(probe)),
      controller_(std::move(controller)),
      auth_(options.token_key, "controller", options.user_token_key),
      peer_auth_(MakePeerAuth(options, controller_->cluster_id())),
      federation_(std::make_unique<Federation>(*controller_, peer_auth_.get(),
                                               ToFederationOptions(options))),
      replication_(std::make_unique<ReplicationQueue>(*controller_)),
      controller_service_(*controller_, auth_, *replication_),
      admin_service_(*controller_, *federation_, *replication_),
      peer_service_(*controller_, *federation_, auth_, peer_auth_.get()) {
  auth_.set_channel_credentials(common::MakeChannelCredentials(tls));
  if (peer_auth_) peer_auth_->set_channel_credentials(auth_.channel_credentials());
  controller_->metadata().SetChangeListener([f = federation_.get()] { f->Changed(); });
  SetLocalRoute({});
}

absl::Status ControllerApp::StartEvents(const ControllerOptions& options) {
  if (options.nats_url.empty()) return absl::OkStatus();
  events::NatsOptions nats;
  nats.url = options.nats_url;
  const events::NatsCredentials login = events::ClientCredentials(options.token_key);
  nats.user = login.user;
  nats.password = login.password;
  nats.name = absl::StrCat("mcos controller of cluster ", controller_->cluster_id());
  events::NatsStream services;
  services.name = "MCOS_SERVICES";
  services.subjects = {"mcos.service.>"};
  services.max_age_seconds = int64_t{7} * 24 * 3600;
  services.max_bytes = int64_t{64} << 20;
  nats.streams = {services};
  MCOS_ASSIGN_OR_RETURN(events_, events::NatsEventBus::Start(std::move(nats)));
  const std::string subject = events::ServiceSubject(controller_->cluster_id());
  auto publish = [this, subject](mcos::v1::ServiceEvent event) {
    common::ToProtoTimestamp(absl::Now(), event.mutable_at());
    events_->Publish(subject, event.SerializeAsString());
  };
  controller_->registry().set_on_change([this, publish](const mcos::v1::ServiceInfo& s) {
    mcos::v1::ServiceEvent event;
    event.set_cluster(controller_->cluster_id());
    event.set_service_id(s.id());
    event.set_kind(s.kind());
    event.set_endpoint(s.endpoint());
    event.set_state(s.state());
    publish(std::move(event));
  });
  federation_->set_on_peer_change(
      [publish](const std::string& cluster, mcos::v1::ServiceState state) {
        mcos::v1::ServiceEvent event;  // a whole cluster: no service id, no kind
        event.set_cluster(cluster);
        event.set_state(state);
        publish(std::move(event));
      });
  return absl::OkStatus();
}

void ControllerApp::SetLocalRoute(common::LocalRoute route) {
  route.auth = &auth_;
  route_ = route;
  probe_->set_route(std::move(route));
}

absl::StatusOr<std::unique_ptr<ControllerApp>> ControllerApp::Create(
    const ControllerOptions& options, const common::TlsFiles& tls) {
  auto probe = std::make_unique<GrpcHealthProbe>();
  MCOS_ASSIGN_OR_RETURN(auto controller,
                        Controller::Open(options, common::SystemClock::Get(), *probe));
  std::unique_ptr<ControllerApp> app(
      new ControllerApp(std::move(probe), std::move(controller), options, tls));
  MCOS_RETURN_IF_ERROR(app->StartEvents(options));
  return app;
}

ControllerApp::~ControllerApp() { Stop(); }

absl::Status ControllerApp::CheckAndRegisterStorage(const std::string& storage_endpoint,
                                                    absl::Duration timeout) {
  if (storage_endpoint.empty()) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  while (absl::Now() < deadline) {
    last = probe_->Check(storage_endpoint, "", absl::Seconds(1));
    if (last.ok()) break;
    if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(200))) break;
  }
  if (!last.ok()) {
    return absl::UnavailableError(absl::StrCat("the storage service at ", storage_endpoint,
                                               " does not answer (", last.message(),
                                               "); start mcos-storage first"));
  }
  mcos::v1::RegisterRequest req;
  req.set_kind(mcos::v1::SERVICE_KIND_STORAGE);
  req.set_endpoint(storage_endpoint);
  req.set_id("storage-1");
  MCOS_RETURN_IF_ERROR(controller_->registry().Register(req).status());
  // Dry runs of ring changes count bytes with the storage service's per-partition usage.
  std::shared_ptr<mcos::v1::StorageService::Stub> storage =
      mcos::v1::StorageService::NewStub(route_.Connect(storage_endpoint));
  controller_->SetPartitionUsage(
      [storage](const std::string& option,
                uint32_t power) -> absl::StatusOr<mcos::v1::PartitionUsageResponse> {
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        mcos::v1::PartitionUsageRequest request;
        request.set_option(option);
        request.set_partition_power(power);
        mcos::v1::PartitionUsageResponse response;
        const grpc::Status s = storage->PartitionUsage(&ctx, request, &response);
        if (!s.ok()) return common::FromGrpcStatus(s);
        return response;
      });
  return absl::OkStatus();
}

void ControllerApp::StartBackground() {
  if (poller_ != nullptr) return;
  federation_->Start();
  poller_ = std::make_unique<common::Daemon>(
      "health checks", controller_->registry().period(),
      [this](common::Pacer&) { return controller_->registry().PollOnce(); });
  poller_->Start();
  // Former layouts whose last report came from another cluster are retired here too.
  mover_ = std::make_unique<common::Daemon>("moves", absl::Seconds(1), [this](common::Pacer&) {
    return controller_->RetireMoves().status();
  });
  mover_->Start();
}

void ControllerApp::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (poller_ != nullptr) poller_->Stop();
  if (mover_ != nullptr) mover_->Stop();
  federation_->Stop();
  events_.reset();
}

}  // namespace mcos::controller
