// Client channels between MCOS processes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
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

// Makes one call on gRPC's callback API (`start` starts it, given the function to call with its
// status) and waits for it to end on this thread. Unlike a synchronous call, the waiting thread
// does not take part in polling the process's connections (with gRPC's epoll1 engine every
// thread blocked in a synchronous call polls them all, and hands what it reads to the threads
// that wait for it): a long poll's thread that would sleep for minutes is woken for every other
// call's I/O instead.
template <typename Start>
grpc::Status CallAndWait(Start&& start) {
  absl::Notification done;
  grpc::Status status;
  start([&](const grpc::Status& s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

}  // namespace mcos::common
