#include "common/logging.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mcos::common {
namespace {

absl::Mutex g_mu;
std::string* g_name ABSL_GUARDED_BY(g_mu) = nullptr;
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

char LevelChar(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 'D';
    case LogLevel::kInfo:
      return 'I';
    case LogLevel::kWarning:
      return 'W';
    case LogLevel::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void InitLogging(absl::string_view process_name, LogLevel min_level) {
  absl::MutexLock lock(&g_mu);
  delete g_name;
  g_name = new std::string(process_name);
  g_min_level = static_cast<int>(min_level);
}

void Log(LogLevel level, absl::string_view message) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  const std::string when =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  absl::MutexLock lock(&g_mu);
  std::fprintf(stderr, "%s %c %s: %.*s\n", when.c_str(), LevelChar(level),
               g_name != nullptr ? g_name->c_str() : "mcos", static_cast<int>(message.size()),
               message.data());
  std::fflush(stderr);
}

}  // namespace mcos::common
