// The controller core: federation metadata (users, containers, rings, options as LWW rows in
// SQLite), logins and tokens, the service registry and its health checks. Plain C++ returning
// absl::Status; the gRPC adapters are controller_grpc_service.h and admin_grpc_service.h.
// Thread-safe. `clock` must outlive this.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/token.h"
#include "common/version.h"
#include "controller/credential_broadcast.h"
#include "controller/login_limiter.h"
#include "controller/metadata_table.h"
#include "controller/passwords.h"
#include "controller/service_registry.h"
#include "mcos/v1/admin.pb.h"
#include "mcos/v1/controller.pb.h"
#include "metadata/sqlite_metadata_store.h"

namespace mcos::controller {

inline constexpr char kRoleAdmin[] = "admin";
inline constexpr char kRoleUser[] = "user";

struct ControllerOptions {
  // The database lives at <data_dir>/controller.db; generated secrets beside it.
  std::string data_dir;
  // Empty: generated on first start and kept in the database.
  std::string cluster_id;
  std::string region;
  // The cluster key (service credentials; users' tokens too unless user_token_key is set); at
  // least 32 bytes.
  std::string token_key;
  // The key of users' tokens when it differs from token_key (a federation's, ClusterKeys).
  std::string user_token_key;
  absl::Duration token_ttl = absl::Hours(12);
  Argon2Params argon2;
  // Password of the bootstrap user `admin`; empty: generated and written once to
  // <data_dir>/admin-password (mode 0600).
  std::string admin_password;
  // Health checks of registered services: period, and misses before a service is marked down.
  absl::Duration health_period = absl::Seconds(2);
  absl::Duration health_timeout = absl::Seconds(1);
  int down_after_misses = 3;
  // Password guessing per client address and user name, and concurrent password hashes.
  LoginLimits login_limits;
  // The federation (ClusterKeys): the peer key and the federation's id, both empty without a
  // federation secret; and how often each peer is synced.
  std::string peer_key;
  std::string federation_id;
  absl::Duration federation_sync_period = absl::Milliseconds(500);
};

class Controller {
 public:
  // Opens the database, sets the cluster id, bootstraps `admin` and the default ring and option.
  // `probe` must outlive this.
  static absl::StatusOr<std::unique_ptr<Controller>> Open(const ControllerOptions& options,
                                                          common::Clock& clock, HealthProbe& probe);

  const std::string& cluster_id() const { return cluster_id_; }

  // Bytes stored per partition (dense, 2^power entries) of one option's objects, as this
  // cluster's storage counts them; dry runs report bytes with it. Unset: plans say
  // bytes_unknown. Set once, before serving.
  using PartitionBytes = std::function<absl::StatusOr<std::vector<uint64_t>>(
      const std::string& option, uint32_t partition_power)>;
  void SetPartitionBytes(PartitionBytes source) { partition_bytes_ = std::move(source); }
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

  // Users. INVALID_ARGUMENT for bad names, roles or passwords; ALREADY_EXISTS / NOT_FOUND;
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

  // Containers (federation metadata). NOT_FOUND for a missing container or option; ALREADY_EXISTS.
  absl::StatusOr<mcos::v1::Container> CreateContainer(const std::string& user,
                                                      const std::string& name,
                                                      const std::string& option);
  absl::StatusOr<mcos::v1::Container> GetContainer(const std::string& user,
                                                   const std::string& name);
  absl::StatusOr<mcos::v1::ListUserContainersResponse> ListContainers(
      const mcos::v1::ListUserContainersRequest& request);
  absl::Status DeleteContainer(const std::string& user, const std::string& name);

  // Rings (with their layouts) and options as stored, at revision = the local revision of the
  // newest ring or option change. If that is still `known_revision` (non-zero), waits up to
  // `wait` (at most 30 s; stops early once `cancelled` says so) for a change, and answers with
  // only the revision and unchanged = true if none came.
  absl::StatusOr<mcos::v1::MetadataSnapshot> Snapshot(
      uint64_t known_revision = 0, absl::Duration wait = absl::ZeroDuration(),
      const std::function<bool()>& cancelled = nullptr);

  // Rings. INVALID_ARGUMENT for a ring that breaks a rule (placement/ring.h); ALREADY_EXISTS;
  // NOT_FOUND. UpdateRing bumps the version; with dry_run nothing changes and the plan says what
  // would move.
  absl::StatusOr<std::vector<mcos::v1::Ring>> ListRings();
  absl::StatusOr<mcos::v1::Ring> CreateRing(mcos::v1::Ring ring);
  absl::StatusOr<mcos::v1::UpdateRingResponse> UpdateRing(const mcos::v1::UpdateRingRequest& req);
  // Options. AddOption: INVALID_ARGUMENT for a bad name, mode or write concern (> replicas);
  // NOT_FOUND for an unknown ring; ALREADY_EXISTS. A new default replaces the old one.
  // RemoveOption: FAILED_PRECONDITION for the default or while containers use it (says how many).
  absl::StatusOr<std::vector<mcos::v1::Option>> ListOptions();
  absl::StatusOr<mcos::v1::Option> AddOption(mcos::v1::Option option);
  absl::StatusOr<mcos::v1::SetOptionRingResponse> SetOptionRing(
      const mcos::v1::SetOptionRingRequest& request);
  absl::Status RemoveOption(const std::string& name);

  // The cluster's service registry (its own concern; see service_registry.h).
  ServiceRegistry& registry() { return registry_; }

  // The database, for the local tables of other parts of the controller (the replication queue).
  metadata::SqliteMetadataStore& store() { return *store_; }

  // The federation metadata's row table, for peering (controller/federation.h): peers' rows
  // merged there reach the caches and watchers here (servers and resolvers see them as if
  // changed here).
  MetadataTable& metadata() { return table_; }

  // ---- the federation's clusters ----
  // The clusters of the federation as stored (this one included once it has a row).
  absl::StatusOr<std::vector<mcos::v1::ClusterInfo>> ListClusters();
  // Stores a cluster's row (this cluster's own, or a peer's it was introduced to), unless the
  // stored row already says the same.
  absl::Status PutCluster(mcos::v1::ClusterInfo cluster);
  // Forgets a peer cluster. NOT_FOUND if unknown; FAILED_PRECONDITION for this cluster itself, or
  // while a ring has it as a member with a weight above zero (naming the rings).
  absl::Status RemoveCluster(const std::string& name);

 private:
  Controller(ControllerOptions options, common::Clock& clock, HealthProbe& probe,
             std::unique_ptr<metadata::SqliteMetadataStore> store);
  absl::Status Bootstrap();
  // What a row that won means for the caches and watchers (containers, placement, credentials).
  void RowStored(const mcos::v1::MetadataRow& row, bool from_peer);
  // The names of the federation's clusters (rings may name only those).
  absl::StatusOr<std::set<std::string>> KnownClusters();
  absl::StatusOr<std::optional<mcos::v1::User>> FindUser(const std::string& name);
  // After a change of the users table: tells the watching servers and waits for them.
  void PublishCredentials();

  ControllerOptions options_;
  common::Clock& clock_;
  std::unique_ptr<metadata::SqliteMetadataStore> store_;
  common::TokenSigner signer_;
  std::string cluster_id_;
  std::string admin_password_file_;
  std::string dummy_hash_;  // verified against when a user does not exist (same timing)

  LoginLimiter logins_;
  MetadataTable table_;
  // Serializes read-check-write sequences on metadata rows (create container, add user, ...).
  absl::Mutex write_mu_;
  // Containers as last read or written (every request of a server looks one up). Entries are
  // dropped whenever this controller stores a row of that key, so they are never stale.
  absl::Mutex cache_mu_;
  std::map<std::string, std::optional<mcos::v1::Container>> containers_ ABSL_GUARDED_BY(cache_mu_);
  // ABORTED if the row `seen` (read before a long computation) has changed since. Needs write_mu_.
  absl::Status CheckUnchanged(const std::string& table, const mcos::v1::MetadataRow& seen,
                              absl::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // The options placed by ring `ring`.
  absl::StatusOr<std::vector<mcos::v1::Option>> OptionsUsing(const std::string& ring);
  // FAILED_PRECONDITION if an option using `ring` writes to more replicas than it has.
  absl::Status CheckWriteConcerns(const mcos::v1::Ring& ring);
  static absl::Status CheckWriteConcerns(const mcos::v1::Ring& ring,
                                         const std::vector<mcos::v1::Option>& options);
  // Bytes per partition of the options in `options` summed (null if unknown).
  std::unique_ptr<std::vector<uint64_t>> BytesOf(const std::vector<std::string>& options,
                                                 uint32_t power);
  PartitionBytes partition_bytes_;

  // Local revision of the newest ring or option row (what resolvers watch); waiters are woken
  // when it moves.
  absl::Mutex placement_mu_;
  absl::CondVar placement_changed_;
  uint64_t placement_revision_ ABSL_GUARDED_BY(placement_mu_) = 0;

  // Credential changes, watched by the servers.
  CredentialBroadcast credentials_;
  ServiceRegistry registry_;
};

}  // namespace mcos::controller
