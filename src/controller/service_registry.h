// The service registry of one cluster: which controller, resolver, storage and server processes
// exist, where, and whether they answer their health checks. Local to the cluster (a table of the
// controller's SQLite database that is not replicated). Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "mcos/v1/controller.pb.h"
#include "mcos/v1/storage.pb.h"
#include "metadata/sqlite_metadata_store.h"

namespace mcos::controller {

// Probes one service endpoint (grpc.health.v1 in production; a fake in unit tests).
class HealthProbe {
 public:
  virtual ~HealthProbe() = default;
  // OK if the process at `endpoint` answers SERVING for `service` ("" = the process as a whole)
  // within `timeout`; FAILED_PRECONDITION if it answers NOT_SERVING; NOT_FOUND if it does not know
  // that service name; another error if it does not answer.
  virtual absl::Status Check(const std::string& endpoint, const std::string& service,
                             absl::Duration timeout) = 0;
  // The disk of the storage node at `endpoint` (StorageService.DiskStatus); UNIMPLEMENTED when
  // the probe cannot ask.
  virtual absl::StatusOr<mcos::v1::DiskStatusResponse> StorageDisk(const std::string& endpoint,
                                                                   absl::Duration timeout) {
    return absl::UnimplementedError("no disk status from this probe");
  }
};

struct RegistryOptions {
  // Health checks of registered services: period, and misses before a service is marked down.
  absl::Duration period = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(1);
  int down_after_misses = 3;
};

// "disk 160 MiB: new data refused below 8 MiB free, reserve 8 MiB".
std::string StorageDiskDetail(const mcos::v1::DiskStatusResponse& disk);

class ServiceRegistry {
 public:
  // `store`, `clock`, `probe` and `cluster_id` (set before the first Register) must outlive this.
  ServiceRegistry(metadata::SqliteMetadataStore& store, common::Clock& clock, HealthProbe& probe,
                  RegistryOptions options, const std::string& cluster_id);

  // INVALID_ARGUMENT for a missing kind or an endpoint that is not HOST:PORT.
  absl::StatusOr<mcos::v1::RegisterResponse> Register(const mcos::v1::RegisterRequest& request);
  // NOT_FOUND for a service that is not registered (it should register again).
  absl::Status Heartbeat(const std::string& service_id);
  absl::StatusOr<std::vector<mcos::v1::ServiceInfo>> ListServices(mcos::v1::ServiceKind kind,
                                                                  bool live_only);
  // Checks every registered service once; marks a service down after down_after_misses misses
  // in a row and up again when it answers. Logs every change, and tells it to `on_change`.
  absl::Status PollOnce();
  // Called (on the polling thread) with every change of a service's state. Set before polling.
  void set_on_change(std::function<void(const mcos::v1::ServiceInfo&)> on_change) {
    on_change_ = std::move(on_change);
  }

  absl::Duration period() const { return options_.period; }

 private:
  metadata::SqliteMetadataStore& store_;
  common::Clock& clock_;
  HealthProbe& probe_;
  const RegistryOptions options_;
  const std::string& cluster_id_;
  std::function<void(const mcos::v1::ServiceInfo&)> on_change_;
  // Held while a service's row is read and written back (Register, Heartbeat, and a health
  // check's outcome, which applies only to the registration it probed).
  absl::Mutex rows_mu_;
};

}  // namespace mcos::controller
