#include "controller/federation.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace mcos::controller {
namespace {

using common::FromGrpcStatus;

constexpr uint32_t kBatch = 1000;

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

struct Federation::Peer {
  std::string name;
  std::thread thread;
  absl::Notification stop;
  absl::Mutex mu;
  absl::CondVar wake;
  bool woken ABSL_GUARDED_BY(mu) = true;
  std::string endpoint ABSL_GUARDED_BY(mu);
  // What the admin sees.
  mcos::v1::ServiceState state ABSL_GUARDED_BY(mu) = mcos::v1::SERVICE_STATE_UNSPECIFIED;
  int misses ABSL_GUARDED_BY(mu) = 0;
  absl::Time last_seen ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::string last_error ABSL_GUARDED_BY(mu);
  uint64_t lag ABSL_GUARDED_BY(mu) = 0;
  // The worker's own (no lock): the channel, and how far each direction got.
  std::string connected_endpoint;
  std::unique_ptr<mcos::v1::PeerControllerService::Stub> stub;
  uint64_t pulled = 0;  // the peer's revision this cluster has applied
  uint64_t pushed = 0;  // this cluster's revision the peer has been sent
};

Federation::Federation(Controller& controller, common::ServiceAuth* peer_auth,
                       FederationOptions options)
    : controller_(controller), peer_auth_(peer_auth), options_(std::move(options)) {}

Federation::~Federation() { Stop(); }

std::shared_ptr<grpc::Channel> Federation::Connect(const std::string& endpoint) {
  return common::ConnectInternal(endpoint, *peer_auth_);
}

mcos::v1::ClusterInfo Federation::Self() {
  mcos::v1::ClusterInfo self;
  self.set_id(controller_.cluster_id());
  self.set_region(options_.region);
  if (!options_.advertise.empty()) {
    self.set_controller_endpoint(options_.advertise);
    self.add_server_endpoints(options_.advertise);
    return self;
  }
  {
    absl::MutexLock lock(&mu_);
    self.set_controller_endpoint(self_endpoint_);
  }
  std::set<std::string> servers;
  if (auto s = controller_.registry().ListServices(mcos::v1::SERVICE_KIND_SERVER, false); s.ok()) {
    for (const auto& service : *s) servers.insert(service.endpoint());
  }
  for (const auto& e : servers) self.add_server_endpoints(e);
  return self;
}

absl::Status Federation::SetSelf(const std::string& controller_endpoint) {
  {
    absl::MutexLock lock(&mu_);
    self_endpoint_ = controller_endpoint;
  }
  return controller_.PutCluster(Self());
}

void Federation::Start() {
  if (!enabled()) return;
  Reconcile();
  reconciler_ =
      std::make_unique<common::Daemon>("federation", options_.sync_period, [this](common::Pacer&) {
        // Servers registered since: they belong in this cluster's row.
        absl::Status s = controller_.PutCluster(Self());
        Reconcile();
        if (!s.ok() && !absl::IsFailedPrecondition(s)) {
          return absl::Status(s.code(),
                              absl::StrCat("cannot update this cluster's row: ", s.message()));
        }
        return absl::OkStatus();
      });
  reconciler_->Start();
}

void Federation::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (reconciler_ != nullptr) reconciler_->Stop();
  std::map<std::string, std::unique_ptr<Peer>> peers;
  {
    absl::MutexLock lock(&mu_);
    peers.swap(peers_);
  }
  for (auto& [name, peer] : peers) {
    peer->stop.Notify();
    {
      absl::MutexLock lock(&peer->mu);
      peer->wake.Signal();
    }
    if (peer->thread.joinable()) peer->thread.join();
  }
}

void Federation::Changed() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, peer] : peers_) {
    absl::MutexLock peer_lock(&peer->mu);
    peer->woken = true;
    peer->wake.Signal();
  }
}

void Federation::Reconcile() {
  auto clusters = controller_.ListClusters();
  if (!clusters.ok()) {
    common::LogWarning("federation: cannot list the clusters: ", clusters.status().message());
    return;
  }
  std::vector<std::unique_ptr<Peer>> gone;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return;
    std::set<std::string> names;
    for (const auto& c : *clusters) {
      if (c.id() == controller_.cluster_id()) continue;
      names.insert(c.id());
      auto& peer = peers_[c.id()];
      if (peer == nullptr) {
        peer = std::make_unique<Peer>();
        peer->name = c.id();
        {
          absl::MutexLock peer_lock(&peer->mu);
          peer->endpoint = c.controller_endpoint();
        }
        Peer* p = peer.get();
        peer->thread = std::thread([this, p] { RunPeer(p); });
      } else {
        absl::MutexLock peer_lock(&peer->mu);
        peer->endpoint = c.controller_endpoint();
      }
    }
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (names.count(it->first) == 0) {
        gone.push_back(std::move(it->second));
        it = peers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& peer : gone) {
    peer->stop.Notify();
    {
      absl::MutexLock lock(&peer->mu);
      peer->wake.Signal();
    }
    peer->thread.join();
    common::LogInfo("federation: stopped syncing with removed cluster '", peer->name, "'");
  }
}

void Federation::RunPeer(Peer* peer) {
  while (!peer->stop.HasBeenNotified()) {
    const absl::Status s = SyncPeer(*peer);
    {
      absl::MutexLock lock(&peer->mu);
      const mcos::v1::ServiceState before = peer->state;
      if (s.ok()) {
        peer->misses = 0;
        peer->state = mcos::v1::SERVICE_STATE_UP;
        peer->last_seen = absl::Now();
        peer->last_error.clear();
      } else {
        ++peer->misses;
        peer->last_error = std::string(s.message());
        if (peer->misses >= options_.down_after_misses) peer->state = mcos::v1::SERVICE_STATE_DOWN;
      }
      if (before != peer->state && on_peer_change_) on_peer_change_(peer->name, peer->state);
      if (before != peer->state) {
        if (peer->state == mcos::v1::SERVICE_STATE_UP) {
          common::LogInfo("federation: cluster '", peer->name, "' is up");
        } else if (peer->state == mcos::v1::SERVICE_STATE_DOWN) {
          common::LogWarning("federation: cluster '", peer->name, "' is down (", peer->misses,
                             " failed syncs): ", s.message());
        }
      }
      peer->woken = false;
      // A peer that just failed is asked again soon: a cluster that died is shown down within
      // about down_after_misses x 150 ms (plus the calls' time), not that many sync periods.
      const absl::Duration wait = !s.ok() && peer->misses < options_.down_after_misses
                                      ? std::min(options_.sync_period, absl::Milliseconds(150))
                                      : options_.sync_period;
      const absl::Time until = absl::Now() + wait;
      while (!peer->woken && !peer->stop.HasBeenNotified() && absl::Now() < until) {
        peer->wake.WaitWithDeadline(&peer->mu, until);
      }
    }
  }
}

absl::Status Federation::SyncPeer(Peer& peer) {
  std::string endpoint;
  {
    absl::MutexLock lock(&peer.mu);
    endpoint = peer.endpoint;
  }
  if (endpoint.empty()) {
    return absl::FailedPreconditionError("its controller address is not known yet");
  }
  if (peer.stub == nullptr || endpoint != peer.connected_endpoint) {
    peer.stub = mcos::v1::PeerControllerService::NewStub(Connect(endpoint));
    peer.connected_endpoint = endpoint;
  }
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  mcos::v1::PeerHealthRequest req;
  req.set_cluster(controller_.cluster_id());
  mcos::v1::PeerHealthResponse health;
  if (grpc::Status s = peer.stub->PeerHealth(&ctx, req, &health); !s.ok()) {
    return FromGrpcStatus(s);
  }
  if (health.cluster().id() != peer.name) {
    return absl::FailedPreconditionError(absl::StrCat("the controller at ", endpoint,
                                                      " is now cluster '", health.cluster().id(),
                                                      "', not '", peer.name, "'"));
  }
  // A peer whose database is younger than what was pulled (restored, re-created): start over.
  if (health.metadata_revision() < peer.pulled) peer.pulled = 0;
  if (health.metadata_revision() > peer.pulled) {
    MCOS_RETURN_IF_ERROR(Pull(peer, health.metadata_revision()));
  }
  {
    absl::MutexLock lock(&peer.mu);
    peer.lag =
        health.metadata_revision() > peer.pulled ? health.metadata_revision() - peer.pulled : 0;
  }
  if (controller_.metadata().revision() > peer.pushed) MCOS_RETURN_IF_ERROR(Push(peer));
  return absl::OkStatus();
}

absl::Status Federation::Pull(Peer& peer, uint64_t peer_revision) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout * 5);
  mcos::v1::PullMetadataRequest req;
  req.set_cluster(controller_.cluster_id());
  req.set_after_revision(peer.pulled);
  auto reader = peer.stub->PullMetadata(&ctx, req);
  std::vector<mcos::v1::MetadataRow> batch;
  uint64_t last = peer.pulled;
  auto apply = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    MCOS_RETURN_IF_ERROR(controller_.metadata().Apply(batch).status());
    peer.pulled = last;
    batch.clear();
    return absl::OkStatus();
  };
  mcos::v1::MetadataRow row;
  absl::Status applied;
  while (applied.ok() && reader->Read(&row)) {
    last = std::max(last, row.revision());
    batch.push_back(std::move(row));
    if (batch.size() >= kBatch) applied = apply();
  }
  if (!applied.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();
    return {applied.code(),
            absl::StrCat("rows from cluster '", peer.name, "' refused: ", applied.message())};
  }
  if (grpc::Status s = reader->Finish(); !s.ok()) return FromGrpcStatus(s);
  MCOS_RETURN_IF_ERROR(apply());
  // Everything up to what it said it had is here, even if its last rows were superseded.
  peer.pulled = std::max(peer.pulled, peer_revision);
  return absl::OkStatus();
}

absl::Status Federation::Push(Peer& peer) {
  while (true) {
    MCOS_ASSIGN_OR_RETURN(auto rows, controller_.metadata().RowsAfter(peer.pushed, kBatch));
    if (rows.empty()) return absl::OkStatus();
    const uint64_t last = rows.back().revision();
    mcos::v1::PushMetadataRequest req;
    req.set_cluster(controller_.cluster_id());
    for (auto& r : rows) *req.add_rows() = std::move(r);
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.call_timeout);
    mcos::v1::PushMetadataResponse resp;
    if (grpc::Status s = peer.stub->PushMetadata(&ctx, req, &resp); !s.ok()) {
      return FromGrpcStatus(s);
    }
    peer.pushed = last;
  }
}

// ---- admin ---------------------------------------------------------------------------------

absl::StatusOr<mcos::v1::ClusterInfo> Federation::AddCluster(const std::string& endpoint) {
  if (!enabled()) {
    return absl::FailedPreconditionError(
        "this cluster has no federation secret: restart it with --federation-secret-file FILE "
        "(the same file at every cluster of the federation)");
  }
  if (endpoint.empty() || endpoint.size() > 255 || !absl::StrContains(endpoint, ':')) {
    return absl::InvalidArgumentError(
        "the endpoint must be the other cluster's controller address, HOST:PORT");
  }
  auto stub = mcos::v1::PeerControllerService::NewStub(Connect(endpoint));
  // What a failed call to it means for the admin.
  auto explain = [&](const grpc::Status& s) {
    const absl::Status st = FromGrpcStatus(s);
    if (absl::IsUnauthenticated(st) || absl::IsPermissionDenied(st)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the cluster at ", endpoint, " refused this cluster's peer credential (", st.message(),
          "): it has another federation secret or none; nothing was recorded"));
    }
    if (absl::IsUnimplemented(st)) {
      return absl::FailedPreconditionError(
          absl::StrCat(endpoint,
                       " does not serve PeerControllerService (or is an older MCOS): is it an MCOS "
                       "controller?"));
    }
    return absl::Status(st.code(), absl::StrCat("cluster at ", endpoint, ": ", st.message(),
                                                "; nothing was recorded"));
  };
  // Who it is and what it holds, asked without recording anything on either side.
  mcos::v1::ClusterInfo other;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.call_timeout);
    mcos::v1::PeerHealthRequest req;
    req.set_cluster(controller_.cluster_id());
    mcos::v1::PeerHealthResponse health;
    if (grpc::Status s = stub->PeerHealth(&ctx, req, &health); !s.ok()) return explain(s);
    other = health.cluster();
  }
  if (other.id() == controller_.cluster_id()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the cluster at ", endpoint, " is named '", other.id(),
        "' like this one: every cluster needs its own name (--name); nothing was recorded"));
  }
  if (other.controller_endpoint().empty()) other.set_controller_endpoint(endpoint);
  std::vector<mcos::v1::MetadataRow> rows;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.call_timeout * 5);
    mcos::v1::DescribeForJoinRequest req;
    req.set_cluster(controller_.cluster_id());
    auto reader = stub->DescribeForJoin(&ctx, req);
    mcos::v1::MetadataRow row;
    while (reader->Read(&row)) rows.push_back(std::move(row));
    if (grpc::Status s = reader->Finish(); !s.ok()) return explain(s);
  }
  other.clear_state();
  // What it stores of the options its containers use: the moves' bytes to copy (status ETA).
  std::set<std::string> used;
  for (const auto& row : rows) {
    mcos::v1::Container c;
    if (row.table() == kContainersTable && !row.tombstone() && c.ParseFromString(row.value())) {
      used.insert(c.option());
    }
  }
  std::map<std::string, uint64_t> stored;
  if (!used.empty()) {
    auto usage = UsageAt(*stub, {used.begin(), used.end()});
    if (usage.ok()) {
      for (const auto& u : *usage) stored[u.option()] = u.bytes_used();
    }
  }
  MCOS_ASSIGN_OR_RETURN(const Controller::Admission admission,
                        controller_.AdmitCluster(other, rows, stored));
  // The introduction: from here on each side records the other.
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout * 5);
  mcos::v1::HelloRequest req;
  *req.mutable_cluster() = Self();
  req.set_federation_id(options_.federation_id);
  mcos::v1::HelloResponse resp;
  absl::Status introduced;
  if (grpc::Status s = stub->Hello(&ctx, req, &resp); !s.ok()) {
    introduced = explain(s);
  } else if (resp.federation_id() != options_.federation_id) {
    introduced = absl::FailedPreconditionError(absl::StrCat(
        "the cluster at ", endpoint, " belongs to another federation; nothing was recorded"));
  } else if (resp.cluster().id() != other.id()) {
    introduced = absl::AbortedError(absl::StrCat("the cluster at ", endpoint, " is now '",
                                                 resp.cluster().id(), "', not '", other.id(),
                                                 "'; nothing was recorded: add it again"));
  }
  if (!introduced.ok()) {
    if (absl::Status undone = controller_.UndoAdmission(other.id(), admission); !undone.ok()) {
      common::LogWarning("federation: cannot undo the admission of '", other.id(),
                         "': ", undone.message());
    }
    return introduced;
  }
  if (admission.member_already) MCOS_RETURN_IF_ERROR(controller_.PutCluster(other));
  common::LogInfo("federation: peered with cluster '", other.id(), "' at ", endpoint);
  Reconcile();
  return other;
}

absl::StatusOr<std::vector<mcos::v1::ClusterInfo>> Federation::Clusters() {
  MCOS_ASSIGN_OR_RETURN(auto rows, controller_.ListClusters());
  std::vector<mcos::v1::ClusterInfo> out;
  mcos::v1::ClusterInfo self = Self();
  self.set_state(mcos::v1::SERVICE_STATE_UP);
  common::ToProtoTimestamp(absl::Now(), self.mutable_last_seen());
  out.push_back(std::move(self));
  absl::MutexLock lock(&mu_);
  for (auto& c : rows) {
    if (c.id() == controller_.cluster_id()) continue;
    auto it = peers_.find(c.id());
    if (it != peers_.end()) {
      Peer& p = *it->second;
      absl::MutexLock peer_lock(&p.mu);
      c.set_state(p.state);
      if (p.last_seen != absl::InfinitePast()) {
        common::ToProtoTimestamp(p.last_seen, c.mutable_last_seen());
      }
      c.set_metadata_lag(p.lag);
      c.set_last_error(p.last_error);
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<mcos::v1::ClusterStatus> Federation::Status(const std::string& name) {
  MCOS_ASSIGN_OR_RETURN(auto clusters, Clusters());
  auto it = std::find_if(clusters.begin(), clusters.end(),
                         [&](const mcos::v1::ClusterInfo& c) { return c.id() == name; });
  if (!name.empty() && it == clusters.end()) {
    return absl::NotFoundError(absl::StrCat("cluster '", name, "' is not in the federation"));
  }
  mcos::v1::ClusterStatus status;
  if (name.empty() || name == controller_.cluster_id()) {
    *status.mutable_cluster() = clusters.front();
    MCOS_ASSIGN_OR_RETURN(auto services, controller_.registry().ListServices(
                                             mcos::v1::SERVICE_KIND_UNSPECIFIED, false));
    for (auto& s : services) *status.add_services() = std::move(s);
    return status;
  }
  *status.mutable_cluster() = *it;
  auto stub = mcos::v1::PeerControllerService::NewStub(Connect(it->controller_endpoint()));
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  mcos::v1::PeerHealthRequest req;
  req.set_cluster(controller_.cluster_id());
  mcos::v1::PeerHealthResponse health;
  if (grpc::Status s = stub->PeerHealth(&ctx, req, &health); s.ok()) {
    for (auto& svc : *health.mutable_services()) *status.add_services() = std::move(svc);
  } else {
    status.mutable_cluster()->set_last_error(s.error_message());
  }
  return status;
}

absl::StatusOr<std::vector<mcos::v1::OptionUsage>> Federation::UsageAt(
    mcos::v1::PeerControllerService::Stub& stub, const std::vector<std::string>& options) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  mcos::v1::PeerHealthRequest req;
  req.set_cluster(controller_.cluster_id());
  for (const auto& o : options) req.add_usage_of(o);
  mcos::v1::PeerHealthResponse health;
  if (grpc::Status s = stub.PeerHealth(&ctx, req, &health); !s.ok()) {
    return common::FromGrpcStatus(s);
  }
  return std::vector<mcos::v1::OptionUsage>(health.usage().begin(), health.usage().end());
}

std::string Federation::StoredAt(const std::string& name, const std::vector<std::string>& options) {
  auto clusters = Clusters();
  if (!clusters.ok()) return "";
  auto it = std::find_if(clusters->begin(), clusters->end(),
                         [&](const mcos::v1::ClusterInfo& c) { return c.id() == name; });
  if (it == clusters->end()) return "";
  auto stub = mcos::v1::PeerControllerService::NewStub(Connect(it->controller_endpoint()));
  auto usage = UsageAt(*stub, options);
  if (!usage.ok()) {
    return absl::StrCat("what it stores is unknown: it does not answer (", usage.status().message(),
                        ")");
  }
  if (usage->empty()) return "what it stores is unknown: its storage does not answer";
  uint64_t objects = 0;
  uint64_t bytes = 0;
  for (const auto& u : *usage) {
    objects += u.object_count();
    bytes += u.bytes_used();
  }
  return absl::StrCat("it stores ", objects, " object(s), ", common::HumanBytes(bytes),
                      " bytes, of option(s) ", absl::StrJoin(options, ", "));
}

absl::Status Federation::RemoveCluster(const std::string& name) {
  MCOS_ASSIGN_OR_RETURN(const Controller::Holdings holdings, controller_.HoldingsOf(name));
  // Asked of the cluster outside the controller's lock; the removal checks again under it.
  const std::string stored = holdings.options.empty() ? "" : StoredAt(name, holdings.options);
  MCOS_RETURN_IF_ERROR(controller_.RemoveCluster(name, stored));
  Reconcile();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Federation::DropCluster(const std::string& name) {
  MCOS_ASSIGN_OR_RETURN(auto changes, controller_.DropCluster(name));
  Reconcile();
  return changes;
}

// ---- PeerControllerService -------------------------------------------------------------------

absl::StatusOr<mcos::v1::HelloResponse> Federation::Hello(const std::string& caller,
                                                          const mcos::v1::HelloRequest& request) {
  if (request.federation_id() != options_.federation_id) {
    return absl::FailedPreconditionError("the caller belongs to another federation");
  }
  const mcos::v1::ClusterInfo& other = request.cluster();
  if (other.id() != caller) {
    return absl::PermissionDeniedError(absl::StrCat("the introduction names cluster '", other.id(),
                                                    "' but its credential is cluster '", caller,
                                                    "'s"));
  }
  if (other.id() == controller_.cluster_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this cluster is named '", other.id(),
                     "' too: every cluster needs its own name (--name); nothing was recorded"));
  }
  if (other.controller_endpoint().empty() || other.controller_endpoint().size() > 255) {
    return absl::InvalidArgumentError("the introduction carries no controller address");
  }
  MCOS_RETURN_IF_ERROR(controller_.PutCluster(other));
  common::LogInfo("federation: cluster '", other.id(), "' at ", other.controller_endpoint(),
                  " introduced itself");
  mcos::v1::HelloResponse response;
  *response.mutable_cluster() = Self();
  response.set_federation_id(options_.federation_id);
  MCOS_ASSIGN_OR_RETURN(auto known, controller_.ListClusters());
  for (auto& c : known) *response.add_known_clusters() = std::move(c);
  Reconcile();
  return response;
}

absl::Status Federation::CheckMember(const std::string& caller) {
  MCOS_ASSIGN_OR_RETURN(auto clusters, controller_.ListClusters());
  for (const auto& c : clusters) {
    if (c.id() == caller) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cluster '", caller,
                   "' is not a member of this federation (never added, or removed): add it with "
                   "mcos admin cluster add"));
}

absl::StatusOr<mcos::v1::PeerHealthResponse> Federation::Health(
    const mcos::v1::PeerHealthRequest& request) {
  mcos::v1::PeerHealthResponse response;
  if (request.usage_of_size() > 1000) {
    return absl::InvalidArgumentError("at most 1000 options per usage request");
  }
  for (const auto& option : request.usage_of()) {
    auto usage = controller_.StoredUsage(option);
    if (!usage.ok()) {
      common::LogWarning("cannot count what this cluster stores of option '", option,
                         "': ", usage.status().message());
      response.clear_usage();
      break;
    }
    *response.add_usage() = std::move(*usage);
  }
  *response.mutable_cluster() = Self();
  response.mutable_cluster()->set_state(mcos::v1::SERVICE_STATE_UP);
  MCOS_ASSIGN_OR_RETURN(auto services, controller_.registry().ListServices(
                                           mcos::v1::SERVICE_KIND_UNSPECIFIED, false));
  for (auto& s : services) *response.add_services() = std::move(s);
  response.set_metadata_revision(controller_.metadata().revision());
  common::ToProtoTimestamp(absl::Now(), response.mutable_now());
  return response;
}

}  // namespace mcos::controller
