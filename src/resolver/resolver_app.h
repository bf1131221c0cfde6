// Wires a resolver: ResolverService over the core, registration with the controller, and a loop
// that reloads rings and options from the controller every `refresh` (so a change reaches it
// within about that long). Used by mcos-resolver and mcos-cluster.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "common/registrar.h"
#include "common/tls.h"
#include "mcos/v1/controller.grpc.pb.h"
#include "mcos/v1/resolver.grpc.pb.h"
#include "resolver/resolver.h"

namespace mcos::resolver {

struct ResolverOptions {
  absl::Duration refresh = absl::Seconds(1);
  std::string id = "resolver-1";
  // TLS of the calls to the controller (plaintext without a CA).
  common::TlsFiles tls;
  // The cluster's token key: callers present service credentials derived from it, and so does
  // the resolver when it calls the controller.
  std::string token_key;
  // The key of users' tokens when it differs from token_key (a federation's, ClusterKeys).
  std::string user_token_key;
};

class ResolverGrpcService final : public mcos::v1::ResolverService::Service {
 public:
  ResolverGrpcService(Resolver& resolver, common::ServiceAuth& auth)
      : resolver_(resolver), auth_(auth) {}
  grpc::Status Resolve(grpc::ServerContext* context, const mcos::v1::ResolveRequest* request,
                       mcos::v1::ResolveResponse* response) override;

 private:
  Resolver& resolver_;
  common::ServiceAuth& auth_;
};

class ResolverApp {
 public:
  explicit ResolverApp(const ResolverOptions& options);
  ~ResolverApp();
  std::vector<grpc::Service*> services() { return {&service_}; }
  // The resolver itself, for a server in the same process (mcos-cluster) to call directly.
  Resolver& resolver() { return resolver_; }
  // Connects to the controller, loads the rings (retrying up to `timeout`), registers
  // `own_endpoint` and starts the refresh loop. UNAVAILABLE if the controller does not answer.
  absl::Status Start(const std::string& own_endpoint, const std::string& controller_endpoint,
                     absl::Duration timeout);
  // Makes calls to services of this same process skip the network (mcos-cluster).
  void SetLocalRoute(common::LocalRoute route) {
    route_ = std::move(route);
    route_.auth = &auth_;
  }
  void Stop();

 private:
  // Fetches rings and options if they changed; with `wait`, first waits that long for a change.
  absl::Status Refresh(absl::Duration wait = absl::ZeroDuration());

  // The watch call in flight, cancelled by Stop.
  absl::Mutex watch_mu_;
  grpc::ClientContext* watching_ ABSL_GUARDED_BY(watch_mu_) = nullptr;

  ResolverOptions options_;
  common::ServiceAuth auth_;
  common::LocalRoute route_;
  std::string controller_endpoint_;
  std::shared_ptr<grpc::Channel> controller_channel_;
  std::unique_ptr<mcos::v1::ControllerService::Stub> controller_;
  Resolver resolver_;
  ResolverGrpcService service_;
  std::unique_ptr<common::Registrar> registrar_;
  absl::Notification stop_;
  std::thread refresher_;
};

}  // namespace mcos::resolver
