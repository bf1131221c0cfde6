// What the command groups of the mcos CLI share: the global flags, the saved logins (mode 0600,
// under $XDG_CONFIG_HOME/mcos, default ~/.config/mcos), output helpers and exit statuses (by
// class: ExitStatusOf), and the interface each group of subcommands implements
// (containers.cc, objects.cc, admin.cc; `login` is in main.cc).
#pragma once

#include <google/protobuf/message.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/sdk/client.h"
#include "common/units.h"

namespace mcos::cli {

// The flags every subcommand takes.
struct Globals {
  std::string endpoint;
  std::string token;
  bool json = false;
  bool quiet = false;
  std::string timeout = "30s";
  std::string tls_ca;
  bool tls = false;
  std::string tls_cert;
  std::string tls_key;
};

// "30s", "1m30s", "500ms", or a plain number of seconds.
absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text);

// Fills what the flags and the environment left empty from the saved login of the endpoint given
// (the default login when none is given). A saved token, and its TLS settings, go only to the
// endpoint it was obtained from.
void LoadCredentials(Globals& g);
// Saves the login at g.endpoint as the default one, keeping the other endpoints' logins.
absl::Status SaveCredentials(const Globals& g, const std::string& token);

// Exit statuses by class (docs/api.md): 0 ok, 1 any other failure, 2 a usage error, 3 not found,
// 4 permission or authentication, 5 unavailable or out of time.
inline constexpr int kExitUsage = 2;
int ExitStatusOf(absl::StatusCode code);
// Names the endpoint, its transport and the deadline in the errors Fail prints.
void SetErrorContext(const Globals& g);
// A transport error in words that say what to do ("cannot reach HOST:PORT: connection refused;
// is the cluster running?") instead of gRPC's own; any other status as it is.
absl::Status Explain(const absl::Status& s);
// Prints the error (explained) on stderr; returns its exit status.
int Fail(const absl::Status& s);
// A usage error (bad flag value, unreadable file named by a flag): exit status 2.
int Usage(const absl::Status& s);
std::string ToJson(const google::protobuf::Message& m);
// `text` as a JSON string, quoted and escaped.
std::string JsonString(absl::string_view text);
// One JSON array on stdout, printed element by element as they come (a listing of any length is
// one document); closed by Close or when destroyed.
class JsonArray {
 public:
  JsonArray() = default;
  JsonArray(const JsonArray&) = delete;
  JsonArray& operator=(const JsonArray&) = delete;
  ~JsonArray() { Close(); }
  void Add(const std::string& json);
  void Close();

 private:
  bool open_ = false;
  bool closed_ = false;
};
using common::HumanBytes;
// Reads a password from stdin (one line) or from the terminal without echo.
absl::StatusOr<std::string> ReadPassword(bool from_stdin, const std::string& prompt);
// A progress bar on stderr when it is a terminal (and not `quiet`).
client::Progress MakeProgress(bool quiet, const std::string& label);
void PrintObject(const Globals& g, const mcos::v1::ObjectInfo& o);

// `path` (a download's temporary file) is removed if SIGINT, SIGTERM or SIGHUP ends the process,
// until KeepOnSignal.
void RemoveOnSignal(const std::string& path);
void KeepOnSignal();

// A group of subcommands, added to the app by its constructor.
class Commands {
 public:
  virtual ~Commands() = default;
  // The exit status of the subcommand given, if it is one of this group's.
  virtual std::optional<int> Run(const Globals& g, client::Client& client) = 0;
};

std::unique_ptr<Commands> AddContainerCommands(CLI::App& cli);
std::unique_ptr<Commands> AddObjectCommands(CLI::App& cli);
std::unique_ptr<Commands> AddAdminCommands(CLI::App& cli);

// Lists the containers (all pages when `all` or no `limit`): `mcos container list` and `mcos ls`.
int ListContainers(const Globals& g, client::Client& client, const std::string& prefix,
                   const std::string& marker, uint32_t limit, bool all);

}  // namespace mcos::cli
