// The server: serves the public UserService by asking the controller (users, containers), the
// resolver (placement) and the storage service (object data), streaming object data through
// without buffering whole objects. On one cluster the placement names just this cluster; the
// federation issue adds the other clusters' ClusterService. Used by mcos-server and mcos-cluster.
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/arena_messages.h"
#include "common/channel.h"
#include "common/daemon.h"
#include "common/registrar.h"
#include "common/stream_watchdog.h"
#include "common/tls.h"
#include "common/token.h"
#include "common/version.h"
#include "events/event_bus.h"
#include "mcos/v1/controller.grpc.pb.h"
#include "mcos/v1/resolver.grpc.pb.h"
#include "mcos/v1/user.grpc.pb.h"
#include "repair/anti_entropy.h"
#include "repair/queue_sender.h"
#include "repair/releaser.h"
#include "repair/scrubber.h"
#include "repair/tombstone_reaper.h"
#include "replication/replica.h"
#include "server/cluster_grpc_service.h"
#include "server/coordinator.h"
#include "server/credential_cache.h"
#include "server/transfer_limiter.h"
#include "storage/storage_client.h"

namespace mcos::storage {
class Engine;
}  // namespace mcos::storage

namespace mcos::server {

struct ServerOptions {
  // The cluster key (service credentials; users' tokens too unless user_token_key is set).
  std::string token_key;
  // The key of users' tokens when it differs from token_key (a federation's, ClusterKeys).
  std::string user_token_key;
  std::string id = "server-1";
  // TLS of the calls to the cluster's other services (plaintext without a CA).
  common::TlsFiles tls;
  // How often the live resolvers and storage services, and the peer clusters' servers, are looked
  // up again.
  absl::Duration discovery_period = absl::Milliseconds(500);
  // Where the server's metrics go (a new registry when null); expose it through the ServerHost.
  std::shared_ptr<prometheus::Registry> registry;
  // Concurrent uploads this server accepts in all and per user (0 = no limit); more get
  // RESOURCE_EXHAUSTED at once. Each upload buffers at most two 1 MiB chunks here and one at the
  // storage node, so these bound the memory that stalled uploads can pin.
  int max_uploads = 256;
  int max_uploads_per_user = 64;
  // The same for downloads (each holds a synchronous handler thread while it streams).
  int max_downloads = 512;
  int max_downloads_per_user = 128;
  // An upload or download that moves no data for this long is ended (uploads with
  // DEADLINE_EXCEEDED, nothing stored); zero disables it.
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  // An upload that declares neither its size nor a finish message commits only if no
  // cancellation follows its half-close within this time (see put_reactor.h).
  absl::Duration upload_settle = absl::Milliseconds(100);
  // The federation's peer key (ClusterKeys::peer): ClusterService takes only this credential,
  // and the server calls its peers' with it. Empty: no federation.
  std::string peer_key;
  // A replica cluster that has not taken a write within this (plus its bytes at 20 MB/s) is
  // queued for later; reads wait this long for a quorum.
  absl::Duration replica_timeout = absl::Seconds(5);
  // A peer's replication stream (ClusterReplicate), whose credential is checked once when it
  // opens, is served this long at most: later operations are answered UNAVAILABLE undone and the
  // stream ends (peers move to a new stream every 5 minutes, ReplicateLink).
  absl::Duration replication_stream_lifetime = absl::Minutes(20);
  // Anti-entropy (repair/anti_entropy.h) with the peer clusters: a pass this often (zero: never),
  // at most this many records scanned and bytes copied per second. Runs only in a federation.
  absl::Duration anti_entropy_period = absl::Seconds(5);
  double anti_entropy_records_per_second = 20000;
  double anti_entropy_bytes_per_second = 50e6;
  int anti_entropy_parallel_partitions = 4;
  // While users' calls arrive, anti-entropy's copies take at most this share of the time
  // (repair::AntiEntropyOptions::foreground_share).
  double anti_entropy_foreground_share = 0.25;
  // How long a former layout (docs/placement.md, "Moving data") is known here before this
  // server reports it settled: longer than any write started under it still runs.
  absl::Duration move_settle = absl::Seconds(60);
  // The scrubber (repair/scrubber.h): a sweep over this cluster's objects this long after the
  // last one ended (zero: no sweeps; copies that reads find corrupt are still repaired), reading
  // at most this many bytes per second.
  absl::Duration scrub_period = absl::Hours(24);
  double scrub_bytes_per_second = 20e6;
  // Tombstone reaping (repair/tombstone_reaper.h): a pass this often (zero: never), over
  // tombstones at least `tombstone_min_age` old that every cluster confirmed.
  absl::Duration tombstone_reap_period = absl::Minutes(1);
  absl::Duration tombstone_min_age = absl::Hours(1);
  // The cluster's nats-server (empty: no events; WatchObjects then answers FAILED_PRECONDITION).
  // The login derives from token_key (events::ClientCredentials).
  std::string nats_url;
  // Retention of the object events stream (MCOS_OBJECTS).
  int64_t events_max_age_seconds = int64_t{24} * 3600;
  int64_t events_max_bytes = int64_t{1} << 30;
};

class ServerApp;
class PutReactor;

// NOT_FOUND for an object, in the user's terms (storage messages also name the user).
absl::Status ObjectNotFound(const mcos::v1::ObjectKey& key);
// INVALID_ARGUMENT unless `container` and `object` are valid names.
absl::Status ValidateObjectRef(absl::string_view container, absl::string_view object);

// Uploads run on gRPC's callback API and parse their messages themselves (raw), so that a
// malformed message is an INVALID_ARGUMENT of the upload and never ends it like a half-close.
// Stats and deletes run on it too: in mcos-cluster they wait for no thread of their own.
// Listings too: a page is built on the call's arena (list_messages_) on a coordinator thread.
using UserServiceBase = mcos::v1::UserService::WithRawCallbackMethod_CreateObject<
    mcos::v1::UserService::WithRawCallbackMethod_UpdateObject<
        mcos::v1::UserService::WithCallbackMethod_StatObject<
            mcos::v1::UserService::WithCallbackMethod_DeleteObject<
                mcos::v1::UserService::WithCallbackMethod_ListObjects<
                    mcos::v1::UserService::WithCallbackMethod_DownloadObject<
                        mcos::v1::UserService::Service>>>>>>;

// Where a download's messages go: Write returns once the message is on its way (false: the call
// ended).
class DownloadSink {
 public:
  virtual ~DownloadSink() = default;
  virtual bool Write(const mcos::v1::DownloadObjectResponse& message) = 0;
};

class UserGrpcService final : public UserServiceBase {
 public:
  explicit UserGrpcService(ServerApp& app) : app_(app) {
    SetMessageAllocatorFor_ListObjects(&list_messages_);
  }

  grpc::Status Login(grpc::ServerContext*, const mcos::v1::LoginRequest* request,
                     mcos::v1::LoginResponse* response) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const mcos::v1::ListContainersRequest* request,
                              mcos::v1::ListContainersResponse* response) override;
  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const mcos::v1::CreateContainerRequest* request,
                               mcos::v1::ContainerInfo* response) override;
  grpc::ServerUnaryReactor* ListObjects(grpc::CallbackServerContext* context,
                                        const mcos::v1::ListObjectsRequest* request,
                                        mcos::v1::ListObjectsResponse* response) override;
  grpc::Status DeleteContainer(grpc::ServerContext* context,
                               const mcos::v1::DeleteContainerRequest* request,
                               mcos::v1::DeleteContainerResponse* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* CreateObject(grpc::CallbackServerContext* context,
                                                          grpc::ByteBuffer* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* UpdateObject(grpc::CallbackServerContext* context,
                                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* StatObject(grpc::CallbackServerContext* context,
                                       const mcos::v1::StatObjectRequest* request,
                                       mcos::v1::ObjectInfo* response) override;
  // A small object this cluster holds in this process is sent with no thread waiting; anything
  // else is streamed by Download on a thread of its own (DownloadReactor).
  grpc::ServerWriteReactor<mcos::v1::DownloadObjectResponse>* DownloadObject(
      grpc::CallbackServerContext* context,
      const mcos::v1::DownloadObjectRequest* request) override;
  grpc::ServerUnaryReactor* DeleteObject(grpc::CallbackServerContext* context,
                                         const mcos::v1::DeleteObjectRequest* request,
                                         mcos::v1::DeleteObjectResponse* response) override;
  grpc::Status WatchObjects(grpc::ServerContext* context,
                            const mcos::v1::WatchObjectsRequest* request,
                            grpc::ServerWriter<mcos::v1::ObjectChange>* writer) override;

 private:
  class DownloadReactor;
  // A download of `key` (the caller's, checked) streamed into `writer`, each message waited for;
  // `read` is the read quorum's answer when it was asked already. `guard` is the call's watchdog
  // entry (touched as it progresses).
  grpc::Status Download(grpc::CallbackServerContext* context,
                        const mcos::v1::DownloadObjectRequest* request,
                        const mcos::v1::ObjectKey& key, common::StreamWatchdog::Stream& guard,
                        DownloadSink& writer, std::optional<Newest> read);
  // ListObjects' work, on a coordinator thread; `pages` keeps what the answer was built from
  // (freed after the answer is sent).
  grpc::Status List(grpc::CallbackServerContext* context,
                    const mcos::v1::ListObjectsRequest* request,
                    mcos::v1::ListObjectsResponse* response, std::shared_ptr<void>& pages);
  ServerApp& app_;
  common::ArenaMessages<mcos::v1::ListObjectsRequest, mcos::v1::ListObjectsResponse> list_messages_;
};

class ServerApp {
 public:
  explicit ServerApp(const ServerOptions& options);
  ~ServerApp();
  std::vector<grpc::Service*> services() { return {&user_service_, &cluster_service_}; }
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
  // Registers `own_endpoint` with the controller (retrying up to `timeout`), learns the cluster id
  // and the live resolvers and storage services, and starts the discovery loop.
  absl::Status Start(const std::string& own_endpoint, const std::string& controller_endpoint,
                     absl::Duration timeout);
  // Makes calls to services of this same process skip the network (mcos-cluster).
  void SetLocalRoute(common::LocalRoute route) {
    route_ = std::move(route);
    route_.auth = &auth_;
  }
  // Services of this cluster that run in this same process (mcos-cluster), called directly
  // instead of through gRPC: no hop through a sync server's threads per call. Each may be unset.
  struct Colocated {
    // The engine of the storage node served at the local route's address (not owned; it must
    // outlive the server): the coordinator and ClusterService use it as this cluster's replica.
    // Users' own uploads and reads still stream through StorageService.
    storage::Engine* storage = nullptr;
    // The resolver's Resolve.
    std::function<absl::StatusOr<mcos::v1::ResolveResponse>(const mcos::v1::ResolveRequest&)>
        resolve;
    // The controller's GetContainer(user, name).
    std::function<absl::StatusOr<mcos::v1::Container>(const std::string&, const std::string&)>
        get_container;
  };
  void SetColocated(Colocated colocated) { colocated_ = std::move(colocated); }
  void Stop();

 private:
  friend class UserGrpcService;
  friend class ClusterGrpcService;
  friend class PutReactor;
  struct Backends {
    std::shared_ptr<mcos::v1::ResolverService::Stub> resolver;
    std::shared_ptr<storage::StorageClient> storage;
    // The same storage service as a replica (the coordinator's view of it).
    std::shared_ptr<replication::Replica> local;
  };
  absl::Status Discover();
  // The current resolver and storage clients; UNAVAILABLE when none is live.
  absl::StatusOr<Backends> backends();
  // The same without asking the controller (never blocks): UNAVAILABLE until discovery found them.
  absl::StatusOr<Backends> CachedBackends();
  // The claims of the caller's bearer token.
  absl::StatusOr<mcos::v1::TokenClaims> Authenticate(const grpc::ServerContextBase& context);
  // The container (NOT_FOUND if missing).
  absl::StatusOr<mcos::v1::Container> GetContainer(const std::string& user,
                                                   const std::string& name);
  // The placement of one object; UNAVAILABLE if it needs clusters this server cannot reach.
  absl::StatusOr<mcos::v1::Placement> Place(const Backends& b, const mcos::v1::ObjectKey& key,
                                            const std::string& option);
  // The placement in a resolver's answer for one key; UNAVAILABLE if it needs clusters this
  // server cannot reach.
  absl::StatusOr<mcos::v1::Placement> CheckPlacement(const mcos::v1::ResolveResponse& resp) const;
  // Reads (stat, download) skip the container lookup: an object can only exist in an existing
  // container of the caller (containers are deleted only when empty, and keys carry the user).
  // When the object is missing, this says which of the two is.
  absl::Status NotFound(const mcos::v1::ObjectKey& key);
  mcos::v1::Version Stamp();
  // The user's view of a record; `holders` are the clusters that hold it (this one if null).
  mcos::v1::ObjectInfo ToInfo(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                              const std::vector<std::string>* holders = nullptr) const;
  // The same into `info` (a listing's entries, built in place).
  void FillInfo(absl::string_view container, std::string object,
                const mcos::v1::ObjectRecord& record, const std::vector<std::string>* holders,
                mcos::v1::ObjectInfo& info) const;

  // ---- federation ----
  // The refusal of a ClusterService caller without the federation's peer credential.
  absl::Status CheckPeer(const grpc::ServerContextBase& context);
  // Whether a placement names another cluster (then the coordinator's paths apply).
  bool Remote(const mcos::v1::Placement& placement) const;
  // Whether this cluster has peers (reads then ask the object's replica clusters).
  bool Federated();
  // This cluster's storage and the known peers' servers, by cluster name. When `placement` names a
  // cluster whose server is not known yet (just peered), looks again first (at most every 200 ms).
  ReplicaMap Replicas(const Backends& b, const mcos::v1::Placement* placement = nullptr);
  // The placement of `key` in its container's option, looked up for reads and listings.
  absl::StatusOr<mcos::v1::Placement> PlaceInContainer(const Backends& b,
                                                       const mcos::v1::ObjectKey& key);
  // In a federation, for a key placed at other clusters too: starts a read of its newest version
  // and of every holder (Coordinator::ReadAsync, kEveryHolder) answered through `done`, and
  // returns true. False, and `done` never called, when this cluster's copy alone answers.
  absl::StatusOr<bool> ReadFederated(const Backends& b, const mcos::v1::ObjectKey& key,
                                     std::function<void(absl::StatusOr<Newest>)> done);
  // Hands a replica's missed write to the controller's replication queue.
  void Enqueue(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
               const std::string& target, const std::string& reason);
  // Refreshes the peers' server endpoints from the controller.
  absl::Status DiscoverPeers();
  // The known peer clusters' names.
  std::vector<std::string> PeerClusters() ABSL_LOCKS_EXCLUDED(mu_);
  // The repair daemons' view: the sync sets under the current rings (asked of the controller;
  // `sets` is kept while `revision` is current), and a cluster's replica (null for a peer the
  // breaker keeps out).
  absl::StatusOr<std::vector<repair::SyncSet>> SyncSets(uint64_t& revision,
                                                        std::vector<repair::SyncSet>& sets);
  std::shared_ptr<replication::Replica> RepairReplica(const std::string& cluster);
  // The reaper's view: sync sets and the federation's clusters (`topology` is kept while
  // `revision` is current).
  absl::StatusOr<repair::TombstoneReaper::Topology> ReapTopology(
      uint64_t& revision, repair::TombstoneReaper::Topology& topology);
  // Starts the repair daemons once the cluster's name is known: the scrubber and tombstone
  // reaping; in a federation also anti-entropy and the replication queue's sender.
  void StartRepair();
  // Updates the repair metrics and sends the daemons' status to the controller
  // (AdminService.GetRepairStatus) when it changed or 10 s after the last. Called after every
  // pass of a daemon that reports.
  void ReportRepair();
  // Publishes an acknowledged write (`record`: the version, or its tombstone) as an object event;
  // `holders` acknowledged it (this cluster alone if null).
  void PublishChange(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                     const std::vector<std::string>* holders = nullptr);
  // This cluster's side of tombstone reaping (ClusterCheckTombstones, ClusterPurgeTombstones; the
  // reaper's calls for this cluster). INVALID_ARGUMENT for a bad key or version or over 1000.
  absl::StatusOr<mcos::v1::CheckTombstonesResponse> CheckTombstones(
      const mcos::v1::CheckTombstonesRequest& request, absl::Time deadline);
  absl::StatusOr<mcos::v1::PurgeTombstonesResponse> PurgeTombstones(
      const mcos::v1::PurgeTombstonesRequest& request, absl::Time deadline);
  // CheckTombstones at `cluster` (this one in-process, a peer through the breaker).
  absl::StatusOr<mcos::v1::CheckTombstonesResponse> CheckTombstonesAt(
      const std::string& cluster, const mcos::v1::CheckTombstonesRequest& request,
      absl::Time deadline);
  // A read found this cluster's copy of `record`'s version corrupt: the scrubber repairs it.
  void SuspectCorrupt(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record);

  ServerOptions options_;
  // This server's service credential for the cluster's internal services.
  common::ServiceAuth auth_;
  common::LocalRoute route_;
  Colocated colocated_;
  std::shared_ptr<grpc::Channel> controller_channel_;
  std::unique_ptr<mcos::v1::ControllerService::Stub> controller_;
  common::TokenSigner signer_;
  common::HybridLogicalClock hlc_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& bytes_in_;
  prometheus::Counter& bytes_out_;
  TransferLimiter uploads_;
  TransferLimiter downloads_;
  common::StreamWatchdog watchdog_;
  CredentialCache credentials_;
  UserGrpcService user_service_;
  ClusterGrpcService cluster_service_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<common::Registrar> registrar_;
  std::string cluster_id_;
  absl::Mutex mu_;
  std::string resolver_endpoint_ ABSL_GUARDED_BY(mu_);
  std::string storage_endpoint_ ABSL_GUARDED_BY(mu_);
  Backends backends_ ABSL_GUARDED_BY(mu_);
  // Set once the cluster's name is known (Start).
  std::shared_ptr<common::ServiceAuth> peer_auth_ ABSL_GUARDED_BY(mu_);
  // Per peer cluster: its server endpoint and replica.
  std::map<std::string, std::pair<std::string, std::shared_ptr<replication::Replica>>> peers_
      ABSL_GUARDED_BY(mu_);
  // Other clusters in the federation's table (some may have no known server yet).
  size_t other_clusters_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_peer_discovery_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Clusters placements named that discovery did not know: a new name is looked up at once, a
  // known unknown at most every 200 ms.
  std::set<std::string> unknown_peers_ ABSL_GUARDED_BY(mu_);
  absl::Mutex discovery_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Notification stop_;
  std::unique_ptr<common::Daemon> discovery_;  // of the cluster's services
  // Users' calls received (Authenticate counts them): anti-entropy's copies give way while it
  // moves.
  std::atomic<uint64_t> user_calls_{0};
  // Used by the anti-entropy daemon's thread only.
  uint64_t sync_revision_ = 0;
  std::vector<repair::SyncSet> sync_sets_;
  std::unique_ptr<repair::AntiEntropy> anti_entropy_;
  std::unique_ptr<common::Daemon> anti_entropy_daemon_;
  // The cluster's event bus (null without --nats); set in Start.
  std::unique_ptr<events::EventBus> events_;
  std::unique_ptr<repair::Scrubber> scrubber_;
  std::unique_ptr<common::Daemon> scrubber_daemon_;
  std::unique_ptr<repair::TombstoneReaper> reaper_;
  std::unique_ptr<common::Daemon> reaper_daemon_;
  std::unique_ptr<repair::Releaser> releaser_;
  std::unique_ptr<common::Daemon> releaser_daemon_;
  std::unique_ptr<repair::QueueSender> queue_sender_;
  std::unique_ptr<common::Daemon> queue_daemon_;
  // Repair metrics (per peer cluster for anti-entropy), set from the daemons' totals.
  absl::Mutex report_mu_;
  bool report_failing_ ABSL_GUARDED_BY(report_mu_) = false;
  // The last report the controller took, and when.
  std::string last_report_ ABSL_GUARDED_BY(report_mu_);
  absl::Time last_report_sent_ ABSL_GUARDED_BY(report_mu_) = absl::InfinitePast();
  prometheus::Family<prometheus::Gauge>& repair_records_;
  prometheus::Family<prometheus::Gauge>& repair_bytes_;
  prometheus::Family<prometheus::Gauge>& out_of_sync_;
  prometheus::Family<prometheus::Gauge>& last_full_pass_;
  prometheus::Family<prometheus::Gauge>& moves_;
  // Options whose move metrics are set.
  std::set<std::string> moving_options_ ABSL_GUARDED_BY(report_mu_);
  prometheus::Family<prometheus::Gauge>& scrub_;
  prometheus::Family<prometheus::Gauge>& tombstones_;
  prometheus::Family<prometheus::Gauge>& queue_sent_;
};

}  // namespace mcos::server
