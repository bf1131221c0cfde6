#include "server/credential_cache.h"

#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/token.h"

namespace mcos::server {

absl::Status CredentialCache::Start(mcos::v1::ControllerService::Stub* controller) {
  controller_ = controller;
  if (auto s = Poll(absl::ZeroDuration()); !s.ok()) return s;
  thread_ = std::thread([this] {
    while (!stop_.HasBeenNotified()) {
      if (auto s = Poll(absl::Seconds(25)); !s.ok()) {
        if (stop_.HasBeenNotified()) break;
        common::LogWarning("cannot refresh credentials from the controller: ", s.message());
        if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(500))) break;
      }
    }
  });
  return absl::OkStatus();
}

void CredentialCache::Stop() {
  {
    absl::MutexLock lock(&watch_mu_);
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (watching_ != nullptr) watching_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status CredentialCache::Poll(absl::Duration wait, bool long_poll) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + wait + absl::Seconds(long_poll ? 5 : 2)));
  mcos::v1::WatchCredentialsRequest req;
  {
    absl::MutexLock lock(&mu_);
    req.set_known_revision(revision_);
  }
  req.set_wait_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(wait)));
  req.set_watcher(watcher_);
  if (long_poll) {
    absl::MutexLock lock(&watch_mu_);
    if (stop_.HasBeenNotified()) return absl::CancelledError("stopping");
    watching_ = &ctx;
  }
  mcos::v1::CredentialsSnapshot snapshot;
  const grpc::Status s = common::CallAndWait([&](auto done) {
    controller_->async()->WatchCredentials(&ctx, &req, &snapshot, std::move(done));
  });
  if (long_poll) {
    absl::MutexLock lock(&watch_mu_);
    watching_ = nullptr;
  }
  if (!s.ok()) return common::FromGrpcStatus(s);
  Apply(snapshot);
  return absl::OkStatus();
}

void CredentialCache::Apply(const mcos::v1::CredentialsSnapshot& snapshot) {
  if (snapshot.unchanged()) return;
  absl::flat_hash_map<std::string, mcos::v1::Credential> by_name;
  by_name.reserve(static_cast<size_t>(snapshot.credentials_size()));
  for (const auto& c : snapshot.credentials()) by_name[c.name()] = c;
  absl::MutexLock lock(&mu_);
  // The long poll and a refresh may answer out of order: never go back.
  if (loaded_ && snapshot.revision() < revision_) return;
  by_name_.swap(by_name);
  revision_ = snapshot.revision();
  loaded_ = true;
}

CredentialCache::Verdict CredentialCache::Lookup(const mcos::v1::TokenClaims& claims) {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) return Verdict::kNotLoaded;
  const auto it = by_name_.find(claims.user());
  // A user this copy does not know yet, a newer token generation or another identity of the
  // name: the token may come from a change that has not reached this copy yet (a peer cluster's
  // change is applied here without waiting for the servers).
  if (it == by_name_.end() || it->second.uid() != common::TokenOwner(claims) ||
      it->second.generation() < claims.generation()) {
    return Verdict::kMaybeBehind;
  }
  if (it->second.generation() != claims.generation() || it->second.role() != claims.role()) {
    return Verdict::kRevoked;
  }
  return Verdict::kOk;
}

absl::Status CredentialCache::Check(const mcos::v1::TokenClaims& claims) {
  Verdict verdict = Lookup(claims);
  if (verdict == Verdict::kMaybeBehind && controller_ != nullptr) {
    // Ask the controller once for what changed, at most every 100 ms for all callers together
    // (so that a revoked token cannot make every call a round trip), then decide.
    bool refresh = false;
    {
      absl::MutexLock lock(&refresh_mu_);
      const absl::Time now = absl::Now();
      if (now - last_refresh_ >= absl::Milliseconds(100)) {
        last_refresh_ = now;
        refresh = true;
      }
    }
    if (refresh && Poll(absl::ZeroDuration(), /*long_poll=*/false).ok()) verdict = Lookup(claims);
  }
  switch (verdict) {
    case Verdict::kNotLoaded:
      return absl::UnavailableError("this server has not loaded the users yet; retry in a moment");
    case Verdict::kOk:
      return absl::OkStatus();
    default:
      return absl::UnauthenticatedError(common::kRevokedTokenMessage);
  }
}

}  // namespace mcos::server
