#include "resolver/resolver_app.h"

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mcos::resolver {

grpc::Status ResolverGrpcService::Resolve(grpc::ServerContext* context,
                                          const mcos::v1::ResolveRequest* request,
                                          mcos::v1::ResolveResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  auto r = resolver_.Resolve(*request);
  if (!r.ok()) return common::ToGrpcStatus(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

ResolverApp::ResolverApp(const ResolverOptions& options)
    : options_(options),
      auth_(options.token_key, options.id, options.user_token_key),
      resolver_(
          [this](const std::string& user, const std::string& name) -> absl::StatusOr<std::string> {
            if (!controller_) return absl::UnavailableError("the resolver is not started yet");
            grpc::ClientContext ctx;
            ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
            mcos::v1::GetContainerRequest req;
            req.set_user(user);
            req.set_name(name);
            mcos::v1::Container c;
            const grpc::Status s = controller_->GetContainer(&ctx, req, &c);
            if (!s.ok()) return common::FromGrpcStatus(s);
            return c.option();
          },
          [this] {
            if (auto s = Refresh(); !s.ok()) {
              common::LogWarning("cannot refresh rings from the controller: ", s.message());
            }
          }),
      service_(resolver_, auth_) {
  auth_.set_channel_credentials(common::MakeChannelCredentials(options.tls));
  route_.auth = &auth_;
}

ResolverApp::~ResolverApp() { Stop(); }

absl::Status ResolverApp::Refresh(absl::Duration wait) {
  if (!controller_) return absl::UnavailableError("the resolver is not started yet");
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + wait + absl::Seconds(2)));
  mcos::v1::GetMetadataSnapshotRequest req;
  req.set_known_revision(resolver_.revision());
  req.set_wait_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(wait)));
  mcos::v1::MetadataSnapshot snapshot;
  if (wait > absl::ZeroDuration()) {
    absl::MutexLock lock(&watch_mu_);
    if (stop_.HasBeenNotified()) return absl::CancelledError("the resolver is stopping");
    watching_ = &ctx;
  }
  const grpc::Status s = common::CallAndWait([&](auto done) {
    controller_->async()->GetMetadataSnapshot(&ctx, &req, &snapshot, std::move(done));
  });
  if (wait > absl::ZeroDuration()) {
    absl::MutexLock lock(&watch_mu_);
    watching_ = nullptr;
  }
  if (!s.ok()) return common::FromGrpcStatus(s);
  resolver_.SetSnapshot(snapshot);
  return absl::OkStatus();
}

absl::Status ResolverApp::Start(const std::string& own_endpoint,
                                const std::string& controller_endpoint, absl::Duration timeout) {
  controller_endpoint_ = controller_endpoint;
  controller_channel_ = route_.Connect(controller_endpoint);
  controller_ = mcos::v1::ControllerService::NewStub(controller_channel_);
  // SEED.md: the resolver loads the rings first, then registers, then serves.
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status loaded = Refresh();
  while (!loaded.ok() && absl::Now() < deadline) {
    if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) break;
    loaded = Refresh();
  }
  if (!loaded.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot load rings from the controller at ",
                                               controller_endpoint_, ": ", loaded.message()));
  }
  registrar_ = std::make_unique<common::Registrar>(
      controller_channel_, mcos::v1::SERVICE_KIND_RESOLVER, own_endpoint, options_.id);
  MCOS_RETURN_IF_ERROR(registrar_->RegisterBlocking(deadline - absl::Now()).status());
  registrar_->StartHeartbeats();
  // A long poll: each call waits (up to `refresh`) until a ring or option changes, so a change
  // reaches this resolver as soon as it is stored; after an error, retry every `refresh`.
  refresher_ = std::thread([this] {
    while (!stop_.HasBeenNotified()) {
      if (auto s = Refresh(options_.refresh); !s.ok()) {
        if (stop_.HasBeenNotified()) break;  // Stop cancelled the watch
        common::LogWarning("cannot refresh rings from the controller: ", s.message());
        if (stop_.WaitForNotificationWithTimeout(options_.refresh)) break;
      }
    }
  });
  return absl::OkStatus();
}

void ResolverApp::Stop() {
  {
    absl::MutexLock lock(&watch_mu_);
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (watching_ != nullptr) watching_->TryCancel();
  }
  if (refresher_.joinable()) refresher_.join();
  if (registrar_) registrar_->Stop();
}

}  // namespace mcos::resolver
