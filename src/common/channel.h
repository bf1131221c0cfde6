// Client channels between MCOS processes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/service_auth.h"

namespace mcos::common {

// A plaintext channel with MCOS's client settings (common/channel_arguments.h). No credential:
// for tests of public services on loopback.
std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint);

// A channel to another MCOS process: TLS when the process has a CA to verify with
// (ServiceAuth::channel_credentials), and `auth`'s service credential with every call.
// `auth` must outlive the channel.
std::shared_ptr<grpc::Channel> ConnectInternal(const std::string& endpoint, ServiceAuth& auth,
                                               bool own_connection = false);

// Services that share one process (mcos-cluster) reach each other through the process's
// in-process channel instead of loopback TCP; other endpoints get ConnectInternal channels.
// Thread-compatible: set up before use.
struct LocalRoute {
  // The process's own gRPC address; empty when nothing is shared.
  std::string self;
  // The in-process channel (it sends the service credential too).
  std::shared_ptr<grpc::Channel> channel;
  // The credential sent to other processes; must outlive the channels. Null only in tests of
  // services that call no internal service.
  ServiceAuth* auth = nullptr;
  std::shared_ptr<grpc::Channel> Connect(const std::string& endpoint) const {
    if (channel != nullptr && endpoint == self) return channel;
    return auth != nullptr ? ConnectInternal(endpoint, *auth) : ConnectInsecure(endpoint);
  }
};

}  // namespace mcos::common
