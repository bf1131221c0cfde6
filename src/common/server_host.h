// The gRPC server bootstrap every MCOS binary uses: binds the listen address (port 0 allowed),
// registers the given services plus grpc.health.v1 and server reflection, counts every call by
// method and status code with its latency (Prometheus), serves /metrics over HTTP, and shuts down
// gracefully. Thread-safe after Start().
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/allocator.h"
#include "common/service_auth.h"
#include "common/tls.h"

namespace mcos::common {

struct ServerHostOptions {
  // host:port for gRPC; port 0 picks a free one.
  std::string listen = "127.0.0.1:0";
  // host:port for the Prometheus /metrics endpoint; empty disables it; port 0 picks a free one.
  std::string metrics_listen;
  // Largest message the server accepts (chunks are at most 1 MiB; headers add a little).
  int max_receive_message_bytes = 4 * 1024 * 1024;
  int max_send_message_bytes = 64 * 1024 * 1024;
  // TLS on the gRPC port (plaintext without a certificate; a warning beyond loopback).
  TlsFiles tls;
};

class ServerHost {
 public:
  // Starts serving `services` (not owned; they must outlive the host). `registry` receives the
  // per-call metrics and is exposed on metrics_listen. UNAVAILABLE if an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServerHost>> Start(
      const ServerHostOptions& options, const std::vector<grpc::Service*>& services,
      std::shared_ptr<prometheus::Registry> registry);

  ~ServerHost();
  ServerHost(const ServerHost&) = delete;
  ServerHost& operator=(const ServerHost&) = delete;

  int port() const { return port_; }
  // 0 when metrics are disabled.
  int metrics_port() const { return metrics_port_; }
  // A channel to this server that bypasses the network (for services hosted in the same process),
  // sending `auth`'s service credential with every call. `auth` must outlive the channel.
  std::shared_ptr<grpc::Channel> InProcessChannel(ServiceAuth& auth);
  // Health status reported by grpc.health.v1 for "" and every service.
  void SetServing(bool serving);
  // Health status of one service name (any name: e.g. a capability such as a storage node's
  // writes), leaving the others as they are.
  void SetServiceServing(const std::string& service, bool serving);
  // Stops accepting calls, lets running calls finish for up to `grace`, then cancels the rest.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  ServerHost() = default;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  // Returns the allocator's free memory to the kernel while the process serves.
  std::unique_ptr<AllocatorTrimmer> trimmer_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
  // Calls received and not yet finished (counted by the per-call interceptor).
  std::shared_ptr<std::atomic<int64_t>> in_flight_ = std::make_shared<std::atomic<int64_t>>(0);
};

// The address other services of this process should dial: `listen` with its port replaced by
// `port` and a wildcard host (0.0.0.0, [::]) replaced by loopback.
std::string DialAddress(const std::string& listen, int port);
// Prints "listening on HOST:PORT" on stdout (scripts and tests wait for this line).
void AnnounceListening(const std::string& listen, int port);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; call first thing in main() so that every
// thread started later inherits the mask and WaitForTerminationSignal() receives them.
void BlockTerminationSignals();
// Waits for SIGTERM or SIGINT; returns the signal number. SIGHUP is logged and ignored.
int WaitForTerminationSignal();

}  // namespace mcos::common
