// Credentials between the services of one cluster, and between the clusters of a federation. A
// service credential is a token like a user's (common/token.h) with the role "service", but signed
// with a key derived from the cluster key for this purpose alone, so that no user's or admin's
// token can pass for a service's and no service token for a user's. Every process of the cluster
// holds the cluster key (mcos-cluster's DATA_DIR/token.key, `--token-key-file` for the separate
// processes), mints its own tokens and checks its callers' without asking anyone. Peer credentials
// (CredentialScope::kFederation) work the same way with the role "peer" and a key derived from the
// federation secret: every cluster of the federation holds it, and a cluster's service credential
// never passes as a peer's or the other way round. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/token.h"

namespace mcos::common {

inline constexpr char kServiceRole[] = "service";
inline constexpr char kPeerRole[] = "peer";

// Who a credential admits: the services of one cluster (internal services), or the clusters of one
// federation (ClusterService, PeerControllerService).
enum class CredentialScope { kCluster, kFederation };

class ServiceAuth {
 public:
  // `key` is the cluster's key (kCluster) or the federation's peer key (kFederation, see
  // ClusterKeys); `name` names this process (or, for peers, this cluster) in the tokens it mints.
  // `user_key` signs users' tokens (told apart from garbage for a clearer refusal); empty: `key`.
  ServiceAuth(const std::string& key, std::string name, const std::string& user_key = "",
              CredentialScope scope = CredentialScope::kCluster);

  // A service token valid for at least 10 more minutes (minted for an hour, then renewed).
  std::string Token();
  // The caller of an internal service: OK for a valid service token; UNAUTHENTICATED without a
  // credential or with one that is malformed, forged or expired; PERMISSION_DENIED for a user's or
  // an admin's token.
  absl::Status CheckCaller(const grpc::ServerContextBase& context) const;
  // The caller's name as its credential gives it (a process, or a peer cluster's name), after the
  // same checks as CheckCaller.
  absl::StatusOr<std::string> CallerName(const grpc::ServerContextBase& context) const;
  // Whether `token` is a valid service token (user-facing services refuse it).
  bool IsServiceToken(absl::string_view token) const;
  // Client interceptors that send this process's service token with every call (for channels to
  // internal services; gRPC's call credentials would refuse plaintext channels).
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
  Interceptors();
  // The transport credentials of this process's calls to other MCOS processes: TLS (and its
  // client certificate, for mutual TLS) when configured, plaintext otherwise. Set once at start.
  void set_channel_credentials(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    channel_credentials_ = std::move(credentials);
  }
  const std::shared_ptr<grpc::ChannelCredentials>& channel_credentials() const {
    return channel_credentials_;
  }

 private:
  const CredentialScope scope_;
  const TokenSigner service_signer_;
  const TokenSigner user_signer_;  // to tell a user's token (PERMISSION_DENIED) from garbage
  const std::string name_;
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials_ =
      grpc::InsecureChannelCredentials();
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace mcos::common

// First line of every handler of an internal service: returns the refusal of a caller without the
// service credential (see ServiceAuth::CheckCaller).
#define MCOS_REQUIRE_SERVICE_CALLER(auth, context)                             \
  do {                                                                         \
    const ::absl::Status mcos_caller_ = (auth).CheckCaller(*(context));        \
    if (!mcos_caller_.ok()) return ::mcos::common::ToGrpcStatus(mcos_caller_); \
  } while (false)
