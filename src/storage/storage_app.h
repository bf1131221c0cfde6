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
  // Where the storage metrics go (a new registry when null).
  std::shared_ptr<prometheus::Registry> registry;
};

class StorageApp {
 public:
  // Opens the database and starts serving. INVALID_ARGUMENT without a data dir; UNAVAILABLE if the
  // port cannot be bound or the directory is locked by another process.
  static absl::StatusOr<std::unique_ptr<StorageApp>> Start(const StorageOptions& options);
  // Opens the database and builds the services without serving them (for mcos-cluster, which
  // serves every service of the cluster on one port).
  static absl::StatusOr<std::unique_ptr<StorageApp>> Create(const StorageOptions& options);
  std::vector<grpc::Service*> services();
  ~StorageApp();

  int port() const { return host_ ? host_->port() : 0; }
  int metrics_port() const { return host_ ? host_->metrics_port() : 0; }
  void Shutdown();

 private:
  StorageApp() = default;
  std::unique_ptr<RocksDbEngine> engine_;
  std::unique_ptr<grpc::Service> storage_service_;
  std::unique_ptr<grpc::Service> bench_service_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<common::ServerHost> host_;
};

}  // namespace mcos::storage
