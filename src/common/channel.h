// Client channels between MCOS processes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/service_auth.h"

namespace mcos::common {

// A plaintext channel (loopback/dev) with MCOS's message-size limits and a reconnect backoff of
// 0.1-1 s, so that a restarted peer is used again within a second (gRPC's default backoff grows
// to two minutes). No credential: for public services and health checks.
std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint);

// The same, sending `auth`'s service credential with every call: for the cluster's internal
// services. `auth` must outlive the channel.
std::shared_ptr<grpc::Channel> ConnectInternal(const std::string& endpoint, ServiceAuth& auth);

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
