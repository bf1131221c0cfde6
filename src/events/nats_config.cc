#include "events/nats_config.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/token.h"

namespace mcos::events {
namespace {

// A token NATS accepts as a server name or JetStream domain.
std::string Token(absl::string_view name) {
  std::string out;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

// "HOST:PORT" as the pair nats-server wants (port 0 becomes -1: any free port).
std::pair<std::string, std::string> HostPort(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  std::string host(listen.substr(0, colon));
  std::string port(colon == absl::string_view::npos ? "" : listen.substr(colon + 1));
  if (port.empty() || port == "0") port = "-1";
  return {host.empty() ? "127.0.0.1" : host, port};
}

}  // namespace

std::string JetStreamDomain(absl::string_view cluster) { return Token(cluster); }

NatsCredentials ClientCredentials(absl::string_view cluster_key) {
  return {"mcos", absl::BytesToHexString(common::DeriveKey(cluster_key, "nats-client"))};
}

NatsCredentials LeafCredentials(absl::string_view peer_key) {
  return {"mcos-leaf", absl::BytesToHexString(common::DeriveKey(peer_key, "nats-leaf"))};
}

std::string RenderNatsServerConfig(const NatsServerConfig& c) {
  const auto [host, port] = HostPort(c.listen);
  std::string out = absl::StrCat(
      "# nats-server configuration of MCOS cluster '", c.cluster,
      "' (written by mcos-cluster --write-nats-config; the passwords derive from the cluster's "
      "keys)\n",
      "server_name: \"mcos-", Token(c.cluster), "\"\n", "host: \"", host, "\"\n", "port: ", port,
      "\n", "jetstream {\n  store_dir: \"", c.store_dir, "\"\n  domain: \"",
      JetStreamDomain(c.cluster), "\"\n}\n", "authorization {\n  user: \"", c.client.user,
      "\"\n  password: \"", c.client.password, "\"\n}\n");
  if (c.leaf && (!c.leaf_listen.empty() || !c.leaf_remotes.empty())) {
    absl::StrAppend(&out, "leafnodes {\n");
    if (!c.leaf_listen.empty()) {
      const auto [leaf_host, leaf_port] = HostPort(c.leaf_listen);
      absl::StrAppend(&out, "  host: \"", leaf_host, "\"\n  port: ", leaf_port,
                      "\n  authorization {\n    user: \"", c.leaf->user, "\"\n    password: \"",
                      c.leaf->password, "\"\n  }\n");
    }
    if (!c.leaf_remotes.empty()) {
      absl::StrAppend(&out, "  remotes: [\n");
      for (const std::string& remote : c.leaf_remotes) {
        absl::StrAppend(&out, "    { url: \"nats://", c.leaf->user, ":", c.leaf->password, "@",
                        remote, "\" }\n");
      }
      absl::StrAppend(&out, "  ]\n");
    }
    absl::StrAppend(&out, "}\n");
  }
  return out;
}

}  // namespace mcos::events
