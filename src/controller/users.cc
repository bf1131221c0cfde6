#include "controller/users.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"

namespace mcos::controller {
namespace {

const std::string& OwnerOf(const mcos::v1::User& u) { return u.uid().empty() ? u.name() : u.uid(); }
const std::string& OwnerOf(const mcos::v1::TokenClaims& c) { return common::TokenOwner(c); }

constexpr const char* kUsers = kUsersTable;
constexpr const char* kRemovedUsers = kRemovedUsersTable;

mcos::v1::UserInfo ToInfo(const mcos::v1::User& u) {
  mcos::v1::UserInfo info;
  info.set_name(u.name());
  info.set_role(u.role());
  *info.mutable_created() = u.created();
  info.set_identity(u.uid().empty() ? u.name() : u.uid());
  return info;
}

absl::Status WriteSecretFile(const std::string& path, const std::string& content) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot create ", path));
  const bool ok =
      write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : absl::UnavailableError(absl::StrCat("cannot write ", path));
}

}  // namespace

Users::Users(MetadataTable& table, metadata::SqliteMetadataStore& store, common::Clock& clock,
             const std::string& cluster_id, UsersOptions options)
    : table_(table),
      store_(store),
      clock_(clock),
      cluster_id_(cluster_id),
      options_(std::move(options)),
      signer_(options_.token_key),
      logins_(options_.login_limits) {}

absl::Status Users::Bootstrap(const std::string& admin_password, const std::string& data_dir,
                              const mcos::v1::Version& stamp) {
  MCOS_ASSIGN_OR_RETURN(dummy_hash_, HashPassword("no such user", options_.argon2));
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto admin, store_.GetRow(kUsers, "admin"));
  if (!admin) {
    std::string password = admin_password;
    if (password.empty()) {
      password = common::RandomHex(12);
      admin_password_file_ = data_dir + "/admin-password";
      MCOS_RETURN_IF_ERROR(WriteSecretFile(admin_password_file_, password + "\n"));
    }
    mcos::v1::User user;
    user.set_name("admin");
    user.set_role(kRoleAdmin);
    MCOS_ASSIGN_OR_RETURN(*user.mutable_password_hash(), HashPassword(password, options_.argon2));
    common::ToProtoTimestamp(clock_.Now(), user.mutable_created());
    MCOS_RETURN_IF_ERROR(table_.Put(kUsers, "admin", &user, &stamp).status());
    common::LogInfo("created the bootstrap user 'admin'",
                    admin_password_file_.empty()
                        ? " with the password from MCOS_ADMIN_PASSWORD"
                        : absl::StrCat("; its password is in ", admin_password_file_));
  }
  return absl::OkStatus();
}

// ---- logins ---------------------------------------------------------------------------------

absl::StatusOr<std::optional<mcos::v1::User>> Users::FindUser(const std::string& name) {
  MCOS_ASSIGN_OR_RETURN(auto row, store_.GetRow(kUsers, name));
  if (!row || row->tombstone()) return std::nullopt;
  MCOS_ASSIGN_OR_RETURN(auto user, ParseRow<mcos::v1::User>(*row));
  return user;
}

absl::StatusOr<mcos::v1::LoginResponse> Users::Login(const std::string& user,
                                                     const std::string& password,
                                                     const std::string& address) {
  const std::string name = user.substr(0, 256);
  MCOS_RETURN_IF_ERROR(logins_.Admit(name, address, clock_.Now()));
  const absl::Status wrong = absl::UnauthenticatedError("wrong user name or password");
  // Too long to be right: a failure, without spending a hash on it.
  if (user.empty() || user.size() > 256 || password.size() > 1024) return wrong;
  bool ok = false;
  MCOS_ASSIGN_OR_RETURN(auto found, FindUser(user));
  {
    MCOS_ASSIGN_OR_RETURN(auto slot, logins_.AcquireHash());
    // Hash even when the user does not exist, so that both cases take the same time.
    ok = VerifyPassword(found ? found->password_hash() : dummy_hash_, password);
  }
  if (!found || !ok) return wrong;
  logins_.Succeeded(name, address, clock_.Now());
  mcos::v1::TokenClaims claims;
  claims.set_user(found->name());
  claims.set_role(found->role());
  claims.set_uid(OwnerOf(*found));
  claims.set_generation(found->generation());
  const absl::Time now = clock_.Now();
  claims.set_issued_unix(absl::ToUnixSeconds(now));
  claims.set_expires_unix(absl::ToUnixSeconds(now + options_.token_ttl));
  claims.set_issuer(cluster_id_);
  mcos::v1::LoginResponse response;
  response.set_token(signer_.Sign(claims));
  common::ToProtoTimestamp(absl::FromUnixSeconds(claims.expires_unix()),
                           response.mutable_expires_at());
  response.set_user_name(found->name());
  response.set_role(found->role());
  return response;
}

absl::StatusOr<mcos::v1::TokenClaims> Users::VerifyToken(absl::string_view token) {
  MCOS_ASSIGN_OR_RETURN(auto claims, signer_.Verify(token, clock_.Now()));
  MCOS_ASSIGN_OR_RETURN(auto user, FindUser(claims.user()));
  if (!user || OwnerOf(*user) != OwnerOf(claims) || user->generation() != claims.generation() ||
      user->role() != claims.role()) {
    return absl::UnauthenticatedError(common::kRevokedTokenMessage);
  }
  return claims;
}

absl::StatusOr<mcos::v1::CredentialsSnapshot> Users::Credentials(
    const std::string& watcher, uint64_t known_revision, absl::Duration wait,
    const std::function<bool()>& cancelled) {
  mcos::v1::CredentialsSnapshot snap;
  snap.set_revision(credentials_.Watch(watcher, known_revision, wait, cancelled));
  if (known_revision != 0 && snap.revision() == known_revision) {
    snap.set_unchanged(true);
    return snap;
  }
  MCOS_ASSIGN_OR_RETURN(auto rows, store_.ListRows(kUsers, "", "", 1000000, false));
  for (const auto& row : rows) {
    MCOS_ASSIGN_OR_RETURN(auto u, ParseRow<mcos::v1::User>(row));
    auto* c = snap.add_credentials();
    c->set_name(u.name());
    c->set_uid(OwnerOf(u));
    c->set_generation(u.generation());
    c->set_role(u.role());
  }
  return snap;
}

void Users::PublishCredentials(bool wait) {
  const uint64_t revision = std::max<uint64_t>(1, store_.revision());
  credentials_.Publish(revision);
  if (!wait) return;
  const auto behind = credentials_.AwaitAcknowledged(revision, absl::Seconds(2));
  if (!behind.empty()) {
    common::LogWarning("a credential change is not yet applied by ", behind.size(),
                       " server(s) after 2 s (e.g. ", behind.front(),
                       "); they apply it when they reach the controller again");
  }
}

// ---- users ----------------------------------------------------------------------------------

absl::StatusOr<mcos::v1::UserInfo> Users::AddUser(const std::string& name,
                                                  const std::string& password,
                                                  const std::string& role,
                                                  const std::string& identity) {
  MCOS_RETURN_IF_ERROR(common::ValidateUserName(name));
  if (role != kRoleAdmin && role != kRoleUser) {
    return absl::InvalidArgumentError(
        absl::StrCat("role '", role, "' is unknown: use 'admin' or 'user'"));
  }
  mcos::v1::User user;
  user.set_name(name);
  user.set_role(role);
  MCOS_ASSIGN_OR_RETURN(*user.mutable_password_hash(), HashPassword(password, options_.argon2));
  common::ToProtoTimestamp(clock_.Now(), user.mutable_created());
  {
    absl::MutexLock lock(&write_mu_);
    MCOS_ASSIGN_OR_RETURN(auto row, store_.GetRow(kUsers, name));
    if (row && !row->tombstone()) {
      return absl::AlreadyExistsError(absl::StrCat("user '", name, "' already exists"));
    }
    if (!identity.empty()) {
      // The admin gives a removed user's data to this user.
      MCOS_ASSIGN_OR_RETURN(auto removed, store_.GetRow(kRemovedUsers, identity));
      if (!removed || removed->tombstone()) {
        return absl::NotFoundError(absl::StrCat("no removed user has the identity '", identity,
                                                "': see mcos admin user list --removed"));
      }
      MCOS_ASSIGN_OR_RETURN(auto old, ParseRow<mcos::v1::User>(*removed));
      user.set_uid(identity);
      // The old user's tokens carry the old generation (and maybe another name): refused.
      user.set_generation(old.generation() + 1);
      MCOS_RETURN_IF_ERROR(table_.Put(kRemovedUsers, identity, nullptr).status());
    } else {
      // A name used before is a new identity: it must not inherit the old one's data.
      user.set_uid(row ? absl::StrCat("_", common::RandomHex(8)) : name);
      user.set_generation(1);
    }
    MCOS_RETURN_IF_ERROR(table_.Put(kUsers, name, &user).status());
  }
  common::LogInfo("added user '", name, "' (", role, ", identity ", user.uid(), ")");
  PublishCredentials(/*wait=*/true);
  return ToInfo(user);
}

absl::Status Users::RemoveUser(const std::string& name) {
  absl::ReleasableMutexLock write_lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto existing, FindUser(name));
  if (!existing) return absl::NotFoundError(absl::StrCat("user '", name, "' not found"));
  if (existing->role() == kRoleAdmin) {
    MCOS_ASSIGN_OR_RETURN(auto rows, store_.ListRows(kUsers, "", "", 100000, false));
    int admins = 0;
    for (const auto& row : rows) {
      MCOS_ASSIGN_OR_RETURN(auto u, ParseRow<mcos::v1::User>(row));
      if (u.role() == kRoleAdmin) ++admins;
    }
    if (admins <= 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", name, "' is the last admin; add another admin first"));
    }
  }
  // The data stays, owned by the identity, until an admin gives it to a new user.
  mcos::v1::User kept = *existing;
  kept.clear_password_hash();
  kept.set_uid(OwnerOf(*existing));
  MCOS_RETURN_IF_ERROR(table_.Put(kRemovedUsers, kept.uid(), &kept).status());
  MCOS_RETURN_IF_ERROR(table_.Put(kUsers, name, nullptr).status());
  common::LogInfo("removed user '", name, "'; the data of its identity ", kept.uid(),
                  " is kept (mcos admin user add NAME --identity ", kept.uid(),
                  " gives it to a new user)");
  write_lock.Release();
  PublishCredentials(/*wait=*/true);
  return absl::OkStatus();
}

absl::Status Users::SetPassword(const std::string& name, const std::string& password) {
  MCOS_ASSIGN_OR_RETURN(std::string hash, HashPassword(password, options_.argon2));
  absl::ReleasableMutexLock write_lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto existing, FindUser(name));
  if (!existing) return absl::NotFoundError(absl::StrCat("user '", name, "' not found"));
  existing->set_password_hash(hash);
  // Tokens issued before carry the old generation: revoked.
  existing->set_generation(existing->generation() + 1);
  MCOS_RETURN_IF_ERROR(table_.Put(kUsers, name, &*existing).status());
  common::LogInfo("changed the password of user '", name, "'; its earlier tokens are revoked");
  write_lock.Release();
  PublishCredentials(/*wait=*/true);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<mcos::v1::UserInfo>> Users::ListRemovedUsers() {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_.ListRows(kRemovedUsers, "", "", 100000, false));
  std::vector<mcos::v1::UserInfo> out;
  for (const auto& row : rows) {
    MCOS_ASSIGN_OR_RETURN(auto u, ParseRow<mcos::v1::User>(row));
    auto info = ToInfo(u);
    *info.mutable_removed() = row.modified();
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::vector<mcos::v1::UserInfo>> Users::ListUsers() {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_.ListRows(kUsers, "", "", 100000, false));
  std::vector<mcos::v1::UserInfo> out;
  for (const auto& row : rows) {
    MCOS_ASSIGN_OR_RETURN(auto u, ParseRow<mcos::v1::User>(row));
    out.push_back(ToInfo(u));
  }
  return out;
}

}  // namespace mcos::controller
