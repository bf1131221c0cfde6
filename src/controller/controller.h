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
#include "controller/users.h"
#include "mcos/v1/admin.pb.h"
#include "mcos/v1/controller.pb.h"
#include "mcos/v1/peer.pb.h"
#include "mcos/v1/storage.pb.h"
#include "metadata/sqlite_metadata_store.h"

namespace mcos::controller {

struct ControllerOptions {
  // The database lives at <data_dir>/controller.db; generated secrets beside it.
  std::string data_dir;
  // Empty: generated on first start and kept in the database.
  std::string cluster_id;
  std::string region;
  // The address other clusters reach this whole cluster at (its controller and its servers, on
  // one port: mcos-cluster's --advertise, e.g. behind NAT or a proxy); empty: their own.
  std::string advertise;
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
  // The cluster's nats-server (empty: no events): service and peer cluster up/down events are
  // published there (stream MCOS_SERVICES). The login derives from token_key.
  std::string nats_url;
};

class Controller {
 public:
  // Opens the database, sets the cluster id, bootstraps `admin` and the default ring and option.
  // `probe` must outlive this.
  static absl::StatusOr<std::unique_ptr<Controller>> Open(const ControllerOptions& options,
                                                          common::Clock& clock, HealthProbe& probe);

  const std::string& cluster_id() const { return cluster_id_; }

  // Objects and bytes stored per partition (power 1..18) of one option's objects, as this
  // cluster's storage counts them; dry runs report bytes with it, and peers ask it when a
  // removal is refused. Unset: plans say bytes_unknown. Set once, before serving.
  using PartitionUsage = std::function<absl::StatusOr<mcos::v1::PartitionUsageResponse>(
      const std::string& option, uint32_t partition_power)>;
  void SetPartitionUsage(PartitionUsage source) { partition_usage_ = std::move(source); }
  // What this cluster's storage holds of `option` (UNAVAILABLE if nothing counts it).
  absl::StatusOr<mcos::v1::OptionUsage> StoredUsage(const std::string& option);
  // The federation's users, logins and tokens (users.h).
  Users& users() { return users_; }
  const std::string& admin_password_file() const { return users_.admin_password_file(); }

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

  // ---- moving data (docs/placement.md, "Moving data") ----
  // Stores what a server of this cluster reported on the options whose data moves (merged with
  // what is stored for the same placement: a former layout once settled or synced stays so).
  absl::Status RecordMoves(const std::vector<mcos::v1::MoveReport>& moves);
  // Retires every former layout that every cluster of the federation has settled and every
  // cluster holding partitions under its option's current placement has synced; returns how many.
  absl::StatusOr<int> RetireMoves();
  // Per option whose data moves: its former and current placements and each cluster's progress.
  absl::StatusOr<mcos::v1::RebalanceStatus> RebalanceStatus();
  // Pauses or resumes moving data, federation-wide (writes still go to every live layout).
  absl::Status SetRebalancePaused(bool paused);
  absl::StatusOr<bool> RebalancePaused();
  // The MB/s each server copies at while data moves (0: its own --anti-entropy-mb-per-second);
  // INVALID_ARGUMENT if negative or above 100000.
  absl::Status SetRebalanceRate(double mb_per_second);
  absl::StatusOr<mcos::v1::RebalanceControl> RebalanceControl();

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
  // What the federation still places on a cluster: partition replicas of rings that give it
  // weight and of former layouts its data moves off.
  struct Holdings {
    uint64_t partitions = 0;
    std::vector<std::string> what;     // "ring fed", "option o's former layout ..."
    std::vector<std::string> options;  // the options whose data that is
  };
  absl::StatusOr<Holdings> HoldingsOf(const std::string& name);
  // Forgets a peer cluster. NOT_FOUND if unknown; FAILED_PRECONDITION for this cluster itself, or
  // while it holds data (HoldingsOf), naming the rings and partitions; `stored` (e.g. "it stores
  // 3 objects, 12 KiB") is added to that message.
  absl::Status RemoveCluster(const std::string& name, const std::string& stored = "");
  // Forgets a cluster that is gone for good (`cluster remove --force`): every ring leaves it
  // out at once (a new version; fewer replicas where it had no spare member), each option on
  // those rings with containers keeps the former layout without it, so that the surviving
  // replicas are copied to its successors, and the former layouts its data moves off drop it.
  // Returns a line per ring changed. FAILED_PRECONDITION (nothing changed) for this cluster
  // itself, if a ring would keep no member, or an option's write concern would exceed its
  // ring's replicas.
  absl::StatusOr<std::vector<std::string>> DropCluster(const std::string& name);

  // ---- a cluster that joins with data of its own (controller/join.cc) ----
  // This cluster's metadata as a cluster admitting it checks it (DescribeForJoin): the rows of
  // users (without password hashes), removed users, containers, rings, options, former layouts
  // and clusters.
  absl::StatusOr<std::vector<mcos::v1::MetadataRow>> JoinRows();
  // What admitting a cluster recorded.
  struct Admission {
    bool member_already = false;              // it was a member: nothing was checked or recorded
    std::vector<std::string> former_layouts;  // keys of the former layouts kept for its data
    std::vector<std::string> moving;          // the options whose data moves
    int restamped = 0;  // rows of this federation stamped again to win over its own
  };
  // Admits cluster `joiner`, whose JoinRows answer is `rows`, before the two introduce
  // themselves: FAILED_PRECONDITION, listing every conflict and recording nothing, if its users,
  // identities, containers or default option cannot merge with this federation's or it has peers
  // this federation lacks while holding data. Otherwise stores its row and, if it has
  // containers, keeps its placement of each option the federation places otherwise as a former
  // layout (its data then moves) and stamps this federation's rows of its rings', options' and
  // admin's names again, so that they win.
  // `stored`: the bytes it stores per option (its moves' bytes to copy; missing: unknown).
  absl::StatusOr<Admission> AdmitCluster(mcos::v1::ClusterInfo joiner,
                                         const std::vector<mcos::v1::MetadataRow>& rows,
                                         const std::map<std::string, uint64_t>& stored = {});
  // Drops what AdmitCluster recorded (the introduction failed).
  absl::Status UndoAdmission(const std::string& joiner, const Admission& admission);

 private:
  Controller(ControllerOptions options, common::Clock& clock, HealthProbe& probe,
             std::unique_ptr<metadata::SqliteMetadataStore> store);
  absl::Status Bootstrap();
  // What a row that won means for the caches and watchers (containers, placement, credentials).
  void RowStored(const mcos::v1::MetadataRow& row, bool from_peer);
  // The names of the federation's clusters (rings may name only those).
  absl::StatusOr<std::set<std::string>> KnownClusters();

  ControllerOptions options_;
  common::Clock& clock_;
  std::unique_ptr<metadata::SqliteMetadataStore> store_;
  std::string cluster_id_;
  MetadataTable table_;
  Users users_;
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
  // Containers bound to `option` (counted up to `enough`). Only they hold its data: an option
  // none uses changes placement without a former layout.
  absl::StatusOr<uint64_t> ContainersUsing(const std::string& option, uint64_t enough = UINT64_MAX);
  absl::StatusOr<bool> HasContainers(const std::string& option);
  // FAILED_PRECONDITION if an option already has kMaxFormerLayouts live.
  absl::Status CheckFormerLayouts(const std::vector<std::string>& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Keeps `from` live for `option`'s data, now placed by `to`.
  // Applies `change` to the rebalance control row and stores it, stamped, if it changed; returns
  // whether it did.
  absl::StatusOr<bool> ChangeRebalanceControl(
      const std::function<void(mcos::v1::RebalanceControl&)>& change);
  // FAILED_PRECONDITION for this cluster, NOT_FOUND for a cluster not in the federation.
  absl::Status CheckRemovable(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // `bytes_to_move`: what the change counted in the partitions that change placement (0:
  // unknown); `dropped`: clusters its sets leave out (DropCluster). Returns the former layout's
  // key.
  absl::StatusOr<std::string> KeepFormerLayout(const std::string& option,
                                               const mcos::v1::Ring& from, const mcos::v1::Ring& to,
                                               uint64_t bytes_to_move = 0,
                                               const std::vector<std::string>& dropped = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  static absl::Status CheckWriteConcerns(const mcos::v1::Ring& ring,
                                         const std::vector<mcos::v1::Option>& options);
  // Bytes per partition of the options in `options` summed (null if unknown).
  std::unique_ptr<std::vector<uint64_t>> BytesOf(const std::vector<std::string>& options,
                                                 uint32_t power);
  absl::StatusOr<Holdings> HoldingsOfLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  PartitionUsage partition_usage_;

  // Local revision of the newest ring or option row (what resolvers watch); waiters are woken
  // when it moves.
  absl::Mutex placement_mu_;
  absl::CondVar placement_changed_;
  uint64_t placement_revision_ ABSL_GUARDED_BY(placement_mu_) = 0;

  ServiceRegistry registry_;
};

}  // namespace mcos::controller
