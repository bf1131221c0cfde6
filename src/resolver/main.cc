// mcos-resolver: places objects on rings for the cluster's servers.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "common/cli.h"
#include "common/logging.h"
#include "common/server_host.h"
#include "common/token.h"
#include "resolver/resolver_app.h"

int main(int argc, char** argv) {
  mcos::common::BlockTerminationSignals();
  mcos::resolver::ResolverOptions options;
  std::string listen = "127.0.0.1:7402", metrics_listen, controller;
  int refresh_ms = 1000;
  CLI::App cli{"mcos-resolver: the resolver of an MCOS cluster (rings and placement)"};
  mcos::common::AddConfigFlag(cli);
  cli.add_option("--listen", listen, "gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cli.add_option("--controller", controller, "The cluster's mcos-controller HOST:PORT")->required();
  cli.add_option("--metrics-listen", metrics_listen, "Prometheus /metrics address");
  std::string key_file;
  cli.add_option("--token-key-file", key_file,
                 "File with the cluster's token key (the controller's DATA_DIR/token.key): the "
                 "resolver's callers and the resolver itself authenticate with it")
      ->required();
  cli.add_option("--id", options.id, "Service id registered with the controller")
      ->capture_default_str();
  cli.add_option("--refresh-ms", refresh_ms,
                 "Longest wait of one watch call to the controller (ring and option changes "
                 "arrive as soon as they are stored); also the retry period after an error")
      ->capture_default_str();
  mcos::common::AddTlsFlags(cli, options.tls);
  std::string federation_secret_file;
  mcos::common::AddFederationSecretFlag(cli, federation_secret_file);
  mcos::common::AddVersionFlag(cli, "mcos-resolver");
  MCOS_CLI_PARSE(cli, argc, argv);
  if (auto s = mcos::common::ValidateTlsFiles(options.tls); !s.ok()) {
    std::fprintf(stderr, "mcos-resolver: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  mcos::common::InitLogging("mcos-resolver");
  options.refresh = absl::Milliseconds(refresh_ms);
  auto key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (!key.ok()) {
    std::fprintf(stderr, "mcos-resolver: %s\n", std::string(key.status().message()).c_str());
    return 1;
  }
  options.token_key = *key;
  auto keys = mcos::common::LoadClusterKeys(*key, federation_secret_file);
  if (!keys.ok()) {
    std::fprintf(stderr, "mcos-resolver: %s\n", std::string(keys.status().message()).c_str());
    return 1;
  }
  options.user_token_key = keys->user_tokens;
  mcos::resolver::ResolverApp app(options);
  mcos::common::ServerHostOptions host_options;
  host_options.listen = listen;
  host_options.metrics_listen = metrics_listen;
  host_options.tls = options.tls;
  auto host = mcos::common::ServerHost::Start(host_options, app.services(), nullptr);
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "mcos-resolver: %s\n", std::string(s.message()).c_str());
    return 1;
  };
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
