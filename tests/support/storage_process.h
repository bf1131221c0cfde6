// Runs mcos-storage as a separate process on a free loopback port, for end-to-end tests.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/channel.h"
#include "common/service_auth.h"
#include "common/subprocess.h"
#include "common/token.h"
#include "storage/storage_client.h"

namespace mcos::testing {

class StorageProcess {
 public:
  // `binary` is the mcos-storage executable; `data_dir` is kept across Restart().
  StorageProcess(std::string binary, std::string data_dir)
      : binary_(std::move(binary)), data_dir_(std::move(data_dir)) {}

  // Starts the process and waits until it serves.
  absl::Status Start() {
    auto key = common::LoadOrCreateKeyFile(data_dir_ + "/token.key");
    if (!key.ok()) return key.status();
    if (auth_ == nullptr) auth_ = std::make_unique<common::ServiceAuth>(*key, "test");
    auto p = common::Subprocess::Start(
        {binary_, "--data-dir", data_dir_ + "/node", "--listen", "127.0.0.1:0", "--min-free-mib",
         "64", "--reserve-mib", "8", "--token-key-file", data_dir_ + "/token.key"},
        log_path());
    if (!p.ok()) return p.status();
    process_ = std::move(*p);
    auto addr = process_->WaitForListening(absl::Seconds(30));
    if (!addr.ok()) return addr.status();
    endpoint_ = *addr;
    client_ = std::make_unique<storage::StorageClient>(Connect());
    return absl::OkStatus();
  }
  // kill -9.
  void Crash() {
    process_->Signal(SIGKILL);
    process_->Wait();
  }
  // SIGTERM, then wait: a clean stop.
  int Stop() {
    client_.reset();  // an idle open connection would hold the server's graceful shutdown
    process_->Signal(SIGTERM);
    return process_->Wait();
  }

  storage::StorageClient& client() { return *client_; }
  // A new channel to the node that sends the service credential (its own connection each time).
  std::shared_ptr<grpc::Channel> Connect() {
    return common::ConnectInternal(endpoint_, *auth_, /*own_connection=*/true);
  }
  const std::string& endpoint() const { return endpoint_; }
  std::string db_path() const { return data_dir_ + "/node/db"; }
  std::string log_path() const { return data_dir_ + "/storage.log"; }
  pid_t pid() const { return process_->pid(); }

 private:
  std::string binary_;
  std::string data_dir_;
  std::unique_ptr<common::Subprocess> process_;
  std::string endpoint_;
  std::unique_ptr<common::ServiceAuth> auth_;
  std::unique_ptr<storage::StorageClient> client_;
};

}  // namespace mcos::testing
