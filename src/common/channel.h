// Client channels between MCOS processes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace mcos::common {

// A plaintext channel (loopback/dev) with MCOS's message-size limits and a reconnect backoff of
// 0.1-1 s, so that a restarted peer is used again within a second (gRPC's default backoff grows
// to two minutes).
std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint);

// Services that share one process (mcos-cluster) reach each other through the process's
// in-process channel instead of loopback TCP. Thread-compatible: set up before use.
struct LocalRoute {
  // The process's own gRPC address; empty when nothing is shared.
  std::string self;
  std::shared_ptr<grpc::Channel> channel;
  // `channel` when `endpoint` is this process, else a new ConnectInsecure(endpoint).
  std::shared_ptr<grpc::Channel> Connect(const std::string& endpoint) const {
    return channel != nullptr && endpoint == self ? channel : ConnectInsecure(endpoint);
  }
};

}  // namespace mcos::common
