// The server's copy of every user's identity and token generation, kept current by a long poll
// on the controller (ControllerService.WatchCredentials). Tokens are checked against it on every
// call: a removed user's token, a token issued before a password change, and a token of a name
// that now belongs to a new identity are refused, without a round trip per call. The controller
// holds an admin's change until every watching server applied it, so the refusal is immediate.
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "mcos/v1/controller.grpc.pb.h"

namespace mcos::server {

class CredentialCache {
 public:
  // `watcher` names this process to the controller (its acknowledgements).
  explicit CredentialCache(std::string watcher) : watcher_(std::move(watcher)) {}
  ~CredentialCache() { Stop(); }
  CredentialCache(const CredentialCache&) = delete;
  CredentialCache& operator=(const CredentialCache&) = delete;

  // Loads every credential (UNAVAILABLE if the controller does not answer), then keeps them
  // current from a thread. `controller` must outlive Stop().
  absl::Status Start(mcos::v1::ControllerService::Stub* controller);
  void Stop();

  // OK if the (signature-checked) token's user exists with its identity, generation and role;
  // UNAUTHENTICATED (revoked) otherwise. A token this copy may be behind on (an unknown user, a
  // newer generation, another identity of the name) first makes it ask the controller for what
  // changed (at most every 100 ms). Before Start: UNAVAILABLE.
  absl::Status Check(const mcos::v1::TokenClaims& claims);

  // Applies a snapshot (tests call it directly).
  void Apply(const mcos::v1::CredentialsSnapshot& snapshot);

 private:
  enum class Verdict { kNotLoaded, kOk, kRevoked, kMaybeBehind };
  Verdict Lookup(const mcos::v1::TokenClaims& claims);
  // One call: the changes after the held revision (waiting up to `wait`). The watch thread's
  // `long_poll` is the one Stop cancels; a caller's refresh (wait 0) runs beside it.
  absl::Status Poll(absl::Duration wait, bool long_poll = true);

  const std::string watcher_;
  mcos::v1::ControllerService::Stub* controller_ = nullptr;
  absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, mcos::v1::Credential> by_name_ ABSL_GUARDED_BY(mu_);
  absl::Mutex watch_mu_;
  grpc::ClientContext* watching_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  absl::Notification stop_;
  std::thread thread_;
  absl::Mutex refresh_mu_;
  absl::Time last_refresh_ ABSL_GUARDED_BY(refresh_mu_) = absl::InfinitePast();
};

}  // namespace mcos::server
