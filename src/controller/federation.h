// Peering with the other clusters of a federation (shared/API.md, Federations): introductions
// (PeerControllerService.Hello), the peer list (the replicated `clusters` table), each peer's
// health as this cluster sees it, and the replication of federation metadata. A change made here
// is pushed to every peer at once, and every peer is also pulled from (after the last revision
// seen) every sync period, so a cluster that missed a push converges anyway; rows merge by last
// writer wins (MetadataTable::Apply), so order and repetition do not matter.
//
// One worker thread per peer: a frozen peer delays only its own sync. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/service_auth.h"
#include "controller/controller.h"
#include "mcos/v1/peer.grpc.pb.h"

namespace mcos::controller {

struct FederationOptions {
  // Names the federation (ClusterKeys::federation_id); empty: this cluster has no federation
  // secret and cannot peer.
  std::string federation_id;
  std::string region;
  // When set, peers are told to call this cluster's controller and servers at this one address
  // (ControllerOptions.advertise) instead of the controller's endpoint and the registered servers'.
  std::string advertise;
  // How often each peer is checked and pulled from.
  absl::Duration sync_period = absl::Milliseconds(500);
  // Deadline of one call to a peer.
  absl::Duration call_timeout = absl::Seconds(2);
  // A peer is shown down after this many failed syncs in a row.
  int down_after_misses = 3;
};

class Federation {
 public:
  // `peer_auth` (the federation's peer credential) is null without a federation secret; it and
  // `controller` must outlive this.
  Federation(Controller& controller, common::ServiceAuth* peer_auth, FederationOptions options);
  ~Federation();
  Federation(const Federation&) = delete;
  Federation& operator=(const Federation&) = delete;

  bool enabled() const { return peer_auth_ != nullptr; }
  const std::string& federation_id() const { return options_.federation_id; }

  // This cluster's controller address as peers reach it; stores this cluster's row. Before Start.
  absl::Status SetSelf(const std::string& controller_endpoint);
  // Starts the peer workers (and keeps their set in step with the clusters table).
  void Start();
  void Stop();
  // Wakes every worker to push a local change now (Controller's change listener).
  void Changed();
  // Called (on a peer's worker thread) with (peer cluster, its new state) whenever a peer is seen
  // up or down. Set before Start.
  void set_on_peer_change(std::function<void(const std::string&, mcos::v1::ServiceState)> f) {
    on_peer_change_ = std::move(f);
  }

  // ---- admin ----
  // Peers this cluster with the one whose controller answers at `endpoint`, and returns that
  // cluster. FAILED_PRECONDITION (nothing recorded) without a federation secret here, when the
  // other cluster has another secret or none, or has this cluster's name; UNAVAILABLE when it does
  // not answer.
  absl::StatusOr<mcos::v1::ClusterInfo> AddCluster(const std::string& endpoint);
  // Every cluster of the federation, this one first, with state, last contact and metadata lag
  // as this cluster sees them.
  absl::StatusOr<std::vector<mcos::v1::ClusterInfo>> Clusters();
  // One cluster with its services (a peer's as it reports them now). NOT_FOUND if unknown.
  absl::StatusOr<mcos::v1::ClusterStatus> Status(const std::string& name);
  // Controller::RemoveCluster; the peer's worker stops.
  absl::Status RemoveCluster(const std::string& name);
  // Controller::DropCluster (a cluster gone for good); the peer's worker stops.
  absl::StatusOr<std::vector<std::string>> DropCluster(const std::string& name);

  // ---- PeerControllerService (the caller's cluster name from its peer credential) ----
  absl::StatusOr<mcos::v1::HelloResponse> Hello(const std::string& caller,
                                                const mcos::v1::HelloRequest& request);
  // FAILED_PRECONDITION unless `caller` is a current member (a removed cluster is refused).
  absl::Status CheckMember(const std::string& caller);
  absl::StatusOr<mcos::v1::PeerHealthResponse> Health(const mcos::v1::PeerHealthRequest& request);
  // This cluster's row as peers see it.
  mcos::v1::ClusterInfo Self();

 private:
  struct Peer;
  // Makes the workers match the clusters table.
  void Reconcile();
  void RunPeer(Peer* peer);
  // One round with a peer: health, pull what it has that this cluster has not, push what changed
  // here. OK when the peer answered everything.
  absl::Status SyncPeer(Peer& peer);
  absl::Status Pull(Peer& peer, uint64_t peer_revision);
  absl::Status Push(Peer& peer);
  std::shared_ptr<grpc::Channel> Connect(const std::string& endpoint);
  // "it stores N object(s), B bytes, of option(s) ...", as cluster `name` counts it (or why that
  // is unknown; empty if `name` is not in the federation).
  std::string StoredAt(const std::string& name, const std::vector<std::string>& options);
  // What a peer's storage holds of `options` (empty if its storage does not answer).
  absl::StatusOr<std::vector<mcos::v1::OptionUsage>> UsageAt(
      mcos::v1::PeerControllerService::Stub& stub, const std::vector<std::string>& options);

  Controller& controller_;
  common::ServiceAuth* const peer_auth_;
  const FederationOptions options_;
  absl::Notification stop_;
  // Keeps this cluster's row and the peers' workers in step with the metadata.
  std::unique_ptr<common::Daemon> reconciler_;
  absl::Mutex mu_;
  std::string self_endpoint_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&, mcos::v1::ServiceState)> on_peer_change_;
};

}  // namespace mcos::controller
