// mcos: the MCOS command-line client (user commands and `mcos admin ...`), over the C++ SDK.
// Endpoint, token and TLS settings come from flags, then MCOS_ENDPOINT / MCOS_TOKEN /
// MCOS_TLS_CA, then the file that `mcos login` writes (mode 0600) under $XDG_CONFIG_HOME/mcos
// (default ~/.config/mcos). The command groups are in containers.cc, objects.cc and admin.cc
// (cli_context.h); `login` is here.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/cli/cli_context.h"
#include "client/sdk/client.h"
#include "common/cli.h"

using mcos::cli::Fail;
using mcos::cli::ToJson;
using mcos::cli::Usage;

int main(int argc, char** argv) {
  mcos::cli::Globals g;
  CLI::App cli{"mcos: the MCOS object store client"};
  cli.add_option("--endpoint", g.endpoint,
                 "Cluster address HOST:PORT (else $MCOS_ENDPOINT, else the saved login)");
  cli.add_option("--token", g.token, "Token (else $MCOS_TOKEN, else the saved login)");
  cli.add_flag("--json", g.json, "Machine-readable output");
  cli.add_flag("-q,--quiet", g.quiet, "No progress bars");
  cli.add_option("--timeout", g.timeout,
                 "Deadline of each call, and how long an upload or download may make no "
                 "progress before it ends with DEADLINE_EXCEEDED (30s, 2m, 500ms, or seconds)")
      ->capture_default_str();
  cli.add_option("--tls-ca", g.tls_ca,
                 "Speak TLS, verifying the server with this CA (PEM; else $MCOS_TLS_CA, else the "
                 "saved login's)")
      ->group("TLS");
  cli.add_flag("--tls", g.tls, "Speak TLS, verifying the server with the system's roots")
      ->group("TLS");
  cli.add_option("--tls-cert", g.tls_cert,
                 "Client certificate (PEM), for a cluster that requires one (mutual TLS)")
      ->group("TLS");
  cli.add_option("--tls-key", g.tls_key, "The private key of --tls-cert (PEM)")->group("TLS");
  cli.footer(
      "Exit status: 0 ok, 1 any other failure, 2 usage error, 3 not found, 4 permission or "
      "authentication, 5 unavailable or out of time (docs/api.md).");
  cli.require_subcommand(1);
  // Global flags may also come after the subcommand (`mcos ls --json`): subcommands created from
  // here on hand options they do not know to their parent.
  cli.fallthrough();

  std::string user;
  bool password_stdin = false;

  auto* login = cli.add_subcommand("login", "Log in and save the token (mode 0600)");
  login->add_option("user", user, "User name")->required();
  login->add_flag("--password-stdin", password_stdin, "Read the password from stdin");

  std::vector<std::unique_ptr<mcos::cli::Commands>> groups;
  groups.push_back(mcos::cli::AddContainerCommands(cli));
  groups.push_back(mcos::cli::AddObjectCommands(cli));
  groups.push_back(mcos::cli::AddAdminCommands(cli));

  mcos::common::AddVersionFlag(cli, "mcos");
  MCOS_CLI_PARSE(cli, argc, argv);

  if (g.endpoint.empty()) {
    if (const char* e = std::getenv("MCOS_ENDPOINT"); e != nullptr) g.endpoint = e;
  }
  if (g.token.empty()) {
    if (const char* t = std::getenv("MCOS_TOKEN"); t != nullptr) g.token = t;
  }
  if (g.tls_ca.empty()) {
    if (const char* ca = std::getenv("MCOS_TLS_CA"); ca != nullptr) g.tls_ca = ca;
  }
  if (!login->parsed()) mcos::cli::LoadCredentials(g);
  mcos::cli::SetErrorContext(g);
  if (g.endpoint.empty()) {
    return Fail(absl::InvalidArgumentError(
        "no endpoint: pass --endpoint HOST:PORT, set MCOS_ENDPOINT, or log in first"));
  }
  auto timeout = mcos::cli::ParseTimeout(g.timeout);
  if (!timeout.ok()) return Usage(timeout.status());
  mcos::client::ClientOptions copts;
  copts.token = g.token;
  copts.deadline = *timeout;
  copts.stream_idle_timeout = *timeout;
  copts.tls_ca_file = g.tls_ca;
  copts.tls = g.tls;
  copts.tls_cert_file = g.tls_cert;
  copts.tls_key_file = g.tls_key;
  mcos::client::Client client(g.endpoint, copts);
  if (auto s = client.Check(); !s.ok()) return Usage(s);
  if (!login->parsed() && g.token.empty()) {
    // The saved login's token goes only to the endpoint it came from.
    return Fail(absl::UnauthenticatedError(
        absl::StrCat("not logged in at ", g.endpoint, ": run mcos --endpoint ", g.endpoint,
                     " login USER (or pass --token / set MCOS_TOKEN)")));
  }

  if (login->parsed()) {
    auto pw = mcos::cli::ReadPassword(password_stdin, "password for " + user + ": ");
    if (!pw.ok()) return Fail(pw.status());
    auto r = client.Login(user, *pw);
    if (!r.ok()) return Fail(r.status());
    if (auto s = mcos::cli::SaveCredentials(g, r->token()); !s.ok()) return Fail(s);
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
    } else {
      std::cout << "logged in as " << r->user_name() << " (" << r->role() << ") until "
                << absl::FormatTime(absl::FromUnixSeconds(r->expires_at().seconds())) << "\n";
    }
    return 0;
  }
  for (auto& group : groups) {
    if (std::optional<int> status = group->Run(g, client)) return *status;
  }
  return Fail(absl::InvalidArgumentError("nothing to do; see --help"));
}
