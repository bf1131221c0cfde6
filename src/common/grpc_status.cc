#include "common/grpc_status.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace mcos::common {
namespace {

#define MCOS_SAME_CODE(a, g) \
  static_assert(static_cast<int>(absl::StatusCode::a) == static_cast<int>(grpc::StatusCode::g))
MCOS_SAME_CODE(kOk, OK);
MCOS_SAME_CODE(kCancelled, CANCELLED);
MCOS_SAME_CODE(kUnknown, UNKNOWN);
MCOS_SAME_CODE(kInvalidArgument, INVALID_ARGUMENT);
MCOS_SAME_CODE(kDeadlineExceeded, DEADLINE_EXCEEDED);
MCOS_SAME_CODE(kNotFound, NOT_FOUND);
MCOS_SAME_CODE(kAlreadyExists, ALREADY_EXISTS);
MCOS_SAME_CODE(kPermissionDenied, PERMISSION_DENIED);
MCOS_SAME_CODE(kResourceExhausted, RESOURCE_EXHAUSTED);
MCOS_SAME_CODE(kFailedPrecondition, FAILED_PRECONDITION);
MCOS_SAME_CODE(kAborted, ABORTED);
MCOS_SAME_CODE(kOutOfRange, OUT_OF_RANGE);
MCOS_SAME_CODE(kUnimplemented, UNIMPLEMENTED);
MCOS_SAME_CODE(kInternal, INTERNAL);
MCOS_SAME_CODE(kUnavailable, UNAVAILABLE);
MCOS_SAME_CODE(kDataLoss, DATA_LOSS);
MCOS_SAME_CODE(kUnauthenticated, UNAUTHENTICATED);
#undef MCOS_SAME_CODE

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(status.code()), std::string(status.message())};
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return {static_cast<absl::StatusCode>(status.error_code()), status.error_message()};
}

const char* StatusCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, condition);
  std::abort();
}

absl::Time DeadlineOf(const grpc::ServerContextBase& context) {
  const auto d = context.deadline();
  return d == std::chrono::system_clock::time_point::max() ? absl::InfiniteFuture()
                                                           : absl::FromChrono(d);
}

}  // namespace mcos::common
