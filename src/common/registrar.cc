#include "common/registrar.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace mcos::common {

Registrar::Registrar(std::shared_ptr<grpc::Channel> controller, mcos::v1::ServiceKind kind,
                     std::string endpoint, std::string id)
    : stub_(mcos::v1::ControllerService::NewStub(std::move(controller))),
      kind_(kind),
      endpoint_(std::move(endpoint)),
      id_(std::move(id)) {}

Registrar::~Registrar() { Stop(); }

absl::StatusOr<mcos::v1::RegisterResponse> Registrar::RegisterOnce() {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  mcos::v1::RegisterRequest req;
  req.set_kind(kind_);
  req.set_endpoint(endpoint_);
  req.set_id(id_);
  mcos::v1::RegisterResponse resp;
  const grpc::Status s = stub_->Register(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  absl::MutexLock lock(&mu_);
  service_id_ = resp.service_id();
  if (resp.heartbeat_interval_ms() > 0)
    interval_ = absl::Milliseconds(resp.heartbeat_interval_ms());
  return resp;
}

absl::StatusOr<mcos::v1::RegisterResponse> Registrar::RegisterBlocking(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    auto r = RegisterOnce();
    if (r.ok()) {
      LogInfo("registered with the controller as '", r->service_id(), "' of cluster ",
              r->cluster_id());
      return r;
    }
    if (r.status().code() == absl::StatusCode::kInvalidArgument ||
        absl::Now() + backoff > deadline) {
      return absl::UnavailableError(
          absl::StrCat("cannot register with the controller: ", r.status().message(),
                       "; is mcos-controller running at that address?"));
    }
    if (stop_.WaitForNotificationWithTimeout(backoff)) return absl::CancelledError("stopping");
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

void Registrar::StartHeartbeats() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void Registrar::Loop() {
  while (true) {
    absl::Duration interval;
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      interval = interval_;
      id = service_id_;
    }
    if (stop_.WaitForNotificationWithTimeout(interval)) return;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    mcos::v1::HeartbeatRequest req;
    req.set_service_id(id);
    mcos::v1::HeartbeatResponse resp;
    const grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND ||
        s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      // The controller restarted (or forgot us): register again; it is harmless if it knew us.
      auto r = RegisterOnce();
      if (r.ok() && s.error_code() == grpc::StatusCode::NOT_FOUND) {
        LogInfo("registered again with the controller as '", r->service_id(), "'");
      }
    }
  }
}

void Registrar::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace mcos::common
