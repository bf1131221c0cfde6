#include "storage/storage_app.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/bench_service.h"
#include "common/data_dir.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/storage_grpc_service.h"

namespace mcos::storage {

absl::StatusOr<std::unique_ptr<StorageApp>> StorageApp::Create(const StorageOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("no data directory: pass --data-dir DIR");
  }
  MCOS_RETURN_IF_ERROR(common::PreparePrivateDir(options.data_dir));
  if (options.token_key.size() < 32) {
    return absl::InvalidArgumentError(
        "no token key: pass --token-key-file FILE (the cluster's key; its internal calls are "
        "authenticated with it)");
  }
  std::unique_ptr<StorageApp> app(new StorageApp());
  app->auth_ =
      std::make_unique<common::ServiceAuth>(options.token_key, "storage", options.user_token_key);
  SpaceOptions space;
  space.dir = options.data_dir;
  space.min_free_bytes = options.min_free_bytes;
  space.min_free_percent = options.min_free_percent;
  space.reserve_bytes = options.reserve_bytes;
  MCOS_ASSIGN_OR_RETURN(app->space_, SpaceGuard::Open(space));
  RocksDbOptions db;
  db.path = (std::filesystem::path(options.data_dir) / "db").string();
  db.sync_commits = options.sync_commits;
  db.data_write_buffer_bytes = options.memtable_bytes;
  db.max_total_wal_bytes = options.max_total_wal_bytes;
  db.space = app->space_.get();
  MCOS_ASSIGN_OR_RETURN(app->engine_, RocksDbEngine::Open(db));
  app->registry_ = options.registry ? options.registry : std::make_shared<prometheus::Registry>();
  app->storage_service_ = std::make_unique<StorageGrpcService>(
      *app->engine_, *app->registry_, *app->auth_, [space = app->space_.get()] {
        mcos::v1::DiskStatusResponse disk;
        disk.set_total_bytes(space->total_bytes());
        disk.set_free_bytes(space->last_free_bytes());
        disk.set_floor_bytes(space->min_free_bytes());
        disk.set_reserve_bytes(space->reserve_bytes());
        disk.set_writable(space->writable());
        return disk;
      });
  if (options.enable_bench_service) {
    app->bench_service_ = std::make_unique<common::BenchGrpcService>();
  }
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*app->registry_).Add({});
  };
  app->free_bytes_gauge_ =
      gauge("mcos_storage_disk_free_bytes", "Free bytes of the storage node's disk");
  app->writable_gauge_ =
      gauge("mcos_storage_writable", "1 while new data is accepted, 0 under the free-space floor");
  app->sst_bytes_gauge_ = gauge("mcos_storage_sst_bytes", "Bytes of RocksDB table files");
  app->blob_bytes_gauge_ = gauge("mcos_storage_blob_bytes", "Bytes of RocksDB blob files");
  app->file_bytes_gauge_ =
      gauge("mcos_storage_data_file_bytes", "Bytes of large objects' data files");
  app->maintenance_period_ = options.maintenance_period;
  common::LogInfo("storage opened ", db.path,
                  options.sync_commits ? "" : " (commits NOT synced: benchmark mode)", "; ",
                  app->space_->last_free_bytes() >> 20, " MiB free, floor ",
                  app->space_->min_free_bytes() >> 20, " MiB of a ",
                  app->space_->total_bytes() >> 20, " MiB disk");
  app->MaintainOnce();
  app->maintenance_ = std::make_unique<common::Daemon>(
      "storage maintenance", app->maintenance_period_, [raw = app.get()](common::Pacer&) {
        raw->MaintainOnce();
        return absl::OkStatus();
      });
  app->maintenance_->Start();
  return app;
}

void StorageApp::AttachHealth(common::ServerHost* host) {
  health_host_.store(host);
  if (host != nullptr) host->SetServiceServing(kWritesHealthService, space_->writable());
}

void StorageApp::MaintainOnce() {
  const bool writable = space_->RunOnce();
  free_bytes_gauge_->Set(static_cast<double>(space_->last_free_bytes()));
  writable_gauge_->Set(writable ? 1 : 0);
  if (auto* host = health_host_.load()) host->SetServiceServing(kWritesHealthService, writable);
  if (auto reclaimed = engine_->ReclaimOnce(); !reclaimed.ok()) {
    common::LogWarning("reclaiming space: ", reclaimed.status().message());
  }
  // Garbage collection rewrites live data: every 30 s at most, every round when the disk is
  // nearly full.
  const absl::Time now = absl::Now();
  // Urgent (any file a quarter garbage) while under twice the floor.
  const bool urgent = space_->last_free_bytes() < 2 * space_->min_free_bytes();
  if (urgent || now - last_gc_ >= absl::Seconds(30)) {
    last_gc_ = now;
    if (auto gc = engine_->CollectGarbageOnce(urgent, space_->last_free_bytes()); !gc.ok()) {
      common::LogWarning("collecting blob garbage: ", gc.status().message());
    }
  }
  const auto usage = engine_->disk_usage();
  sst_bytes_gauge_->Set(static_cast<double>(usage.sst_bytes));
  blob_bytes_gauge_->Set(static_cast<double>(usage.blob_bytes));
  file_bytes_gauge_->Set(static_cast<double>(usage.file_bytes));
}

std::vector<grpc::Service*> StorageApp::services() {
  std::vector<grpc::Service*> out = {storage_service_.get()};
  if (bench_service_) out.push_back(bench_service_.get());
  return out;
}

absl::StatusOr<std::unique_ptr<StorageApp>> StorageApp::Start(const StorageOptions& options) {
  MCOS_ASSIGN_OR_RETURN(auto app, Create(options));
  common::ServerHostOptions host;
  host.listen = options.listen;
  host.metrics_listen = options.metrics_listen;
  host.tls = options.tls;
  MCOS_ASSIGN_OR_RETURN(app->host_,
                        common::ServerHost::Start(host, app->services(), app->registry_));
  app->AttachHealth(app->host_.get());
  return app;
}

StorageApp::~StorageApp() { Shutdown(); }

void StorageApp::Shutdown() {
  health_host_.store(nullptr);
  if (host_) host_->Shutdown();
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (maintenance_ != nullptr) maintenance_->Stop();
  if (engine_) {
    engine_.reset();
    common::LogInfo("storage stopped; database closed");
  }
}

}  // namespace mcos::storage
