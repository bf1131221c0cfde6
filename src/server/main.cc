// mcos-server: the cluster's user API (and, with the federation, its peer API).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "common/server_host.h"
#include "common/token.h"
#include "server/server_app.h"
#include "server/server_flags.h"

int main(int argc, char** argv) {
  mcos::common::BlockTerminationSignals();
  mcos::server::ServerOptions options;
  mcos::server::ServerFlags server_flags;
  std::string listen = "127.0.0.1:7403", metrics_listen, controller, key_file;
  CLI::App cli{"mcos-server: the user-facing server of an MCOS cluster"};
  mcos::common::AddConfigFlag(cli);
  cli.add_option("--listen", listen, "gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cli.add_option("--controller", controller, "The cluster's mcos-controller HOST:PORT")->required();
  cli.add_option("--token-key-file", key_file, "File with the federation's token key")->required();
  cli.add_option("--metrics-listen", metrics_listen, "Prometheus /metrics address");
  cli.add_option("--id", options.id, "Service id registered with the controller")
      ->capture_default_str();
  server_flags.Add(cli, options);
  mcos::common::AddTlsFlags(cli, options.tls);
  std::string federation_secret_file;
  mcos::common::AddFederationSecretFlag(cli, federation_secret_file);
  mcos::common::AddVersionFlag(cli, "mcos-server");
  MCOS_CLI_PARSE(cli, argc, argv);
  server_flags.Apply(options);
  if (auto s = mcos::common::ValidateTlsFiles(options.tls); !s.ok()) {
    std::fprintf(stderr, "mcos-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  mcos::common::InitLogging("mcos-server");
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "mcos-server: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  auto key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (!key.ok()) return fail(key.status());
  options.token_key = *key;
  auto keys = mcos::common::LoadClusterKeys(*key, federation_secret_file);
  if (!keys.ok()) {
    std::fprintf(stderr, "mcos-server: %s\n", std::string(keys.status().message()).c_str());
    return 1;
  }
  options.user_token_key = keys->user_tokens;
  options.peer_key = keys->peer;
  mcos::server::ServerApp app(options);
  mcos::common::ServerHostOptions host_options;
  host_options.listen = listen;
  host_options.metrics_listen = metrics_listen;
  host_options.tls = options.tls;
  auto host = mcos::common::ServerHost::Start(host_options, app.services(), app.registry());
  if (!host.ok()) return fail(host.status());
  const std::string self = mcos::common::DialAddress(listen, (*host)->port());
  if (auto s = app.Start(self, controller, absl::Seconds(30)); !s.ok()) return fail(s);
  mcos::common::AnnounceListening(listen, (*host)->port());
  mcos::common::WaitForTerminationSignal();
  app.Stop();
  (*host)->Shutdown();
  std::fflush(nullptr);
  std::_Exit(0);
}
