// Runs the mcos CLI as a user would, for e2e tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mcos::testing {

// Runs `cli_bin args` with XDG_CONFIG_HOME=`config_home` (plus `env`, "NAME=value ..."), feeding
// `input` on stdin (printf %b escapes); returns (exit status, stdout and stderr).
inline std::pair<int, std::string> RunCli(const std::string& cli_bin,
                                          const std::string& config_home, const std::string& args,
                                          const std::string& input = "",
                                          const std::string& env = "") {
  const std::string cmd = absl::StrCat("printf '%b' '", input, "' | XDG_CONFIG_HOME=", config_home,
                                       " ", env, " ", cli_bin, " ", args, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace mcos::testing
