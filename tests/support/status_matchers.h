// gtest helpers for absl::Status / StatusOr.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mcos::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace mcos::testing

#define MCOS_ASSERT_OK(expr)                                         \
  do {                                                               \
    const ::absl::Status mcos_s_ = ::mcos::testing::GetStatus(expr); \
    ASSERT_TRUE(mcos_s_.ok()) << mcos_s_;                            \
  } while (false)

#define MCOS_EXPECT_OK(expr)                                         \
  do {                                                               \
    const ::absl::Status mcos_s_ = ::mcos::testing::GetStatus(expr); \
    EXPECT_TRUE(mcos_s_.ok()) << mcos_s_;                            \
  } while (false)

// Checks the code of a Status or StatusOr.
#define MCOS_EXPECT_CODE(expr, code_value)                                \
  do {                                                                    \
    const ::absl::Status mcos_s_ = ::mcos::testing::GetStatus(expr);      \
    EXPECT_EQ(mcos_s_.code(), ::absl::StatusCode::code_value) << mcos_s_; \
  } while (false)
