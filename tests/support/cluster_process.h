// Runs mcos-cluster (a whole cluster in one process) on a free loopback port, for e2e tests.
#pragma once

#include <signal.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/subprocess.h"

namespace mcos::testing {

inline constexpr char kAdminPassword[] = "admin-secret-for-tests";

class ClusterProcess {
 public:
  ClusterProcess(std::string binary, std::string data_dir)
      : binary_(std::move(binary)), data_dir_(std::move(data_dir)) {}

  absl::Status Start(const std::vector<std::string>& extra = {}) {
    setenv("MCOS_ADMIN_PASSWORD", kAdminPassword, 1);
    std::vector<std::string> args = {binary_,    "--data-dir",         data_dir_ + "/cluster",
                                     "--listen", "127.0.0.1:0",        "--argon2-memory-kib",
                                     "1024",     "--health-period-ms", "200"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = common::Subprocess::Start(args, data_dir_ + "/cluster.log");
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
  const std::string& endpoint() const { return endpoint_; }
  std::string token_key_path() const { return data_dir_ + "/cluster/token.key"; }
  std::string log_path() const { return data_dir_ + "/cluster.log"; }

 private:
  std::string binary_;
  std::string data_dir_;
  std::unique_ptr<common::Subprocess> process_;
  std::string endpoint_;
};

}  // namespace mcos::testing
