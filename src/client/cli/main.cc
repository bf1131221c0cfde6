// mcos: the MCOS command-line client (user commands and `mcos admin ...`), over the C++ SDK.
// Endpoint, token and TLS settings come from flags, then MCOS_ENDPOINT / MCOS_TOKEN /
// MCOS_TLS_CA, then the file that `mcos login` writes (mode 0600) under $XDG_CONFIG_HOME/mcos
// (default ~/.config/mcos).
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/sdk/client.h"
#include "common/cli.h"

namespace {

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
absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--timeout ", text, ": give a duration such as 30s, 2m or 500ms"));
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  return d;
}

std::string ConfigDir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/mcos";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.config/mcos";
}

std::string CredentialsPath() { return ConfigDir() + "/credentials"; }

// One saved login: the lines "endpoint=", "token=", "tls_ca=" and "tls=1" of the credentials
// file, which holds one such block per endpoint, the default one (the last login) first.
struct SavedLogin {
  std::string endpoint;
  std::string token;
  std::string tls_ca;
  bool tls = false;
};

std::vector<SavedLogin> ReadLogins() {
  std::ifstream in(CredentialsPath());
  std::vector<SavedLogin> logins;
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "endpoint=")) {
      logins.emplace_back();
      logins.back().endpoint = line.substr(9);
    }
    if (logins.empty()) continue;
    if (absl::StartsWith(line, "token=")) logins.back().token = line.substr(6);
    if (absl::StartsWith(line, "tls_ca=")) logins.back().tls_ca = line.substr(7);
    if (line == "tls=1") logins.back().tls = true;
  }
  return logins;
}

// Fills what the flags and the environment left empty from the saved login of the endpoint given
// (the default login when none is given). A saved token, and its TLS settings, go only to the
// endpoint it was obtained from.
void LoadCredentials(Globals& g) {
  for (const SavedLogin& saved : ReadLogins()) {
    if (!g.endpoint.empty() && g.endpoint != saved.endpoint) continue;
    g.endpoint = saved.endpoint;
    if (g.token.empty()) g.token = saved.token;
    if (g.tls_ca.empty()) g.tls_ca = saved.tls_ca;
    g.tls = g.tls || saved.tls;
    return;
  }
}

// The temporary file of a download in progress, removed if SIGINT or SIGTERM ends it.
char g_partial_file[4096];

void RemovePartialAndExit(int sig) {
  if (g_partial_file[0] != '\0') unlink(g_partial_file);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Saves the login at g.endpoint as the default one, keeping the other endpoints' logins.
absl::Status SaveCredentials(const Globals& g, const std::string& token) {
  std::error_code ec;
  std::filesystem::create_directories(ConfigDir(), ec);
  SavedLogin login{g.endpoint, token, g.tls_ca, g.tls};
  if (!login.tls_ca.empty()) {
    std::error_code abs_error;
    login.tls_ca = std::filesystem::absolute(login.tls_ca, abs_error).string();
  }
  std::vector<SavedLogin> logins = {login};
  for (SavedLogin& other : ReadLogins()) {
    if (other.endpoint != g.endpoint) logins.push_back(std::move(other));
  }
  std::string content;
  for (const SavedLogin& l : logins) {
    absl::StrAppend(&content, "endpoint=", l.endpoint, "\ntoken=", l.token, "\n",
                    l.tls_ca.empty() ? "" : absl::StrCat("tls_ca=", l.tls_ca, "\n"),
                    l.tls ? "tls=1\n" : "");
  }
  // Written whole, then renamed into place: a crash leaves the old file or the new one.
  const std::string path = CredentialsPath();
  const std::string tmp = path + ".new";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
  fchmod(fd, 0600);
  const bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  close(fd);
  std::error_code rename_error;
  if (ok) std::filesystem::rename(tmp, path, rename_error);
  return ok && !rename_error ? absl::OkStatus()
                             : absl::UnavailableError(absl::StrCat("cannot write ", path));
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", std::string(absl::StatusCodeToString(s.code())).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

// A usage error (bad flag value, unreadable file named by a flag): exit status 2.
int Usage(const absl::Status& s) {
  Fail(s);
  return 2;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// Reads a password from stdin (one line) or from the terminal without echo.
absl::StatusOr<std::string> ReadPassword(bool from_stdin, const std::string& prompt) {
  std::string pw;
  if (from_stdin || !isatty(STDIN_FILENO)) {
    if (!from_stdin) {
      return absl::InvalidArgumentError(
          "no terminal to ask for the password: pass --password-stdin and pipe it in");
    }
    std::getline(std::cin, pw);
  } else {
    std::fprintf(stderr, "%s", prompt.c_str());
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, pw);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  if (pw.empty()) return absl::InvalidArgumentError("the password is empty");
  return pw;
}

// A progress bar on stderr when it is a terminal.
mcos::client::Progress MakeProgress(bool quiet, const std::string& label) {
  if (quiet || !isatty(STDERR_FILENO)) return nullptr;
  auto start = std::make_shared<absl::Time>(absl::Now());
  return [start, label](uint64_t done, uint64_t total) {
    const double secs = std::max(1e-3, absl::ToDoubleSeconds(absl::Now() - *start));
    const double mbps = static_cast<double>(done) / 1e6 / secs;
    if (total > 0) {
      const int width = 30;
      const int filled =
          static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
      std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %.1f MB/s ", label.c_str(),
                   std::string(static_cast<size_t>(filled), '#').c_str(),
                   std::string(static_cast<size_t>(width - filled), '.').c_str(),
                   100.0 * static_cast<double>(done) / static_cast<double>(total), mbps);
      if (done >= total) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "\r%s %.1f MiB %.1f MB/s ", label.c_str(),
                   static_cast<double>(done) / (1 << 20), mbps);
    }
  };
}

void PrintObject(const Globals& g, const mcos::v1::ObjectInfo& o) {
  if (g.json) {
    std::cout << ToJson(o) << "\n";
    return;
  }
  std::cout << "container:    " << o.container() << "\nobject:       " << o.object()
            << "\nsize:         " << o.size() << "\netag:         " << o.etag()
            << "\nchecksum:     " << o.checksum() << "\ncontent-type: " << o.content_type()
            << "\nversion:      " << o.version()
            << "\nmodified:     " << absl::FormatTime(absl::FromUnixSeconds(o.modified().seconds()))
            << "\nreplicas:     " << absl::StrJoin(o.replicas(), ",") << "\n";
  for (const auto& [k, v] : o.metadata()) std::cout << "meta " << k << ": " << v << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
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
  cli.require_subcommand(1);
  // Global flags may also come after the subcommand (`mcos ls --json`): subcommands created from
  // here on hand options they do not know to their parent.
  cli.fallthrough();

  std::string user, container, object, file, option, prefix, marker, delimiter, name;
  bool password_stdin = false, all = false, admin_role = false;
  uint32_t limit = 0;
  uint64_t offset = 0, length = 0;
  std::string content_type;
  std::vector<std::string> meta;

  auto* login = cli.add_subcommand("login", "Log in and save the token (mode 0600)");
  login->add_option("user", user, "User name")->required();
  login->add_flag("--password-stdin", password_stdin, "Read the password from stdin");

  // Containers.
  auto* container_cmd = cli.add_subcommand("container", "Manage containers");
  container_cmd->require_subcommand(1);
  auto* c_list = container_cmd->add_subcommand("list", "List your containers");
  auto* c_create = container_cmd->add_subcommand("create", "Create a container");
  auto* c_delete = container_cmd->add_subcommand("delete", "Delete an empty container");
  auto* mb = cli.add_subcommand("mb", "Make a container (= container create)");
  auto* rb = cli.add_subcommand("rb", "Remove a container (= container delete)");
  for (auto* c : {c_create, mb}) {
    c->add_option("container", container, "Container name")->required();
    c->add_option("--option", option, "Storage option (default: the federation's default)");
  }
  for (auto* c : {c_delete, rb}) c->add_option("container", container, "Container")->required();
  c_list->add_option("--prefix", prefix, "Only names starting with this");

  // Objects.
  auto* object_cmd = cli.add_subcommand("object", "Manage objects");
  object_cmd->require_subcommand(1);
  auto* o_list = object_cmd->add_subcommand("list", "List a container's objects");
  auto* o_create = object_cmd->add_subcommand("create", "Upload a new object (fails if it exists)");
  auto* o_update = object_cmd->add_subcommand("update", "Replace an existing object");
  auto* o_stat = object_cmd->add_subcommand("stat", "Show an object's info");
  auto* o_download = object_cmd->add_subcommand("download", "Download an object");
  auto* o_delete = object_cmd->add_subcommand("delete", "Delete an object");
  auto* ls = cli.add_subcommand("ls", "List containers, or the objects of CONTAINER");
  auto* put = cli.add_subcommand(
      "put", "Upload FILE ('-' = stdin) as CONTAINER/OBJECT (create or replace)");
  auto* get = cli.add_subcommand("get", "Download CONTAINER/OBJECT to FILE ('-' = stdout)");
  auto* stat = cli.add_subcommand("stat", "Show an object's info");
  auto* rm = cli.add_subcommand("rm", "Delete an object");
  std::string watch_target;
  auto* watch = cli.add_subcommand(
      "watch",
      "Print the changes of CONTAINER's objects (puts and deletes, at any cluster) as they are "
      "committed, until interrupted; one line each, or one JSON object per line with --json");
  watch
      ->add_option("target", watch_target,
                   "CONTAINER, CONTAINER/PREFIX or mcos://CONTAINER[/PREFIX]")
      ->required();
  for (auto* c : {o_list}) c->add_option("container", container, "Container")->required();
  ls->add_option("container", container, "Container (none: list containers)");
  for (auto* c : {o_list, ls}) {
    c->add_option("--prefix", prefix, "Only names starting with this");
    c->add_option("--delimiter", delimiter, "Roll names up to this delimiter (e.g. /)");
    c->add_option("--marker", marker, "Start after this name");
    c->add_option("--limit", limit,
                  "List one page of at most this many (default: every name, 1000 per request)")
        ->check(CLI::NonNegativeNumber);
    c->add_flag("--all", all, "With --limit: follow next_marker through every page");
  }
  for (auto* c : {o_create, o_update, put, o_download, get}) {
    c->add_option("container", container, "Container")->required();
    c->add_option("object", object, "Object name")->required();
    c->add_option("file", file, "Local file, or '-'")->required();
  }
  for (auto* c : {o_create, o_update, put}) {
    c->add_option("--content-type", content_type, "Content type to store");
    c->add_option("--meta", meta, "Metadata KEY=VALUE (repeatable)")
        ->check(CLI::Validator(
            [](std::string& kv) {
              const size_t eq = kv.find('=');
              return eq == std::string::npos || eq == 0
                         ? std::string("'") + kv + "' is not KEY=VALUE"
                         : std::string();
            },
            "KEY=VALUE"));
  }
  for (auto* c : {o_download, get}) {
    c->add_option("--offset", offset, "First byte")->check(CLI::NonNegativeNumber);
    c->add_option("--length", length, "Bytes (0 = to the end)")->check(CLI::NonNegativeNumber);
  }
  for (auto* c : {o_stat, stat, o_delete, rm}) {
    c->add_option("container", container, "Container")->required();
    c->add_option("object", object, "Object name")->required();
  }

  // Admin.
  auto* admin = cli.add_subcommand("admin", "Administer the cluster (admin role)");
  admin->require_subcommand(1);
  auto* admin_user = admin->add_subcommand("user", "Manage users");
  admin_user->require_subcommand(1);
  auto* u_add = admin_user->add_subcommand("add", "Add a user");
  u_add->add_option("name", name, "User name")->required();
  u_add->add_flag("--admin", admin_role, "Give the admin role");
  u_add->add_flag("--password-stdin", password_stdin, "Read the password from stdin");
  std::string identity;
  u_add->add_option("--identity", identity,
                    "Give the new user the data of a removed user's identity (see list --removed)");
  auto* u_remove = admin_user->add_subcommand("remove", "Remove a user");
  u_remove->add_option("name", name, "User name")->required();
  auto* u_passwd = admin_user->add_subcommand("passwd", "Set a user's password");
  u_passwd->add_option("name", name, "User name")->required();
  u_passwd->add_flag("--password-stdin", password_stdin, "Read the password from stdin");
  auto* u_list = admin_user->add_subcommand("list", "List users");
  bool list_removed = false;
  u_list->add_flag(
      "--removed", list_removed,
      "List removed users whose data is kept: identity, former name, role, removed at");
  auto* admin_cluster = admin->add_subcommand("cluster", "Clusters and their services");
  admin_cluster->require_subcommand(1);
  auto* cl_status = admin_cluster->add_subcommand(
      "status", "A cluster's services and health (default: the one answering)");
  std::string cluster_name, cluster_endpoint;
  cl_status->add_option("name", cluster_name, "Cluster name (see admin cluster list)");
  auto* cl_list = admin_cluster->add_subcommand(
      "list", "The federation's clusters: name, region, endpoint, state, last contact");
  auto* cl_add = admin_cluster->add_subcommand(
      "add", "Peer this cluster with another (both need the same --federation-secret-file)");
  cl_add->add_option("--endpoint", cluster_endpoint, "The other cluster's controller HOST:PORT")
      ->required();
  auto* cl_remove = admin_cluster->add_subcommand(
      "remove", "Remove a cluster from the federation (no ring may still give it weight)");
  cl_remove->add_option("name", cluster_name, "Cluster name")->required();

  auto* admin_repair = admin->add_subcommand("repair", "Replication and repair");
  admin_repair->require_subcommand(1);
  auto* rp_status = admin_repair->add_subcommand(
      "status",
      "Replication state: writes this cluster still has to send to other clusters (backlog, "
      "oldest, lag), anti-entropy with each peer (partitions that differ, last full pass, "
      "records copied) and the scrubber (objects checked, corrupt copies found and repaired)");

  std::string ring_id, ring_name;
  uint32_t replicas = 1, partition_power = 16, write_concern = 0;
  uint32_t update_replicas = 0, update_power = 0;
  std::vector<std::string> members;
  bool dry_run = false, make_default = false;
  std::string mode = "consistent";
  auto* admin_ring = admin->add_subcommand("ring", "Placement rings");
  admin_ring->require_subcommand(1);
  auto* r_list = admin_ring->add_subcommand("list", "List rings");
  auto* r_create = admin_ring->add_subcommand("create", "Create a ring");
  auto* r_update = admin_ring->add_subcommand(
      "update", "Change a ring's members and weights, replicas or partition power");
  for (auto* c : {r_create, r_update}) c->add_option("id", ring_id, "Ring id")->required();
  r_create->add_option("--member", members, "CLUSTER[:WEIGHT[:REGION]] (repeat for each member)")
      ->required();
  r_update->add_option("--member", members,
                       "CLUSTER[:WEIGHT[:REGION]] (repeat for each member; the whole new list; "
                       "none = keep the members)");
  r_create->add_option("--replicas", replicas, "Replicas per object")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  r_create->add_option("--partition-power", partition_power, "Partitions = 2^power (1..18)")
      ->capture_default_str();
  r_update->add_option("--replicas", update_replicas, "New replica count (0 = keep)")
      ->check(CLI::NonNegativeNumber);
  r_update->add_option("--partition-power", update_power,
                       "New partition power (0 = keep; raising it moves nothing)");
  r_update->add_flag("--dry-run", dry_run, "Only print what would move");
  auto* admin_option = admin->add_subcommand("option", "Storage options (policies)");
  admin_option->require_subcommand(1);
  auto* op_list = admin_option->add_subcommand("list", "List options");
  auto* op_add = admin_option->add_subcommand("add", "Add an option");
  op_add->add_option("name", name, "Option name")->required();
  op_add->add_option("--ring", ring_name, "Ring the option places data with")->required();
  op_add
      ->add_option("--write-concern", write_concern,
                   "Clusters that must hold a write (0 = a majority of the replicas)")
      ->check(CLI::NonNegativeNumber);
  op_add->add_option("--mode", mode, "consistent or degraded")
      ->capture_default_str()
      ->check(CLI::IsMember({"consistent", "degraded"}));
  op_add->add_flag("--default", make_default, "Make it the default option");
  auto* op_set_ring = admin_option->add_subcommand("set-ring", "Point an option at another ring");
  op_set_ring->add_option("name", name, "Option name")->required();
  op_set_ring->add_option("ring", ring_name, "Ring id")->required();
  op_set_ring->add_flag("--dry-run", dry_run, "Only print what would move");
  auto* op_remove = admin_option->add_subcommand("remove", "Remove an unused option");
  op_remove->add_option("name", name, "Option name")->required();

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
  if (!login->parsed()) LoadCredentials(g);
  if (g.endpoint.empty()) {
    return Fail(absl::InvalidArgumentError(
        "no endpoint: pass --endpoint HOST:PORT, set MCOS_ENDPOINT, or log in first"));
  }
  auto timeout = ParseTimeout(g.timeout);
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
    auto pw = ReadPassword(password_stdin, "password for " + user + ": ");
    if (!pw.ok()) return Fail(pw.status());
    auto r = client.Login(user, *pw);
    if (!r.ok()) return Fail(r.status());
    if (auto s = SaveCredentials(g, r->token()); !s.ok()) return Fail(s);
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
    } else {
      std::cout << "logged in as " << r->user_name() << " (" << r->role() << ") until "
                << absl::FormatTime(absl::FromUnixSeconds(r->expires_at().seconds())) << "\n";
    }
    return 0;
  }
  if (c_create->parsed() || mb->parsed()) {
    auto r = client.CreateContainer(container, option);
    if (!r.ok()) return Fail(r.status());
    if (g.json)
      std::cout << ToJson(*r) << "\n";
    else
      std::cout << "created container " << r->name() << " (option " << r->option() << ")\n";
    return 0;
  }
  if (c_delete->parsed() || rb->parsed()) {
    if (auto s = client.DeleteContainer(container); !s.ok()) return Fail(s);
    if (!g.json) std::cout << "deleted container " << container << "\n";
    return 0;
  }
  if (c_list->parsed() || (ls->parsed() && container.empty())) {
    std::string next = marker;
    do {
      auto r = client.ListContainers(prefix, next, limit);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        for (const auto& c : r->containers()) {
          std::cout << c.name() << "\t" << c.option() << "\t" << c.object_count() << " objects\t"
                    << c.bytes_used() << " bytes\n";
        }
      next = r->next_marker();
    } while ((all || limit == 0) && !next.empty());
    return 0;
  }
  if (o_list->parsed() || ls->parsed()) {
    mcos::v1::ListObjectsRequest req;
    req.set_container(container);
    req.set_prefix(prefix);
    req.set_delimiter(delimiter);
    req.set_limit(limit);
    req.set_marker(marker);
    do {
      auto r = client.ListObjects(req);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
      } else {
        for (const auto& p : r->common_prefixes()) std::cout << "PRE\t" << p << "\n";
        for (const auto& o : r->objects()) {
          std::cout << o.size() << "\t" << o.etag() << "\t" << o.object() << "\n";
        }
      }
      req.set_marker(r->next_marker());
    } while ((all || limit == 0) && !req.marker().empty());
    return 0;
  }
  if (o_create->parsed() || o_update->parsed() || put->parsed()) {
    mcos::client::PutOptions po;
    po.content_type = content_type;
    for (const auto& kv : meta) {  // (checked KEY=VALUE at parsing)
      const size_t eq = kv.find('=');
      po.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    std::ifstream in_file;
    std::istream* in = &std::cin;
    if (file != "-") {
      std::error_code dir_ec;
      if (std::filesystem::is_directory(file, dir_ec)) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat(file,
                         " is a directory: uploading a directory needs --recursive (not available "
                         "yet); name a file")));
      }
      in_file.open(file, std::ios::binary);
      if (!in_file) return Fail(absl::NotFoundError(absl::StrCat("cannot open ", file)));
      std::error_code ec;
      const auto size = std::filesystem::file_size(file, ec);
      if (!ec) po.size = size;
      in = &in_file;
    }
    po.progress = MakeProgress(g.quiet, object);
    // put: one atomic create-or-replace at the server (no stat first: concurrent puts of a new
    // name used to race into ALREADY_EXISTS).
    auto r = put->parsed()        ? client.PutObject(container, object, *in, po)
             : o_create->parsed() ? client.CreateObject(container, object, *in, po)
                                  : client.UpdateObject(container, object, *in, po);
    if (!r.ok()) return Fail(r.status());
    // A new object's created and modified times are its one version's.
    const bool created = r->created().seconds() == r->modified().seconds() &&
                         r->created().nanos() == r->modified().nanos();
    if (g.json)
      std::cout << ToJson(*r) << "\n";
    else
      std::cout << (created ? "created " : "updated ") << container << "/" << object << " ("
                << r->size() << " bytes, etag " << r->etag() << ")\n";
    return 0;
  }
  if (o_download->parsed() || get->parsed()) {
    // Into a directory (existing, or named with a trailing '/'): the object's last path segment
    // there, as cp does.
    std::error_code dir_ec;
    if (file != "-" && (std::filesystem::is_directory(file, dir_ec) || file.back() == '/')) {
      const size_t slash = object.rfind('/');
      const std::string base = slash == std::string::npos ? object : object.substr(slash + 1);
      if (base.empty() || base == "." || base == "..") {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "object '", object, "' has no file name to use in ", file, ": name the file")));
      }
      file = (std::filesystem::path(file) / base).string();
    }
    std::ofstream out_file;
    std::ostream* out = &std::cout;
    const std::string tmp = file + ".mcos-part";
    if (file != "-") {
      const std::filesystem::path parent = std::filesystem::path(file).parent_path();
      std::error_code parent_ec;
      if (!parent.empty() && !std::filesystem::is_directory(parent, parent_ec)) {
        return Fail(absl::NotFoundError(absl::StrCat("no directory ", parent.string(), " to write ",
                                                     file, " in: create it first")));
      }
      // Ctrl-C or a kill leaves no partial file behind: set before the file exists, so that a
      // signal right after it was made removes it too.
      std::snprintf(g_partial_file, sizeof(g_partial_file), "%s", tmp.c_str());
      signal(SIGINT, RemovePartialAndExit);
      signal(SIGTERM, RemovePartialAndExit);
      signal(SIGHUP, RemovePartialAndExit);
      out_file.open(tmp, std::ios::binary | std::ios::trunc);
      if (!out_file) {
        const int err = errno;
        g_partial_file[0] = '\0';
        const std::string why = absl::StrCat("cannot write ", tmp, ": ", std::strerror(err));
        return Fail(err == EACCES || err == EPERM || err == EROFS ? absl::PermissionDeniedError(why)
                                                                  : absl::UnavailableError(why));
      }
      out = &out_file;
    }
    mcos::client::GetOptions go;
    go.offset = offset;
    go.length = length;
    go.progress = file == "-" ? nullptr : MakeProgress(g.quiet, object);
    auto r = client.DownloadObject(container, object, *out, go);
    if (file != "-") {
      out_file.close();
      if (!r.ok()) {
        std::filesystem::remove(tmp);
        g_partial_file[0] = '\0';
        return Fail(r.status());
      }
      std::error_code rename_ec;
      std::filesystem::rename(tmp, file, rename_ec);  // never a partial file under the real name
      g_partial_file[0] = '\0';
      if (rename_ec) {
        std::filesystem::remove(tmp);
        return Fail(absl::UnavailableError(
            absl::StrCat("cannot rename ", tmp, " to ", file, ": ", rename_ec.message())));
      }
    } else {
      std::cout.flush();
      if (!r.ok()) return Fail(r.status());
    }
    return 0;
  }
  if (o_stat->parsed() || stat->parsed()) {
    auto r = client.StatObject(container, object);
    if (!r.ok()) return Fail(r.status());
    PrintObject(g, *r);
    return 0;
  }
  if (watch->parsed()) {
    std::string target = watch_target;
    if (absl::StartsWith(target, "mcos://")) target = target.substr(7);
    const size_t slash = target.find('/');
    const std::string watched = target.substr(0, slash);
    const std::string under = slash == std::string::npos ? "" : target.substr(slash + 1);
    const absl::Status s = client.WatchObjects(
        watched, under,
        [&](const mcos::v1::ObjectChange& change) {
          if (g.json) {
            std::cout << ToJson(change) << std::endl;
            return true;
          }
          const auto& o = change.object();
          std::cout << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                                        absl::FromUnixSeconds(o.modified().seconds()) +
                                            absl::Nanoseconds(o.modified().nanos()),
                                        absl::UTCTimeZone())
                    << (change.kind() == mcos::v1::ObjectChange::KIND_DELETE ? " delete " : " put ")
                    << o.container() << "/" << o.object();
          if (change.kind() != mcos::v1::ObjectChange::KIND_DELETE) {
            std::cout << " " << o.size() << " bytes etag " << o.etag();
          }
          std::cout << " version " << o.version() << " at " << change.cluster() << std::endl;
          return true;
        },
        [&] {
          if (!g.json) {
            std::cerr << "watching " << watched << (under.empty() ? "" : "/") << under
                      << " (Ctrl-C ends)" << std::endl;
          }
        });
    if (!s.ok()) return Fail(s);
    return 0;
  }
  if (o_delete->parsed() || rm->parsed()) {
    auto r = client.DeleteObject(container, object);
    if (!r.ok()) return Fail(r.status());
    if (g.json)
      std::cout << R"({"version":")" << *r << "\"}\n";
    else
      std::cout << "deleted " << container << "/" << object << "\n";
    return 0;
  }
  if (u_add->parsed() || u_passwd->parsed()) {
    auto pw = ReadPassword(password_stdin, "password for " + name + ": ");
    if (!pw.ok()) return Fail(pw.status());
    if (u_add->parsed()) {
      auto r = client.AddUser(name, *pw, admin_role, identity);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        std::cout << "added user " << r->name() << " (" << r->role() << ")\n";
    } else {
      if (auto s = client.SetPassword(name, *pw); !s.ok()) return Fail(s);
      if (!g.json) std::cout << "password of " << name << " changed\n";
    }
    return 0;
  }
  if (u_remove->parsed()) {
    if (auto s = client.RemoveUser(name); !s.ok()) return Fail(s);
    if (!g.json) std::cout << "removed user " << name << "\n";
    return 0;
  }
  if (u_list->parsed()) {
    auto r = client.ListUsers();
    if (!r.ok()) return Fail(r.status());
    if (g.json)
      std::cout << ToJson(*r) << "\n";
    else if (list_removed) {
      for (const auto& u : r->removed()) {
        std::cout << u.identity() << "\t" << u.name() << "\t" << u.role() << "\t"
                  << absl::FormatTime(absl::FromUnixSeconds(u.removed().seconds())) << "\n";
      }
    } else {
      for (const auto& u : r->users()) std::cout << u.name() << "\t" << u.role() << "\n";
    }
    return 0;
  }
  auto state_name = [](mcos::v1::ServiceState state) -> std::string {
    switch (state) {
      case mcos::v1::SERVICE_STATE_UP:
        return "up";
      case mcos::v1::SERVICE_STATE_DOWN:
        return "down";
      default:
        return "unknown";
    }
  };
  auto last_contact = [](const mcos::v1::ClusterInfo& c) -> std::string {
    if (!c.has_last_seen()) return "never";
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(c.last_seen().seconds()),
                            absl::UTCTimeZone());
  };
  if (cl_status->parsed()) {
    auto r = client.GetCluster(cluster_name);
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
    } else {
      const auto& c = r->cluster();
      std::cout << "cluster " << c.id();
      if (!c.controller_endpoint().empty()) {
        std::cout << "\t" << (c.region().empty() ? "-" : c.region()) << "\t"
                  << c.controller_endpoint() << "\t" << state_name(c.state()) << "\t"
                  << "last contact " << last_contact(c) << "\tmetadata lag " << c.metadata_lag();
      }
      std::cout << "\n";
      if (!c.last_error().empty()) std::cout << "  last error: " << c.last_error() << "\n";
      for (const auto& s : r->services()) {
        std::cout << "  " << mcos::v1::ServiceKind_Name(s.kind()).substr(13) << "\t" << s.id()
                  << "\t" << s.endpoint() << "\t"
                  << (s.state() == mcos::v1::SERVICE_STATE_UP ? "UP" : "DOWN")
                  << (s.condition().empty() ? "" : "\t") << s.condition()
                  << (s.detail().empty() ? "" : "\t") << s.detail() << "\n";
      }
    }
    return 0;
  }
  if (rp_status->parsed()) {
    auto r = client.GetRepairStatus();
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    auto when = [](const google::protobuf::Timestamp& t) {
      if (t.seconds() == 0) return std::string("never");
      return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                              absl::UTCTimeZone());
    };
    std::cout << r->queued_tasks() << " queued write(s)\n";
    for (const auto& l : r->links()) {
      std::cout << l.from_cluster() << " -> " << l.to_cluster();
      if (l.backlog() > 0) {
        std::cout << "\tbacklog " << l.backlog() << "\toldest " << when(l.oldest_unreplicated())
                  << "\tlag " << absl::StrFormat("%.1f", l.lag_seconds()) << " s";
      }
      if (l.partitions_compared() > 0 || !l.last_error().empty()) {
        std::cout << "\tanti-entropy: " << l.partitions_out_of_sync() << " of "
                  << l.partitions_compared() << " partitions differ, last full pass "
                  << when(l.last_full_pass()) << ", " << l.records_repaired() << " record(s) ("
                  << l.bytes_repaired() << " bytes) copied, " << l.anti_entropy_bytes_exchanged()
                  << " bytes of digests and scans";
        if (!l.last_error().empty()) std::cout << ", error: " << l.last_error();
      }
      std::cout << "\n";
    }
    std::cout << "scrubber: " << r->objects_audited() << " object(s) (" << r->bytes_audited()
              << " bytes) checked, " << r->corrupt_copies_found() << " corrupt, "
              << r->corrupt_copies_repaired() << " repaired, " << r->corrupt_copies_unrepaired()
              << " not repaired yet; last sweep " << when(r->last_scrub()) << "\n";
    std::cout << "tombstones: " << r->tombstones_reaped() << " reaped, " << r->tombstones_waiting()
              << " old enough but kept";
    if (r->tombstones_waiting_on_size() > 0) {
      std::cout << " (not confirmed by: " << absl::StrJoin(r->tombstones_waiting_on(), ", ") << ")";
    }
    std::cout << "\n";
    return 0;
  }
  if (cl_list->parsed()) {
    auto r = client.ListClusters();
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    for (const auto& c : r->clusters()) {
      std::cout << c.id() << "\t" << (c.region().empty() ? "-" : c.region()) << "\t"
                << (c.controller_endpoint().empty() ? "-" : c.controller_endpoint()) << "\t"
                << state_name(c.state()) << "\t" << last_contact(c) << "\n";
    }
    return 0;
  }
  if (cl_add->parsed()) {
    auto r = client.AddCluster(cluster_endpoint);
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
    } else {
      std::cout << r->id() << "\n";
    }
    return 0;
  }
  if (cl_remove->parsed()) {
    if (auto s = client.RemoveCluster(cluster_name); !s.ok()) return Fail(s);
    if (!g.json) std::cout << "removed cluster " << cluster_name << "\n";
    return 0;
  }
  auto print_plan = [&](const mcos::v1::MovementPlan& plan) {
    std::cout << plan.partitions_moved() << " of " << plan.partitions_total()
              << " partitions change placement, holding "
              << (plan.bytes_unknown() ? std::string("an unknown number of bytes (the storage "
                                                     "service did not answer)")
                                       : absl::StrCat(plan.bytes_moved(), " bytes"))
              << "\n";
    for (const auto& c : plan.clusters()) {
      std::cout << "  " << c.cluster() << "\tin " << c.partitions_in() << " partitions ("
                << c.bytes_in() << " bytes)\tout " << c.partitions_out() << " partitions ("
                << c.bytes_out() << " bytes)\n";
    }
  };
  auto parse_members =
      [&](google::protobuf::RepeatedPtrField<mcos::v1::RingMember>* out) -> absl::Status {
    for (const auto& m : members) {
      std::vector<std::string> parts = absl::StrSplit(m, ':');
      auto* member = out->Add();
      member->set_cluster(parts[0]);
      member->set_weight(1.0);
      double weight = 1.0;
      if (parts.size() > 1 && !absl::SimpleAtod(parts[1], &weight)) {
        return absl::InvalidArgumentError(absl::StrCat("--member '", m, "': bad weight"));
      }
      member->set_weight(weight);
      if (parts.size() > 2) member->set_region(parts[2]);
      if (parts.size() > 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("--member '", m, "' is not CLUSTER[:WEIGHT[:REGION]]"));
      }
    }
    return absl::OkStatus();
  };
  if (r_list->parsed()) {
    auto r = client.ListRings();
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    // One line per ring, then one per member: its replica count in the layout against the
    // ideal (docs/placement.md).
    for (const auto& ring : r->rings()) {
      std::cout << ring.id() << "\tv" << ring.version() << "\treplicas " << ring.replicas()
                << "\tpower " << ring.partition_power() << "\n";
      for (const auto& m : ring.members()) {
        std::cout << absl::StrFormat("  %-24s region %-12s weight %-8g replicas %8u (ideal %.1f)\n",
                                     m.cluster(), m.region().empty() ? "-" : m.region(), m.weight(),
                                     m.assigned_replicas(), m.ideal_replicas());
      }
    }
    return 0;
  }
  if (r_create->parsed()) {
    mcos::v1::Ring ring;
    ring.set_id(ring_id);
    ring.set_replicas(replicas);
    ring.set_partition_power(partition_power);
    if (auto s = parse_members(ring.mutable_members()); !s.ok()) return Fail(s);
    auto r = client.CreateRing(ring);
    if (!r.ok()) return Fail(r.status());
    if (g.json)
      std::cout << ToJson(*r) << "\n";
    else
      std::cout << "created ring " << r->id() << "\n";
    return 0;
  }
  if (r_update->parsed()) {
    mcos::v1::UpdateRingRequest req;
    req.set_id(ring_id);
    req.set_dry_run(dry_run);
    req.set_replicas(update_replicas);
    req.set_partition_power(update_power);
    if (auto s = parse_members(req.mutable_members()); !s.ok()) return Fail(s);
    auto r = client.UpdateRing(req);
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    std::cout << (dry_run ? "dry run: " : "updated ring ") << r->ring().id() << " (version "
              << r->ring().version() << ")\n";
    print_plan(r->plan());
    return 0;
  }
  if (op_list->parsed()) {
    auto r = client.ListOptions();
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    for (const auto& o : r->options()) {
      std::cout << o.name() << "\tring " << o.ring() << "\twrite concern "
                << (o.write_concern() == 0 ? std::string("majority")
                                           : std::to_string(o.write_concern()))
                << "\t" << (o.mode() == mcos::v1::OPTION_MODE_DEGRADED ? "degraded" : "consistent")
                << (o.is_default() ? "\tdefault" : "") << "\n";
    }
    return 0;
  }
  if (op_add->parsed()) {
    mcos::v1::Option o;
    o.set_name(name);
    o.set_ring(ring_name);
    o.set_write_concern(write_concern);
    o.set_is_default(make_default);
    if (mode == "consistent") {
      o.set_mode(mcos::v1::OPTION_MODE_CONSISTENT);
    } else if (mode == "degraded") {
      o.set_mode(mcos::v1::OPTION_MODE_DEGRADED);
    } else {
      return Fail(absl::InvalidArgumentError("--mode must be consistent or degraded"));
    }
    auto r = client.AddOption(o);
    if (!r.ok()) return Fail(r.status());
    if (g.json)
      std::cout << ToJson(*r) << "\n";
    else
      std::cout << "added option " << r->name() << "\n";
    return 0;
  }
  if (op_set_ring->parsed()) {
    mcos::v1::SetOptionRingRequest req;
    req.set_option(name);
    req.set_ring(ring_name);
    req.set_dry_run(dry_run);
    auto r = client.SetOptionRing(req);
    if (!r.ok()) return Fail(r.status());
    if (g.json) {
      std::cout << ToJson(*r) << "\n";
      return 0;
    }
    std::cout << (dry_run ? "dry run: option " : "option ") << name << " -> ring " << ring_name
              << "\n";
    print_plan(r->plan());
    return 0;
  }
  if (op_remove->parsed()) {
    if (auto s = client.RemoveOption(name); !s.ok()) return Fail(s);
    if (!g.json) std::cout << "removed option " << name << "\n";
    return 0;
  }
  return Fail(absl::InvalidArgumentError("nothing to do; see --help"));
}
