// The channel settings every MCOS client uses, the SDK's and the servers' own calls to each other
// alike (header-only: the SDK links no MCOS library). They make a client work over real networks:
// - a connect attempt may take up to `connect_timeout` (TCP, TLS and HTTP/2 handshakes over a link
//   of several 100 ms round trips), while a refused connection is retried after 0.1 s growing to
//   1 s, so a restarted server is used again within a second (gRPC's default backoff grows to two
//   minutes; and its minimum reconnect backoff is also the connect timeout, so a small one made
//   every connect over a slow link fail);
// - keepalive pings find a peer that died or vanished behind a network within `keepalive` plus
//   10 s, also in the middle of a long stream (servers allow pings every 5 s: ServerHost);
// - calls that only read are retried on UNAVAILABLE with backoff (gRPC's retry policy, from the
//   default service config): at most 4 attempts, 0.1 s growing to 1 s apart, and only while no
//   answer has arrived, so a retried call never repeats a half-delivered stream. Health probes
//   (PeerHealth) are not retried: they count their misses themselves.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace mcos::common {

struct ChannelTuning {
  absl::Duration connect_timeout = absl::Seconds(20);
  absl::Duration keepalive = absl::Seconds(30);
  // A TCP connection of its own instead of one shared with equal channels of the process.
  bool own_connection = false;
};

// The read-only methods (retried on UNAVAILABLE). Writes are not: a write whose answer was lost
// must not be applied twice.
inline const std::string& RetryServiceConfig() {
  constexpr const char* kReads[][2] = {
      {"mcos.v1.UserService", "Login"},
      {"mcos.v1.UserService", "ListContainers"},
      {"mcos.v1.UserService", "ListObjects"},
      {"mcos.v1.UserService", "StatObject"},
      {"mcos.v1.UserService", "DownloadObject"},
      {"mcos.v1.AdminService", "Login"},
      {"mcos.v1.AdminService", "ListClusters"},
      {"mcos.v1.AdminService", "GetCluster"},
      {"mcos.v1.AdminService", "ListOptions"},
      {"mcos.v1.AdminService", "ListRings"},
      {"mcos.v1.AdminService", "ListUsers"},
      {"mcos.v1.AdminService", "GetRebalanceStatus"},
      {"mcos.v1.AdminService", "GetRepairStatus"},
      {"mcos.v1.StorageService", "Get"},
      {"mcos.v1.StorageService", "Stat"},
      {"mcos.v1.StorageService", "List"},
      {"mcos.v1.StorageService", "ContainerUsage"},
      {"mcos.v1.StorageService", "PartitionUsage"},
      {"mcos.v1.StorageService", "PartitionDigests"},
      {"mcos.v1.StorageService", "ScanPartition"},
      {"mcos.v1.ResolverService", "Resolve"},
      {"mcos.v1.ControllerService", "ListServices"},
      {"mcos.v1.ControllerService", "GetMetadataSnapshot"},
      {"mcos.v1.ControllerService", "Authenticate"},
      {"mcos.v1.ControllerService", "ListUserContainers"},
      {"mcos.v1.ControllerService", "GetContainer"},
      {"mcos.v1.ClusterService", "ClusterStatObject"},
      {"mcos.v1.ClusterService", "ClusterDownloadObject"},
      {"mcos.v1.ClusterService", "ClusterPartitionDigests"},
      {"mcos.v1.ClusterService", "ClusterScanPartition"},
      {"mcos.v1.PeerControllerService", "PullMetadata"},
  };
  static const std::string config = [&] {
    std::string names;
    for (const auto& m : kReads) {
      absl::StrAppend(&names, names.empty() ? "" : ",", R"({"service":")", m[0], R"(","method":")",
                      m[1], R"("})");
    }
    return absl::StrCat(R"({"methodConfig":[{"name":[)", names,
                        R"(],"retryPolicy":{"maxAttempts":4,"initialBackoff":"0.1s",)",
                        R"("maxBackoff":"1s","backoffMultiplier":2,)",
                        R"("retryableStatusCodes":["UNAVAILABLE"]}}]})");
  }();
  return config;
}

inline grpc::ChannelArguments ClientChannelArguments(const ChannelTuning& tuning = {}) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  args.SetMaxSendMessageSize(64 * 1024 * 1024);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(tuning.connect_timeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              static_cast<int>(absl::ToInt64Milliseconds(tuning.keepalive)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetServiceConfigJSON(RetryServiceConfig());
  if (tuning.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace mcos::common
