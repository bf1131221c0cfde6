#include "storage/storage_app.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/bench_service.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/storage_grpc_service.h"

namespace mcos::storage {

absl::StatusOr<std::unique_ptr<StorageApp>> StorageApp::Create(const StorageOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("no data directory: pass --data-dir DIR");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data directory ", options.data_dir, ": ", ec.message()));
  }
  std::unique_ptr<StorageApp> app(new StorageApp());
  RocksDbOptions db;
  db.path = (std::filesystem::path(options.data_dir) / "db").string();
  db.sync_commits = options.sync_commits;
  MCOS_ASSIGN_OR_RETURN(app->engine_, RocksDbEngine::Open(db));
  app->registry_ = options.registry ? options.registry : std::make_shared<prometheus::Registry>();
  app->storage_service_ = std::make_unique<StorageGrpcService>(*app->engine_, *app->registry_);
  if (options.enable_bench_service) {
    app->bench_service_ = std::make_unique<common::BenchGrpcService>();
  }
  common::LogInfo("storage opened ", db.path,
                  options.sync_commits ? "" : " (commits NOT synced: benchmark mode)");
  return app;
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
  MCOS_ASSIGN_OR_RETURN(app->host_,
                        common::ServerHost::Start(host, app->services(), app->registry_));
  return app;
}

StorageApp::~StorageApp() { Shutdown(); }

void StorageApp::Shutdown() {
  if (host_) host_->Shutdown();
  if (engine_) {
    engine_.reset();
    common::LogInfo("storage stopped; database closed");
  }
}

}  // namespace mcos::storage
