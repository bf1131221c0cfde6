// The one conversion between absl::Status (used everywhere inside) and grpc::Status (the RPC edge).
// Codes map one to one (their numeric values are the same, pinned by static_asserts); messages are
// kept.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace mcos::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// The deadline of a call being served (InfiniteFuture when the caller set none), for the calls
// it makes in turn.
absl::Time DeadlineOf(const grpc::ServerContextBase& context);

// "NOT_FOUND" for absl::StatusCode::kNotFound, as the CLI prints codes.
const char* StatusCodeName(absl::StatusCode code);

}  // namespace mcos::common
