// mcos-storage: the storage node of one cluster (RocksDB on disk).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "common/server_host.h"
#include "common/token.h"
#include "storage/storage_app.h"
#include "storage/storage_flags.h"

int main(int argc, char** argv) {
  mcos::common::BlockTerminationSignals();
  mcos::storage::StorageOptions options;
  mcos::storage::StorageFlags storage_flags;
  CLI::App cli{"mcos-storage: the storage node of an MCOS cluster (objects in RocksDB)"};
  mcos::common::AddConfigFlag(cli);
  cli.add_option("--listen", options.listen, "gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cli.add_option("--data-dir", options.data_dir, "Directory of the database")->required();
  std::string key_file;
  cli.add_option("--token-key-file", key_file,
                 "File with the cluster's token key (the controller's DATA_DIR/token.key): "
                 "callers must present a service credential derived from it")
      ->required();
  cli.add_option("--metrics-listen", options.metrics_listen,
                 "Prometheus /metrics address HOST:PORT (off when empty)");
  cli.add_flag("!--no-sync", options.sync_commits,
               "Do not fsync commits (benchmarks only: acknowledged writes may be lost)");
  cli.add_flag("--enable-bench-service", options.enable_bench_service,
               "Also serve mcos.v1.BenchService, the bare-stream reference of the benchmarks");
  storage_flags.Add(cli);
  mcos::common::AddTlsFlags(cli, options.tls, /*calls_services=*/false);
  std::string federation_secret_file;
  mcos::common::AddFederationSecretFlag(cli, federation_secret_file);
  mcos::common::AddVersionFlag(cli, "mcos-storage");
  MCOS_CLI_PARSE(cli, argc, argv);
  storage_flags.Apply(options);
  if (auto s = mcos::common::ValidateTlsFiles(options.tls); !s.ok()) {
    std::fprintf(stderr, "mcos-storage: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  mcos::common::InitLogging("mcos-storage");
  auto key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (!key.ok()) {
    std::fprintf(stderr, "mcos-storage: %s\n", std::string(key.status().message()).c_str());
    return 1;
  }
  options.token_key = *key;
  auto keys = mcos::common::LoadClusterKeys(*key, federation_secret_file);
  if (!keys.ok()) {
    std::fprintf(stderr, "mcos-storage: %s\n", std::string(keys.status().message()).c_str());
    return 1;
  }
  options.user_token_key = keys->user_tokens;
  auto app = mcos::storage::StorageApp::Start(options);
  if (!app.ok()) {
    std::fprintf(stderr, "mcos-storage: %s\n", std::string(app.status().message()).c_str());
    return 1;
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), (*app)->port());
  if ((*app)->metrics_port() != 0) std::printf("metrics on %d\n", (*app)->metrics_port());
  std::fflush(stdout);
  const int sig = mcos::common::WaitForTerminationSignal();
  mcos::common::LogInfo("signal ", sig, ": shutting down");
  (*app)->Shutdown();
  // Everything is durable and closed; skip gRPC's slow global teardown (over a second).
  std::fflush(nullptr);
  std::_Exit(0);
}
