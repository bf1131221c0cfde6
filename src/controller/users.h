// The federation's users (rows of the `users` and `removed_users` tables of MetadataTable):
// passwords hashed with argon2id, logins limited per address and name (LoginLimiter), signed
// tokens and their revocation, and the credentials the servers watch (CredentialBroadcast).
// Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/token.h"
#include "controller/credential_broadcast.h"
#include "controller/login_limiter.h"
#include "controller/metadata_table.h"
#include "controller/passwords.h"
#include "mcos/v1/admin.pb.h"
#include "mcos/v1/controller.pb.h"
#include "metadata/sqlite_metadata_store.h"

namespace mcos::controller {

inline constexpr char kRoleAdmin[] = "admin";
inline constexpr char kRoleUser[] = "user";

struct UsersOptions {
  // The key users' tokens are signed with (the cluster's, or the federation's).
  std::string token_key;
  absl::Duration token_ttl = absl::Hours(12);
  Argon2Params argon2;
  // Password guessing per client address and user name, and concurrent password hashes.
  LoginLimits login_limits;
};

class Users {
 public:
  // `table`, `store`, `clock` and `cluster_id` (set before Bootstrap) must outlive this.
  Users(MetadataTable& table, metadata::SqliteMetadataStore& store, common::Clock& clock,
        const std::string& cluster_id, UsersOptions options);

  // Creates the bootstrap user `admin` (stamped `stamp`) unless it exists, with
  // `admin_password`, or a generated one written once to <data_dir>/admin-password (mode 0600).
  absl::Status Bootstrap(const std::string& admin_password, const std::string& data_dir,
                         const mcos::v1::Version& stamp);
  // Where the generated admin password was written, empty if none was generated.
  const std::string& admin_password_file() const { return admin_password_file_; }

  // Logins from the client at `address` (its IP). UNAUTHENTICATED for a wrong name or password
  // (same answer); RESOURCE_EXHAUSTED when the address or the name ran out of attempts, or too
  // many passwords are being checked at once (LoginLimiter).
  absl::StatusOr<mcos::v1::LoginResponse> Login(const std::string& user,
                                                const std::string& password,
                                                const std::string& address = "local");
  // A token's claims if it is signed, unexpired and not revoked: its user still exists with the
  // same identity, role and token generation. UNAUTHENTICATED otherwise.
  absl::StatusOr<mcos::v1::TokenClaims> VerifyToken(absl::string_view token);
  // Every user's identity and token generation at the credentials revision; with a non-zero
  // `known_revision` waits like Snapshot and answers unchanged = true if nothing changed. The call
  // acknowledges `known_revision` for `watcher` (see CredentialBroadcast).
  absl::StatusOr<mcos::v1::CredentialsSnapshot> Credentials(
      const std::string& watcher, uint64_t known_revision = 0,
      absl::Duration wait = absl::ZeroDuration(), const std::function<bool()>& cancelled = nullptr);

  // INVALID_ARGUMENT for bad names, roles or passwords; ALREADY_EXISTS / NOT_FOUND;
  // FAILED_PRECONDITION when removing the last admin. A name added again after its removal is a
  // new identity (User.uid). Removing a user or changing a password revokes the user's tokens;
  // these calls return once every watching server applied the change (at most 2 s).
  // With `identity` (a removed user's, see ListRemovedUsers), the new user owns that identity's
  // containers and objects; NOT_FOUND if no removed user has it.
  absl::StatusOr<mcos::v1::UserInfo> AddUser(const std::string& name, const std::string& password,
                                             const std::string& role,
                                             const std::string& identity = "");
  absl::Status RemoveUser(const std::string& name);
  absl::Status SetPassword(const std::string& name, const std::string& password);
  absl::StatusOr<std::vector<mcos::v1::UserInfo>> ListUsers();
  // Removed users whose data is kept (name, role, identity, removed time).
  absl::StatusOr<std::vector<mcos::v1::UserInfo>> ListRemovedUsers();

  // Tells the watching servers that the users changed (a peer's rows, or this cluster's own
  // change); with `wait`, waits up to 2 s for them to apply it.
  void PublishCredentials(bool wait);

 private:
  absl::StatusOr<std::optional<mcos::v1::User>> FindUser(const std::string& name);

  MetadataTable& table_;
  metadata::SqliteMetadataStore& store_;
  common::Clock& clock_;
  const std::string& cluster_id_;
  const UsersOptions options_;
  common::TokenSigner signer_;
  LoginLimiter logins_;
  CredentialBroadcast credentials_;
  std::string admin_password_file_;
  std::string dummy_hash_;  // verified against when a user does not exist (same timing)
  // Serializes read-check-write sequences on user rows.
  absl::Mutex write_mu_;
};

}  // namespace mcos::controller
