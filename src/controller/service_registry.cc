#include "controller/service_registry.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/health_names.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/token.h"

namespace mcos::controller {

std::string StorageDiskDetail(const mcos::v1::DiskStatusResponse& disk) {
  auto mib = [](uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); };
  return absl::StrCat("disk ", mib(disk.total_bytes()), ": new data refused below ",
                      mib(disk.floor_bytes()), " free, reserve ", mib(disk.reserve_bytes()));
}

ServiceRegistry::ServiceRegistry(metadata::SqliteMetadataStore& store, common::Clock& clock,
                                 HealthProbe& probe, RegistryOptions options,
                                 const std::string& cluster_id)
    : store_(store), clock_(clock), probe_(probe), options_(options), cluster_id_(cluster_id) {}

absl::StatusOr<mcos::v1::RegisterResponse> ServiceRegistry::Register(
    const mcos::v1::RegisterRequest& request) {
  if (request.kind() == mcos::v1::SERVICE_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("register: the service kind is missing");
  }
  const std::string& endpoint = request.endpoint();
  const size_t colon = endpoint.rfind(':');
  if (endpoint.empty() || endpoint.size() > 255 || colon == std::string::npos ||
      colon + 1 == endpoint.size() || !common::IsValidUtf8(endpoint)) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: endpoint '", endpoint, "' is not HOST:PORT"));
  }
  mcos::v1::ServiceInfo info;
  info.set_id(request.id().empty() ? absl::StrCat(mcos::v1::ServiceKind_Name(request.kind()), "-",
                                                  common::RandomHex(4))
                                   : request.id());
  if (info.id().size() > 128 || !common::IsValidUtf8(info.id())) {
    return absl::InvalidArgumentError("register: the service id is too long or not UTF-8");
  }
  info.set_kind(request.kind());
  info.set_endpoint(endpoint);
  info.set_state(mcos::v1::SERVICE_STATE_UP);
  const absl::Time now = clock_.Now();
  common::ToProtoTimestamp(now, info.mutable_registered());
  common::ToProtoTimestamp(now, info.mutable_last_ok());
  common::ToProtoTimestamp(now, info.mutable_state_changed());
  {
    absl::MutexLock lock(&rows_mu_);
    MCOS_RETURN_IF_ERROR(store_.UpsertService(info));
  }
  common::LogInfo("registered ", mcos::v1::ServiceKind_Name(info.kind()), " '", info.id(), "' at ",
                  endpoint);
  mcos::v1::RegisterResponse response;
  response.set_service_id(info.id());
  response.set_cluster_id(cluster_id_);
  response.set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.period)));
  return response;
}

absl::Status ServiceRegistry::Heartbeat(const std::string& service_id) {
  absl::MutexLock lock(&rows_mu_);
  MCOS_ASSIGN_OR_RETURN(auto services, store_.ListServices());
  for (auto& s : services) {
    if (s.id() != service_id) continue;
    common::ToProtoTimestamp(clock_.Now(), s.mutable_last_ok());
    return store_.UpsertService(s);
  }
  return absl::NotFoundError(
      absl::StrCat("service '", service_id, "' is not registered: register again"));
}

absl::StatusOr<std::vector<mcos::v1::ServiceInfo>> ServiceRegistry::ListServices(
    mcos::v1::ServiceKind kind, bool live_only) {
  MCOS_ASSIGN_OR_RETURN(auto services, store_.ListServices());
  std::vector<mcos::v1::ServiceInfo> out;
  for (auto& s : services) {
    if (kind != mcos::v1::SERVICE_KIND_UNSPECIFIED && s.kind() != kind) continue;
    if (live_only && s.state() != mcos::v1::SERVICE_STATE_UP) continue;
    out.push_back(std::move(s));
  }
  return out;
}

absl::Status ServiceRegistry::PollOnce() {
  // The probes first, without the lock (they take up to the timeout each).
  struct Outcome {
    mcos::v1::ServiceInfo probed;
    absl::Status health;
    bool storage = false;
    absl::Status writes;
    absl::StatusOr<mcos::v1::DiskStatusResponse> disk = absl::UnknownError("not asked");
  };
  std::vector<Outcome> outcomes;
  {
    MCOS_ASSIGN_OR_RETURN(auto services, store_.ListServices());
    for (auto& service : services) {
      Outcome& o = outcomes.emplace_back();
      o.probed = std::move(service);
      o.health = probe_.Check(o.probed.endpoint(), "", options_.timeout);
      o.storage = o.health.ok() && o.probed.kind() == mcos::v1::SERVICE_KIND_STORAGE;
      if (o.storage) {
        o.writes =
            probe_.Check(o.probed.endpoint(), common::kStorageWritesHealth, options_.timeout);
        o.disk = probe_.StorageDisk(o.probed.endpoint(), options_.timeout);
      }
    }
  }
  absl::MutexLock lock(&rows_mu_);
  // An outcome applies to the registration probed: a service that registered again meanwhile
  // (restarted, perhaps at another address) keeps its new row, and is probed next poll.
  MCOS_ASSIGN_OR_RETURN(auto now_stored, store_.ListServices());
  absl::flat_hash_map<std::string, const mcos::v1::ServiceInfo*> by_id;
  for (const auto& c : now_stored) by_id[c.id()] = &c;
  for (const Outcome& o : outcomes) {
    const mcos::v1::ServiceInfo& probed = o.probed;
    const absl::Status& health = o.health;
    const bool storage = o.storage;
    const absl::Status& writes = o.writes;
    const auto& disk = o.disk;
    auto found = by_id.find(probed.id());
    if (found == by_id.end()) continue;
    const mcos::v1::ServiceInfo* current = found->second;
    if (current->endpoint() != probed.endpoint() ||
        common::FromProtoTimestamp(current->registered()) !=
            common::FromProtoTimestamp(probed.registered())) {
      continue;
    }
    const mcos::v1::ServiceInfo stored = *current;
    mcos::v1::ServiceInfo s = stored;
    const absl::Time now = clock_.Now();
    if (health.ok()) {
      s.set_consecutive_misses(0);
      common::ToProtoTimestamp(now, s.mutable_last_ok());
      s.set_state(mcos::v1::SERVICE_STATE_UP);
    } else {
      s.set_consecutive_misses(s.consecutive_misses() + 1);
      if (static_cast<int>(s.consecutive_misses()) >= options_.down_after_misses) {
        s.set_state(mcos::v1::SERVICE_STATE_DOWN);
      }
    }
    if (storage) {
      // A storage node under its free-space floor still serves reads and deletes: it is UP, with
      // a condition the admin sees in `mcos admin cluster status`.
      const std::string condition =
          writes.code() == absl::StatusCode::kFailedPrecondition
              ? "out of space: new data is refused; reads and deletes work"
              : "";
      if (condition != s.condition()) {
        common::LogWarning("storage '", s.id(), "' at ", s.endpoint(), ": ",
                           condition.empty() ? "accepts new data again" : condition);
        s.set_condition(condition);
      }
      // Its disk's size and floor (what changes rarely: the row is not rewritten every poll).
      if (disk.ok()) s.set_detail(StorageDiskDetail(*disk));
    }
    if (s.state() != stored.state()) {
      common::ToProtoTimestamp(now, s.mutable_state_changed());
      if (s.state() == mcos::v1::SERVICE_STATE_DOWN) {
        common::LogWarning(mcos::v1::ServiceKind_Name(s.kind()), " '", s.id(), "' at ",
                           s.endpoint(), " is DOWN after ", s.consecutive_misses(),
                           " missed health checks: ", health.message());
      } else {
        common::LogInfo(mcos::v1::ServiceKind_Name(s.kind()), " '", s.id(), "' at ", s.endpoint(),
                        " is UP again");
      }
      if (on_change_) on_change_(s);
    }
    // A healthy service that stays healthy is written at most every 10 s (its last contact): a
    // write per poll is an fsync per service every period, and on a full disk it would eat the
    // space that a storage node just gave back.
    const bool unchanged = s.state() == stored.state() &&
                           s.consecutive_misses() == stored.consecutive_misses() &&
                           s.condition() == stored.condition() && s.detail() == stored.detail();
    if (unchanged && now - common::FromProtoTimestamp(stored.last_ok()) < absl::Seconds(10)) {
      continue;
    }
    MCOS_RETURN_IF_ERROR(store_.UpsertService(s));
  }
  return absl::OkStatus();
}

}  // namespace mcos::controller
