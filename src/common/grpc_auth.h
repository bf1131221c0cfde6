// Reading credentials from gRPC metadata.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"

namespace mcos::common {

// The token of `authorization: Bearer <token>`; UNAUTHENTICATED when missing, malformed or given
// more than once.
inline absl::StatusOr<std::string> BearerToken(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "no credentials: log in and send 'authorization: Bearer <token>'");
  }
  if (md.count("authorization") > 1) {
    return absl::UnauthenticatedError(
        "more than one authorization header: send exactly one 'authorization: Bearer <token>'");
  }
  const std::string value(it->second.data(), it->second.size());
  constexpr char kPrefix[] = "Bearer ";
  if (!absl::StartsWith(value, kPrefix) || value.size() == sizeof(kPrefix) - 1) {
    return absl::UnauthenticatedError("malformed authorization header: expected 'Bearer <token>'");
  }
  return value.substr(sizeof(kPrefix) - 1);
}

// The metadata key with which a server tells the controller whose login it forwards (trusted
// only from callers with the service credential).
inline constexpr char kClientAddressKey[] = "x-mcos-client-address";

// The caller's IP address ("ipv4:1.2.3.4:567" -> "1.2.3.4", "ipv6:[::1]:567" -> "::1"); the
// whole peer string for other transports.
inline std::string PeerAddress(const grpc::ServerContextBase& context) {
  std::string peer = context.peer();
  for (const char* scheme : {"ipv4:", "ipv6:"}) {
    if (!absl::StartsWith(peer, scheme)) continue;
    std::string rest = peer.substr(5);
    if (const size_t colon = rest.rfind(':'); colon != std::string::npos) rest.resize(colon);
    if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']') {
      rest = rest.substr(1, rest.size() - 2);
    }
    return rest;
  }
  return peer;
}

// The address of the client a login comes from: the one a server forwarded, or the caller's.
inline std::string LoginAddress(const grpc::ServerContextBase& context, bool trusted_caller) {
  if (trusted_caller) {
    const auto& md = context.client_metadata();
    if (auto it = md.find(kClientAddressKey); it != md.end() && it->second.size() <= 256) {
      return {it->second.data(), it->second.size()};
    }
  }
  return PeerAddress(context);
}

}  // namespace mcos::common
