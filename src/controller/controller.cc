#include "controller/controller.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/data_dir.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "placement/layout.h"
#include "placement/ring.h"

namespace mcos::controller {
namespace {

constexpr const char* kUsers = kUsersTable;
constexpr const char* kContainers = kContainersTable;
constexpr const char* kRings = kRingsTable;
constexpr const char* kOptions = kOptionsTable;
constexpr const char* kClusters = kClustersTable;
constexpr const char* kFormerLayouts = kFormerLayoutsTable;
constexpr char kDefault[] = "default";
// Former layouts an option may have live at once (each is a ring's layout, up to 4 MiB).
constexpr int kMaxFormerLayouts = 4;

std::string ContainerKey(const std::string& user, const std::string& name) {
  return absl::StrCat(user, "/", name);
}

}  // namespace

Controller::Controller(ControllerOptions options, common::Clock& clock, HealthProbe& probe,
                       std::unique_ptr<metadata::SqliteMetadataStore> store)
    : options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      table_(*store_, clock, cluster_id_),
      users_(table_, *store_, clock, cluster_id_,
             UsersOptions{
                 options_.user_token_key.empty() ? options_.token_key : options_.user_token_key,
                 options_.token_ttl, options_.argon2, options_.login_limits}),
      registry_(*store_, clock, probe,
                RegistryOptions{options_.health_period, options_.health_timeout,
                                options_.down_after_misses},
                cluster_id_) {
  table_.SetObserver(
      [this](const mcos::v1::MetadataRow& row, bool from_peer) { RowStored(row, from_peer); });
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Open(const ControllerOptions& options,
                                                             common::Clock& clock,
                                                             HealthProbe& probe) {
  if (options.token_key.size() < 32) {
    return absl::InvalidArgumentError("the token key must be at least 32 bytes");
  }
  MCOS_RETURN_IF_ERROR(common::PreparePrivateDir(options.data_dir));
  MCOS_ASSIGN_OR_RETURN(auto store,
                        metadata::SqliteMetadataStore::Open(options.data_dir + "/controller.db"));
  std::unique_ptr<Controller> c(new Controller(options, clock, probe, std::move(store)));
  MCOS_RETURN_IF_ERROR(c->Bootstrap());
  return c;
}

void Controller::RowStored(const mcos::v1::MetadataRow& row, bool from_peer) {
  if (row.table() == kContainers) {
    // After the merge: a lookup reads and caches under this lock, so it either ran before the
    // merge (and its entry goes now) or reads the new row.
    absl::MutexLock lock(&cache_mu_);
    containers_.erase(row.key());
  } else if (row.table() == kRings || row.table() == kOptions || row.table() == kFormerLayouts ||
             row.table() == kMoveReportsTable || row.table() == kRebalanceTable) {
    absl::MutexLock lock(&placement_mu_);
    placement_revision_ = store_->revision();
    placement_changed_.SignalAll();
  } else if (row.table() == kUsers && from_peer) {
    // This cluster's own changes publish (and wait) in the calls that make them.
    users_.PublishCredentials(/*wait=*/false);
  }
}

absl::Status Controller::Bootstrap() {
  MCOS_ASSIGN_OR_RETURN(std::optional<std::string> stored_id, store_->GetSetting("cluster_id"));
  if (stored_id) {
    if (!options_.cluster_id.empty() && options_.cluster_id != *stored_id) {
      return absl::FailedPreconditionError(absl::StrCat("this data directory belongs to cluster '",
                                                        *stored_id, "', not '", options_.cluster_id,
                                                        "': fix --name or --data-dir"));
    }
    cluster_id_ = *stored_id;
  } else {
    cluster_id_ = options_.cluster_id.empty() ? absl::StrCat("c-", common::RandomHex(4))
                                              : options_.cluster_id;
    MCOS_RETURN_IF_ERROR(common::ValidateClusterName(cluster_id_));
    MCOS_RETURN_IF_ERROR(store_->SetSetting("cluster_id", cluster_id_));
  }
  // The bootstrap rows (admin, the default ring and option) carry the lowest stamp: when this
  // cluster joins a federation, whatever the federation already has wins over them, and between
  // two clusters' bootstrap rows the higher cluster name wins (docs/operating.md, Federations).
  mcos::v1::Version bootstrap;
  bootstrap.set_hlc(1);
  bootstrap.set_cluster(cluster_id_);

  MCOS_RETURN_IF_ERROR(users_.Bootstrap(options_.admin_password, options_.data_dir, bootstrap));
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto ring, store_->GetRow(kRings, kDefault));
  if (!ring) {
    mcos::v1::Ring r;
    r.set_id(kDefault);
    r.set_partition_power(16);  // room for a federation of ~100 clusters
    r.set_replicas(1);
    r.set_version(1);
    auto* m = r.add_members();
    m->set_cluster(cluster_id_);
    m->set_weight(1.0);
    m->set_region(options_.region);
    MCOS_ASSIGN_OR_RETURN(*r.mutable_layout(), placement::BuildLayout(r, nullptr));
    MCOS_RETURN_IF_ERROR(table_.Put(kRings, kDefault, &r, &bootstrap).status());
  }
  // Rings written before layouts existed get one (laid out from scratch, as resolvers would).
  MCOS_ASSIGN_OR_RETURN(auto ring_rows, store_->ListRows(kRings, "", "", 100000, false));
  for (const auto& row : ring_rows) {
    MCOS_ASSIGN_OR_RETURN(auto r, ParseRow<mcos::v1::Ring>(row));
    if (r.layout().clusters_size() > 0) continue;
    MCOS_ASSIGN_OR_RETURN(*r.mutable_layout(), placement::BuildLayout(r, nullptr));
    MCOS_RETURN_IF_ERROR(table_.Put(kRings, r.id(), &r).status());
    common::LogInfo("laid out ring '", r.id(), "' (stored without a layout)");
  }
  MCOS_ASSIGN_OR_RETURN(auto option, store_->GetRow(kOptions, kDefault));
  if (!option) {
    mcos::v1::Option o;
    o.set_name(kDefault);
    o.set_ring(kDefault);
    o.set_write_concern(0);
    o.set_mode(mcos::v1::OPTION_MODE_CONSISTENT);
    o.set_is_default(true);
    MCOS_RETURN_IF_ERROR(table_.Put(kOptions, kDefault, &o, &bootstrap).status());
  }
  users_.PublishCredentials(/*wait=*/false);
  absl::MutexLock placement_lock(&placement_mu_);
  placement_revision_ = std::max(placement_revision_, store_->revision());
  return absl::OkStatus();
}

// ---- containers -----------------------------------------------------------------------------

absl::StatusOr<mcos::v1::Container> Controller::CreateContainer(const std::string& user,
                                                                const std::string& name,
                                                                const std::string& option) {
  MCOS_RETURN_IF_ERROR(common::ValidateOwnerId(user));
  MCOS_RETURN_IF_ERROR(common::ValidateContainerName(name));
  absl::MutexLock lock(&write_mu_);
  std::string option_name = option;
  if (option_name.empty()) {
    MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kOptions, "", "", 100000, false));
    for (const auto& row : rows) {
      MCOS_ASSIGN_OR_RETURN(auto o, ParseRow<mcos::v1::Option>(row));
      if (o.is_default()) option_name = o.name();
    }
    if (option_name.empty()) {
      return absl::FailedPreconditionError("no default option is set: ask an admin to set one");
    }
  } else {
    MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kOptions, option_name));
    if (!row || row->tombstone()) {
      return absl::NotFoundError(absl::StrCat("option '", option_name,
                                              "' does not exist: list them with "
                                              "'mcos admin option list'"));
    }
  }
  const std::string key = ContainerKey(user, name);
  MCOS_ASSIGN_OR_RETURN(auto existing, store_->GetRow(kContainers, key));
  if (existing && !existing->tombstone()) {
    return absl::AlreadyExistsError(absl::StrCat("container '", name, "' already exists"));
  }
  mcos::v1::Container c;
  c.set_user(user);
  c.set_name(name);
  c.set_option(option_name);
  common::ToProtoTimestamp(clock_.Now(), c.mutable_created());
  *c.mutable_version() = table_.Stamp();
  MCOS_RETURN_IF_ERROR(table_.Put(kContainers, key, &c).status());
  return c;
}

absl::StatusOr<mcos::v1::Container> Controller::GetContainer(const std::string& user,
                                                             const std::string& name) {
  const std::string key = ContainerKey(user, name);
  std::optional<mcos::v1::Container> found;
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = containers_.find(key);
    if (it != containers_.end()) {
      found = it->second;
    } else {
      // Read under the cache lock so that a concurrent write cannot slip between read and insert.
      MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kContainers, key));
      if (row && !row->tombstone()) {
        MCOS_ASSIGN_OR_RETURN(found, ParseRow<mcos::v1::Container>(*row));
      }
      if (containers_.size() > 100000) containers_.clear();
      containers_[key] = found;
    }
  }
  if (!found) return absl::NotFoundError(absl::StrCat("container '", name, "' not found"));
  return *std::move(found);
}

absl::StatusOr<mcos::v1::ListUserContainersResponse> Controller::ListContainers(
    const mcos::v1::ListUserContainersRequest& request) {
  uint32_t limit = request.limit() == 0 ? 1000 : std::min<uint32_t>(request.limit(), 10000);
  const std::string base = request.user() + "/";
  const std::string after = request.marker().empty() ? "" : base + request.marker();
  MCOS_ASSIGN_OR_RETURN(
      auto rows, store_->ListRows(kContainers, base + request.prefix(), after, limit + 1, false));
  mcos::v1::ListUserContainersResponse response;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    MCOS_ASSIGN_OR_RETURN(*response.add_containers(), ParseRow<mcos::v1::Container>(rows[i]));
  }
  if (rows.size() > limit) {
    response.set_next_marker(response.containers(static_cast<int>(limit) - 1).name());
  }
  return response;
}

absl::Status Controller::DeleteContainer(const std::string& user, const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  const std::string key = ContainerKey(user, name);
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kContainers, key));
  if (!row || row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("container '", name, "' not found"));
  }
  return table_.Put(kContainers, key, nullptr).status();
}

absl::StatusOr<mcos::v1::MetadataSnapshot> Controller::Snapshot(
    uint64_t known_revision, absl::Duration wait, const std::function<bool()>& cancelled) {
  mcos::v1::MetadataSnapshot snap;
  {
    const absl::Time deadline = absl::Now() + std::min(wait, absl::Seconds(30));
    absl::MutexLock lock(&placement_mu_);
    while (known_revision != 0 && placement_revision_ == known_revision && absl::Now() < deadline &&
           !(cancelled && cancelled())) {
      placement_changed_.WaitWithDeadline(
          &placement_mu_, std::min(deadline, absl::Now() + absl::Milliseconds(100)));
    }
    snap.set_revision(placement_revision_);
  }
  if (known_revision != 0 && known_revision == snap.revision()) {
    snap.set_unchanged(true);
    return snap;
  }
  MCOS_ASSIGN_OR_RETURN(auto rings, store_->ListRows(kRings, "", "", 100000, false));
  for (const auto& row : rings) {
    MCOS_ASSIGN_OR_RETURN(*snap.add_rings(), ParseRow<mcos::v1::Ring>(row));
  }
  MCOS_ASSIGN_OR_RETURN(auto options, store_->ListRows(kOptions, "", "", 100000, false));
  for (const auto& row : options) {
    MCOS_ASSIGN_OR_RETURN(*snap.add_options(), ParseRow<mcos::v1::Option>(row));
  }
  MCOS_ASSIGN_OR_RETURN(auto formers, store_->ListRows(kFormerLayouts, "", "", 100000, false));
  if (!formers.empty()) {
    for (const auto& row : formers) {
      MCOS_ASSIGN_OR_RETURN(*snap.add_former_layouts(), ParseRow<mcos::v1::FormerLayout>(row));
    }
    MCOS_ASSIGN_OR_RETURN(auto reports, store_->ListRows(kMoveReportsTable, "", "", 100000, false));
    for (const auto& row : reports) {
      MCOS_ASSIGN_OR_RETURN(*snap.add_move_reports(), ParseRow<mcos::v1::MoveReport>(row));
    }
    MCOS_ASSIGN_OR_RETURN(auto clusters, ListClusters());
    for (auto& c : clusters) *snap.add_clusters() = std::move(c);
    MCOS_ASSIGN_OR_RETURN(const auto control, RebalanceControl());
    snap.set_rebalance_paused(control.paused());
    snap.set_rebalance_mb_per_second(control.max_mb_per_second());
  }
  return snap;
}

// ---- rings and options ----------------------------------------------------------------------

namespace {

template <typename T>
absl::StatusOr<std::vector<T>> ParseAll(const std::vector<mcos::v1::MetadataRow>& rows) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    MCOS_ASSIGN_OR_RETURN(T value, ParseRow<T>(row));
    out.push_back(std::move(value));
  }
  return out;
}

}  // namespace

namespace {

// A ring as the admin sees it: without its (large) layout, with every member's assigned and
// ideal replica counts.
mcos::v1::Ring ForAdmin(mcos::v1::Ring ring) {
  const auto ideal = placement::IdealReplicaCounts(ring);
  if (auto compiled = placement::CompiledRing::Make(ring); compiled.ok()) {
    const auto counts = compiled->ReplicaCounts();
    for (int i = 0; i < ring.members_size(); ++i) {
      auto* m = ring.mutable_members(i);
      m->set_ideal_replicas(ideal[static_cast<size_t>(i)]);
      for (size_t k = 0; k < compiled->clusters().size(); ++k) {
        if (compiled->clusters()[k] == m->cluster()) m->set_assigned_replicas(counts[k]);
      }
    }
  }
  ring.clear_layout();
  return ring;
}

// Members' assigned and ideal counts are filled in answers only; never stored from a request.
void ClearAnswerFields(mcos::v1::Ring& ring) {
  for (auto& m : *ring.mutable_members()) {
    m.clear_assigned_replicas();
    m.clear_ideal_replicas();
  }
}

}  // namespace

absl::StatusOr<std::vector<mcos::v1::Ring>> Controller::ListRings() {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kRings, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(auto rings, ParseAll<mcos::v1::Ring>(rows));
  for (auto& r : rings) r = ForAdmin(std::move(r));
  return rings;
}

absl::StatusOr<mcos::v1::Ring> Controller::CreateRing(mcos::v1::Ring ring) {
  MCOS_ASSIGN_OR_RETURN(auto known, KnownClusters());
  MCOS_RETURN_IF_ERROR(placement::ValidateRing(ring, known));
  ring.set_version(1);
  ClearAnswerFields(ring);
  // Laid out before taking the write lock: it takes up to a second for large rings.
  MCOS_ASSIGN_OR_RETURN(*ring.mutable_layout(), placement::BuildLayout(ring, nullptr));
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto existing, store_->GetRow(kRings, ring.id()));
  if (existing && !existing->tombstone()) {
    return absl::AlreadyExistsError(absl::StrCat("ring '", ring.id(), "' already exists"));
  }
  *ring.mutable_stamp() = table_.Stamp();
  MCOS_RETURN_IF_ERROR(table_.Put(kRings, ring.id(), &ring).status());
  common::LogInfo("created ring '", ring.id(), "' (", ring.members_size(), " members, ",
                  ring.replicas(), " replicas, partition power ", ring.partition_power(), ")");
  return ForAdmin(std::move(ring));
}

absl::Status Controller::CheckUnchanged(const std::string& table, const mcos::v1::MetadataRow& seen,
                                        absl::string_view what) {
  MCOS_ASSIGN_OR_RETURN(auto now, store_->GetRow(table, seen.key()));
  if (!now || now->tombstone() || now->version().hlc() != seen.version().hlc() ||
      now->version().cluster() != seen.version().cluster()) {
    return absl::AbortedError(absl::StrCat(what, " '", seen.key(),
                                           "' changed while this change was computed; run it "
                                           "again"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<mcos::v1::Option>> Controller::OptionsUsing(const std::string& ring) {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kOptions, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(auto options, ParseAll<mcos::v1::Option>(rows));
  std::erase_if(options, [&](const mcos::v1::Option& o) { return o.ring() != ring; });
  return options;
}

absl::Status Controller::CheckWriteConcerns(const mcos::v1::Ring& ring) {
  MCOS_ASSIGN_OR_RETURN(auto options, OptionsUsing(ring.id()));
  return CheckWriteConcerns(ring, options);
}

absl::Status Controller::CheckWriteConcerns(const mcos::v1::Ring& ring,
                                            const std::vector<mcos::v1::Option>& options) {
  for (const auto& o : options) {
    if (o.write_concern() > ring.replicas()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "option '", o.name(), "' writes to ", o.write_concern(), " replicas of ring '", ring.id(),
          "'; lower its write concern before the ring's replicas"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::UpdateRingResponse> Controller::UpdateRing(
    const mcos::v1::UpdateRingRequest& request) {
  // The new layout, and the bytes that would move, are computed without the write lock (they
  // take a while and ask the storage service); the write checks that the ring did not change
  // meanwhile.
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kRings, request.id()));
  if (!row || row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("ring '", request.id(), "' not found"));
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::Ring current, ParseRow<mcos::v1::Ring>(*row));
  mcos::v1::Ring next = current;
  next.clear_layout();
  if (!request.members().empty()) *next.mutable_members() = request.members();
  if (request.replicas() != 0) next.set_replicas(request.replicas());
  if (request.partition_power() != 0) next.set_partition_power(request.partition_power());
  ClearAnswerFields(next);
  next.set_version(current.version() + 1);
  MCOS_ASSIGN_OR_RETURN(auto known, KnownClusters());
  MCOS_RETURN_IF_ERROR(placement::ValidateRing(next, known));
  MCOS_ASSIGN_OR_RETURN(const auto options, OptionsUsing(current.id()));
  MCOS_RETURN_IF_ERROR(CheckWriteConcerns(next, options));
  MCOS_ASSIGN_OR_RETURN(*next.mutable_layout(), placement::BuildLayout(next, &current));
  std::vector<std::string> users_of_ring;
  users_of_ring.reserve(options.size());
  for (const auto& o : options) users_of_ring.push_back(o.name());
  mcos::v1::UpdateRingResponse response;
  const auto bytes = BytesOf(users_of_ring, next.partition_power());
  MCOS_ASSIGN_OR_RETURN(*response.mutable_plan(),
                        placement::PlanMovement(current, next, bytes.get()));
  response.mutable_plan()->set_bytes_unknown(bytes == nullptr);
  if (request.dry_run()) {
    *response.mutable_ring() = ForAdmin(std::move(current));
    return response;
  }
  absl::MutexLock lock(&write_mu_);
  MCOS_RETURN_IF_ERROR(CheckUnchanged(kRings, *row, "ring"));
  MCOS_RETURN_IF_ERROR(CheckWriteConcerns(next));  // an option may have been added meanwhile
  // Every option on the ring keeps the current layout live until its data has moved.
  MCOS_ASSIGN_OR_RETURN(const auto users, OptionsUsing(current.id()));
  std::vector<std::string> moving;
  if (response.plan().partitions_moved() > 0) {
    for (const auto& o : users) {
      MCOS_ASSIGN_OR_RETURN(const bool used, HasContainers(o.name()));
      if (used) moving.push_back(o.name());
    }
    MCOS_RETURN_IF_ERROR(CheckFormerLayouts(moving));
  }
  *next.mutable_stamp() = table_.Stamp();
  for (const auto& o : moving) {
    MCOS_RETURN_IF_ERROR(
        KeepFormerLayout(o, current, next, response.plan().bytes_moved()).status());
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kRings, next.id(), &next).status());
  common::LogInfo("updated ring '", next.id(), "' to version ", next.version(), "; ",
                  response.plan().partitions_moved(), " of ", response.plan().partitions_total(),
                  " partitions change placement");
  *response.mutable_ring() = ForAdmin(std::move(next));
  return response;
}

std::unique_ptr<std::vector<uint64_t>> Controller::BytesOf(const std::vector<std::string>& options,
                                                           uint32_t power) {
  if (!partition_usage_) return nullptr;
  auto sum = std::make_unique<std::vector<uint64_t>>(size_t{1} << power, 0);
  for (const auto& o : options) {
    auto usage = partition_usage_(o, power);
    if (!usage.ok()) {
      common::LogWarning("cannot count the bytes of option '", o,
                         "' per partition: ", usage.status().message());
      return nullptr;
    }
    for (const auto& p : usage->partitions()) {
      if (p.partition() >= sum->size()) {
        common::LogWarning("cannot count the bytes of option '", o,
                           "' per partition: the storage named a partition out of range");
        return nullptr;
      }
      (*sum)[p.partition()] += p.bytes_used();
    }
  }
  return sum;
}

absl::StatusOr<mcos::v1::OptionUsage> Controller::StoredUsage(const std::string& option) {
  if (!partition_usage_) return absl::UnavailableError("this cluster's storage is not counted");
  MCOS_ASSIGN_OR_RETURN(const auto usage, partition_usage_(option, 1));
  mcos::v1::OptionUsage total;
  total.set_option(option);
  for (const auto& p : usage.partitions()) {
    total.set_object_count(total.object_count() + p.object_count());
    total.set_bytes_used(total.bytes_used() + p.bytes_used());
  }
  return total;
}

absl::StatusOr<std::vector<mcos::v1::Option>> Controller::ListOptions() {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kOptions, "", "", 100000, false));
  return ParseAll<mcos::v1::Option>(rows);
}

absl::StatusOr<mcos::v1::Option> Controller::AddOption(mcos::v1::Option option) {
  if (auto s = common::ValidateUserName(option.name()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("option name: ", s.message()));
  }
  if (option.mode() == mcos::v1::OPTION_MODE_UNSPECIFIED) {
    option.set_mode(mcos::v1::OPTION_MODE_CONSISTENT);
  }
  if (!mcos::v1::OptionMode_IsValid(option.mode())) {
    return absl::InvalidArgumentError("the option mode is unknown: use consistent or degraded");
  }
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto ring_row, store_->GetRow(kRings, option.ring()));
  if (!ring_row || ring_row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("ring '", option.ring(), "' not found"));
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::Ring ring, ParseRow<mcos::v1::Ring>(*ring_row));
  if (option.write_concern() > ring.replicas()) {
    return absl::InvalidArgumentError(absl::StrCat("write concern ", option.write_concern(),
                                                   " is more than ring '", ring.id(), "''s ",
                                                   ring.replicas(), " replicas"));
  }
  MCOS_ASSIGN_OR_RETURN(auto existing, store_->GetRow(kOptions, option.name()));
  if (existing && !existing->tombstone()) {
    return absl::AlreadyExistsError(absl::StrCat("option '", option.name(), "' already exists"));
  }
  if (option.is_default()) {
    MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kOptions, "", "", 100000, false));
    MCOS_ASSIGN_OR_RETURN(auto all, ParseAll<mcos::v1::Option>(rows));
    for (auto& o : all) {
      if (!o.is_default()) continue;
      o.set_is_default(false);
      MCOS_RETURN_IF_ERROR(table_.Put(kOptions, o.name(), &o).status());
    }
  }
  *option.mutable_version() = table_.Stamp();
  MCOS_RETURN_IF_ERROR(table_.Put(kOptions, option.name(), &option).status());
  common::LogInfo("added option '", option.name(), "' on ring '", option.ring(), "'",
                  option.is_default() ? " (default)" : "");
  return option;
}

absl::StatusOr<mcos::v1::SetOptionRingResponse> Controller::SetOptionRing(
    const mcos::v1::SetOptionRingRequest& request) {
  // Planned without the write lock (see UpdateRing).
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kOptions, request.option()));
  if (!row || row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("option '", request.option(), "' not found"));
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::Option option, ParseRow<mcos::v1::Option>(*row));
  MCOS_ASSIGN_OR_RETURN(auto from_row, store_->GetRow(kRings, option.ring()));
  MCOS_ASSIGN_OR_RETURN(auto to_row, store_->GetRow(kRings, request.ring()));
  if (!to_row || to_row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("ring '", request.ring(), "' not found"));
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::Ring to, ParseRow<mcos::v1::Ring>(*to_row));
  if (option.write_concern() > to.replicas()) {
    return absl::InvalidArgumentError(
        absl::StrCat("option '", option.name(), "' has write concern ", option.write_concern(),
                     " but ring '", to.id(), "' has only ", to.replicas(), " replicas"));
  }
  mcos::v1::SetOptionRingResponse response;
  if (from_row && !from_row->tombstone()) {
    MCOS_ASSIGN_OR_RETURN(mcos::v1::Ring from, ParseRow<mcos::v1::Ring>(*from_row));
    const auto bytes =
        BytesOf({option.name()}, std::max(from.partition_power(), to.partition_power()));
    MCOS_ASSIGN_OR_RETURN(*response.mutable_plan(), placement::PlanMovement(from, to, bytes.get()));
    response.mutable_plan()->set_bytes_unknown(bytes == nullptr);
  }
  if (!request.dry_run() && to.id() != option.ring()) {
    absl::MutexLock lock(&write_mu_);
    MCOS_RETURN_IF_ERROR(CheckUnchanged(kOptions, *row, "option"));
    // The option's data stays readable where it is until it has moved.
    MCOS_ASSIGN_OR_RETURN(const bool used, HasContainers(option.name()));
    if (used && from_row && !from_row->tombstone()) {
      MCOS_ASSIGN_OR_RETURN(mcos::v1::Ring from, ParseRow<mcos::v1::Ring>(*from_row));
      MCOS_RETURN_IF_ERROR(CheckFormerLayouts({option.name()}));
      MCOS_RETURN_IF_ERROR(
          KeepFormerLayout(option.name(), from, to, response.plan().bytes_moved()).status());
    }
    option.set_ring(to.id());
    *option.mutable_version() = table_.Stamp();
    MCOS_RETURN_IF_ERROR(table_.Put(kOptions, option.name(), &option).status());
    common::LogInfo("option '", option.name(), "' now uses ring '", to.id(), "'");
  }
  *response.mutable_option() = option;
  return response;
}

absl::Status Controller::RemoveOption(const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kOptions, name));
  if (!row || row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("option '", name, "' not found"));
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::Option option, ParseRow<mcos::v1::Option>(*row));
  if (option.is_default()) {
    return absl::FailedPreconditionError(
        absl::StrCat("option '", name, "' is the default; make another option the default first"));
  }
  MCOS_ASSIGN_OR_RETURN(const uint64_t users, ContainersUsing(name));
  if (users > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "option '", name, "' is used by ", users, " container(s); delete them or keep the option"));
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kOptions, name, nullptr).status());
  common::LogInfo("removed option '", name, "'");
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Controller::ContainersUsing(const std::string& option, uint64_t enough) {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kContainers, "", "", UINT32_MAX, false));
  uint64_t n = 0;
  for (const auto& r : rows) {
    MCOS_ASSIGN_OR_RETURN(auto c, ParseRow<mcos::v1::Container>(r));
    if (c.option() == option && ++n >= enough) break;
  }
  return n;
}

absl::StatusOr<bool> Controller::HasContainers(const std::string& option) {
  MCOS_ASSIGN_OR_RETURN(const uint64_t n, ContainersUsing(option, 1));
  return n > 0;
}

absl::Status Controller::CheckFormerLayouts(const std::vector<std::string>& options) {
  for (const auto& o : options) {
    MCOS_ASSIGN_OR_RETURN(
        auto rows, store_->ListRows(kFormerLayouts, absl::StrCat(o, "/"), "", 100000, false));
    if (rows.size() >= kMaxFormerLayouts) {
      return absl::FailedPreconditionError(absl::StrCat(
          "option '", o, "' still moves its data from ", rows.size(), " former layouts (at most ",
          kMaxFormerLayouts,
          "); wait until `mcos admin rebalance status` shows them done, then change it again"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Controller::KeepFormerLayout(const std::string& option,
                                                         const mcos::v1::Ring& from,
                                                         const mcos::v1::Ring& to,
                                                         uint64_t bytes_to_move,
                                                         const std::vector<std::string>& dropped) {
  mcos::v1::FormerLayout former;
  former.set_option(option);
  const mcos::v1::Version stamp = table_.Stamp();
  former.set_id(absl::StrCat(stamp.hlc(), "-", stamp.cluster()));
  *former.mutable_ring() = from;
  common::ToProtoTimestamp(clock_.Now(), former.mutable_replaced());
  former.set_to_ring(to.id());
  former.set_to_ring_version(to.version());
  former.set_bytes_to_move(bytes_to_move);
  for (const auto& c : dropped) former.add_dropped(c);
  std::string key = absl::StrCat(option, "/", former.id());
  MCOS_RETURN_IF_ERROR(table_.Put(kFormerLayouts, key, &former).status());
  common::LogInfo("option '", option, "' moves its data from ring '", from.id(), "' version ",
                  from.version(), " to ring '", to.id(), "' version ", to.version(),
                  " (former layout ", former.id(), ")");
  return key;
}

// ---- federation metadata --------------------------------------------------------------------

absl::StatusOr<std::vector<mcos::v1::ClusterInfo>> Controller::ListClusters() {
  MCOS_ASSIGN_OR_RETURN(auto rows, store_->ListRows(kClusters, "", "", 100000, false));
  return ParseAll<mcos::v1::ClusterInfo>(rows);
}

absl::StatusOr<std::set<std::string>> Controller::KnownClusters() {
  std::set<std::string> known = {cluster_id_};
  MCOS_ASSIGN_OR_RETURN(auto clusters, ListClusters());
  for (const auto& c : clusters) known.insert(c.id());
  return known;
}

absl::Status Controller::PutCluster(mcos::v1::ClusterInfo cluster) {
  MCOS_RETURN_IF_ERROR(common::ValidateClusterName(cluster.id()));
  cluster.clear_state();
  cluster.clear_last_seen();
  cluster.clear_version();
  absl::MutexLock lock(&write_mu_);
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kClusters, cluster.id()));
  if (row && !row->tombstone() && row->value() == cluster.SerializeAsString()) {
    return absl::OkStatus();
  }
  if (row && row->tombstone() && cluster.id() == cluster_id_) {
    return absl::FailedPreconditionError(
        "this cluster was removed from its federation; an admin of another cluster can add it "
        "again (mcos admin cluster add)");
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kClusters, cluster.id(), &cluster).status());
  if (cluster.id() != cluster_id_) {
    common::LogInfo("cluster '", cluster.id(), "' (controller ", cluster.controller_endpoint(),
                    ") is in the federation");
  }
  return absl::OkStatus();
}

absl::Status Controller::CheckRemovable(const std::string& name) {
  if (name == cluster_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", name, "' is this cluster: remove it from another cluster of the federation"));
  }
  MCOS_ASSIGN_OR_RETURN(auto row, store_->GetRow(kClusters, name));
  if (!row || row->tombstone()) {
    return absl::NotFoundError(absl::StrCat("cluster '", name, "' is not in the federation"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Controller::Holdings> Controller::HoldingsOf(const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  MCOS_RETURN_IF_ERROR(CheckRemovable(name));
  return HoldingsOfLocked(name);
}

absl::StatusOr<Controller::Holdings> Controller::HoldingsOfLocked(const std::string& name) {
  Holdings holdings;
  std::set<std::string> options;
  auto count = [&](const mcos::v1::Ring& ring, const std::string& what,
                   const std::vector<std::string>& of) -> absl::Status {
    MCOS_ASSIGN_OR_RETURN(auto compiled, placement::CompiledRing::Make(ring));
    const auto counts = compiled.ReplicaCountsByCluster();
    if (auto it = counts.find(name); it != counts.end()) {
      holdings.what.push_back(what);
      holdings.partitions += it->second;
      options.insert(of.begin(), of.end());
    }
    return absl::OkStatus();
  };
  MCOS_ASSIGN_OR_RETURN(auto ring_rows, store_->ListRows(kRings, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(auto rings, ParseAll<mcos::v1::Ring>(ring_rows));
  for (const auto& r : rings) {
    MCOS_ASSIGN_OR_RETURN(const auto using_ring, OptionsUsing(r.id()));
    std::vector<std::string> names;
    for (const auto& o : using_ring) names.push_back(o.name());
    MCOS_RETURN_IF_ERROR(count(r, absl::StrCat("ring ", r.id()), names));
  }
  MCOS_ASSIGN_OR_RETURN(auto former_rows, store_->ListRows(kFormerLayouts, "", "", 100000, false));
  for (const auto& row : former_rows) {
    MCOS_ASSIGN_OR_RETURN(auto f, ParseRow<mcos::v1::FormerLayout>(row));
    MCOS_RETURN_IF_ERROR(count(f.ring(),
                               absl::StrCat("option ", f.option(), "'s former layout ", f.id(),
                                            " (its data is moving off it)"),
                               {f.option()}));
  }
  holdings.options.assign(options.begin(), options.end());
  return holdings;
}

absl::Status Controller::RemoveCluster(const std::string& name, const std::string& stored) {
  absl::MutexLock lock(&write_mu_);
  MCOS_RETURN_IF_ERROR(CheckRemovable(name));
  MCOS_ASSIGN_OR_RETURN(const Holdings holdings, HoldingsOfLocked(name));
  if (!holdings.what.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster '", name, "' still holds ", holdings.partitions, " partition replica(s) of ",
        absl::StrJoin(holdings.what, ", "), stored.empty() ? "" : absl::StrCat(" (", stored, ")"),
        ": move its data off first with `mcos admin cluster remove ", name,
        " --drain` (it sets its weight to 0 in every ring, waits until `mcos admin "
        "rebalance status` shows nothing moving, then removes it)"));
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kClusters, name, nullptr).status());
  common::LogInfo("removed cluster '", name, "' from the federation");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Controller::DropCluster(const std::string& name) {
  absl::MutexLock lock(&write_mu_);
  MCOS_RETURN_IF_ERROR(CheckRemovable(name));
  MCOS_ASSIGN_OR_RETURN(std::set<std::string> known, KnownClusters());
  known.erase(name);
  // Every change is computed and checked before any is written.
  struct Change {
    mcos::v1::Ring from;
    mcos::v1::Ring to;
    std::vector<std::string> moving;  // options with containers on it
    uint64_t lost = 0;                // partitions whose every replica was on the cluster
  };
  std::vector<Change> changes;
  std::vector<std::string> refused;
  MCOS_ASSIGN_OR_RETURN(auto ring_rows, store_->ListRows(kRings, "", "", 100000, false));
  MCOS_ASSIGN_OR_RETURN(auto rings, ParseAll<mcos::v1::Ring>(ring_rows));
  for (auto& ring : rings) {
    const auto& members = ring.members();
    if (std::none_of(members.begin(), members.end(),
                     [&](const mcos::v1::RingMember& m) { return m.cluster() == name; })) {
      continue;
    }
    Change change;
    change.to = ring;
    change.to.clear_layout();
    change.to.clear_members();
    uint32_t holding = 0;
    for (const auto& m : members) {
      if (m.cluster() == name) continue;
      *change.to.add_members() = m;
      if (m.weight() > 0) ++holding;
    }
    if (holding == 0) {
      refused.push_back(absl::StrCat("ring '", ring.id(), "' has no other member with weight"));
      continue;
    }
    change.to.set_replicas(std::min(ring.replicas(), holding));
    change.to.set_version(ring.version() + 1);
    MCOS_ASSIGN_OR_RETURN(const auto options, OptionsUsing(ring.id()));
    if (absl::Status s = placement::ValidateRing(change.to, known); !s.ok()) {
      refused.push_back(absl::StrCat("ring '", ring.id(), "': ", s.message()));
      continue;
    }
    if (absl::Status s = CheckWriteConcerns(change.to, options); !s.ok()) {
      refused.push_back(std::string(s.message()));
      continue;
    }
    MCOS_ASSIGN_OR_RETURN(*change.to.mutable_layout(), placement::BuildLayout(change.to, &ring));
    MCOS_ASSIGN_OR_RETURN(auto compiled, placement::CompiledRing::Make(ring));
    for (uint32_t p = 0; p < compiled.partitions(); ++p) {
      const auto replicas = compiled.Replicas(p);
      if (std::all_of(replicas.begin(), replicas.end(),
                      [&](uint16_t i) { return compiled.clusters()[i] == name; })) {
        ++change.lost;
      }
    }
    for (const auto& o : options) {
      MCOS_ASSIGN_OR_RETURN(const bool used, HasContainers(o.name()));
      if (used) change.moving.push_back(o.name());
    }
    if (absl::Status s = CheckFormerLayouts(change.moving); !s.ok()) {
      refused.push_back(std::string(s.message()));
      continue;
    }
    change.from = std::move(ring);
    changes.push_back(std::move(change));
  }
  if (!refused.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot drop cluster '", name, "'; nothing was changed: ", absl::StrJoin(refused, "; ")));
  }
  std::vector<std::string> lines;
  // The moves already under way leave it out of their sets.
  MCOS_ASSIGN_OR_RETURN(auto former_rows, store_->ListRows(kFormerLayouts, "", "", 100000, false));
  for (const auto& former_row : former_rows) {
    MCOS_ASSIGN_OR_RETURN(auto former, ParseRow<mcos::v1::FormerLayout>(former_row));
    const auto& m = former.ring().members();
    const bool member = std::any_of(
        m.begin(), m.end(), [&](const mcos::v1::RingMember& r) { return r.cluster() == name; });
    const auto& d = former.dropped();
    if (!member || std::find(d.begin(), d.end(), name) != d.end()) continue;
    former.add_dropped(name);
    MCOS_RETURN_IF_ERROR(table_.Put(kFormerLayouts, former_row.key(), &former).status());
    lines.push_back(absl::StrCat("option ", former.option(), ": its move off former layout ",
                                 former.id(), " leaves ", name, " out"));
  }
  for (auto& change : changes) {
    *change.to.mutable_stamp() = table_.Stamp();
    for (const auto& o : change.moving) {
      MCOS_RETURN_IF_ERROR(KeepFormerLayout(o, change.from, change.to, 0, {name}).status());
    }
    MCOS_RETURN_IF_ERROR(table_.Put(kRings, change.to.id(), &change.to).status());
    std::string line =
        absl::StrCat("ring ", change.to.id(), ": version ", change.to.version(), " without ", name);
    if (change.to.replicas() < change.from.replicas()) {
      absl::StrAppend(&line, ", ", change.from.replicas(), " -> ", change.to.replicas(),
                      " replicas (add a cluster to the ring to restore them)");
    }
    if (!change.moving.empty()) {
      absl::StrAppend(&line, "; ", absl::StrJoin(change.moving, ", "),
                      " copied again from the surviving replicas");
    }
    if (change.lost > 0) {
      absl::StrAppend(&line, "; ", change.lost, " partition(s) had their only replica on ", name,
                      ": what they held is lost");
    }
    lines.push_back(std::move(line));
  }
  MCOS_RETURN_IF_ERROR(table_.Put(kClusters, name, nullptr).status());
  common::LogWarning("dropped cluster '", name,
                     "' from the federation for good: ", absl::StrJoin(lines, "; "));
  return lines;
}

}  // namespace mcos::controller
