// Runs mcos-cluster (a whole cluster in one process) on a free loopback port, for e2e tests.
#pragma once

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/sdk/client.h"
#include "common/subprocess.h"

namespace mcos::testing {

inline constexpr char kAdminPassword[] = "admin-secret-for-tests";

class ClusterProcess {
 public:
  // The cluster keeps its data under `data_dir`/cluster and logs to `log_path` (default
  // `data_dir`/cluster.log).
  ClusterProcess(std::string binary, std::string data_dir, std::string log_path = "")
      : binary_(std::move(binary)),
        data_dir_(std::move(data_dir)),
        log_path_(log_path.empty() ? data_dir_ + "/cluster.log" : std::move(log_path)) {}

  absl::Status Start(const std::vector<std::string>& extra = {}) {
    setenv("MCOS_ADMIN_PASSWORD", kAdminPassword, 1);
    std::vector<std::string> args = {binary_, "--data-dir", data_dir_ + "/cluster",
                                     "--health-period-ms", "200"};
    // Test defaults, unless the test gives its own.
    const std::pair<const char*, const char*> defaults[] = {{"--listen", "127.0.0.1:0"},
                                                            {"--argon2-memory-kib", "1024"}};
    for (const auto& [flag, value] : defaults) {
      if (std::find(extra.begin(), extra.end(), flag) == extra.end()) {
        args.insert(args.end(), {flag, value});
      }
    }
    // Test clusters keep a small space reserve; a test that cares passes its own.
    if (std::find(extra.begin(), extra.end(), "--reserve-mib") == extra.end()) {
      args.insert(args.end(), {"--reserve-mib", "8", "--min-free-mib", "64"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = common::Subprocess::Start(args, log_path_);
    unsetenv("MCOS_ADMIN_PASSWORD");
    if (!p.ok()) return p.status();
    process_ = std::move(*p);
    auto addr = process_->WaitForListening(absl::Seconds(30));
    if (!addr.ok()) return addr.status();
    endpoint_ = *addr;
    return absl::OkStatus();
  }
  int Stop() {
    process_->Signal(SIGTERM);
    return process_->Wait();
  }
  // kill -9.
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Wait();
  }
  pid_t pid() const { return process_->pid(); }
  const std::string& endpoint() const { return endpoint_; }
  // The port of its Prometheus /metrics (started with --metrics-listen); 0 if none.
  int metrics_port() const {
    int port = 0;
    for (const std::string& line : process_->preamble()) {
      if (absl::StartsWith(line, "metrics on ") &&
          absl::SimpleAtoi(line.substr(std::strlen("metrics on ")), &port)) {
        return port;
      }
    }
    return 0;
  }
  // Adds a user as the bootstrap admin.
  absl::Status AddUser(const std::string& name, const std::string& password, bool admin = false) {
    client::Client c(endpoint_, client_options_);
    if (auto s = c.Login("admin", kAdminPassword); !s.ok()) return s.status();
    return c.AddUser(name, password, admin).status();
  }
  std::string token_key_path() const { return data_dir_ + "/cluster/token.key"; }
  const std::string& log_path() const { return log_path_; }
  // How AddUser connects (e.g. TLS).
  void set_client_options(client::ClientOptions o) { client_options_ = std::move(o); }

 private:
  std::string binary_;
  std::string data_dir_;
  std::string log_path_;
  std::unique_ptr<common::Subprocess> process_;
  std::string endpoint_;
  client::ClientOptions client_options_;
};

}  // namespace mcos::testing
