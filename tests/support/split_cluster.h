// One cluster run as separate processes (mcos-storage, mcos-controller, mcos-resolver,
// mcos-server) with one cluster key, for e2e tests. Each process restarts on its own address.
#pragma once

#include <signal.h>
#include <stdlib.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/subprocess.h"
#include "common/token.h"

namespace mcos::testing {

inline constexpr char kSplitAdminPassword[] = "split-admin-pw";

// One process of the cluster, restartable on the same address.
class ServiceProcess {
 public:
  ServiceProcess(std::vector<std::string> args, std::string log)
      : args_(std::move(args)), log_(std::move(log)) {}
  absl::Status Start() {
    std::vector<std::string> argv = args_;
    argv.push_back("--listen");
    argv.push_back(endpoint_.empty() ? "127.0.0.1:0" : endpoint_);
    setenv("MCOS_ADMIN_PASSWORD", kSplitAdminPassword, 1);
    auto p = common::Subprocess::Start(argv, log_);
    unsetenv("MCOS_ADMIN_PASSWORD");
    if (!p.ok()) return p.status();
    process_ = std::move(*p);
    auto addr = process_->WaitForListening(absl::Seconds(30));
    if (!addr.ok()) return addr.status();
    endpoint_ = *addr;
    return absl::OkStatus();
  }
  void AddArgs(const std::vector<std::string>& more) {
    args_.insert(args_.end(), more.begin(), more.end());
  }
  void Kill9() {
    process_->Signal(SIGKILL);
    process_->Wait();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  std::vector<std::string> args_;
  std::string log_;
  std::string endpoint_;
  std::unique_ptr<common::Subprocess> process_;
};

// The four processes; `dir` holds their data, logs and the key file.
struct SplitCluster {
  SplitCluster(const std::string& dir, const std::string& storage_bin,
               const std::string& controller_bin, const std::string& resolver_bin,
               const std::string& server_bin)
      : dir(dir), key_path(dir + "/token.key") {
    storage = std::make_unique<ServiceProcess>(
        std::vector<std::string>{storage_bin, "--data-dir", dir + "/storage", "--token-key-file",
                                 key_path, "--reserve-mib", "8"},
        dir + "/storage.log");
    bins = {controller_bin, resolver_bin, server_bin};
  }

  // Starts storage, controller, resolver and server, in this order.
  absl::Status Start() {
    if (auto key = common::LoadOrCreateKeyFile(key_path); !key.ok()) return key.status();
    if (auto s = Launch("storage", *storage); !s.ok()) return s;
    controller = std::make_unique<ServiceProcess>(
        std::vector<std::string>{bins[0], "--data-dir", dir + "/controller", "--storage-endpoint",
                                 storage->endpoint(), "--health-period-ms", "100",
                                 "--down-after-misses", "2", "--argon2-memory-kib", "1024",
                                 "--token-key-file", key_path},
        dir + "/controller.log");
    if (auto s = Launch("controller", *controller); !s.ok()) return s;
    resolver = std::make_unique<ServiceProcess>(
        std::vector<std::string>{bins[1], "--controller", controller->endpoint(),
                                 "--token-key-file", key_path},
        dir + "/resolver.log");
    if (auto s = Launch("resolver", *resolver); !s.ok()) return s;
    server = std::make_unique<ServiceProcess>(
        std::vector<std::string>{bins[2], "--controller", controller->endpoint(),
                                 "--token-key-file", key_path},
        dir + "/server.log");
    return Launch("server", *server);
  }

  // Starts `process` with the extra arguments of `role`.
  absl::Status Launch(const std::string& role, ServiceProcess& process) {
    if (extra_args) process.AddArgs(extra_args(role));
    return process.Start();
  }

  // More arguments for a process ("storage", "controller", "resolver", "server"), e.g. TLS.
  std::function<std::vector<std::string>(const std::string& role)> extra_args;
  std::string dir;
  std::string key_path;
  std::vector<std::string> bins;
  std::unique_ptr<ServiceProcess> storage, controller, resolver, server;
};

}  // namespace mcos::testing
