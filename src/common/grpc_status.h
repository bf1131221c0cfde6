// The one conversion between absl::Status (used everywhere inside) and grpc::Status (the RPC edge).
// Codes map one to one (their numeric values are the same, pinned by static_asserts); messages are
// kept.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mcos::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// "NOT_FOUND" for absl::StatusCode::kNotFound, as the CLI prints codes.
const char* StatusCodeName(absl::StatusCode code);

}  // namespace mcos::common
