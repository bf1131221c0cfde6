// Wires the storage node: the RocksDB engine under <data_dir>/db, StorageService (and, when asked,
// BenchService) on one gRPC port with health, reflection and metrics, the free-space guard and a
// maintenance thread (space checks, space reclaim). Owns everything it starts.
//
// Health: "" stays SERVING while the node can read and delete; the service name
// kWritesHealthService is NOT_SERVING while the disk is under the free-space floor (writes are
// refused), so probes and the controller can tell "full" from "down".
#pragma once

#include <prometheus/gauge.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/health_names.h"
#include "common/server_host.h"
#include "storage/rocksdb_engine.h"
#include "storage/space_guard.h"

namespace mcos::storage {

inline constexpr const char* kWritesHealthService = common::kStorageWritesHealth;

struct StorageOptions {
  std::string listen = "127.0.0.1:0";
  std::string metrics_listen;
  // TLS on the gRPC port (mcos-storage; mcos-cluster serves its own port).
  common::TlsFiles tls;
  std::string data_dir;
  // The cluster's token key: callers must present a service credential derived from it.
  std::string token_key;
  // The key of users' tokens when it differs from token_key (a federation's, ClusterKeys).
  std::string user_token_key;
  bool sync_commits = true;
  // Below this much free disk space new data is refused (deletes and reads go on). Keep it above
  // what RocksDB may need at once: a flush of the memtables (3 x memtable_bytes) and the WAL.
  uint64_t min_free_bytes = uint64_t{256} << 20;
  // On a small disk, the floor and the reserve are at most this percentage of its size.
  uint32_t min_free_percent = 5;
  // The space reserve given back when the disk fills up anyway (0: none).
  uint64_t reserve_bytes = uint64_t{64} << 20;
  // Memtable size of the object-data column family (RocksDbOptions::data_write_buffer_bytes).
  uint64_t memtable_bytes = uint64_t{32} << 20;
  uint64_t max_total_wal_bytes = uint64_t{64} << 20;
  // How often free space is checked and deleted data compacted away.
  absl::Duration maintenance_period = absl::Seconds(1);
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

  // Reports the node's write health on `host` (the node's own host when it serves by itself).
  void AttachHealth(common::ServerHost* host);

  // The node's engine, for a server in the same process (mcos-cluster) to call directly.
  Engine& engine() { return *engine_; }

  int port() const { return host_ ? host_->port() : 0; }
  int metrics_port() const { return host_ ? host_->metrics_port() : 0; }
  void Shutdown();

 private:
  StorageApp() = default;
  // One round of the maintenance thread: free space, health, reclaim.
  void MaintainOnce();

  std::unique_ptr<common::ServiceAuth> auth_;
  std::unique_ptr<SpaceGuard> space_;
  std::unique_ptr<RocksDbEngine> engine_;
  std::unique_ptr<grpc::Service> storage_service_;
  std::unique_ptr<grpc::Service> bench_service_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<common::ServerHost> host_;
  absl::Duration maintenance_period_;
  absl::Time last_gc_;  // used by the maintenance thread only
  std::atomic<common::ServerHost*> health_host_{nullptr};
  prometheus::Gauge* free_bytes_gauge_ = nullptr;
  prometheus::Gauge* writable_gauge_ = nullptr;
  prometheus::Gauge* sst_bytes_gauge_ = nullptr;
  prometheus::Gauge* blob_bytes_gauge_ = nullptr;
  prometheus::Gauge* file_bytes_gauge_ = nullptr;
  absl::Notification stop_;
  std::unique_ptr<common::Daemon> maintenance_;
};

}  // namespace mcos::storage
