// What a cluster's nats-server needs from MCOS: the credentials its clients use (derived from the
// cluster key, so that only the cluster's own processes connect) and those of the leafnode links
// between the clusters' servers (derived from the federation's peer key), and a configuration
// file for Debian's nats-server 2.9 with JetStream in a domain of the cluster's own. Why leafnodes
// and not gateways: docs/design.md, "Events".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mcos::events {

struct NatsCredentials {
  std::string user;
  std::string password;
};

// The cluster's processes' login at its nats-server.
NatsCredentials ClientCredentials(absl::string_view cluster_key);
// The login of one cluster's nats-server at another's leafnode port (same at every cluster of a
// federation).
NatsCredentials LeafCredentials(absl::string_view peer_key);

struct NatsServerConfig {
  // The MCOS cluster's name (server name and JetStream domain are made from it).
  std::string cluster;
  // HOST:PORT for clients (port 0: any free port, shown in the server's log).
  std::string listen = "127.0.0.1:4222";
  // JetStream's file storage.
  std::string store_dir;
  NatsCredentials client;
  // Leafnode links to other clusters' servers (a federation): where this server accepts them
  // (empty: it does not) and the HOST:PORTs of the leafnode ports it connects to.
  std::string leaf_listen;
  std::vector<std::string> leaf_remotes;
  std::optional<NatsCredentials> leaf;
};

// The JetStream domain of the cluster named `cluster`'s nats-server (its name, with what NATS does
// not accept in a domain replaced by '_').
std::string JetStreamDomain(absl::string_view cluster);

std::string RenderNatsServerConfig(const NatsServerConfig& config);

}  // namespace mcos::events
