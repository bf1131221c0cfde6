// Early-return helpers for absl::Status / absl::StatusOr (Debian 12's abseil has no ABSL_
// versions).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MCOS_STATUS_CONCAT_INNER_(a, b) a##b
#define MCOS_STATUS_CONCAT_(a, b) MCOS_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define MCOS_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status mcos_status_ = (expr);        \
    if (!mcos_status_.ok()) return mcos_status_; \
  } while (false)

// NOLINTBEGIN(bugprone-macro-parentheses): lhs is a declaration, not an expression
// `MCOS_ASSIGN_OR_RETURN(auto x, Foo());` declares x from an OK StatusOr, or returns its status.
#define MCOS_ASSIGN_OR_RETURN(lhs, expr) \
  MCOS_ASSIGN_OR_RETURN_IMPL_(MCOS_STATUS_CONCAT_(mcos_statusor_, __LINE__), lhs, expr)

#define MCOS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

// Aborts with a message when an invariant that cannot fail (absent bugs) fails.
#define MCOS_CHECK(cond)                                                 \
  do {                                                                   \
    if (!(cond)) ::mcos::common::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (false)

namespace mcos::common {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace mcos::common
