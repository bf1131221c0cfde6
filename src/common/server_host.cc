#include "common/server_host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channel_arguments.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace mcos::common {
namespace {

// Whether binding `listen` (HOST:PORT, [IPv6]:PORT) fails because another socket holds it.
bool AddressInUse(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  const int port = std::atoi(listen.c_str() + colon + 1);
  if (port <= 0) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (host.empty() || host == "0.0.0.0" || host == "localhost" ||
      inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    if (host == "localhost") inet_pton(AF_INET, "127.0.0.1", &v4->sin_addr);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  const int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const bool in_use = bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno == EADDRINUSE;
  close(fd);
  return in_use;
}

using grpc::experimental::InterceptionHookPoints;

// Every call passes through here: requests that fail to parse get INVALID_ARGUMENT with a message
// instead of gRPC's empty INTERNAL (proto3 refuses strings that are not valid UTF-8, so a bad name
// ends up here before any handler sees it), an exception escaping a handler becomes a logged
// INTERNAL, and each call is counted by method and code with its latency.
class ServerCallInterceptor final : public grpc::experimental::Interceptor {
 public:
  ServerCallInterceptor(std::string method, prometheus::Family<prometheus::Counter>& calls,
                        prometheus::Family<prometheus::Histogram>& latency,
                        std::shared_ptr<std::atomic<int64_t>> in_flight)
      : method_(std::move(method)),
        calls_(calls),
        latency_(latency),
        in_flight_(std::move(in_flight)),
        start_(std::chrono::steady_clock::now()),
        // A stream that lasts as long as its client keeps it (a peer's replication stream) is
        // not waited for at shutdown: it is cancelled, and its client opens a new one elsewhere.
        counted_(method_ != "/mcos.v1.ClusterService/ClusterReplicate") {
    if (counted_) in_flight_->fetch_add(1, std::memory_order_relaxed);
  }
  // gRPC destroys a call's interceptors with the call.
  ~ServerCallInterceptor() override {
    if (counted_) in_flight_->fetch_sub(1, std::memory_order_release);
  }
  ServerCallInterceptor(const ServerCallInterceptor&) = delete;
  ServerCallInterceptor& operator=(const ServerCallInterceptor&) = delete;

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsable_request_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      // (A callback handler's request that fails to parse ends as UNIMPLEMENTED.)
      if ((status.error_code() == grpc::StatusCode::INTERNAL &&
           (unparsable_request_ || status.error_message().empty())) ||
          (status.error_code() == grpc::StatusCode::UNIMPLEMENTED && unparsable_request_)) {
        status = grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("the request to ", method_,
                         " cannot be parsed: it is malformed or has a string that is not valid "
                         "UTF-8 (names and other strings must be valid UTF-8)"));
        methods->ModifySendStatus(status);
      } else if (status.error_code() == grpc::StatusCode::UNKNOWN &&
                 status.error_message() == "Unexpected error in RPC handling") {
        LogError("unexpected exception in ", method_);
        status = grpc::Status(grpc::StatusCode::INTERNAL,
                              absl::StrCat("the server hit an unexpected error in ", method_,
                                           "; it is in the server's log; retry, and report it if "
                                           "it persists"));
        methods->ModifySendStatus(status);
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      calls_
          .Add({{"method", method_},
                {"code", StatusCodeName(static_cast<absl::StatusCode>(status.error_code()))}})
          .Increment();
      latency_.Add({{"method", method_}}, Buckets()).Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  static const prometheus::Histogram::BucketBoundaries& Buckets() {
    static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
    return *buckets;
  }

  std::string method_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& latency_;
  const std::shared_ptr<std::atomic<int64_t>> in_flight_;
  std::chrono::steady_clock::time_point start_;
  const bool counted_;
  bool unparsable_request_ = false;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  MetricsInterceptorFactory(prometheus::Registry& registry,
                            std::shared_ptr<std::atomic<int64_t>> in_flight)
      : in_flight_(std::move(in_flight)),
        calls_(prometheus::BuildCounter()
                   .Name("mcos_grpc_requests_total")
                   .Help("gRPC calls served, by method and status code")
                   .Register(registry)),
        latency_(prometheus::BuildHistogram()
                     .Name("mcos_grpc_request_duration_seconds")
                     .Help("gRPC call latency, from arrival to status, by method")
                     .Register(registry)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ServerCallInterceptor(info->method(), calls_, latency_, in_flight_);
  }

 private:
  const std::shared_ptr<std::atomic<int64_t>> in_flight_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& latency_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ServerHost>> ServerHost::Start(
    const ServerHostOptions& options, const std::vector<grpc::Service*>& services,
    std::shared_ptr<prometheus::Registry> registry) {
  // Debian's abseil checks every Mutex for lock-order cycles (a debug aid that cost ~5% of the CPU
  // of small requests in a profile); our lock order is flat, so turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::unique_ptr<ServerHost> host(new ServerHost());
  host->registry_ = registry ? std::move(registry) : std::make_shared<prometheus::Registry>();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options.tls.serves_tls() && !IsLoopbackListen(options.listen)) {
    LogWarning("serving plaintext on ", options.listen,
               ", beyond loopback: anyone on the network can read tokens and data; give "
               "--tls-cert and --tls-key");
  }
  builder.AddListeningPort(options.listen, MakeServerCredentials(options.tls), &host->port_);
  // gRPC sets SO_REUSEPORT by default: a second process on an address already served would start
  // and take part of its connections. Each address is served by one process.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Clients ping every 30 s to find dead connections (common/channel_arguments.h); allow it, and
  // ping idle clients too so that connections of vanished clients are closed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_send_message_bytes);
  // One completion queue with one idle poller: on a small machine every extra poller is another
  // thread woken per request (3 clusters on 2 cores: creates 738/689 -> 742/720 ops/s, deletes
  // 1012/914 -> 1073/1120, listings 17-21 -> 14-18 ms; one cluster not lower).
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 8);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(
      std::make_unique<MetricsInterceptorFactory>(*host->registry_, host->in_flight_));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  host->server_ = builder.BuildAndStart();
  if (host->server_ == nullptr || host->port_ == 0) {
    if (AddressInUse(options.listen)) {
      return absl::UnavailableError(
          absl::StrCat("address already in use: ", options.listen,
                       " (another process serves it; stop it or pick another --listen)"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     ": the address is in use or not local; pick another --listen"));
  }
  if (!options.metrics_listen.empty()) {
    try {
      host->exposer_ = std::make_unique<prometheus::Exposer>(options.metrics_listen);
      host->exposer_->RegisterCollectable(host->registry_);
      const auto ports = host->exposer_->GetListeningPorts();
      host->metrics_port_ = ports.empty() ? 0 : ports.front();
    } catch (const std::exception& e) {
      host->server_->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", options.metrics_listen,
                                                 ": ", e.what(),
                                                 "; pick another --metrics-listen"));
    }
  }
  host->SetServing(true);
  host->trimmer_ = std::make_unique<AllocatorTrimmer>();
  return host;
}

ServerHost::~ServerHost() { Shutdown(absl::ZeroDuration()); }

std::shared_ptr<grpc::Channel> ServerHost::InProcessChannel(ServiceAuth& auth) {
  return server_->experimental().InProcessChannelWithInterceptors(ClientChannelArguments(),
                                                                  auth.Interceptors());
}

void ServerHost::SetServing(bool serving) {
  if (server_ && server_->GetHealthCheckService() != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(serving);
  }
}

void ServerHost::SetServiceServing(const std::string& service, bool serving) {
  if (server_ && server_->GetHealthCheckService() != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(service, serving);
  }
}

void ServerHost::Shutdown(absl::Duration grace) {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  SetServing(false);
  // Shutdown sends every connection a GOAWAY and waits for the calls running on it. An idle
  // connection waits too, for its client to answer the GOAWAY's ping, which a client with no call
  // running notices only at gRPC's next backup poll (every 5 s): so once no call is left (none can
  // start after the GOAWAY), the connections are closed at once.
  const absl::Time deadline = absl::Now() + grace;
  absl::Notification started;
  std::thread shutdown([&] {
    started.Notify();
    server_->Shutdown(absl::ToChronoTime(deadline));
  });
  started.WaitForNotification();
  while (in_flight_->load(std::memory_order_acquire) > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  grpc_server_cancel_all_calls(server_->c_server());
  shutdown.join();
  server_->Wait();
  exposer_.reset();
  trimmer_.reset();
}

std::string DialAddress(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") host = "127.0.0.1";
  return absl::StrCat(host, ":", port);
}

void AnnounceListening(const std::string& listen, int port) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
}

namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  const sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  const sigset_t set = HandledSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    // The operator's usual "reload": TLS files are watched already (common/tls.h).
    LogInfo("SIGHUP: TLS certificates and keys are re-read from their files every ",
            absl::FormatDuration(kTlsReloadInterval), "; nothing else to reload");
  }
}

}  // namespace mcos::common
