// Credentials between the services of one cluster. A service credential is a token like a user's
// (common/token.h) with the role "service", but signed with a key derived from the cluster key for
// this purpose alone, so that no user's or admin's token can pass for a service's and no service
// token for a user's. Every process of the cluster holds the cluster key (mcos-cluster's
// DATA_DIR/token.key, `--token-key-file` for the separate processes), mints its own tokens and
// checks its callers' without asking anyone. Thread-safe.
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

class ServiceAuth {
 public:
  // `cluster_key` is the cluster's token key; `name` names this process in the tokens it mints.
  ServiceAuth(const std::string& cluster_key, std::string name);

  // A service token valid for at least 10 more minutes (minted for an hour, then renewed).
  std::string Token();
  // The caller of an internal service: OK for a valid service token; UNAUTHENTICATED without a
  // credential or with one that is malformed, forged or expired; PERMISSION_DENIED for a user's or
  // an admin's token.
  absl::Status CheckCaller(const grpc::ServerContextBase& context) const;
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
