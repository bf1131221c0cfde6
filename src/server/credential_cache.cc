#include "server/credential_cache.h"

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

absl::Status CredentialCache::Poll(absl::Duration wait) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + wait + absl::Seconds(5)));
  mcos::v1::WatchCredentialsRequest req;
  {
    absl::MutexLock lock(&mu_);
    req.set_known_revision(revision_);
  }
  req.set_wait_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(wait)));
  req.set_watcher(watcher_);
  {
    absl::MutexLock lock(&watch_mu_);
    if (stop_.HasBeenNotified()) return absl::CancelledError("stopping");
    watching_ = &ctx;
  }
  mcos::v1::CredentialsSnapshot snapshot;
  const grpc::Status s = controller_->WatchCredentials(&ctx, req, &snapshot);
  {
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
  by_name_.swap(by_name);
  revision_ = snapshot.revision();
  loaded_ = true;
}

absl::Status CredentialCache::Check(const mcos::v1::TokenClaims& claims) {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_) {
    return absl::UnavailableError("this server has not loaded the users yet; retry in a moment");
  }
  const auto it = by_name_.find(claims.user());
  if (it == by_name_.end() || it->second.uid() != common::TokenOwner(claims) ||
      it->second.generation() != claims.generation() || it->second.role() != claims.role()) {
    return absl::UnauthenticatedError(common::kRevokedTokenMessage);
  }
  return absl::OkStatus();
}

}  // namespace mcos::server
