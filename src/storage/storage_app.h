// Wires the storage node: the RocksDB engine under <data_dir>/db, StorageService (and, when asked,
// BenchService) on one gRPC port with health, reflection and metrics. Owns everything it starts.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/server_host.h"
#include "storage/rocksdb_engine.h"

namespace mcos::storage {

struct StorageOptions {
  std::string listen = "127.0.0.1:0";
  std::string metrics_listen;
  std::string data_dir;
  bool sync_commits = true;
  bool enable_bench_service = false;
};

class StorageApp {
 public:
  // Opens the database and starts serving. INVALID_ARGUMENT without a data dir; UNAVAILABLE if the
  // port cannot be bound or the directory is locked by another process.
  static absl::StatusOr<std::unique_ptr<StorageApp>> Start(const StorageOptions& options);
  ~StorageApp();

  int port() const { return host_->port(); }
  int metrics_port() const { return host_->metrics_port(); }
  void Shutdown();

 private:
  StorageApp() = default;
  std::unique_ptr<RocksDbEngine> engine_;
  std::unique_ptr<grpc::Service> storage_service_;
  std::unique_ptr<grpc::Service> bench_service_;
  std::unique_ptr<common::ServerHost> host_;
};

}  // namespace mcos::storage
