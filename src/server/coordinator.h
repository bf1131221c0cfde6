// The object coordinator of a server (shared/DESIGN.md, "Reads and writes"): fans writes out to
// an object's replica clusters and counts them against the write concern, asks enough replicas
// on reads to see the newest version, and merges listings. Plain C++ over the Replica interface
// (replication/replica.h), no gRPC types, so that it is tested with in-memory replicas.
//
// Writes are stored in this cluster first (the caller commits the local copy), then copied from
// it to the other replica clusters in parallel; the write is acknowledged once W clusters hold
// it. A replica that fails or times out is handed to `enqueue` (the controller's durable
// replication queue), which sends it the version later. The calls to each replica cluster run on
// a few threads of their own, so a slow cluster costs its own threads until their deadlines,
// never the caller's nor another cluster's. A cluster whose calls fail or time out is skipped
// (its writes queued at once, reads not asked) until a single probe call succeeds again; probes
// are spaced 0.1 s doubling to 5 s. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mcos/v1/resolver.pb.h"
#include "mcos/v1/storage.pb.h"
#include "replication/replica.h"

namespace mcos::server {

struct CoordinatorOptions {
  // A replica that has not answered a write within this (plus the time its bytes take at
  // 20 MB/s) is given up on and queued; reads wait this long for a quorum.
  absl::Duration replica_timeout = absl::Seconds(5);
  // Once a read quorum answered, how long the others still get (so that `replicas` names every
  // holder when all are up).
  absl::Duration read_grace = absl::Milliseconds(150);
  // Threads per replica cluster: each cluster's calls run on its own, so a frozen cluster holds
  // up only its own calls.
  int threads_per_cluster = 8;
};

// The replicas of one request: the placement's clusters that can be reached, by name.
using ReplicaMap = std::map<std::string, std::shared_ptr<replication::Replica>>;

// What a read quorum says about an object.
struct Newest {
  // Unset when no asked replica holds anything.
  std::optional<mcos::v1::ObjectRecord> record;
  // The clusters that hold `record`'s version, in the placement's order.
  std::vector<std::string> holders;
};

class Coordinator {
 public:
  // Hands a replica's missed write to the durable queue (called on a pool thread).
  using Enqueue =
      std::function<void(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                         const std::string& target, const std::string& reason)>;
  Coordinator(CoordinatorOptions options, Enqueue enqueue);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // After `local` committed `record` (a version or a tombstone) of `key`: copies it to the other
  // clusters of `placement.replicas()` found in `replicas`, and calls `done` once (on some
  // thread) with the clusters that hold it (placement order) when write_concern of them do; or,
  // when every replica answered or timed out short of it, with UNAVAILABLE ("k of R replica
  // clusters answered, W needed") unless the placement is degraded (then with who holds it).
  // `local` counts when its cluster is in the placement.
  void Replicate(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                 const mcos::v1::Placement& placement,
                 const std::shared_ptr<replication::Replica>& local, const ReplicaMap& replicas,
                 std::function<void(absl::StatusOr<std::vector<std::string>>)> done);
  // The same, waiting for the answer.
  absl::StatusOr<std::vector<std::string>> ReplicateAndWait(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
      const mcos::v1::Placement& placement, const std::shared_ptr<replication::Replica>& local,
      const ReplicaMap& replicas);

  // Who a read asks.
  enum class ReadScope {
    // Every replica of the placement in parallel (answering with the quorum plus the grace), so
    // that `holders` names every cluster that holds the newest version (stat, download).
    kEveryHolder,
    // Only R-W+1 of them, this cluster's copy first, and another for each that fails: enough
    // to know the newest version (whether an object exists before a create, update or delete).
    // `holders` then names only the holders asked.
    kQuorum,
  };
  // Asks the placement's replicas for the newest version of `key`; needs R-W+1 answers
  // (NOT_FOUND counts; one for a degraded placement), else UNAVAILABLE.
  absl::StatusOr<Newest> Read(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                              const ReplicaMap& replicas,
                              ReadScope scope = ReadScope::kEveryHolder);

  // Read, answered through `done` on one of the coordinator's threads (for callers that must not
  // block).
  void ReadAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                 const ReplicaMap& replicas, ReadScope scope,
                 std::function<void(absl::StatusOr<Newest>)> done);

  // Lists one container across `members` (every cluster of the ring): each replica's page,
  // merged by name, the newest version winning and tombstones hiding. Needs
  // members - write_concern + 1 answers. Entries carry their holders in `holders`.
  struct Listing {
    mcos::v1::StorageListResponse page;
    std::vector<std::vector<std::string>> holders;  // per entry of page.entries()
  };
  absl::StatusOr<Listing> List(const mcos::v1::StorageListRequest& request,
                               const std::vector<std::string>& members, uint32_t write_concern,
                               const ReplicaMap& replicas);

  // What AskReplicas counts (defined in the .cc).
  struct Tally;

 private:
  class Executor;
  // Runs `task` on the threads of `cluster`.
  void Schedule(const std::string& cluster, std::function<void()> task);
  // Schedules `task` (a call to `replica`) on its cluster's threads, or, for a replica in this
  // process, adds it to `here` for the caller to run once every other call is under way.
  void Dispatch(const std::string& cluster, const replication::Replica& replica,
                std::vector<std::function<void()>>& here, std::function<void()> task);
  using Candidates = std::vector<std::pair<std::string, std::shared_ptr<replication::Replica>>>;
  // The replicas of `clusters` that can be called now (known, and not skipped by the breaker).
  Candidates Admitted(const google::protobuf::RepeatedPtrField<std::string>& clusters,
                      const ReplicaMap& replicas);
  // The task that calls one replica and adds its answer to the tally.
  using MakeCall = std::function<std::function<void()>(
      const std::string& cluster, const std::shared_ptr<replication::Replica>& replica)>;
  // Asks `candidates` as `scope` says and returns when `tally` has `needed` answers (and, for
  // kEveryHolder, every call ended or the grace after the quorum passed), or every candidate
  // was asked and ended, or at `deadline`.
  void AskReplicas(Candidates candidates, size_t needed, ReadScope scope, absl::Time deadline,
                   Tally& tally, const MakeCall& make_call);
  // Whether to call `cluster` now: yes while its calls succeed; once they fail, only one probe
  // at a time, after its backoff. Admitted calls must be reported with Report.
  bool Admit(const std::string& cluster);
  void Report(const std::string& cluster, const absl::Status& status);

  const CoordinatorOptions options_;
  const Enqueue enqueue_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  struct Health {
    int failures = 0;
    int in_flight = 0;
    absl::Time retry_after = absl::InfinitePast();
  };
  std::map<std::string, Health> health_;
};

// "k of R replica clusters answered, W needed" as UNAVAILABLE.
absl::Status TooFewReplicas(size_t answered, size_t replicas, size_t needed,
                            absl::string_view what);

}  // namespace mcos::server
