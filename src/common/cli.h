// What every MCOS command line has in common (include only from a main.cc: CLI11 is slow to
// compile): `--version`, and usage errors that exit with status 2 after CLI11's message.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "common/tls.h"

namespace mcos::common {

inline void AddVersionFlag(CLI::App& cli, const std::string& program) {
  cli.set_version_flag("--version", program + " " + MCOS_VERSION);
}

// --tls-cert, --tls-key, --tls-ca and --tls-client-ca (common/tls.h), in the group "TLS".
inline void AddTlsFlags(CLI::App& cli, TlsFiles& tls, bool calls_services = true) {
  const char* group = "TLS";
  cli.add_option("--tls-cert", tls.cert_file,
                 "Serve TLS with this PEM certificate (chain); re-read when it changes")
      ->group(group);
  cli.add_option("--tls-key", tls.key_file, "The private key of --tls-cert (PEM)")->group(group);
  if (calls_services) {
    cli.add_option("--tls-ca", tls.ca_file,
                   "Call the cluster's other services over TLS, verified with this CA (PEM); "
                   "they then see --tls-cert as this process's client certificate")
        ->group(group);
  }
  cli.add_option("--tls-client-ca", tls.client_ca_file,
                 "Require client certificates signed by this CA (PEM): mutual TLS")
      ->group(group);
}

// --federation-secret-file (shared/API.md, Federations; common::LoadClusterKeys), and for the
// processes that peer (controllers) --federation-sync-period-ms into `sync_period_ms`.
inline void AddFederationSecretFlag(CLI::App& cli, std::string& path,
                                    int* sync_period_ms = nullptr) {
  cli.add_option("--federation-secret-file", path,
                 "The federation's shared secret (at least 32 bytes, mode 0600, the same file at "
                 "every cluster and every process): tokens then work at every cluster, and "
                 "clusters can peer (mcos admin cluster add)");
  if (sync_period_ms != nullptr) {
    cli.add_option("--federation-sync-period-ms", *sync_period_ms,
                   "How often each peer cluster is checked and pulled from (changes made here are "
                   "pushed at once)")
        ->capture_default_str()
        ->check(CLI::Range(20, 60000));
  }
}

}  // namespace mcos::common

// Parses the command line; returns from main with 0 after --help or --version, and with 2 (after
// printing the reason) on a usage error.
#define MCOS_CLI_PARSE(cli, argc, argv) \
  try {                                 \
    (cli).parse((argc), (argv));        \
  } catch (const CLI::Success& e) {     \
    return (cli).exit(e);               \
  } catch (const CLI::ParseError& e) {  \
    (cli).exit(e);                      \
    return 2;                           \
  }
