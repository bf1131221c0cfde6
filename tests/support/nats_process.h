// A real nats-server (Debian's) for the end-to-end tests of events: its configuration written by
// mcos-cluster --write-nats-config for one cluster's data directory, on free loopback ports that
// stay the same across Kill() and Start() again (so the cluster reconnects to the same URL).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"

namespace mcos::testing {

// A loopback port nobody listens on now.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class NatsProcess {
 public:
  // `dir` holds the configuration and the log; `cluster_bin` writes the configuration.
  NatsProcess(std::string dir, std::string cluster_bin)
      : dir_(std::move(dir)),
        cluster_bin_(std::move(cluster_bin)),
        port_(FreePort()),
        leaf_port_(FreePort()) {}

  // Writes the configuration for the cluster `name` at `data_dir` (with the federation secret
  // `secret`, empty: none), accepting leafnode links and linking to `leaf_remotes`.
  absl::Status Configure(const std::string& data_dir, const std::string& name,
                         const std::string& secret,
                         const std::vector<std::string>& leaf_remotes = {}) {
    std::vector<std::string> args = {cluster_bin_,
                                     "--data-dir",
                                     data_dir,
                                     "--name",
                                     name,
                                     "--write-nats-config",
                                     config_path(),
                                     "--nats-listen",
                                     absl::StrCat("127.0.0.1:", port_)};
    if (!secret.empty()) {
      args.insert(args.end(),
                  {"--federation-secret-file", secret, "--nats-leaf-listen", leaf_address()});
      for (const auto& r : leaf_remotes) args.insert(args.end(), {"--nats-leaf-remote", r});
    }
    auto p = common::Subprocess::Start(args, dir_ + "/write-config.log");
    if (!p.ok()) return p.status();
    const int status = (*p)->Wait();
    if (status != 0) return absl::InternalError("mcos-cluster --write-nats-config failed");
    return absl::OkStatus();
  }

  absl::Status Start() {
    auto p = common::Subprocess::Start({"/usr/sbin/nats-server", "-c", config_path()},
                                       dir_ + "/nats.log");
    if (!p.ok()) return p.status();
    process_ = std::move(*p);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (Accepts(port_)) return absl::OkStatus();
      if (!process_->running()) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::UnavailableError(
        absl::StrCat("nats-server did not start; see ", dir_, "/nats.log"));
  }
  void Kill() {
    if (process_) {
      process_->Signal(SIGKILL);
      process_->Wait();
      process_.reset();
    }
  }

  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }
  std::string leaf_address() const { return absl::StrCat("127.0.0.1:", leaf_port_); }
  std::string config_path() const { return dir_ + "/nats.conf"; }

 private:
  static bool Accepts(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
  }

  std::string dir_;
  std::string cluster_bin_;
  int port_;
  int leaf_port_;
  std::unique_ptr<common::Subprocess> process_;
};

}  // namespace mcos::testing
