// TLS for every MCOS port and every call between MCOS processes (PEM files). A server presents
// `cert_file`/`key_file`; with `client_ca_file` it requires a client certificate signed by that CA
// (mutual TLS). A client verifies servers with `ca_file` and, when it has a certificate of its
// own, presents it. Certificates, keys and CAs are re-read from their files every
// kTlsReloadInterval, so a renewal needs no restart (gRPC's file-watcher provider: a pair that does
// not match while it is half written is ignored until it does).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mcos::common {

inline constexpr absl::Duration kTlsReloadInterval = absl::Seconds(2);

struct TlsFiles {
  std::string cert_file;       // this process's certificate chain (server, and client for mTLS)
  std::string key_file;        // its private key
  std::string ca_file;         // CA that signs the servers this process calls
  std::string client_ca_file;  // when set, clients must present a certificate it signed

  bool serves_tls() const { return !cert_file.empty(); }
  bool calls_with_tls() const { return !ca_file.empty(); }
};

// Checks the files before a process starts serving: each readable, PEM that parses, the key
// matching the certificate, flags that go together. The message names the flag and what to do.
absl::Status ValidateTlsFiles(const TlsFiles& files);

// TLS server credentials that reload their files; plaintext when no certificate is given.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& files);

// Credentials for calls to other MCOS processes: TLS verified with `ca_file` (presenting
// `cert_file` when given) that reloads its files; plaintext when no CA is given.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& files);

// Whether `listen` (host:port) binds only a loopback address.
bool IsLoopbackListen(const std::string& listen);

// Reads a whole file (for PEM contents).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

}  // namespace mcos::common
