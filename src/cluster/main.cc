// mcos-cluster: a whole MCOS cluster in one process — storage node, controller, resolver and
// server, real RocksDB and SQLite — with every gRPC service on one address. Start-up follows
// SEED.md: the controller checks the storage service, the resolver loads the rings and registers,
// the server registers, and the controller health-checks them all from then on.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/data_dir.h"
#include "common/logging.h"
#include "common/server_host.h"
#include "common/token.h"
#include "controller/controller_app.h"
#include "events/nats_config.h"
#include "resolver/resolver_app.h"
#include "server/server_app.h"
#include "server/server_flags.h"
#include "storage/storage_app.h"
#include "storage/storage_flags.h"

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "mcos-cluster: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  mcos::common::BlockTerminationSignals();
  std::string data_dir, listen = "127.0.0.1:7400", metrics_listen;
  mcos::controller::ControllerOptions controller;
  int health_period_ms = 2000;
  int token_ttl_minutes = 12 * 60;
  mcos::storage::StorageOptions storage_options;
  mcos::server::ServerOptions server_options;
  mcos::server::ServerFlags server_flags;
  mcos::storage::StorageFlags storage_flags;
  auto registry = std::make_shared<prometheus::Registry>();
  storage_options.registry = registry;
  CLI::App cli{
      "mcos-cluster: a whole MCOS cluster (storage, controller, resolver, server) in one "
      "process, every service on one gRPC address"};
  mcos::common::AddConfigFlag(cli);
  cli.add_option("--data-dir", data_dir, "Directory for the cluster's data (created if missing)")
      ->required();
  cli.add_option("--listen", listen, "gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cli.add_option("--metrics-listen", metrics_listen, "Prometheus /metrics address (off if empty)");
  cli.add_option("--name,--cluster-id", controller.cluster_id,
                 "Name of this cluster: letters, digits and '-' (default: generated on the first "
                 "start; fixed once the data directory exists; --cluster-id is the old spelling)");
  cli.add_option("--region", controller.region, "Region of this cluster (placement spreads them)");
  cli.add_option("--advertise", controller.advertise,
                 "HOST:PORT other clusters call this cluster at, when not its --listen address "
                 "(behind NAT, a load balancer or a proxy)");
  cli.add_option("--health-period-ms", health_period_ms, "Health-check period of services")
      ->capture_default_str();
  cli.add_option("--down-after-misses", controller.down_after_misses,
                 "Missed health checks before a service is marked down")
      ->capture_default_str();
  cli.add_option("--token-ttl-minutes", token_ttl_minutes, "Lifetime of login tokens")
      ->capture_default_str();
  cli.add_flag("--enable-bench-service", storage_options.enable_bench_service,
               "Also serve mcos.v1.BenchService, the bare-stream reference of the benchmarks");
  cli.add_option("--argon2-memory-kib", controller.argon2.memory_kib,
                 "argon2id memory cost of password hashes")
      ->capture_default_str();
  cli.add_option("--max-password-checks", controller.login_limits.max_concurrent_hashes,
                 "Password hashes computed at once (each takes the argon2 memory cost); more "
                 "logins wait up to 10 s")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  server_flags.Add(cli, server_options);
  storage_flags.Add(cli);
  mcos::common::TlsFiles tls;
  mcos::common::AddTlsFlags(cli, tls);
  std::string federation_secret_file;
  int federation_sync_period_ms = 500;
  mcos::common::AddFederationSecretFlag(cli, federation_secret_file, &federation_sync_period_ms);
  cli.footer(
      "The first start creates the user 'admin' with the password in $MCOS_ADMIN_PASSWORD, "
      "or a generated one written to DATA_DIR/controller/admin-password (mode 0600).");
  mcos::events::NatsServerConfig nats_config;
  std::string nats_config_file;
  auto* write_nats = cli.add_option(
      "--write-nats-config", nats_config_file,
      "Write the configuration of this cluster's nats-server to this file (its logins derive "
      "from the cluster's keys: use the same --data-dir and --federation-secret-file) and exit; "
      "needs --name");
  cli.add_option("--nats-listen", nats_config.listen,
                 "With --write-nats-config: the nats-server's client address (port 0: any)")
      ->capture_default_str()
      ->needs(write_nats);
  cli.add_option("--nats-leaf-listen", nats_config.leaf_listen,
                 "With --write-nats-config: where the nats-server takes leafnode links from the "
                 "other clusters' (a federation)")
      ->needs(write_nats);
  cli.add_option("--nats-leaf-remote", nats_config.leaf_remotes,
                 "With --write-nats-config: another cluster's nats-server leafnode address to "
                 "link to (repeat; link every cluster to one hub, never in a cycle)")
      ->needs(write_nats);
  mcos::common::AddVersionFlag(cli, "mcos-cluster");
  MCOS_CLI_PARSE(cli, argc, argv);
  server_flags.Apply(server_options);
  storage_flags.Apply(storage_options);
  if (auto s = mcos::common::ValidateTlsFiles(tls); !s.ok()) {
    std::fprintf(stderr, "mcos-cluster: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  controller.federation_sync_period = absl::Milliseconds(federation_sync_period_ms);
  mcos::common::InitLogging("mcos-cluster");
  controller.health_period = absl::Milliseconds(health_period_ms);
  controller.token_ttl = absl::Minutes(token_ttl_minutes);
  controller.data_dir = data_dir + "/controller";
  if (const char* pw = std::getenv("MCOS_ADMIN_PASSWORD"); pw != nullptr) {
    controller.admin_password = pw;
  }

  storage_options.data_dir = data_dir + "/storage";
  if (auto s = mcos::common::PreparePrivateDir(data_dir); !s.ok()) return Fail(s);
  auto key = mcos::common::LoadOrCreateKeyFile(data_dir + "/token.key");
  if (!key.ok()) return Fail(key.status());
  auto keys = mcos::common::LoadClusterKeys(*key, federation_secret_file);
  if (!keys.ok()) return Fail(keys.status());
  if (!nats_config_file.empty()) {
    if (controller.cluster_id.empty()) {
      std::fprintf(stderr, "mcos-cluster: --write-nats-config needs --name\n");
      return 2;
    }
    nats_config.cluster = controller.cluster_id;
    nats_config.store_dir = std::filesystem::absolute(data_dir + "/nats").string();
    nats_config.client = mcos::events::ClientCredentials(*key);
    if (!keys->peer.empty()) nats_config.leaf = mcos::events::LeafCredentials(keys->peer);
    if (nats_config.leaf_listen.empty() && nats_config.leaf_remotes.empty()) {
      nats_config.leaf.reset();
    } else if (!nats_config.leaf) {
      std::fprintf(stderr, "mcos-cluster: leafnode links need --federation-secret-file\n");
      return 2;
    }
    if (auto s = mcos::common::WritePrivateFile(nats_config_file,
                                                mcos::events::RenderNatsServerConfig(nats_config));
        !s.ok()) {
      return Fail(s);
    }
    return 0;
  }
  storage_options.token_key = *key;
  storage_options.user_token_key = keys->user_tokens;
  auto storage = mcos::storage::StorageApp::Create(storage_options);
  if (!storage.ok()) return Fail(storage.status());
  controller.token_key = *key;
  controller.user_token_key = keys->user_tokens;
  controller.peer_key = keys->peer;
  controller.federation_id = keys->federation_id;
  controller.nats_url = server_options.nats_url;
  auto controller_app = mcos::controller::ControllerApp::Create(controller, tls);
  if (!controller_app.ok()) return Fail(controller_app.status());
  mcos::resolver::ResolverOptions resolver_options;
  resolver_options.token_key = *key;
  resolver_options.user_token_key = keys->user_tokens;
  mcos::resolver::ResolverApp resolver(resolver_options);
  server_options.token_key = *key;
  server_options.user_token_key = keys->user_tokens;
  server_options.peer_key = keys->peer;
  server_options.registry = registry;
  mcos::server::ServerApp server(server_options);

  std::vector<grpc::Service*> services = (*storage)->services();
  for (auto* s : (*controller_app)->services()) services.push_back(s);
  for (auto* s : resolver.services()) services.push_back(s);
  for (auto* s : server.services()) services.push_back(s);
  mcos::common::ServerHostOptions host_options;
  host_options.listen = listen;
  host_options.metrics_listen = metrics_listen;
  host_options.tls = tls;
  auto host = mcos::common::ServerHost::Start(host_options, services, registry);
  if (!host.ok()) return Fail(host.status());
  (*storage)->AttachHealth(host->get());
  const std::string self = mcos::common::DialAddress(listen, (*host)->port());

  // Services of this process call each other in-process, with a service credential like any other.
  mcos::common::ServiceAuth in_process_auth(*key, "cluster", keys->user_tokens);
  in_process_auth.set_channel_credentials(mcos::common::MakeChannelCredentials(tls));
  const mcos::common::LocalRoute route{self, (*host)->InProcessChannel(in_process_auth),
                                       &in_process_auth};
  (*controller_app)->SetLocalRoute(route);
  if (auto s = (*controller_app)->CheckAndRegisterStorage(self, absl::Seconds(10)); !s.ok()) {
    return Fail(s);
  }
  if (auto s = (*controller_app)->SetSelfEndpoint(self); !s.ok()) {
    mcos::common::LogWarning("federation: ", s.message());
  }
  (*controller_app)->StartBackground();
  resolver.SetLocalRoute(route);
  server.SetLocalRoute(route);
  mcos::server::ServerApp::Colocated colocated;
  colocated.storage = &(*storage)->engine();
  colocated.resolve = [&resolver](const mcos::v1::ResolveRequest& request) {
    return resolver.resolver().Resolve(request);
  };
  mcos::controller::Controller& controller_core = (*controller_app)->controller();
  colocated.get_container = [&controller_core](const std::string& user, const std::string& name) {
    return controller_core.GetContainer(user, name);
  };
  server.SetColocated(std::move(colocated));
  if (auto s = resolver.Start(self, self, absl::Seconds(10)); !s.ok()) return Fail(s);
  if (auto s = server.Start(self, self, absl::Seconds(10)); !s.ok()) return Fail(s);
  const auto& pw_file = (*controller_app)->controller().admin_password_file();
  if (!pw_file.empty()) std::printf("admin password written to %s\n", pw_file.c_str());
  mcos::common::LogInfo("cluster '", (*controller_app)->controller().cluster_id(), "' serving on ",
                        self);
  if ((*host)->metrics_port() != 0) std::printf("metrics on %d\n", (*host)->metrics_port());
  mcos::common::AnnounceListening(listen, (*host)->port());

  const int sig = mcos::common::WaitForTerminationSignal();
  mcos::common::LogInfo("signal ", sig, ": shutting down");
  server.Stop();
  resolver.Stop();
  (*controller_app)->Stop();
  (*host)->Shutdown();
  (*storage)->Shutdown();
  std::fflush(nullptr);
  std::_Exit(0);
}
