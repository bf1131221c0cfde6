// One-line logs to stderr: "2026-11-26T06:30:00.123Z I storage: message". Thread-safe.
#pragma once

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mcos::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Sets the process name shown on every line and the lowest level printed.
void InitLogging(absl::string_view process_name, LogLevel min_level = LogLevel::kInfo);
void Log(LogLevel level, absl::string_view message);

template <typename... Args>
void LogInfo(const Args&... args) {
  Log(LogLevel::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  Log(LogLevel::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  Log(LogLevel::kError, absl::StrCat(args...));
}

}  // namespace mcos::common
