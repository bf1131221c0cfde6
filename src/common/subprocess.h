// Starts and stops child processes for the end-to-end tests, the benchmarks and the local
// launchers. Not thread-safe; one owner per instance.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mcos::common {

class Subprocess {
 public:
  // Starts argv[0] (a path) with its stdout piped to us and its stderr appended to `stderr_path`
  // (inherited when empty). INTERNAL if it cannot be started.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const std::string& stderr_path = "");
  ~Subprocess();  // Kills (SIGKILL) and reaps the child if it still runs.
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads stdout until a line "listening on HOST:PORT" and returns HOST:PORT. DEADLINE_EXCEEDED
  // after `timeout`; UNAVAILABLE if the child exits first.
  absl::StatusOr<std::string> WaitForListening(absl::Duration timeout);
  // The lines the child printed before "listening on" (e.g. "metrics on PORT").
  const std::vector<std::string>& preamble() const { return preamble_; }
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for the child to exit; returns its wait status (as waitpid's). Idempotent.
  int Wait();
  bool running() const { return pid_ > 0 && !exited_; }

 private:
  Subprocess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  bool exited_ = false;
  int wait_status_ = 0;
  std::string buffer_;
  std::vector<std::string> preamble_;
};

// Peak resident set size (VmHWM) of a running process, in bytes; NOT_FOUND if it is gone.
absl::StatusOr<uint64_t> PeakRssBytes(pid_t pid);

}  // namespace mcos::common
