#include "server/transfer_limiter.h"

#include "absl/strings/str_cat.h"

namespace mcos::server {

TransferLimiter::TransferLimiter(std::string what, int max_total, int max_per_user)
    : what_(std::move(what)), max_total_(max_total), max_per_user_(max_per_user) {}

absl::Status TransferLimiter::Acquire(const std::string& user) {
  absl::MutexLock lock(&mu_);
  if (max_total_ > 0 && total_ >= max_total_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("this server is busy with ", total_, " concurrent ", what_,
                     " (its limit); retry in a moment or at another server"));
  }
  int& mine = per_user_[user];
  if (max_per_user_ > 0 && mine >= max_per_user_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("user '", user, "' already has ", mine, " concurrent ", what_,
                     " (the per-user limit); wait for one to finish before starting another"));
  }
  ++mine;
  ++total_;
  return absl::OkStatus();
}

void TransferLimiter::Release(const std::string& user) {
  absl::MutexLock lock(&mu_);
  auto it = per_user_.find(user);
  if (it == per_user_.end()) return;
  --total_;
  if (--it->second <= 0) per_user_.erase(it);
}

}  // namespace mcos::server
