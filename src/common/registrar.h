// Keeps a service registered with its cluster's controller: registers (retrying until the
// controller answers), then heartbeats every interval and registers again when the controller has
// forgotten it (e.g. after the controller's restart). Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "mcos/v1/controller.grpc.pb.h"

namespace mcos::common {

class Registrar {
 public:
  Registrar(std::shared_ptr<grpc::Channel> controller, mcos::v1::ServiceKind kind,
            std::string endpoint, std::string id);
  ~Registrar();

  // Registers, retrying for up to `timeout`. UNAVAILABLE if the controller never answered.
  absl::StatusOr<mcos::v1::RegisterResponse> RegisterBlocking(absl::Duration timeout);
  // Starts the heartbeat thread (after a successful RegisterBlocking).
  void StartHeartbeats();
  void Stop();

 private:
  absl::StatusOr<mcos::v1::RegisterResponse> RegisterOnce();
  void Loop();

  std::unique_ptr<mcos::v1::ControllerService::Stub> stub_;
  mcos::v1::ServiceKind kind_;
  std::string endpoint_;
  std::string id_;
  absl::Mutex mu_;
  std::string service_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace mcos::common
