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

}  // namespace mcos::common
