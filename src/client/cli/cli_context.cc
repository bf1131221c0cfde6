#include "client/cli/cli_context.h"

#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace mcos::cli {

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

namespace {

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

}  // namespace

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

namespace {

// The temporary file of a download in progress, removed if SIGINT or SIGTERM ends it.
char g_partial_file[4096];

void RemovePartialAndExit(int sig) {
  if (g_partial_file[0] != '\0') unlink(g_partial_file);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void RemoveOnSignal(const std::string& path) {
  std::snprintf(g_partial_file, sizeof(g_partial_file), "%s", path.c_str());
  signal(SIGINT, RemovePartialAndExit);
  signal(SIGTERM, RemovePartialAndExit);
  signal(SIGHUP, RemovePartialAndExit);
}

void KeepOnSignal() { g_partial_file[0] = '\0'; }

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

int ExitStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kNotFound:
      return 3;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return 4;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 5;
    default:
      return 1;
  }
}

namespace {

// What SetErrorContext was given.
struct ErrorContext {
  std::string endpoint;
  bool tls = false;
  std::string timeout;
};

ErrorContext& Context() {
  static ErrorContext context;
  return context;
}

}  // namespace

void SetErrorContext(const Globals& g) {
  Context() = {g.endpoint, g.tls || !g.tls_ca.empty() || !g.tls_cert.empty(), g.timeout};
}

absl::Status Explain(const absl::Status& s) {
  const ErrorContext& c = Context();
  if (c.endpoint.empty()) return s;
  const absl::string_view m = s.message();
  auto says = [&](absl::string_view what) { return absl::StrContains(m, what); };
  if (s.code() == absl::StatusCode::kUnavailable) {
    if (says("Connection refused")) {
      return absl::UnavailableError(absl::StrCat("cannot reach ", c.endpoint,
                                                 ": connection refused; is the cluster running? "
                                                 "(check --endpoint)"));
    }
    if (says("DNS resolution failed") || says("Name or service not known")) {
      return absl::UnavailableError(absl::StrCat("cannot resolve the host of ", c.endpoint,
                                                 ": check --endpoint (HOST:PORT)"));
    }
    if (says("No route to host") || says("Network is unreachable")) {
      return absl::UnavailableError(absl::StrCat("cannot reach ", c.endpoint,
                                                 ": no route to the host; check --endpoint and "
                                                 "the network"));
    }
    if (c.tls && (says("WRONG_VERSION_NUMBER") || says("wrong version number"))) {
      return absl::UnavailableError(
          absl::StrCat("the server at ", c.endpoint, " does not speak TLS: drop --tls / --tls-ca"));
    }
    if (c.tls && (says("CERTIFICATE_VERIFY_FAILED") || says("certificate verify failed"))) {
      return absl::UnavailableError(
          absl::StrCat("the server at ", c.endpoint,
                       " presented a certificate that the CA given does not sign: check --tls-ca"));
    }
    if (c.tls && (says("Handshake") || says("handshake") || says("SSL"))) {
      return absl::UnavailableError(absl::StrCat("the TLS handshake with ", c.endpoint, " failed (",
                                                 m,
                                                 "): check --tls-ca, "
                                                 "--tls-cert and --tls-key"));
    }
    if (!c.tls && (says("Socket closed") || says("Connection reset") ||
                   says("failed to connect to all addresses"))) {
      return absl::UnavailableError(absl::StrCat(
          "the server at ", c.endpoint,
          " closed the connection: if it speaks TLS, add --tls-ca CA.pem (or --tls); else "
          "is the cluster running? (",
          m, ")"));
    }
  }
  if (s.code() == absl::StatusCode::kDeadlineExceeded && m == "Deadline Exceeded") {
    return absl::DeadlineExceededError(absl::StrCat("no answer from ", c.endpoint, " within ",
                                                    c.timeout,
                                                    ": raise --timeout, or check that the "
                                                    "cluster is running"));
  }
  return s;
}

int Fail(const absl::Status& s) {
  const absl::Status explained = Explain(s);
  std::fprintf(stderr, "error: %s: %s\n",
               std::string(absl::StatusCodeToString(explained.code())).c_str(),
               std::string(explained.message()).c_str());
  return ExitStatusOf(explained.code());
}

// A usage error (bad flag value, unreadable file named by a flag): exit status 2.
int Usage(const absl::Status& s) {
  Fail(s);
  return kExitUsage;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string JsonString(absl::string_view text) {
  google::protobuf::Value v;
  v.set_string_value(std::string(text));
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

void JsonArray::Add(const std::string& json) {
  std::cout << (open_ ? ",\n" : "[\n") << json;
  open_ = true;
}

void JsonArray::Close() {
  if (closed_) return;
  closed_ = true;
  std::cout << (open_ ? "\n]\n" : "[]\n");
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

}  // namespace mcos::cli
