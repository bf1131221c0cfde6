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

}  // namespace mcos::common
