#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace mcos::common {
namespace {

TEST(GrpcStatusTest, RoundTripsEveryCodeAndMessage) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    const absl::Status s(code, c == 0 ? "" : "container 'x' not found");
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_STREQ(StatusCodeName(absl::StatusCode::kDataLoss), "DATA_LOSS");
  EXPECT_STREQ(StatusCodeName(absl::StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
}

}  // namespace
}  // namespace mcos::common
