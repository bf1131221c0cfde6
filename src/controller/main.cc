// mcos-controller: a cluster's controller (SQLite metadata, registry, health checks, admin API).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/cli.h"
#include "common/data_dir.h"
#include "common/logging.h"
#include "common/server_host.h"
#include "common/token.h"
#include "controller/controller_app.h"

int main(int argc, char** argv) {
  mcos::common::BlockTerminationSignals();
  mcos::controller::ControllerOptions options;
  std::string listen = "127.0.0.1:7401", metrics_listen, storage_endpoint, key_file;
  int health_period_ms = 2000, token_ttl_minutes = 12 * 60;
  CLI::App cli{"mcos-controller: the controller of an MCOS cluster"};
  mcos::common::AddConfigFlag(cli);
  cli.add_option("--listen", listen, "gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cli.add_option("--data-dir", options.data_dir, "Directory of controller.db")->required();
  cli.add_option("--storage-endpoint", storage_endpoint,
                 "The cluster's mcos-storage (checked before serving)")
      ->required();
  cli.add_option("--metrics-listen", metrics_listen, "Prometheus /metrics address");
  cli.add_option("--name,--cluster-id", options.cluster_id,
                 "Name of this cluster: letters, digits and '-' (default: generated on the first "
                 "start; fixed once the data directory exists; --cluster-id is the old spelling)");
  cli.add_option("--region", options.region, "Region of this cluster");
  cli.add_option("--nats", options.nats_url,
                 "The cluster's nats-server, nats://HOST:PORT: service and peer up/down events "
                 "are published there (off if empty)");
  cli.add_option("--token-key-file", key_file,
                 "File with the cluster's key (default: DATA_DIR/token.key, created)");
  cli.add_option("--health-period-ms", health_period_ms, "Health-check period")
      ->capture_default_str();
  cli.add_option("--down-after-misses", options.down_after_misses,
                 "Missed checks before a service is marked down")
      ->capture_default_str();
  cli.add_option("--token-ttl-minutes", token_ttl_minutes, "Lifetime of tokens")
      ->capture_default_str();
  cli.add_option("--argon2-memory-kib", options.argon2.memory_kib, "argon2id memory cost")
      ->capture_default_str();
  cli.add_option("--max-password-checks", options.login_limits.max_concurrent_hashes,
                 "Password hashes computed at once (each takes the argon2 memory cost); more "
                 "logins wait up to 10 s")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  mcos::common::TlsFiles tls;
  mcos::common::AddTlsFlags(cli, tls);
  std::string federation_secret_file;
  int federation_sync_period_ms = 500;
  mcos::common::AddFederationSecretFlag(cli, federation_secret_file, &federation_sync_period_ms);
  mcos::common::AddVersionFlag(cli, "mcos-controller");
  MCOS_CLI_PARSE(cli, argc, argv);
  if (auto s = mcos::common::ValidateTlsFiles(tls); !s.ok()) {
    std::fprintf(stderr, "mcos-controller: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  options.federation_sync_period = absl::Milliseconds(federation_sync_period_ms);
  mcos::common::InitLogging("mcos-controller");
  options.health_period = absl::Milliseconds(health_period_ms);
  options.token_ttl = absl::Minutes(token_ttl_minutes);
  if (const char* pw = std::getenv("MCOS_ADMIN_PASSWORD"); pw != nullptr) {
    options.admin_password = pw;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "mcos-controller: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  if (auto s = mcos::common::PreparePrivateDir(options.data_dir); !s.ok()) {
    std::fprintf(stderr, "mcos-controller: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto key = mcos::common::LoadOrCreateKeyFile(key_file.empty() ? options.data_dir + "/token.key"
                                                                : key_file);
  if (!key.ok()) return fail(key.status());
  options.token_key = *key;
  auto keys = mcos::common::LoadClusterKeys(*key, federation_secret_file);
  if (!keys.ok()) return fail(keys.status());
  options.user_token_key = keys->user_tokens;
  options.peer_key = keys->peer;
  options.federation_id = keys->federation_id;
  auto app = mcos::controller::ControllerApp::Create(options, tls);
  if (!app.ok()) return fail(app.status());
  // SEED.md: check the storage service first, then serve.
  if (auto s = (*app)->CheckAndRegisterStorage(storage_endpoint, absl::Seconds(30)); !s.ok()) {
    return fail(s);
  }
  mcos::common::ServerHostOptions host_options;
  host_options.listen = listen;
  host_options.metrics_listen = metrics_listen;
  host_options.tls = tls;
  auto host = mcos::common::ServerHost::Start(host_options, (*app)->services(), nullptr);
  if (!host.ok()) return fail(host.status());
  if (auto s = (*app)->SetSelfEndpoint(mcos::common::DialAddress(listen, (*host)->port()));
      !s.ok()) {
    mcos::common::LogWarning("federation: ", s.message());
  }
  (*app)->StartBackground();
  const auto& pw_file = (*app)->controller().admin_password_file();
  if (!pw_file.empty()) std::printf("admin password written to %s\n", pw_file.c_str());
  mcos::common::AnnounceListening(listen, (*host)->port());
  mcos::common::WaitForTerminationSignal();
  (*app)->Stop();
  (*host)->Shutdown();
  std::fflush(nullptr);
  std::_Exit(0);
}
