#include "server/server_app.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "events/nats_config.h"
#include "events/nats_event_bus.h"
#include "mcos/v1/events.pb.h"
#include "server/put_reactor.h"

namespace mcos::server {
namespace {

using common::FromGrpcStatus;
using common::ToGrpcStatus;

// The JetStream stream of the object events at every cluster (docs/api.md, "Events for
// operators").
constexpr char kObjectEventStream[] = "MCOS_OBJECTS";

void SetDeadline(grpc::ClientContext& ctx, absl::Duration d = absl::Seconds(30)) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + d));
}

mcos::v1::ObjectKey MakeKey(const std::string& user, const std::string& container,
                            const std::string& object) {
  mcos::v1::ObjectKey k;
  k.set_user(user);
  k.set_container(container);
  k.set_object(object);
  return k;
}

// The clusters a container's listing merges: the ring's members (its replica set when the
// resolver did not name them).
std::vector<std::string> RingMembers(const mcos::v1::Placement& p) {
  const auto& names = p.ring_members().empty() ? p.replicas() : p.ring_members();
  return {names.begin(), names.end()};
}

mcos::v1::ContainerInfo ToContainerInfo(const mcos::v1::Container& c) {
  mcos::v1::ContainerInfo info;
  info.set_name(c.name());
  info.set_option(c.option());
  *info.mutable_created() = c.created();
  return info;
}

}  // namespace

absl::Status ObjectNotFound(const mcos::v1::ObjectKey& k) {
  return absl::NotFoundError(
      absl::StrCat("object '", k.object(), "' not found in container '", k.container(), "'"));
}

absl::Status ValidateObjectRef(absl::string_view container, absl::string_view object) {
  MCOS_RETURN_IF_ERROR(common::ValidateContainerName(container));
  return common::ValidateObjectName(object);
}

// ---- ServerApp ------------------------------------------------------------------------------

ServerApp::ServerApp(const ServerOptions& options)
    : options_(options),
      auth_(options.token_key, options.id, options.user_token_key),
      signer_(options.user_token_key.empty() ? options.token_key : options.user_token_key),
      hlc_(common::SystemClock::Get()),
      registry_(options.registry ? options.registry : std::make_shared<prometheus::Registry>()),
      bytes_in_(prometheus::BuildCounter()
                    .Name("mcos_server_bytes_received_total")
                    .Help("Object bytes received from users (uploads)")
                    .Register(*registry_)
                    .Add({})),
      bytes_out_(prometheus::BuildCounter()
                     .Name("mcos_server_bytes_sent_total")
                     .Help("Object bytes sent to users (downloads)")
                     .Register(*registry_)
                     .Add({})),
      uploads_("uploads", options.max_uploads, options.max_uploads_per_user),
      downloads_("downloads", options.max_downloads, options.max_downloads_per_user),
      watchdog_(options.stream_idle_timeout),
      credentials_(absl::StrCat(options.id, "@", common::RandomHex(4))),
      user_service_(*this),
      cluster_service_(*this, *registry_),
      repair_records_(prometheus::BuildGauge()
                          .Name("mcos_anti_entropy_records_copied")
                          .Help("Records anti-entropy copied here from a peer cluster since start")
                          .Register(*registry_)),
      repair_bytes_(prometheus::BuildGauge()
                        .Name("mcos_anti_entropy_bytes_copied")
                        .Help("Object bytes anti-entropy copied here from a peer since start")
                        .Register(*registry_)),
      out_of_sync_(prometheus::BuildGauge()
                       .Name("mcos_anti_entropy_partitions_out_of_sync")
                       .Help("Partitions that differed from the peer's at the last pass")
                       .Register(*registry_)),
      last_full_pass_(prometheus::BuildGauge()
                          .Name("mcos_anti_entropy_last_full_pass_seconds")
                          .Help("Unix time of the last pass that compared every partition shared "
                                "with the peer")
                          .Register(*registry_)),
      moves_(prometheus::BuildGauge()
                 .Name("mcos_rebalance")
                 .Help("Per option whose data moves (docs/placement.md, Moving data), by what: "
                       "partitions (this cluster holds under the current layout), "
                       "former_layouts, settled, synced (of them, as this server last reported), "
                       "records_copied and bytes_copied (from former holders since start); "
                       "option=\"\" what=released: copies of partitions held elsewhere dropped "
                       "since start")
                 .Register(*registry_)),
      scrub_(prometheus::BuildGauge()
                 .Name("mcos_scrubber")
                 .Help("The scrubber's counts since start, by what: objects_checked, "
                       "bytes_checked, corrupt_found, repaired, unrepaired, sweeps")
                 .Register(*registry_)),
      tombstones_(prometheus::BuildGauge()
                      .Name("mcos_tombstones")
                      .Help("Tombstone reaping, by what: reaped (since start), waiting (old "
                            "enough, kept at the last pass for a cluster that had not confirmed)")
                      .Register(*registry_)),
      queue_sent_(prometheus::BuildGauge()
                      .Name("mcos_replication_queue_sent")
                      .Help("This server's sender of the replication queue since start, by "
                            "what: delivered, dropped (nothing left to send), failures")
                      .Register(*registry_)) {
  CoordinatorOptions coordinator;
  coordinator.replica_timeout = options.replica_timeout;
  coordinator_ = std::make_unique<Coordinator>(
      coordinator,
      [this](const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
             const std::string& target,
             const std::string& reason) { Enqueue(key, record, target, reason); },
      hlc_);
  auth_.set_channel_credentials(common::MakeChannelCredentials(options.tls));
  route_.auth = &auth_;
  watchdog_.Start();
}

ServerApp::~ServerApp() { Stop(); }

absl::Status ServerApp::Start(const std::string& own_endpoint,
                              const std::string& controller_endpoint, absl::Duration timeout) {
  controller_channel_ = route_.Connect(controller_endpoint);
  controller_ = mcos::v1::ControllerService::NewStub(controller_channel_);
  // Tokens are checked against the users' current credentials from the first call on.
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status loaded = credentials_.Start(controller_.get());
  while (!loaded.ok() && absl::Now() < deadline) {
    if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) break;
    loaded = credentials_.Start(controller_.get());
  }
  if (!loaded.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot load the users from the controller at ",
                                               controller_endpoint, ": ", loaded.message()));
  }
  registrar_ = std::make_unique<common::Registrar>(
      controller_channel_, mcos::v1::SERVICE_KIND_SERVER, own_endpoint, options_.id);
  MCOS_ASSIGN_OR_RETURN(auto registered, registrar_->RegisterBlocking(deadline - absl::Now()));
  cluster_id_ = registered.cluster_id();
  if (!options_.peer_key.empty()) {
    auto peer = std::make_shared<common::ServiceAuth>(options_.peer_key, cluster_id_,
                                                      options_.user_token_key,
                                                      common::CredentialScope::kFederation);
    peer->set_channel_credentials(auth_.channel_credentials());
    absl::MutexLock lock(&mu_);
    peer_auth_ = std::move(peer);
  }
  if (!options_.nats_url.empty()) {
    events::NatsOptions nats;
    nats.url = options_.nats_url;
    const events::NatsCredentials login = events::ClientCredentials(options_.token_key);
    nats.user = login.user;
    nats.password = login.password;
    nats.name = absl::StrCat("mcos ", options_.id, " of cluster ", cluster_id_);
    events::NatsStream objects;
    objects.name = kObjectEventStream;
    objects.subjects = {"mcos.object.>"};
    objects.max_age_seconds = options_.events_max_age_seconds;
    objects.max_bytes = options_.events_max_bytes;
    nats.streams = {objects};
    MCOS_ASSIGN_OR_RETURN(events_, events::NatsEventBus::Start(std::move(nats)));
  } else {
    common::LogInfo(
        "no --nats: events are off (no WatchObjects); replicas still converge by "
        "anti-entropy");
  }
  registrar_->StartHeartbeats();
  if (auto s = Discover(); !s.ok()) {
    common::LogWarning("no live resolver or storage service yet: ", s.message());
  }
  discovery_ = std::make_unique<common::Daemon>("discovery", options_.discovery_period,
                                                [this](common::Pacer&) { return Discover(); });
  discovery_->Start();
  StartRepair();
  return absl::OkStatus();
}

void ServerApp::StartRepair() {
  repair::ScrubberOptions scrub;
  scrub.cluster = cluster_id_;
  scrub.sweep_period = options_.scrub_period;
  scrub.bytes_per_second = options_.scrub_bytes_per_second;
  // Its own view of the rings: the scrubber's thread calls it.
  auto sets = std::make_shared<std::pair<uint64_t, std::vector<repair::SyncSet>>>();
  scrubber_ = std::make_unique<repair::Scrubber>(
      scrub,
      [this, sets]() -> absl::StatusOr<std::vector<repair::SyncSet>> {
        return SyncSets(sets->first, sets->second);
      },
      [this](const std::string& cluster) { return RepairReplica(cluster); },
      common::SystemClock::Get());
  scrubber_daemon_ =
      std::make_unique<common::Daemon>("scrubber", absl::Seconds(1), [this](common::Pacer& pacer) {
        absl::Status s = scrubber_->RunOnce(pacer);
        ReportRepair();
        return s;
      });
  if (options_.tombstone_reap_period > absl::ZeroDuration()) {
    repair::TombstoneReaperOptions reap;
    reap.cluster = cluster_id_;
    reap.min_age = options_.tombstone_min_age;
    reap.records_per_second = options_.anti_entropy_records_per_second;
    auto topology = std::make_shared<std::pair<uint64_t, repair::TombstoneReaper::Topology>>();
    reaper_ = std::make_unique<repair::TombstoneReaper>(
        reap, [this, topology] { return ReapTopology(topology->first, topology->second); },
        [this] { return RepairReplica(cluster_id_); },
        [this](const std::string& cluster, const mcos::v1::CheckTombstonesRequest& request,
               absl::Time deadline) { return CheckTombstonesAt(cluster, request, deadline); },
        [this](const std::string& cluster, const mcos::v1::PurgeTombstonesRequest& request,
               absl::Time deadline) -> absl::StatusOr<mcos::v1::PurgeTombstonesResponse> {
          if (cluster == cluster_id_) return PurgeTombstones(request, deadline);
          auto peer = RepairReplica(cluster);
          if (!peer) return repair::Unreachable(cluster);
          return peer->PurgeTombstones(request, deadline);
        },
        common::SystemClock::Get());
    reaper_daemon_ = std::make_unique<common::Daemon>(
        "tombstone reaper", options_.tombstone_reap_period, [this](common::Pacer& pacer) {
          const uint64_t before = reaper_->Status().reaped;
          absl::Status s = reaper_->RunOnce(pacer);
          const repair::ReaperStatus now = reaper_->Status();
          if (now.reaped > before) {
            common::LogInfo("tombstone reaping: forgot ", now.reaped - before,
                            " tombstone(s) that every cluster of their replica set held");
          }
          ReportRepair();
          return s;
        });
  }
  // All are made before any starts: each pass reports every daemon's status.
  absl::Cleanup start = [this] {
    scrubber_daemon_->Start();
    if (anti_entropy_daemon_) anti_entropy_daemon_->Start();
    if (reaper_daemon_) reaper_daemon_->Start();
    if (releaser_daemon_) releaser_daemon_->Start();
    if (queue_daemon_) queue_daemon_->Start();
  };
  if (!options_.peer_key.empty()) {
    repair::QueueSenderOptions queue;
    queue.cluster = cluster_id_;
    queue_sender_ = std::make_unique<repair::QueueSender>(
        queue,
        [this](const mcos::v1::ClaimReplicationsRequest& request)
            -> absl::StatusOr<mcos::v1::ClaimReplicationsResponse> {
          grpc::ClientContext ctx;
          SetDeadline(ctx, absl::Seconds(5));
          mcos::v1::ClaimReplicationsResponse response;
          if (grpc::Status s = controller_->ClaimReplications(&ctx, request, &response); !s.ok()) {
            return FromGrpcStatus(s);
          }
          return response;
        },
        [this](const mcos::v1::FinishReplicationsRequest& request) -> absl::Status {
          grpc::ClientContext ctx;
          SetDeadline(ctx, absl::Seconds(5));
          mcos::v1::FinishReplicationsResponse response;
          return FromGrpcStatus(controller_->FinishReplications(&ctx, request, &response));
        },
        [this](const std::string& cluster) { return RepairReplica(cluster); });
    queue_daemon_ = std::make_unique<common::Daemon>(
        "replication queue", absl::Milliseconds(500), [this](common::Pacer& pacer) {
          absl::Status s = queue_sender_->RunOnce(pacer);
          const repair::QueueSenderStatus sent = queue_sender_->Status();
          const std::pair<const char*, uint64_t> counts[] = {{"delivered", sent.delivered},
                                                             {"dropped", sent.dropped},
                                                             {"failures", sent.failures}};
          for (const auto& [what, n] : counts) {
            queue_sent_.Add({{"what", what}}).Set(static_cast<double>(n));
          }
          return s;
        });
  }
  if (options_.peer_key.empty() || options_.anti_entropy_period <= absl::ZeroDuration()) return;
  repair::AntiEntropyOptions ae;
  ae.cluster = cluster_id_;
  ae.records_per_second = options_.anti_entropy_records_per_second;
  ae.bytes_per_second = options_.anti_entropy_bytes_per_second;
  ae.parallel_partitions = options_.anti_entropy_parallel_partitions;
  ae.move_settle = options_.move_settle;
  ae.foreground_share = options_.anti_entropy_foreground_share;
  ae.foreground_calls = [this] { return user_calls_.load(std::memory_order_relaxed); };
  anti_entropy_ = std::make_unique<repair::AntiEntropy>(
      ae, [this] { return SyncSets(sync_revision_, sync_sets_); },
      [this](const std::string& cluster) { return RepairReplica(cluster); },
      common::SystemClock::Get(), [this](const mcos::v1::Version& v) { hlc_.Observe(v.hlc()); });
  anti_entropy_daemon_ = std::make_unique<common::Daemon>(
      "anti-entropy", options_.anti_entropy_period, [this](common::Pacer& pacer) {
        const auto before = anti_entropy_->Status();
        absl::Status s = anti_entropy_->RunOnce(pacer);
        for (const auto& [peer, now] : anti_entropy_->Status()) {
          auto was = before.find(peer);
          const uint64_t records =
              now.records_repaired - (was == before.end() ? 0 : was->second.records_repaired);
          const uint64_t bytes =
              now.bytes_repaired - (was == before.end() ? 0 : was->second.bytes_repaired);
          const std::string was_error = was == before.end() ? "" : was->second.last_error;
          if (!now.last_error.empty() && now.last_error != was_error) {
            common::LogWarning("anti-entropy with cluster '", peer, "': ", now.last_error);
          }
          if (records > 0) {
            common::LogInfo("anti-entropy: copied ", records, " newer record(s) (", bytes,
                            " bytes) from cluster '", peer, "'; ", now.partitions_out_of_sync,
                            " of ", now.partitions_compared, " partitions differed");
          }
        }
        ReportRepair();
        return s;
      });
  // Copies of partitions this cluster no longer holds, dropped once their holders have them.
  repair::ReleaserOptions release;
  release.cluster = cluster_id_;
  release.records_per_second = options_.anti_entropy_records_per_second;
  auto release_sets = std::make_shared<std::pair<uint64_t, std::vector<repair::SyncSet>>>();
  releaser_ = std::make_unique<repair::Releaser>(
      release, [this, release_sets] { return SyncSets(release_sets->first, release_sets->second); },
      [this](const std::string& cluster) { return RepairReplica(cluster); },
      [this](const std::string& cluster, const mcos::v1::CheckTombstonesRequest& request,
             absl::Time deadline) { return CheckTombstonesAt(cluster, request, deadline); },
      common::SystemClock::Get());
  releaser_daemon_ = std::make_unique<common::Daemon>(
      "releaser", options_.anti_entropy_period,
      [this](common::Pacer& pacer) { return releaser_->RunOnce(pacer); });
}

void ServerApp::ReportRepair() {
  // The daemons call it after each pass; one report at a time keeps the controller's view whole.
  absl::MutexLock lock(&report_mu_);
  mcos::v1::RepairReport report;
  report.set_server_id(options_.id);
  mcos::v1::RepairStatus& status = *report.mutable_status();
  if (anti_entropy_) {
    for (const auto& [peer, ps] : anti_entropy_->Status()) {
      auto* link = status.add_links();
      link->set_from_cluster(peer);
      link->set_to_cluster(cluster_id_);
      link->set_partitions_compared(ps.partitions_compared);
      link->set_partitions_out_of_sync(ps.partitions_out_of_sync);
      if (ps.last_full_pass != absl::InfinitePast()) {
        common::ToProtoTimestamp(ps.last_full_pass, link->mutable_last_full_pass());
        last_full_pass_.Add({{"peer", peer}})
            .Set(static_cast<double>(absl::ToUnixMillis(ps.last_full_pass)) / 1000);
      }
      link->set_records_repaired(ps.records_repaired);
      link->set_bytes_repaired(ps.bytes_repaired);
      link->set_anti_entropy_bytes_exchanged(ps.bytes_exchanged);
      link->set_last_error(ps.last_error);
      repair_records_.Add({{"peer", peer}}).Set(static_cast<double>(ps.records_repaired));
      repair_bytes_.Add({{"peer", peer}}).Set(static_cast<double>(ps.bytes_repaired));
      out_of_sync_.Add({{"peer", peer}}).Set(static_cast<double>(ps.partitions_out_of_sync));
    }
  }
  if (anti_entropy_) {
    const auto moving = anti_entropy_->Moves();
    // Options that no longer move leave the metrics.
    for (const auto& option : moving_options_) {
      if (moving.count(option) > 0) continue;
      for (const char* what : {"partitions", "former_layouts", "settled", "synced",
                               "records_copied", "bytes_copied"}) {
        moves_.Remove(&moves_.Add({{"option", option}, {"what", what}}));
      }
    }
    moving_options_.clear();
    for (const auto& [option, m] : moving) {
      moving_options_.insert(option);
      const std::pair<const char*, uint64_t> counts[] = {
          {"partitions", m.partitions},         {"former_layouts", m.former},
          {"settled", m.settled.size()},        {"synced", m.synced.size()},
          {"records_copied", m.records_copied}, {"bytes_copied", m.bytes_copied}};
      for (const auto& [what, n] : counts) {
        moves_.Add({{"option", option}, {"what", what}}).Set(static_cast<double>(n));
      }
    }
    if (releaser_) {
      moves_.Add({{"option", ""}, {"what", "released"}})
          .Set(static_cast<double>(releaser_->Status().released));
    }
    for (const auto& [option, m] : moving) {
      auto* move = report.add_moves();
      move->set_option(option);
      move->set_cluster(cluster_id_);
      move->set_ring(m.ring);
      move->set_ring_version(m.ring_version);
      for (const auto& id : m.settled) move->add_settled(id);
      for (const auto& id : m.synced) move->add_synced(id);
      move->set_partitions(m.partitions);
      move->set_records_copied(m.records_copied);
      move->set_bytes_copied(m.bytes_copied);
    }
  }
  if (scrubber_) {
    const repair::ScrubberStatus scrub = scrubber_->Status();
    status.set_objects_audited(scrub.objects_checked);
    status.set_bytes_audited(scrub.bytes_checked);
    status.set_corrupt_copies_found(scrub.corrupt_found);
    status.set_corrupt_copies_repaired(scrub.repaired);
    status.set_corrupt_copies_unrepaired(scrub.unrepaired);
    if (scrub.last_sweep_ended != absl::InfinitePast()) {
      common::ToProtoTimestamp(scrub.last_sweep_ended, status.mutable_last_scrub());
    }
    const std::pair<const char*, uint64_t> counts[] = {
        {"objects_checked", scrub.objects_checked}, {"bytes_checked", scrub.bytes_checked},
        {"corrupt_found", scrub.corrupt_found},     {"repaired", scrub.repaired},
        {"unrepaired", scrub.unrepaired},           {"sweeps", scrub.sweeps_completed}};
    for (const auto& [what, n] : counts) scrub_.Add({{"what", what}}).Set(static_cast<double>(n));
  }
  if (reaper_) {
    const repair::ReaperStatus reap = reaper_->Status();
    status.set_tombstones_reaped(reap.reaped);
    status.set_tombstones_waiting(reap.waiting);
    for (const auto& c : reap.waiting_on) status.add_tombstones_waiting_on(c);
    tombstones_.Add({{"what", "reaped"}}).Set(static_cast<double>(reap.reaped));
    tombstones_.Add({{"what", "waiting"}}).Set(static_cast<double>(reap.waiting));
  }
  // Sent when it changed, and every 10 s (the controller forgets a report after 10 minutes).
  std::string serialized = report.SerializeAsString();
  const absl::Time now = absl::Now();
  if (serialized == last_report_ && now - last_report_sent_ < absl::Seconds(10)) return;
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(2));
  mcos::v1::RepairReportResponse resp;
  const grpc::Status s = controller_->ReportRepair(&ctx, report, &resp);
  if (s.ok()) {
    last_report_ = std::move(serialized);
    last_report_sent_ = now;
  }
  if (!s.ok() && !report_failing_) {
    common::LogWarning("cannot report repair status to the controller: ", s.error_message());
  }
  report_failing_ = !s.ok();
}

void ServerApp::PublishChange(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                              const std::vector<std::string>* holders) {
  if (!events_) return;
  mcos::v1::ObjectEvent event;
  event.set_kind(record.tombstone() ? mcos::v1::ObjectEvent::KIND_DELETE
                                    : mcos::v1::ObjectEvent::KIND_PUT);
  *event.mutable_key() = key;
  *event.mutable_version() = record.version();
  event.set_size(record.tombstone() ? 0 : record.size());
  event.set_partition(record.partition());
  if (holders != nullptr) {
    for (const auto& h : *holders) event.add_replicas(h);
  } else {
    event.add_replicas(cluster_id_);
  }
  if (!record.tombstone()) event.set_etag(record.etag());
  common::ToProtoTimestamp(common::HlcTime(record.version().hlc()), event.mutable_modified());
  event.set_cluster(cluster_id_);
  events_->Publish(events::ObjectSubject(key.user(), key.container()), event.SerializeAsString());
}

void ServerApp::SuspectCorrupt(const mcos::v1::ObjectKey& key,
                               const mcos::v1::ObjectRecord& record) {
  if (!scrubber_) return;
  scrubber_->Suspect(key, record);
  scrubber_daemon_->Wake();
}

absl::StatusOr<std::vector<repair::SyncSet>> ServerApp::SyncSets(
    uint64_t& revision, std::vector<repair::SyncSet>& sets) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(5));
  mcos::v1::GetMetadataSnapshotRequest req;
  req.set_known_revision(revision);
  mcos::v1::MetadataSnapshot snapshot;
  if (grpc::Status s = controller_->GetMetadataSnapshot(&ctx, req, &snapshot); !s.ok()) {
    return FromGrpcStatus(s);
  }
  if (snapshot.unchanged()) return sets;
  MCOS_ASSIGN_OR_RETURN(sets, repair::SyncSetsOf(snapshot, cluster_id_));
  revision = snapshot.revision();
  return sets;
}

absl::StatusOr<repair::TombstoneReaper::Topology> ServerApp::ReapTopology(
    uint64_t& revision, repair::TombstoneReaper::Topology& topology) {
  MCOS_RETURN_IF_ERROR(SyncSets(revision, topology.sets).status());
  // Every cluster of the federation, asked each pass: one that just joined may hold a queue.
  grpc::ClientContext list_ctx;
  SetDeadline(list_ctx, absl::Seconds(5));
  mcos::v1::ListClustersResponse clusters;
  if (grpc::Status s = controller_->ListFederationClusters(&list_ctx, {}, &clusters); !s.ok()) {
    return FromGrpcStatus(s);
  }
  topology.clusters.clear();
  for (const auto& c : clusters.clusters()) topology.clusters.push_back(c.id());
  return topology;
}

absl::StatusOr<mcos::v1::CheckTombstonesResponse> ServerApp::CheckTombstones(
    const mcos::v1::CheckTombstonesRequest& request, absl::Time deadline) {
  MCOS_ASSIGN_OR_RETURN(Backends b, backends());
  mcos::v1::QueuedReplicationsRequest queued_req;
  for (const auto& t : request.tombstones()) *queued_req.add_keys() = t.key();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(30))));
  mcos::v1::QueuedReplicationsResponse queued;
  if (grpc::Status s = controller_->QueuedReplications(&ctx, queued_req, &queued); !s.ok()) {
    return FromGrpcStatus(s);
  }
  if (queued.queued_size() != request.tombstones_size()) {
    return absl::InternalError("the controller answered for another number of keys");
  }
  mcos::v1::CheckTombstonesResponse response;
  for (int i = 0; i < request.tombstones_size(); ++i) {
    const mcos::v1::TombstoneRef& t = request.tombstones(i);
    auto held = b.local->Stat(t.key(), deadline);
    if (!held.ok() && !absl::IsNotFound(held.status())) return held.status();
    mcos::v1::TombstoneCheck& check = *response.add_checks();
    check.set_held(held.ok() && common::CompareVersions(held->version(), t.version()) >= 0);
    check.set_queued(queued.queued(i));
    check.set_young(absl::Now() - common::HlcTime(t.version().hlc()) < options_.tombstone_min_age);
  }
  return response;
}

absl::StatusOr<mcos::v1::CheckTombstonesResponse> ServerApp::CheckTombstonesAt(
    const std::string& cluster, const mcos::v1::CheckTombstonesRequest& request,
    absl::Time deadline) {
  if (cluster == cluster_id_) return CheckTombstones(request, deadline);
  auto peer = RepairReplica(cluster);
  if (!peer) return repair::Unreachable(cluster);
  return peer->CheckTombstones(request, deadline);
}

absl::StatusOr<mcos::v1::PurgeTombstonesResponse> ServerApp::PurgeTombstones(
    const mcos::v1::PurgeTombstonesRequest& request, absl::Time deadline) {
  MCOS_ASSIGN_OR_RETURN(Backends b, backends());
  mcos::v1::PurgeTombstonesResponse response;
  for (const auto& t : request.tombstones()) {
    auto purged = b.local->Purge(t.key(), t.version(), deadline);
    if (purged.ok() && purged->applied) response.set_purged(response.purged() + 1);
    if (!purged.ok() && !absl::IsNotFound(purged.status())) return purged.status();
  }
  return response;
}

std::shared_ptr<replication::Replica> ServerApp::RepairReplica(const std::string& cluster) {
  auto b = CachedBackends();
  if (!b.ok()) return nullptr;
  if (cluster == cluster_id_) return b->local;
  std::shared_ptr<replication::Replica> peer;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(cluster);
    if (it != peers_.end()) peer = it->second.second;
  }
  // Through the breaker, with the replica as discovered now: a peer restarted at another address
  // is probed there (the breaker probes the replica it was last given).
  return peer != nullptr && coordinator_->Admit(cluster, peer) ? peer : nullptr;
}

void ServerApp::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (anti_entropy_daemon_) anti_entropy_daemon_->Stop();
  if (scrubber_daemon_) scrubber_daemon_->Stop();
  if (reaper_daemon_) reaper_daemon_->Stop();
  if (releaser_daemon_) releaser_daemon_->Stop();
  if (queue_daemon_) queue_daemon_->Stop();
  credentials_.Stop();
  if (discovery_ != nullptr) discovery_->Stop();
  if (registrar_) registrar_->Stop();
}

absl::Status ServerApp::Discover() {
  auto first_live = [&](mcos::v1::ServiceKind kind) -> absl::StatusOr<std::string> {
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(2));
    mcos::v1::ListServicesRequest req;
    req.set_kind(kind);
    req.set_live_only(true);
    mcos::v1::ListServicesResponse resp;
    const grpc::Status s = controller_->ListServices(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    if (resp.services().empty()) {
      return absl::UnavailableError(
          absl::StrCat("no live ", mcos::v1::ServiceKind_Name(kind), " in this cluster"));
    }
    return resp.services(0).endpoint();
  };
  MCOS_ASSIGN_OR_RETURN(std::string resolver, first_live(mcos::v1::SERVICE_KIND_RESOLVER));
  MCOS_ASSIGN_OR_RETURN(std::string storage, first_live(mcos::v1::SERVICE_KIND_STORAGE));
  bool federation = false;
  {
    absl::MutexLock lock(&mu_);
    if (resolver != resolver_endpoint_) {
      resolver_endpoint_ = resolver;
      backends_.resolver = mcos::v1::ResolverService::NewStub(route_.Connect(resolver));
    }
    if (storage != storage_endpoint_) {
      storage_endpoint_ = storage;
      auto channel = route_.Connect(storage);
      backends_.storage = std::make_shared<storage::StorageClient>(channel);
      backends_.local = colocated_.storage != nullptr && storage == route_.self
                            ? replication::EngineReplica(cluster_id_, *colocated_.storage)
                            : replication::StorageReplica(cluster_id_, channel);
    }
    federation = peer_auth_ != nullptr;
  }
  if (federation) {
    if (auto s = DiscoverPeers(); !s.ok()) {
      common::LogWarning("discovery of peer clusters: ", s.message());
    }
  }
  return absl::OkStatus();
}

absl::Status ServerApp::DiscoverPeers() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(2));
  mcos::v1::ListClustersRequest req;
  mcos::v1::ListClustersResponse resp;
  if (grpc::Status s = controller_->ListFederationClusters(&ctx, req, &resp); !s.ok()) {
    return FromGrpcStatus(s);
  }
  // Replicas let go may wait for their calls to end (a peer's replication streams): released
  // after mu_.
  std::vector<std::shared_ptr<replication::Replica>> replaced;
  absl::MutexLock lock(&mu_);
  last_peer_discovery_ = absl::Now();
  std::set<std::string> seen;
  other_clusters_ = 0;
  for (const auto& c : resp.clusters()) {
    if (c.id() == cluster_id_) continue;
    ++other_clusters_;
    if (c.server_endpoints().empty()) continue;
    seen.insert(c.id());
    const std::string& endpoint = c.server_endpoints(0);
    auto& [known, replica] = peers_[c.id()];
    if (replica == nullptr || known != endpoint) {
      known = endpoint;
      replaced.push_back(std::move(replica));
      replica = replication::PeerReplica(c.id(), cluster_id_,
                                         common::ConnectInternal(endpoint, *peer_auth_));
    }
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (seen.count(it->first) == 0) replaced.push_back(std::move(it->second.second));
    it = seen.count(it->first) > 0 ? std::next(it) : peers_.erase(it);
  }
  return absl::OkStatus();
}

absl::Status ServerApp::CheckPeer(const grpc::ServerContextBase& context) {
  std::shared_ptr<common::ServiceAuth> peer;
  {
    absl::MutexLock lock(&mu_);
    peer = peer_auth_;
  }
  if (peer == nullptr) {
    if (auto s = auth_.CheckCaller(context); absl::IsPermissionDenied(s)) return s;
    return absl::UnauthenticatedError(
        "this cluster has no federation secret (--federation-secret-file), so it has no peers");
  }
  return peer->CheckCaller(context);
}

bool ServerApp::Remote(const mcos::v1::Placement& placement) const {
  for (const auto& c : placement.replicas()) {
    if (c != cluster_id_) return true;
  }
  for (const auto& c : placement.ring_members()) {
    if (c != cluster_id_) return true;
  }
  return false;
}

bool ServerApp::Federated() {
  absl::MutexLock lock(&mu_);
  return other_clusters_ > 0;
}

ReplicaMap ServerApp::Replicas(const Backends& b, const mcos::v1::Placement* placement) {
  // The clusters the placement names that no discovery found yet.
  auto missing = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::string> out;
    if (placement == nullptr || peer_auth_ == nullptr) return out;
    for (const auto* names : {&placement->replicas(), &placement->ring_members()}) {
      for (const auto& c : *names) {
        if (c != cluster_id_ && peers_.count(c) == 0) out.push_back(c);
      }
    }
    return out;
  };
  bool unknown = false;
  {
    absl::MutexLock lock(&mu_);
    unknown = !missing().empty();
  }
  if (unknown) {
    // One discovery at a time; the calls that wait on it look again after it.
    absl::MutexLock one(&discovery_mu_);
    bool discover = false;
    {
      absl::MutexLock lock(&mu_);
      const std::vector<std::string> names = missing();
      // A cluster that just joined (its row came before any placement naming it) is looked up
      // at once; one still unknown at most every 200 ms.
      for (const auto& c : names) discover = unknown_peers_.insert(c).second || discover;
      discover = discover ||
                 (!names.empty() && absl::Now() - last_peer_discovery_ > absl::Milliseconds(200));
    }
    if (discover) {
      if (auto s = DiscoverPeers(); !s.ok()) {
        common::LogWarning("discovery of peer clusters: ", s.message());
      }
    }
  }
  ReplicaMap out;
  out[cluster_id_] = b.local;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, peer] : peers_) out[name] = peer.second;
  return out;
}

std::vector<std::string> ServerApp::PeerClusters() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, peer] : peers_) out.push_back(name);
  return out;
}

absl::StatusOr<mcos::v1::Placement> ServerApp::PlaceInContainer(const Backends& b,
                                                                const mcos::v1::ObjectKey& key) {
  MCOS_ASSIGN_OR_RETURN(auto container, GetContainer(key.user(), key.container()));
  return Place(b, key, container.option());
}

void ServerApp::Enqueue(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                        const std::string& target, const std::string& reason) {
  mcos::v1::EnqueueReplicationRequest req;
  auto* t = req.add_tasks();
  *t->mutable_key() = key;
  *t->mutable_version() = record.version();
  t->set_tombstone(record.tombstone());
  t->set_partition(record.partition());
  t->set_option(record.option());
  t->set_target(target);
  t->set_reason(reason.substr(0, 512));
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(10));
  mcos::v1::EnqueueReplicationResponse resp;
  if (grpc::Status s = controller_->EnqueueReplication(&ctx, req, &resp); !s.ok()) {
    common::LogError("cannot queue ", key.container(), "/", key.object(), " for cluster '", target,
                     "' (", reason, "): ", s.error_message(),
                     "; that cluster gets this version only from repair");
  } else {
    common::LogInfo("queued ", key.container(), "/", key.object(), " for cluster '", target,
                    "': ", reason);
  }
}

absl::StatusOr<ServerApp::Backends> ServerApp::backends() {
  {
    absl::MutexLock lock(&mu_);
    if (backends_.resolver && backends_.storage) return backends_;
  }
  MCOS_RETURN_IF_ERROR(Discover());
  absl::MutexLock lock(&mu_);
  return backends_;
}

absl::StatusOr<ServerApp::Backends> ServerApp::CachedBackends() {
  absl::MutexLock lock(&mu_);
  if (backends_.resolver && backends_.storage) return backends_;
  return absl::UnavailableError(
      "this server has not found a live resolver and storage service yet; retry in a moment");
}

absl::StatusOr<mcos::v1::TokenClaims> ServerApp::Authenticate(
    const grpc::ServerContextBase& context) {
  user_calls_.fetch_add(1, std::memory_order_relaxed);
  MCOS_ASSIGN_OR_RETURN(std::string token, common::BearerToken(context));
  auto claims = signer_.Verify(token, absl::Now());
  if (!claims.ok() && auth_.IsServiceToken(token)) {
    return absl::PermissionDeniedError(
        "a service credential is not a user's: log in as a user to use UserService");
  }
  if (claims.ok()) MCOS_RETURN_IF_ERROR(credentials_.Check(*claims));
  return claims;
}

absl::StatusOr<mcos::v1::Container> ServerApp::GetContainer(const std::string& user,
                                                            const std::string& name) {
  if (colocated_.get_container) return colocated_.get_container(user, name);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  mcos::v1::GetContainerRequest req;
  req.set_user(user);
  req.set_name(name);
  mcos::v1::Container c;
  const grpc::Status s = controller_->GetContainer(&ctx, req, &c);
  if (!s.ok()) return FromGrpcStatus(s);
  return c;
}

absl::StatusOr<mcos::v1::Placement> ServerApp::Place(const Backends& b,
                                                     const mcos::v1::ObjectKey& key,
                                                     const std::string& option) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(5));
  mcos::v1::ResolveRequest req;
  *req.add_keys() = key;
  req.set_option(option);
  if (colocated_.resolve) {
    MCOS_ASSIGN_OR_RETURN(const mcos::v1::ResolveResponse resp, colocated_.resolve(req));
    return CheckPlacement(resp);
  }
  mcos::v1::ResolveResponse resp;
  const grpc::Status s = b.resolver->Resolve(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return CheckPlacement(resp);
}

absl::StatusOr<mcos::v1::Placement> ServerApp::CheckPlacement(
    const mcos::v1::ResolveResponse& resp) const {
  if (resp.placements_size() != 1) return absl::InternalError("the resolver answered no placement");
  const mcos::v1::Placement& p = resp.placements(0);
  if (!p.error().empty()) return absl::FailedPreconditionError(p.error());
  if (p.replicas().empty()) return absl::FailedPreconditionError("the placement names no cluster");
  return p;
}

absl::Status ServerApp::NotFound(const mcos::v1::ObjectKey& key) {
  absl::Status container = GetContainer(key.user(), key.container()).status();
  return container.code() == absl::StatusCode::kNotFound ? container : ObjectNotFound(key);
}

mcos::v1::Version ServerApp::Stamp() {
  mcos::v1::Version v;
  v.set_hlc(hlc_.Now());
  v.set_cluster(cluster_id_);
  return v;
}

mcos::v1::ObjectInfo ServerApp::ToInfo(const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& r,
                                       const std::vector<std::string>* holders) const {
  mcos::v1::ObjectInfo info;
  FillInfo(key.container(), key.object(), r, holders, info);
  return info;
}

void ServerApp::FillInfo(absl::string_view container, std::string object,
                         const mcos::v1::ObjectRecord& r, const std::vector<std::string>* holders,
                         mcos::v1::ObjectInfo& info) const {
  info.set_container(std::string(container));
  info.set_object(std::move(object));
  info.set_size(r.size());
  info.set_etag(r.etag());
  info.set_checksum(r.checksum());
  info.set_content_type(r.content_type());
  *info.mutable_metadata() = r.metadata();
  *info.mutable_created() = r.created();
  *info.mutable_modified() = r.modified();
  info.set_version(common::VersionToString(r.version()));
  if (holders != nullptr) {
    for (const auto& h : *holders) info.add_replicas(h);
  } else {
    info.add_replicas(cluster_id_);
  }
}

absl::StatusOr<bool> ServerApp::ReadFederated(const Backends& b, const mcos::v1::ObjectKey& key,
                                              std::function<void(absl::StatusOr<Newest>)> done) {
  if (!Federated()) return false;
  auto placement = PlaceInContainer(b, key);
  if (!placement.ok()) return placement.status();
  if (!Remote(*placement)) return false;
  coordinator_->ReadAsync(key, *placement, Replicas(b, &*placement),
                          Coordinator::ReadScope::kEveryHolder, std::move(done));
  return true;
}

// ---- UserService ----------------------------------------------------------------------------

namespace {

// Objects larger than this, held by this cluster, are read through the storage service even in
// a federation (its reads run ahead on its own thread); smaller ones straight from the replica.
constexpr uint64_t kPipelinedReadBytes = uint64_t{4} << 20;

// What is left of the user's call, for the calls it makes (at most a minute).
absl::Time CallDeadline(const grpc::ServerContextBase& context) {
  return std::min(absl::Now() + absl::Minutes(1), common::DeadlineOf(context));
}

}  // namespace

// (`claims` names the variable it declares, so it cannot be parenthesized.)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define MCOS_AUTH_OR_RETURN(claims)                                 \
  auto claims##_or = app_.Authenticate(*context);                   \
  if (!claims##_or.ok()) return ToGrpcStatus(claims##_or.status()); \
  const mcos::v1::TokenClaims& claims = *claims##_or
// NOLINTEND(bugprone-macro-parentheses)

#define MCOS_GRPC_RETURN_IF_ERROR(expr)              \
  do {                                               \
    const absl::Status mcos_s_ = (expr);             \
    if (!mcos_s_.ok()) return ToGrpcStatus(mcos_s_); \
  } while (false)

grpc::Status UserGrpcService::Login(grpc::ServerContext* context,
                                    const mcos::v1::LoginRequest* request,
                                    mcos::v1::LoginResponse* response) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  // Guessing is limited per client address: the controller must see the user's, not ours.
  ctx.AddMetadata(common::kClientAddressKey, common::PeerAddress(*context));
  return app_.controller_->Authenticate(&ctx, *request, response);
}

grpc::Status UserGrpcService::ListContainers(grpc::ServerContext* context,
                                             const mcos::v1::ListContainersRequest* request,
                                             mcos::v1::ListContainersResponse* response) {
  MCOS_AUTH_OR_RETURN(claims);
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateListToken("prefix", request->prefix(), 255));
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateListToken("marker", request->marker(), 255));
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  mcos::v1::ListUserContainersRequest req;
  req.set_user(common::TokenOwner(claims));
  req.set_prefix(request->prefix());
  req.set_marker(request->marker());
  req.set_limit(request->limit());
  mcos::v1::ListUserContainersResponse resp;
  if (grpc::Status s = app_.controller_->ListUserContainers(&ctx, req, &resp); !s.ok()) return s;
  mcos::v1::ContainerUsageRequest usage_req;
  usage_req.set_user(common::TokenOwner(claims));
  for (const auto& c : resp.containers()) {
    *response->add_containers() = ToContainerInfo(c);
    usage_req.add_containers(c.name());
  }
  response->set_next_marker(resp.next_marker());
  // Counts are best effort (API.md: they may lag): a listing still answers without storage.
  if (auto b = app_.backends(); b.ok() && usage_req.containers_size() > 0) {
    grpc::ClientContext uctx;
    SetDeadline(uctx, absl::Seconds(5));
    mcos::v1::ContainerUsageResponse usage;
    if (b->storage->stub().ContainerUsage(&uctx, usage_req, &usage).ok() &&
        usage.usage_size() == response->containers_size()) {
      for (int i = 0; i < usage.usage_size(); ++i) {
        response->mutable_containers(i)->set_object_count(usage.usage(i).object_count());
        response->mutable_containers(i)->set_bytes_used(usage.usage(i).bytes_used());
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status UserGrpcService::CreateContainer(grpc::ServerContext* context,
                                              const mcos::v1::CreateContainerRequest* request,
                                              mcos::v1::ContainerInfo* response) {
  MCOS_AUTH_OR_RETURN(claims);
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateContainerName(request->container()));
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateListToken("option", request->option(), 255));
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  mcos::v1::ControllerCreateContainerRequest req;
  req.set_user(common::TokenOwner(claims));
  req.set_name(request->container());
  req.set_option(request->option());
  mcos::v1::Container c;
  if (grpc::Status s = app_.controller_->CreateContainer(&ctx, req, &c); !s.ok()) return s;
  *response = ToContainerInfo(c);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* UserGrpcService::ListObjects(grpc::CallbackServerContext* context,
                                                       const mcos::v1::ListObjectsRequest* request,
                                                       mcos::v1::ListObjectsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // It waits for pages of thousands of records: not on a gRPC callback thread.
  app_.coordinator_->Schedule(" listings", [this, context, request, response, reactor] {
    std::shared_ptr<void> pages;  // freed once the answer is on its way
    reactor->Finish(List(context, request, response, pages));
  });
  return reactor;
}

grpc::Status UserGrpcService::List(grpc::CallbackServerContext* context,
                                   const mcos::v1::ListObjectsRequest* request,
                                   mcos::v1::ListObjectsResponse* response,
                                   std::shared_ptr<void>& pages) {
  MCOS_AUTH_OR_RETURN(claims);
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateContainerName(request->container()));
  MCOS_GRPC_RETURN_IF_ERROR(
      common::ValidateObjectListing(request->prefix(), request->marker(), request->delimiter()));
  auto container = app_.GetContainer(common::TokenOwner(claims), request->container());
  if (!container.ok()) return ToGrpcStatus(container.status());
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  mcos::v1::StorageListRequest req;
  req.set_user(common::TokenOwner(claims));
  req.set_container(request->container());
  req.set_prefix(request->prefix());
  req.set_marker(request->marker());
  req.set_limit(request->limit());
  req.set_delimiter(request->delimiter());
  if (app_.Federated()) {
    // Any key of the container names the ring's members and the write concern.
    auto placement = app_.Place(*b, MakeKey(common::TokenOwner(claims), request->container(), "."),
                                container->option());
    if (!placement.ok()) return ToGrpcStatus(placement.status());
    if (app_.Remote(*placement)) {
      const std::vector<std::string> members = RingMembers(*placement);
      // A read quorum of the members' pages: every acknowledged write and delete is in it.
      auto merged =
          app_.coordinator_->List(req, members, CopiesOfAnyWrite(*placement),
                                  app_.Replicas(*b, &*placement), Coordinator::ReadScope::kQuorum);
      if (!merged.ok()) return ToGrpcStatus(merged.status());
      auto listing = std::make_shared<Coordinator::Listing>(*std::move(merged));
      pages = listing;
      mcos::v1::StorageListResponse& page = *listing->page;
      response->mutable_objects()->Reserve(page.entries_size());
      for (int i = 0; i < page.entries_size(); ++i) {
        auto* e = page.mutable_entries(i);
        app_.FillInfo(request->container(), std::move(*e->mutable_object()), e->record(),
                      &listing->holders[static_cast<size_t>(i)], *response->add_objects());
      }
      for (const auto& p : page.common_prefixes()) response->add_common_prefixes(p);
      response->set_next_marker(page.next_marker());
      return grpc::Status::OK;
    }
  }
  // Through the local replica: in mcos-cluster a call into the engine (no page serialized and
  // parsed again, which took about half of a 2,000-object listing's CPU).
  // The page's records: parsed and dropped without a free each.
  auto arena = std::make_shared<google::protobuf::Arena>();
  pages = arena;
  auto* listing =
      google::protobuf::Arena::CreateMessage<mcos::v1::StorageListResponse>(arena.get());
  MCOS_GRPC_RETURN_IF_ERROR(b->local->List(req, CallDeadline(*context), listing));
  response->mutable_objects()->Reserve(listing->entries_size());
  for (auto& e : *listing->mutable_entries()) {
    app_.FillInfo(request->container(), std::move(*e.mutable_object()), e.record(), nullptr,
                  *response->add_objects());
  }
  for (const auto& p : listing->common_prefixes()) response->add_common_prefixes(p);
  response->set_next_marker(listing->next_marker());
  return grpc::Status::OK;
}

grpc::Status UserGrpcService::DeleteContainer(grpc::ServerContext* context,
                                              const mcos::v1::DeleteContainerRequest* request,
                                              mcos::v1::DeleteContainerResponse*) {
  MCOS_AUTH_OR_RETURN(claims);
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateContainerName(request->container()));
  auto container = app_.GetContainer(common::TokenOwner(claims), request->container());
  if (!container.ok()) return ToGrpcStatus(container.status());
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  mcos::v1::StorageListRequest req;
  req.set_user(common::TokenOwner(claims));
  req.set_container(request->container());
  req.set_limit(1);
  bool empty = true;
  std::optional<mcos::v1::Placement> federated;
  if (app_.Federated()) {
    auto placement = app_.Place(*b, MakeKey(common::TokenOwner(claims), request->container(), "."),
                                container->option());
    if (!placement.ok()) return ToGrpcStatus(placement.status());
    if (app_.Remote(*placement)) federated = *std::move(placement);
  }
  if (federated) {
    // Every cluster of the ring that answers must hold no live object (tombstones do not count).
    const std::vector<std::string> members = RingMembers(*federated);
    req.set_limit(1000);
    for (int page = 0; page < 100 && empty; ++page) {
      auto merged = app_.coordinator_->List(req, members, CopiesOfAnyWrite(*federated),
                                            app_.Replicas(*b, &*federated),
                                            Coordinator::ReadScope::kEveryHolder);
      if (!merged.ok()) return ToGrpcStatus(merged.status());
      empty = merged->page->entries_size() == 0 && merged->page->common_prefixes_size() == 0;
      if (merged->page->next_marker().empty()) break;
      req.set_marker(merged->page->next_marker());
    }
  } else {
    mcos::v1::StorageListResponse listing;
    MCOS_GRPC_RETURN_IF_ERROR(b->local->List(req, CallDeadline(*context), &listing));
    empty = listing.entries_size() == 0;
  }
  if (!empty) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            absl::StrCat("container '", request->container(),
                         "' is not empty: delete its objects first")};
  }
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  mcos::v1::ControllerDeleteContainerRequest del;
  del.set_user(common::TokenOwner(claims));
  del.set_name(request->container());
  mcos::v1::ControllerDeleteContainerResponse resp;
  return app_.controller_->DeleteContainer(&ctx, del, &resp);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* UserGrpcService::CreateObject(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return StartPut(app_, context, response, /*create=*/true);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* UserGrpcService::UpdateObject(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return StartPut(app_, context, response, /*create=*/false);
}

grpc::ServerUnaryReactor* UserGrpcService::StatObject(grpc::CallbackServerContext* context,
                                                      const mcos::v1::StatObjectRequest* request,
                                                      mcos::v1::ObjectInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Started here (`started`), answered from the thread of the last answer it needs.
  bool started = false;
  auto stat = [&]() -> grpc::Status {
    MCOS_AUTH_OR_RETURN(claims);
    MCOS_GRPC_RETURN_IF_ERROR(ValidateObjectRef(request->container(), request->object()));
    auto b = app_.backends();
    if (!b.ok()) return ToGrpcStatus(b.status());
    const auto key = MakeKey(common::TokenOwner(claims), request->container(), request->object());
    absl::StatusOr<bool> federated =
        app_.ReadFederated(*b, key, [this, key, response, reactor](absl::StatusOr<Newest> newest) {
          if (!newest.ok()) {
            reactor->Finish(ToGrpcStatus(newest.status()));
          } else if (!newest->record || newest->record->tombstone()) {
            reactor->Finish(ToGrpcStatus(ObjectNotFound(key)));
          } else {
            *response = app_.ToInfo(key, *newest->record, &newest->holders);
            reactor->Finish(grpc::Status::OK);
          }
        });
    if (!federated.ok()) return ToGrpcStatus(federated.status());
    if (*federated) {
      started = true;
      return grpc::Status::OK;
    }
    // This cluster's copy, through its replica: a plain call of the engine in mcos-cluster.
    b->local->StatAsync(
        key, absl::Now() + absl::Seconds(30),
        [this, key, response, reactor](absl::StatusOr<mcos::v1::ObjectRecord> record) {
          if (record.ok() && record->tombstone()) record = ObjectNotFound(key);
          if (!record.ok()) {
            reactor->Finish(ToGrpcStatus(absl::IsNotFound(record.status()) ? app_.NotFound(key)
                                                                           : record.status()));
            return;
          }
          *response = app_.ToInfo(key, *record);
          reactor->Finish(grpc::Status::OK);
        });
    started = true;
    return grpc::Status::OK;
  };
  const grpc::Status status = stat();
  if (!started) reactor->Finish(status);
  return reactor;
}

// DownloadObject on gRPC's callback API. Once the caller is checked: a small object (up to
// kInlineDownloadBytes) that this cluster holds in this process is read whole (after the read
// quorum answered, on the thread of its last answer) and its messages are sent one after the other
// from gRPC's threads, no thread waiting. Anything else (a larger object, a version this cluster
// does not hold, a copy that fails its checksums) is streamed by UserGrpcService::Download on a
// thread of its own, each message waited for, as the synchronous API did.
class UserGrpcService::DownloadReactor final
    : public grpc::ServerWriteReactor<mcos::v1::DownloadObjectResponse>,
      public DownloadSink {
 public:
  DownloadReactor(UserGrpcService& service, grpc::CallbackServerContext* context,
                  const mcos::v1::DownloadObjectRequest* request)
      : service_(service), app_(service.app_), context_(context), request_(request) {}

  void Start() {
    const grpc::Status started = Begin();
    if (!started.ok()) Finish(started);
  }

  // The thread of Download: each message is sent, then waited for.
  bool Write(const mcos::v1::DownloadObjectResponse& message) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = true;
    }
    StartWrite(&message);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* writing) { return !*writing; }, &writing_));
    return written_;
  }

  void OnWriteDone(bool ok) override {
    if (streaming_) {
      absl::MutexLock lock(&mu_);
      written_ = ok;
      writing_ = false;
      return;
    }
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    SendNext();
  }

  void OnDone() override {
    if (guard_ != nullptr) {
      app_.watchdog_.Remove(guard_.get());
      guard_->Detach();
    }
    if (acquired_) app_.downloads_.Release(key_.user());
    delete this;
  }

 private:
  // Objects up to this size that this cluster holds are read whole, then sent.
  static constexpr uint64_t kInlineDownloadBytes = uint64_t{1} << 20;

  grpc::Status Begin() {
    auto claims = app_.Authenticate(*context_);
    if (!claims.ok()) return ToGrpcStatus(claims.status());
    MCOS_GRPC_RETURN_IF_ERROR(ValidateObjectRef(request_->container(), request_->object()));
    auto b = app_.backends();
    if (!b.ok()) return ToGrpcStatus(b.status());
    key_ = MakeKey(common::TokenOwner(*claims), request_->container(), request_->object());
    MCOS_GRPC_RETURN_IF_ERROR(app_.downloads_.Acquire(key_.user()));
    acquired_ = true;
    guard_ = std::make_shared<common::CancelOnIdle<grpc::CallbackServerContext>>(
        context_, [](grpc::CallbackServerContext& c, absl::Duration idle) {
          common::LogWarning("download from ", c.peer(), " made no progress for ",
                             absl::ToInt64Seconds(idle), " s: cancelled");
        });
    app_.watchdog_.Add(guard_);
    std::shared_ptr<replication::Replica> local = b->local;
    const bool inline_reads = local->in_process();
    absl::StatusOr<bool> federated =
        app_.ReadFederated(*b, key_, [this, local, inline_reads](absl::StatusOr<Newest> newest) {
          if (!newest.ok()) return Finish(ToGrpcStatus(newest.status()));
          if (!newest->record || newest->record->tombstone()) {
            return Finish(ToGrpcStatus(ObjectNotFound(key_)));
          }
          const auto& answered = newest->answered;
          const bool here =
              std::find(answered.begin(), answered.end(), app_.cluster_id_) != answered.end();
          if (here && inline_reads && newest->record->size() <= kInlineDownloadBytes) {
            auto reader = Open(*local, &newest->record->version());
            if (reader.ok() && SendWhole(**reader, &newest->holders)) return;
          }
          Stream(*std::move(newest));
        });
    if (!federated.ok()) return ToGrpcStatus(federated.status());
    if (*federated) return grpc::Status::OK;
    if (inline_reads) {
      // This cluster's copy, whatever version it holds now: one open, sent whole when small.
      auto reader = Open(*local, nullptr);
      if (absl::IsNotFound(reader.status())) return ToGrpcStatus(app_.NotFound(key_));
      if (reader.ok() && (*reader)->record().size() <= kInlineDownloadBytes) {
        if (SendWhole(**reader, nullptr)) return grpc::Status::OK;  // else it was read and ended
      } else if (reader.ok()) {
        (*reader)->Cancel();
        (*reader)->Finish().IgnoreError();
      }
    }
    Stream(std::nullopt);
    return grpc::Status::OK;
  }

  // The requested range of `version` (nullptr: whatever is held) of this cluster's copy.
  absl::StatusOr<std::unique_ptr<replication::ObjectReader>> Open(
      replication::Replica& local, const mcos::v1::Version* version) {
    return local.Open(key_, request_->offset(), request_->length(), version,
                      absl::Now() + absl::Seconds(60));
  }

  // Reads `reader` whole and starts sending it, described with `holders` (this cluster if null);
  // false, with nothing sent, if it cannot be read whole (a copy failing its checksums: Download
  // reads it again and says why).
  bool SendWhole(replication::ObjectReader& reader, const std::vector<std::string>* holders) {
    std::vector<mcos::v1::DownloadObjectResponse> messages(1);
    *messages[0].mutable_info() = app_.ToInfo(key_, reader.record(), holders);
    std::string data;
    uint64_t bytes = 0;
    while (reader.Next(&data)) {
      bytes += data.size();
      messages.emplace_back().set_data(std::move(data));
      data.clear();
    }
    if (!reader.Finish().ok()) return false;
    app_.bytes_out_.Increment(static_cast<double>(bytes));
    messages_ = std::move(messages);
    SendNext();
    return true;
  }

  // The next of messages_; the last with the status.
  void SendNext() {
    guard_->Touch();
    const mcos::v1::DownloadObjectResponse& message = messages_[next_++];
    if (next_ == messages_.size()) {
      StartWriteAndFinish(&message, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&message);
    }
  }

  // Download on a thread of its own (it waits for the network, the disk and other clusters).
  void Stream(std::optional<Newest> read) {
    streaming_ = true;
    std::thread([this, read = std::move(read)]() mutable {
      Finish(service_.Download(context_, request_, key_, *guard_, *this, std::move(read)));
    }).detach();
  }

  UserGrpcService& service_;
  ServerApp& app_;
  grpc::CallbackServerContext* const context_;
  const mcos::v1::DownloadObjectRequest* const request_;
  mcos::v1::ObjectKey key_;
  bool acquired_ = false;
  std::shared_ptr<common::CancelOnIdle<grpc::CallbackServerContext>> guard_;
  // Set before Download starts: writes are then waited for.
  bool streaming_ = false;
  std::vector<mcos::v1::DownloadObjectResponse> messages_;
  size_t next_ = 0;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool written_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerWriteReactor<mcos::v1::DownloadObjectResponse>* UserGrpcService::DownloadObject(
    grpc::CallbackServerContext* context, const mcos::v1::DownloadObjectRequest* request) {
  auto* reactor = new DownloadReactor(*this, context, request);
  reactor->Start();
  return reactor;
}

grpc::Status UserGrpcService::Download(grpc::CallbackServerContext* context,
                                       const mcos::v1::DownloadObjectRequest* request,
                                       const mcos::v1::ObjectKey& key,
                                       common::StreamWatchdog::Stream& guard, DownloadSink& writer,
                                       std::optional<Newest> read) {
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  // The user sees every holder of the version streamed (when it is the version the read chose).
  std::vector<std::string> federated_holders;
  std::optional<mcos::v1::ObjectRecord> federated_record;  // the version the read chose
  ReplicaMap replicas;
  // Bytes of the requested range sent so far (a copy that fails its checksums midway is left for
  // another holder of the same version, from there on).
  uint64_t sent = 0;
  // Streams the rest of the range from `reader`; CANCELLED when the client went away.
  auto pipe = [&](replication::ObjectReader& reader) -> absl::Status {
    std::string data;
    mcos::v1::DownloadObjectResponse out;
    while (reader.Next(&data)) {
      guard.Touch();
      app_.bytes_out_.Increment(static_cast<double>(data.size()));
      sent += data.size();
      out.set_data(std::move(data));
      if (context->IsCancelled() || !writer.Write(out)) {
        reader.Cancel();
        reader.Finish().IgnoreError();
        return absl::CancelledError("the client went away");
      }
      data.clear();
    }
    return reader.Finish();
  };
  // DATA_LOSS once no copy could be read whole; `why` is the last reader's error.
  auto no_intact_copy = [&key](absl::string_view why) {
    return grpc::Status(grpc::StatusCode::DATA_LOSS,
                        absl::StrCat("no intact copy of object '", key.object(), "' in container '",
                                     key.container(), "' could be read: ", why));
  };
  // After `failed` served a corrupt copy of `record` (DATA_LOSS): the rest of the range from
  // another of `holders`; a corrupt copy here is queued for repair.
  auto fail_over = [&](const std::string& failed, const mcos::v1::ObjectRecord& record,
                       const std::vector<std::string>& holders,
                       const absl::Status& loss) -> grpc::Status {
    common::LogWarning("cluster '", failed, "' holds a corrupt copy of object '", key.container(),
                       "/", key.object(), "' of '", key.user(), "' (", loss.message(),
                       "); reading it from another replica");
    if (failed == app_.cluster_id_) app_.SuspectCorrupt(key, record);
    absl::Status last = loss;
    for (const std::string& from : holders) {
      if (from == failed) continue;
      auto source = replicas.find(from);
      if (source == replicas.end() || source->second == nullptr) continue;
      const uint64_t rest = request->length() == 0 ? 0 : request->length() - sent;
      if (request->length() != 0 && rest == 0) return grpc::Status::OK;
      auto reader =
          source->second->Open(key, request->offset() + sent, rest, &record.version(),
                               absl::Now() + absl::Seconds(60) +
                                   absl::Microseconds(static_cast<int64_t>(record.size())));
      if (!reader.ok()) {
        last = reader.status();
        continue;
      }
      last = pipe(**reader);
      if (last.ok() || absl::IsCancelled(last)) return ToGrpcStatus(last);
    }
    return no_intact_copy(last.message());
  };
  // `failed`'s copy of `record` could not be read from its start (DATA_LOSS): the user is told of
  // the other holders only, and all of it comes from one of them.
  auto fail_over_whole = [&](const std::string& failed, const mcos::v1::ObjectRecord& record,
                             const std::vector<std::string>& holders,
                             const absl::Status& loss) -> grpc::Status {
    std::vector<std::string> intact;
    for (const auto& h : holders) {
      if (h != failed) intact.push_back(h);
    }
    mcos::v1::DownloadObjectResponse out;
    *out.mutable_info() = app_.ToInfo(key, record, &intact);
    if (!writer.Write(out)) return grpc::Status::CANCELLED;
    return fail_over(failed, record, holders, loss);
  };
  mcos::v1::StorageGetRequest req;
  *req.mutable_key() = key;
  req.set_offset(request->offset());
  req.set_length(request->length());
  if (app_.Federated()) {
    auto placement = app_.PlaceInContainer(*b, key);
    if (!placement.ok()) return ToGrpcStatus(placement.status());
    if (app_.Remote(*placement)) {
      replicas = app_.Replicas(*b, &*placement);
      absl::StatusOr<Newest> newest =
          read ? *std::move(read) : app_.coordinator_->Read(key, *placement, replicas);
      if (!newest.ok()) return ToGrpcStatus(newest.status());
      if (!newest->record || newest->record->tombstone()) return ToGrpcStatus(ObjectNotFound(key));
      // Stream the newest version from this cluster's copy when it holds it, else from a
      // cluster that does; checksums are verified there and by the client. The user sees every
      // holder of the version.
      const auto& holders = newest->holders;
      const auto& answered = newest->answered;
      const bool here =
          std::find(answered.begin(), answered.end(), app_.cluster_id_) != answered.end();
      if (here && newest->record->size() > kPipelinedReadBytes) {
        // A large object held here streams from the storage service, whose reads run ahead of
        // the network on its own thread. It reads what this cluster holds when it opens: the
        // version chosen, or a newer one written since (then only this cluster is known to hold
        // it).
        federated_holders = newest->holders;
        federated_record = *newest->record;
      } else {
        // A holder that answered with it (a record may name one that lost its copy since).
        const std::string& from = here ? app_.cluster_id_ : answered.front();
        auto source = replicas.find(from);
        if (source == replicas.end() || source->second == nullptr) {
          return {grpc::StatusCode::UNAVAILABLE, "no cluster holding the object can be reached"};
        }
        const absl::Time deadline =
            absl::Now() + absl::Seconds(60) +
            absl::Microseconds(static_cast<int64_t>(newest->record->size()));
        auto reader = source->second->Open(key, request->offset(), request->length(),
                                           &newest->record->version(), deadline);
        std::vector<std::string> source_only = {from};
        const std::vector<std::string>* shown = &holders;
        if (absl::IsFailedPrecondition(reader.status())) {
          // A newer write replaced that version there since the read chose it: a download
          // returns the version it chose or a newer one, so it streams what is there now (which
          // only moves forward).
          reader =
              source->second->Open(key, request->offset(), request->length(), nullptr, deadline);
          shown = &source_only;
        }
        if (absl::IsDataLoss(reader.status()) && shown == &holders) {
          // The first chunk failed its checksum.
          return fail_over_whole(from, *newest->record, holders, reader.status());
        }
        if (!reader.ok()) {
          return ToGrpcStatus(absl::IsNotFound(reader.status()) ? ObjectNotFound(key)
                                                                : reader.status());
        }
        mcos::v1::DownloadObjectResponse out;
        *out.mutable_info() = app_.ToInfo(key, (*reader)->record(), shown);
        if (!writer.Write(out)) {
          (*reader)->Cancel();
          return grpc::Status::CANCELLED;
        }
        const mcos::v1::ObjectRecord record = (*reader)->record();
        absl::Status piped = pipe(**reader);
        if (absl::IsDataLoss(piped)) {
          return fail_over(from, record, shown == &holders ? holders : source_only, piped);
        }
        return ToGrpcStatus(piped);
      }
    }
  }
  if (!federated_record && b->local->in_process()) {
    // This cluster's copy read in this process: an object up to kPipelinedReadBytes is streamed
    // from the engine directly; a larger one from the storage service, whose reads run ahead of
    // the network on its own thread.
    auto local =
        b->local->Open(key, request->offset(), request->length(), nullptr, absl::InfiniteFuture());
    if (!local.ok() && !absl::IsNotFound(local.status())) return ToGrpcStatus(local.status());
    if (!local.ok()) return ToGrpcStatus(app_.NotFound(key));
    if ((*local)->record().size() <= kPipelinedReadBytes) {
      mcos::v1::DownloadObjectResponse out;
      *out.mutable_info() = app_.ToInfo(key, (*local)->record());
      if (!writer.Write(out)) {
        (*local)->Cancel();
        (*local)->Finish().IgnoreError();
        return grpc::Status::CANCELLED;
      }
      const absl::Status piped = pipe(**local);
      if (absl::IsDataLoss(piped)) {
        return no_intact_copy(piped.message());
      }
      return ToGrpcStatus(piped);
    }
    (*local)->Cancel();
    (*local)->Finish().IgnoreError();
  }
  // A child of the user's call: cancelling it (the client, or the watchdog) stops the read too.
  auto sctx = grpc::ClientContext::FromCallbackServerContext(*context);
  auto reader = b->storage->stub().Get(sctx.get(), req);
  mcos::v1::StorageGetResponse in;
  mcos::v1::DownloadObjectResponse out;
  std::optional<mcos::v1::ObjectRecord> streamed;
  bool chosen = false;
  while (reader->Read(&in)) {
    guard.Touch();
    if (in.has_record()) {
      chosen = federated_record &&
               common::CompareVersions(in.record().version(), federated_record->version()) == 0;
      *out.mutable_info() = app_.ToInfo(key, in.record(), chosen ? &federated_holders : nullptr);
      streamed = in.record();
    } else {
      app_.bytes_out_.Increment(static_cast<double>(in.data().size()));
      sent += in.data().size();
      out.set_data(std::move(*in.mutable_data()));
    }
    if (!writer.Write(out)) {
      sctx->TryCancel();
      reader->Finish().IgnoreError();
      return grpc::Status::CANCELLED;
    }
    guard.Touch();
  }
  grpc::Status s = reader->Finish();
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return ToGrpcStatus(app_.NotFound(key));
  if (s.error_code() == grpc::StatusCode::DATA_LOSS) {
    if (chosen && streamed) {
      // Midway through a large object: the rest from another holder of the same version.
      return fail_over(app_.cluster_id_, *streamed, federated_holders, FromGrpcStatus(s));
    }
    if (!streamed && federated_record) {
      // This cluster's copy of the version chosen could not be opened (its data file is gone).
      return fail_over_whole(app_.cluster_id_, *federated_record, federated_holders,
                             FromGrpcStatus(s));
    }
    return no_intact_copy(s.error_message());
  }
  return s;
}

grpc::ServerUnaryReactor* UserGrpcService::DeleteObject(
    grpc::CallbackServerContext* context, const mcos::v1::DeleteObjectRequest* request,
    mcos::v1::DeleteObjectResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto finish = [reactor](const grpc::Status& status) { reactor->Finish(status); };
  // Started here; whatever waits (the disk, a storage service in another process) waits on a
  // coordinator thread, never on gRPC's, and the answer goes from the thread that ends it.
  auto start = [&]() -> absl::Status {
    MCOS_ASSIGN_OR_RETURN(mcos::v1::TokenClaims claims, app_.Authenticate(*context));
    MCOS_RETURN_IF_ERROR(ValidateObjectRef(request->container(), request->object()));
    MCOS_ASSIGN_OR_RETURN(auto container,
                          app_.GetContainer(common::TokenOwner(claims), request->container()));
    MCOS_ASSIGN_OR_RETURN(auto b, app_.backends());
    const auto key = MakeKey(common::TokenOwner(claims), request->container(), request->object());
    MCOS_ASSIGN_OR_RETURN(auto placement, app_.Place(b, key, container.option()));
    const std::shared_ptr<replication::Replica> local = b.local;
    const uint32_t partition = placement.partition();
    const std::string& option = container.option();
    // This cluster's tombstone, stamped above a newer version held here if need be: in
    // mcos-cluster by the engine's committing thread, else on a coordinator thread.
    auto tombstone_here = [this, key, local, partition, option](
                              mcos::v1::WritePrecondition precondition,
                              std::function<void(absl::StatusOr<replication::WriteAck>)> then) {
      if (local->writes_async()) {
        local->DeleteAboveAsync(key, replication::TombstoneRecord(app_.Stamp(), partition, option),
                                absl::Now() + absl::Seconds(30), precondition, std::move(then));
        return;
      }
      app_.coordinator_->Schedule(app_.cluster_id_, [this, key, local, partition, option,
                                                     precondition, then = std::move(then)] {
        if (precondition == mcos::v1::WRITE_PRECONDITION_NONE) {
          then(local->DeleteAbove(key,
                                  replication::TombstoneRecord(app_.Stamp(), partition, option),
                                  absl::Now() + absl::Seconds(30)));
          return;
        }
        // A storage service in another process: its own conditional delete.
        mcos::v1::StorageDeleteRequest req;
        *req.mutable_key() = key;
        req.set_precondition(precondition);
        req.set_partition(partition);
        req.set_option(option);
        req.set_restamp(true);
        *req.mutable_version() = app_.Stamp();
        auto b = app_.backends();
        if (!b.ok()) {
          then(b.status());
          return;
        }
        auto result = b->storage->Delete(req);
        if (!result.ok()) {
          then(result.status());
          return;
        }
        then(replication::WriteAck{result->applied(), result->record().version(),
                                   mcos::v1::WRITE_PRIOR_UNKNOWN});
      });
    };
    if (!app_.Remote(placement)) {
      // Only this cluster holds it: the object must exist here.
      tombstone_here(
          mcos::v1::WRITE_PRECONDITION_MUST_EXIST,
          [this, key, partition, option, response,
           finish](const absl::StatusOr<replication::WriteAck>& ack) {
            if (!ack.ok()) {
              finish(ToGrpcStatus(absl::IsFailedPrecondition(ack.status()) ? ObjectNotFound(key)
                                                                           : ack.status()));
              return;
            }
            app_.hlc_.Observe(ack->stored_version.hlc());
            app_.PublishChange(
                key, replication::TombstoneRecord(ack->stored_version, partition, option));
            response->set_version(common::VersionToString(ack->stored_version));
            finish(grpc::Status::OK);
          });
      return absl::OkStatus();
    }
    const ReplicaMap replicas = app_.Replicas(b, &placement);
    // Tombstone first, when the replicas that take it make a read quorum: the object existed iff
    // one of them (or this cluster) held a live version before, so the delete takes one round
    // trip. A tombstone over nothing changes nothing a reader sees (and is reaped like any).
    // Otherwise the object must first be found live at the read quorum.
    const bool tombstone_first = WriteAnswersAReadQuorum(placement);
    // The local tombstone with no precondition (this copy may have missed a write); a replica
    // holding a newer version makes the coordinator stamp it again above that one. Then the
    // replicas' (answered on gRPC's threads; a cluster that cannot be called now is queued).
    auto delete_everywhere = [this, key, placement, local, replicas, partition, option,
                              tombstone_first, response, finish, tombstone_here] {
      if (absl::Status writable =
              app_.coordinator_->CheckWritable(placement, app_.cluster_id_, replicas);
          !writable.ok()) {
        finish(ToGrpcStatus(writable));
        return;
      }
      tombstone_here(
          mcos::v1::WRITE_PRECONDITION_NONE,
          [this, key, placement, local, replicas, partition, option, tombstone_first, response,
           finish](const absl::StatusOr<replication::WriteAck>& here) {
            if (!here.ok()) {
              finish(ToGrpcStatus(here.status()));
              return;
            }
            const bool absent_here = here->prior == mcos::v1::WRITE_PRIOR_ABSENT;
            app_.coordinator_->Replicate(
                key, replication::TombstoneRecord(here->stored_version, partition, option),
                placement, local, replicas,
                [this, key, tombstone_first, absent_here, response,
                 finish](absl::StatusOr<Replicated> replicated) {
                  if (!replicated.ok()) {
                    finish(ToGrpcStatus(replicated.status()));
                  } else if (tombstone_first && absent_here && !replicated->replaced_live) {
                    // Nothing live at a read quorum: nothing was deleted (nor announced).
                    finish(ToGrpcStatus(ObjectNotFound(key)));
                  } else {
                    app_.PublishChange(key, replicated->record, &replicated->holders);
                    response->set_version(common::VersionToString(replicated->record.version()));
                    finish(grpc::Status::OK);
                  }
                });
          });
    };
    if (tombstone_first) {
      delete_everywhere();
      return absl::OkStatus();
    }
    app_.coordinator_->ReadAsync(key, placement, replicas, Coordinator::ReadScope::kQuorum,
                                 [key, finish, delete_everywhere](absl::StatusOr<Newest> newest) {
                                   if (!newest.ok()) {
                                     finish(ToGrpcStatus(newest.status()));
                                   } else if (!newest->record || newest->record->tombstone()) {
                                     finish(ToGrpcStatus(ObjectNotFound(key)));
                                   } else {
                                     delete_everywhere();
                                   }
                                 });
    return absl::OkStatus();
  };
  if (absl::Status started = start(); !started.ok()) finish(ToGrpcStatus(started));
  return reactor;
}

grpc::Status UserGrpcService::WatchObjects(grpc::ServerContext* context,
                                           const mcos::v1::WatchObjectsRequest* request,
                                           grpc::ServerWriter<mcos::v1::ObjectChange>* writer) {
  MCOS_AUTH_OR_RETURN(claims);
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateContainerName(request->container()));
  MCOS_GRPC_RETURN_IF_ERROR(common::ValidateObjectListing(request->prefix(), "", ""));
  if (app_.events_ == nullptr) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "this cluster has no event bus, so changes cannot be watched here: start it with "
            "--nats (docs/operating.md, \"Events\")"};
  }
  const std::string owner = common::TokenOwner(claims);
  auto container = app_.GetContainer(owner, request->container());
  if (!container.ok()) return ToGrpcStatus(container.status());
  // A watch holds a handler thread, like a download.
  MCOS_GRPC_RETURN_IF_ERROR(app_.downloads_.Acquire(owner));
  absl::Cleanup release = [&] { app_.downloads_.Release(owner); };
  constexpr size_t kMaxBehind = 10000;
  struct Pending {
    absl::Mutex mu;
    std::deque<mcos::v1::ObjectChange> changes ABSL_GUARDED_BY(mu);
    bool overflow ABSL_GUARDED_BY(mu) = false;
    // The newest version passed on per object: an event published again (its acknowledgement was
    // lost when a nats-server went away) or arriving after a newer one is dropped, so a watcher
    // sees each object's versions once and in order. Forgotten past 100,000 objects.
    absl::flat_hash_map<std::string, mcos::v1::Version> newest ABSL_GUARDED_BY(mu);
  };
  auto pending = std::make_shared<Pending>();
  // Every cluster's object events stream, each for the events of its own cluster's writes (a
  // stream keeps them whatever the links between the nats-servers did; the subscription resumes
  // where it stopped after an outage, so nothing is missed), merged per object by version.
  auto on_event = [pending, owner, c = request->container(), prefix = request->prefix()](
                      const std::string& source, const std::string& payload) {
    mcos::v1::ObjectEvent event;
    if (!event.ParseFromString(payload) || event.cluster() != source ||
        event.key().user() != owner || event.key().container() != c ||
        !absl::StartsWith(event.key().object(), prefix)) {
      // Another cluster's event (it comes from that cluster's stream, in its order), another
      // container sharing the subject, or not under the prefix.
      return;
    }
    mcos::v1::ObjectChange change;
    change.set_kind(event.kind() == mcos::v1::ObjectEvent::KIND_DELETE
                        ? mcos::v1::ObjectChange::KIND_DELETE
                        : mcos::v1::ObjectChange::KIND_PUT);
    auto* info = change.mutable_object();
    info->set_container(c);
    info->set_object(event.key().object());
    info->set_size(event.size());
    info->set_etag(event.etag());
    *info->mutable_modified() = event.modified();
    info->set_version(common::VersionToString(event.version()));
    *info->mutable_replicas() = event.replicas();
    change.set_cluster(event.cluster());
    absl::MutexLock lock(&pending->mu);
    auto [seen, first] = pending->newest.try_emplace(event.key().object(), event.version());
    if (!first) {
      if (!common::IsNewer(event.version(), seen->second)) return;
      seen->second = event.version();
    }
    if (pending->newest.size() > 100000) pending->newest.clear();
    if (pending->changes.size() >= kMaxBehind) {
      pending->overflow = true;
      return;
    }
    pending->changes.push_back(std::move(change));
  };
  std::vector<std::unique_ptr<events::Subscription>> subscriptions;
  std::vector<std::string> clusters = app_.PeerClusters();
  clusters.insert(clusters.begin(), app_.cluster_id_);
  for (const std::string& cluster : clusters) {
    // This cluster's stream is its own nats-server's (whatever its domain); a peer's is reached
    // through the links by its domain.
    events::Follow follow{kObjectEventStream,
                          cluster == app_.cluster_id_ ? "" : events::JetStreamDomain(cluster),
                          events::ObjectSubject(owner, request->container())};
    auto subscription = app_.events_->Subscribe(
        follow, [on_event, cluster](const std::string&, const std::string& payload) {
          on_event(cluster, payload);
        });
    if (!subscription.ok()) return ToGrpcStatus(subscription.status());
    subscriptions.push_back(std::move(*subscription));
  }
  writer->SendInitialMetadata();  // the client knows from here on that it misses nothing
  while (true) {
    std::deque<mcos::v1::ObjectChange> ready;
    bool overflow = false;
    {
      absl::MutexLock lock(&pending->mu);
      auto any = [&pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending->mu) {
        return !pending->changes.empty() || pending->overflow;
      };
      pending->mu.AwaitWithTimeout(absl::Condition(&any), absl::Milliseconds(250));
      ready.swap(pending->changes);
      overflow = pending->overflow;
    }
    for (const auto& change : ready) {
      if (!writer->Write(change)) return grpc::Status::CANCELLED;
    }
    if (overflow) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "the watch fell more than 10000 changes behind; watch again (and list the "
              "container to catch up)"};
    }
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (app_.stop_.HasBeenNotified()) {
      return {grpc::StatusCode::UNAVAILABLE, "the server is stopping; watch again"};
    }
  }
}

}  // namespace mcos::server
