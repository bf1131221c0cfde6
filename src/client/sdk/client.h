// The MCOS C++ SDK: a client of one cluster's UserService (and AdminService for admins).
// Streams uploads from any std::istream and downloads to any std::ostream in chunks of at most
// 1 MiB, never holding a whole object, with an optional progress callback. Errors are
// absl::Status with the server's gRPC code and message. Thread-safe (share one Client).
//
// Over real networks: every unary call has a deadline and every stream an idle timeout (no
// progress for that long ends it with DEADLINE_EXCEEDED); a connect may take up to
// `connect_timeout` (links of several 100 ms round trips work); keepalive pings find a dead
// server; calls that only read are retried on UNAVAILABLE with backoff. TLS with `tls_ca_file`
// (or the system's roots with `tls`).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mcos/v1/admin.grpc.pb.h"
#include "mcos/v1/user.grpc.pb.h"

namespace mcos::common {
class StreamWatchdog;
}  // namespace mcos::common

namespace mcos::client {

// Called with (bytes done, bytes total or 0 when unknown) as data moves.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

struct PutOptions {
  std::string content_type;
  std::map<std::string, std::string> metadata;
  // When set, the server refuses content of another size / MD5.
  std::optional<uint64_t> size;
  std::string md5_hex;
  Progress progress;
};

struct GetOptions {
  uint64_t offset = 0;
  uint64_t length = 0;  // 0 = to the end
  Progress progress;
};

struct ClientOptions {
  // The token to send; empty until Login.
  std::string token;
  // Deadline of unary calls.
  absl::Duration deadline = absl::Seconds(30);
  // Uploads and downloads that make no progress for this long end with DEADLINE_EXCEEDED
  // (zero: never).
  absl::Duration stream_idle_timeout = absl::Seconds(30);
  // Longest time for one connection attempt (TCP, TLS and HTTP/2 handshakes).
  absl::Duration connect_timeout = absl::Seconds(20);
  // Keepalive ping period while calls are running (a dead server is noticed 10 s after a ping).
  absl::Duration keepalive = absl::Seconds(30);
  // Open a TCP connection of its own instead of sharing one with other clients of the process.
  bool own_connection = false;
  // TLS: verify the server with this CA (PEM file)...
  std::string tls_ca_file;
  // ... or with the system's root certificates.
  bool tls = false;
  // A client certificate and its key (PEM files), for servers that require one (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Ends a watch (Client::WatchObjects) from another thread: the watch then returns OK. A cancel
// before the watch begins ends it as soon as it begins. Thread-safe; one watch at a time.
class WatchCancel {
 public:
  void Cancel();

 private:
  friend class Client;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the watch under way
};

class Client {
 public:
  // A client of the cluster at `endpoint` (HOST:PORT): TLS when `options` ask for it, plaintext
  // otherwise. Connects on the first call.
  explicit Client(const std::string& endpoint, ClientOptions options = {});
  ~Client();

  // Whether the options could be used (e.g. the TLS files are readable). When not, every call
  // fails (never in plaintext).
  absl::Status Check() const { return setup_; }

  // Logs in and keeps the token for later calls (at a controller, through its AdminService).
  absl::StatusOr<mcos::v1::LoginResponse> Login(const std::string& user,
                                                const std::string& password);
  void set_token(const std::string& token);
  std::string token();

  absl::StatusOr<mcos::v1::ListContainersResponse> ListContainers(const std::string& prefix = "",
                                                                  const std::string& marker = "",
                                                                  uint32_t limit = 0);
  absl::StatusOr<mcos::v1::ContainerInfo> CreateContainer(const std::string& container,
                                                          const std::string& option = "");
  absl::Status DeleteContainer(const std::string& container);
  absl::StatusOr<mcos::v1::ListObjectsResponse> ListObjects(
      const mcos::v1::ListObjectsRequest& request);

  // Uploads `in` until its end. PutObject creates the object or replaces it, in one atomic step
  // at the server (concurrent puts of one name never fail; the newest wins). CreateObject fails
  // with ALREADY_EXISTS if the object exists, UpdateObject with NOT_FOUND if it does not.
  absl::StatusOr<mcos::v1::ObjectInfo> PutObject(const std::string& container,
                                                 const std::string& object, std::istream& in,
                                                 const PutOptions& options = {});
  absl::StatusOr<mcos::v1::ObjectInfo> CreateObject(const std::string& container,
                                                    const std::string& object, std::istream& in,
                                                    const PutOptions& options = {});
  absl::StatusOr<mcos::v1::ObjectInfo> UpdateObject(const std::string& container,
                                                    const std::string& object, std::istream& in,
                                                    const PutOptions& options = {});
  absl::StatusOr<mcos::v1::ObjectInfo> StatObject(const std::string& container,
                                                  const std::string& object);
  // Writes the object (or the range) to `out`; returns its info.
  absl::StatusOr<mcos::v1::ObjectInfo> DownloadObject(const std::string& container,
                                                      const std::string& object, std::ostream& out,
                                                      const GetOptions& options = {});
  // Returns the tombstone's version.
  absl::StatusOr<std::string> DeleteObject(const std::string& container, const std::string& object);
  // Follows the changes of the caller's objects in `container` whose names start with `prefix`
  // (UserService.WatchObjects): `on_ready` (if set) once the server is watching, then
  // `on_change` for each change as it is committed, until `on_change` returns false (then OK) or
  // the stream ends (its status; UNAVAILABLE: watch again), or `cancel` is cancelled (then OK).
  // No deadline and no idle timeout.
  absl::Status WatchObjects(const std::string& container, const std::string& prefix,
                            const std::function<bool(const mcos::v1::ObjectChange&)>& on_change,
                            const std::function<void()>& on_ready = nullptr,
                            WatchCancel* cancel = nullptr);

  // Admin calls (the controller's AdminService answers on the same address in mcos-cluster).
  // With `identity` (a removed user's, from ListUsers().removed), the new user gets its data.
  absl::StatusOr<mcos::v1::UserInfo> AddUser(const std::string& name, const std::string& password,
                                             bool admin, const std::string& identity = "");
  absl::Status RemoveUser(const std::string& name);
  absl::Status SetPassword(const std::string& name, const std::string& password);
  absl::StatusOr<mcos::v1::ListUsersResponse> ListUsers();
  // One cluster with its services ("" = the one answering).
  absl::StatusOr<mcos::v1::ClusterStatus> GetCluster(const std::string& id = "");
  // Every cluster of the federation, the answering one first.
  absl::StatusOr<mcos::v1::ListClustersResponse> ListClusters();
  // Peers the answering cluster with the one whose controller answers at `controller_endpoint`.
  absl::StatusOr<mcos::v1::ClusterInfo> AddCluster(const std::string& controller_endpoint);
  absl::Status RemoveCluster(const std::string& id);
  // With request.force: a cluster gone for good leaves every ring at once (what changed, a line
  // per ring).
  absl::StatusOr<mcos::v1::RemoveClusterResponse> RemoveCluster(
      const mcos::v1::RemoveClusterRequest& request);
  // The answering cluster's replication queue: backlog per target cluster.
  absl::StatusOr<mcos::v1::RepairStatus> GetRepairStatus();
  // Options whose data moves after a ring or option change, and each cluster's progress.
  absl::StatusOr<mcos::v1::RebalanceStatus> GetRebalanceStatus();
  // Pauses (or with false resumes) moving data, federation-wide; answers the status.
  absl::StatusOr<mcos::v1::RebalanceStatus> PauseRebalance(bool paused = true);
  // MB/s each server copies at while data moves, federation-wide (0: their own setting).
  absl::StatusOr<mcos::v1::RebalanceStatus> SetRebalanceRate(double mb_per_second);
  absl::StatusOr<mcos::v1::ListRingsResponse> ListRings();
  absl::StatusOr<mcos::v1::Ring> CreateRing(const mcos::v1::Ring& ring);
  absl::StatusOr<mcos::v1::UpdateRingResponse> UpdateRing(const mcos::v1::UpdateRingRequest& r);
  absl::StatusOr<mcos::v1::ListOptionsResponse> ListOptions();
  absl::StatusOr<mcos::v1::Option> AddOption(const mcos::v1::Option& option);
  absl::StatusOr<mcos::v1::SetOptionRingResponse> SetOptionRing(
      const mcos::v1::SetOptionRingRequest& request);
  absl::Status RemoveOption(const std::string& name);

 private:
  void Prepare(grpc::ClientContext& ctx, bool unary);
  // The stream's end: DEADLINE_EXCEEDED naming the idle time when the watchdog ended it.
  absl::Status StreamStatus(const grpc::Status& s, bool idled, const char* what,
                            const char* advice) const;
  enum class PutMode { kCreate, kUpdate, kCreateOrReplace };
  absl::StatusOr<mcos::v1::ObjectInfo> Put(PutMode mode, const std::string& container,
                                           const std::string& object, std::istream& in,
                                           const PutOptions& options);

  ClientOptions options_;
  absl::Status setup_;
  // Ends idle streams (started with the first stream).
  std::unique_ptr<common::StreamWatchdog> watchdog_;
  std::unique_ptr<mcos::v1::UserService::Stub> user_;
  std::unique_ptr<mcos::v1::AdminService::Stub> admin_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::client
