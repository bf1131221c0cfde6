// The object coordinator of a server: fans writes out to an object's replica clusters and counts
// them against the write concern, asks enough replicas on reads to see the newest version, and
// merges listings. Once every replica of a write answered, the copy at the coordinating cluster
// records which clusters took it (ObjectRecord.holders), so that reads need not ask them all. Plain
// C++ over the Replica interface (replication/replica.h), no gRPC types, so that it is tested with
// in-memory replicas.
//
// Writes are stored in this cluster first (the caller commits the local copy, re-stamped above
// whatever newer version it holds there), then copied from it to the other replica clusters in
// parallel; the write is acknowledged once W clusters applied it, each when it held only older
// versions (or a later version of this same cluster: a concurrent write that comes after it). A
// replica that holds a newer version of another cluster says so: the coordinator's clock moves past
// it and, if the write then falls short of W, the write is stamped again above it and sent again
// (at most max_write_rounds times), so that a write acknowledged after another is newer than it
// whatever the clusters' wall clocks say. A replica that fails or times out is handed to `enqueue`
// (the controller's durable replication queue), which sends it the version later.
//
// Breaker: a cluster whose call failed or timed out (UNAVAILABLE, DEADLINE_EXCEEDED) is not
// called by requests (its writes are queued at once, reads skip it) until a probe of it succeeds;
// every known cluster is probed every probe_period (a cheap stat), a failing one after 0.1 s
// doubling to probe_period, so that a cluster that is back is used again within about a second
// whatever calls were in flight when it failed, and one that died is known before a write needs
// it. The blocking calls to each replica cluster (writes read from storage, listings, probes) run
// on a few threads of their own, so a slow cluster costs its own threads until their deadlines,
// never the caller's nor another cluster's; a read's stats of peer clusters, and writes of content
// held in memory and tombstones to them, are started without blocking (Replica::StatAsync,
// replication::CopyAsync) and cost no thread while they wait. Thread-safe.
#pragma once

#include <google/protobuf/arena.h>

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
#include "common/clock.h"
#include "common/daemon.h"
#include "common/version.h"
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
  // A quorum read (ReadScope::kQuorum) asks one more replica each time this passes without
  // enough answers, so that a frozen cluster costs this much, not the replica timeout.
  absl::Duration hedge_after = absl::Milliseconds(200);
  // How often every known cluster is probed, and the longest backoff between probes of a failing
  // one (0.1 s doubling up to this); a probe that takes longer than probe_timeout failed.
  absl::Duration probe_period = absl::Seconds(1);
  absl::Duration probe_timeout = absl::Seconds(1);
  // Runs ProbeOnce every 100 ms on a thread of its own (tests call ProbeOnce themselves).
  bool start_prober = true;
  // How many times a write is stamped and sent again above a newer version a replica held.
  int max_write_rounds = 8;
  // An upload streamed to its replica clusters waits for one that is more than
  // replication::kWriterHighWater bytes behind at most this long; then that cluster is dropped
  // from the write (queued) and the upload goes on.
  absl::Duration stream_stall_timeout = absl::Seconds(2);
  // The breaker's clock (not owned; must outlive the coordinator). Calls' deadlines use the real
  // clock, which the replicas compare them with.
  common::Clock* clock = &common::SystemClock::Get();
};

// The replicas of one request: the placement's clusters that can be reached, by name.
using ReplicaMap = std::map<std::string, std::shared_ptr<replication::Replica>>;

// Replica writes already streamed to their clusters while the upload arrived, by cluster: the
// first round finishes them (ReplicaWriter::Finish) instead of copying from the source.
using Streams = std::map<std::string, std::shared_ptr<replication::ReplicaWriter>>;

// What a read quorum says about an object.
struct Newest {
  // Unset when no asked replica holds anything.
  std::optional<mcos::v1::ObjectRecord> record;
  // The clusters that hold `record`'s version, in the placement's order: those that answered
  // with it, and (ReadScope::kEveryHolder) those their records name.
  std::vector<std::string> holders;
  // Those of `holders` that answered with it (at least one when `record` is set): where to read
  // it from.
  std::vector<std::string> answered;
};

// What a replicated write ended with.
struct Replicated {
  // The version stored: the caller's, or the same content stamped again above a newer version
  // that a replica held.
  mcos::v1::ObjectRecord record;
  // The clusters that applied it, in the placement's order.
  std::vector<std::string> holders;
  // A tombstone's: whether a replica that took it held a live version before, or may have (one
  // that does not say, or took it before this write asked). False: every replica that took it
  // said it held nothing live (Replica::Delete's WriteAck::prior).
  bool replaced_live = false;
};

class Coordinator {
 public:
  // Hands a replica's missed write to the durable queue (called on a pool thread).
  using Enqueue =
      std::function<void(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                         const std::string& target, const std::string& reason)>;
  // `hlc` stamps this server's writes: the coordinator moves it past every version it reads or a
  // replica answers, and stamps again from it. It must outlive the coordinator.
  Coordinator(CoordinatorOptions options, Enqueue enqueue, common::HybridLogicalClock& hlc);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Before a write commits anything: UNAVAILABLE ("... nothing was stored") when fewer than W of
  // the placement's clusters can be reached now (this one, `local`, and those the breaker admits),
  // unless the placement is degraded. A write refused here leaves no trace anywhere.
  absl::Status CheckWritable(const mcos::v1::Placement& placement, const std::string& local,
                             const ReplicaMap& replicas);

  // After `source` (this cluster's copy, or a copy of a small upload in memory) committed `record`
  // (a version or a tombstone) of `key`: copies it to the other clusters of `placement.replicas()`
  // found in `replicas`, and calls `done` once (on some thread) with the version and the clusters
  // that applied it when write_concern of them did; or, when every replica answered or timed out
  // short of it, with UNAVAILABLE ("k of R replica clusters took the write, W needed: it is in
  // doubt ...": the clusters that took it keep it and the queue sends it to the others) unless the
  // placement is degraded (then with who holds it). `source`'s cluster counts as a holder when it
  // is in the placement. When replicas held a newer version, the write is stamped again above it
  // and sent to every replica again, `source`'s cluster too (its copy in `replicas`), the content
  // read from `source` under `record`'s version: a source in storage must keep it readable once
  // replaced (StoragePutFinish.keep_readable_ms, ReplicaReadableFor). A cluster with a write in
  // `streams` gets, in the first round, that write's finish (with `record`'s version) instead of
  // a copy; a stream whose cluster is not called (unknown, or kept out by the breaker) is
  // aborted and its write queued. A stream that failed fails its finish, and the write is queued.
  void Replicate(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                 const mcos::v1::Placement& placement,
                 const std::shared_ptr<replication::Replica>& source, const ReplicaMap& replicas,
                 std::function<void(absl::StatusOr<Replicated>)> done, Streams streams = {});
  // The same, waiting for the answer.
  absl::StatusOr<Replicated> ReplicateAndWait(const mcos::v1::ObjectKey& key,
                                              const mcos::v1::ObjectRecord& record,
                                              const mcos::v1::Placement& placement,
                                              const std::shared_ptr<replication::Replica>& source,
                                              const ReplicaMap& replicas, Streams streams = {});

  // What a strict create's or update's one-round-trip write (WriteFirst) found.
  struct WriteDecision {
    enum class Kind {
      // W-1 other replica clusters stored it, and then this cluster: `holders` names the
      // clusters that hold it (in the placement's order); the others get it from the queue.
      kStored,
      // A create: every one asked answered, none stored it, and the newest version they hold is
      // live: the object exists (nothing was stored anywhere).
      kExists,
      // An update: every one asked answered, none stored it, and the newest version they hold is
      // a tombstone newer than this cluster's live version: the object was deleted.
      kMissing,
      // Every one asked answered and none stored it, and what they hold does not decide (a
      // create below a newer tombstone; an update at clusters that miss this cluster's version,
      // or that hold a newer one): check the read quorum and write as usual.
      kCheck,
    };
    Kind kind = Kind::kCheck;
    std::vector<std::string> holders;
  };
  // A strict create or update in one round trip (OneTripWrite(placement); `local`, this
  // cluster's copy, holds nothing live of `key` for a create, the live version `held` for an
  // update): `record` (whose content is `data`, stamped above `held`) is sent, before it is stored
  // here, to the placement's other clusters, each storing it only when nothing newer is held and
  // `precondition` holds (MUST_NOT_EXIST: nothing live; MUST_EXIST: a live version;
  // ClusterReplicateOp create, update). As soon as W-1 of them stored it, it is stored at `local`
  // with its version (on this cluster's threads), then `done` is called with kStored; once all
  // answered without that, with kExists, kMissing or kCheck; with UNAVAILABLE ("in doubt") when
  // none stored it as far as is known but one did not answer (it may have), or when others
  // stored it and `local` could not. Once stored here, a cluster that refused, failed or was not
  // called is queued (the queue copies this cluster's copy), and one that stored it later is
  // recorded as a holder here.
  void WriteFirst(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                  const std::shared_ptr<const std::string>& data,
                  mcos::v1::WritePrecondition precondition,
                  const std::optional<mcos::v1::Version>& held,
                  const mcos::v1::Placement& placement,
                  const std::shared_ptr<replication::Replica>& local, const ReplicaMap& replicas,
                  std::function<void(absl::StatusOr<WriteDecision>)> done);

  // Who a read asks.
  enum class ReadScope {
    // Every holder of the newest version (stat, download): first the quorum, as kQuorum; then,
    // in parallel, the replicas that were not asked and that no answer's record names as a holder
    // of that version (ObjectRecord.holders), answering once they did or the grace passed. So a
    // read of a version whose holders were recorded by its write asks R-W+1 replicas, not R.
    // `holders` names the clusters that answered with it or that those answers name, among the
    // clusters that can be called now; this cluster's copy records the holders that were asked.
    kEveryHolder,
    // Only R-W+1 of them, this cluster's copy first, and another for each that fails or has not
    // answered within hedge_after: enough to know the newest version (whether an object exists
    // before a create, update or delete). `holders` then names only the holders asked.
    kQuorum,
  };
  // Asks the placement's replicas for the newest version of `key`; needs R-W+1 answers
  // (NOT_FOUND counts; one for a degraded placement), else UNAVAILABLE.
  absl::StatusOr<Newest> Read(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                              const ReplicaMap& replicas,
                              ReadScope scope = ReadScope::kEveryHolder);

  // Read, answered through `done` without blocking the caller: it asks from the calling thread
  // (this cluster's copy there, in-process and fast) and answers on the thread of the last answer
  // it needed (a gRPC thread, or the caller's). kEveryHolder names the holders the quorum's
  // answers vouch for; when a candidate might hold the version and none vouches for it, the read
  // is done again by Read on one of the coordinator's threads.
  void ReadAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                 const ReplicaMap& replicas, ReadScope scope,
                 std::function<void(absl::StatusOr<Newest>)> done);

  // Lists one container across `members` (every cluster of the ring): each replica's page,
  // merged by name, the newest version winning and tombstones hiding. Needs
  // members - write_concern + 1 answers, which every acknowledged write or delete reaches:
  // kQuorum asks only those (this cluster's copy first, another for each that fails, one more
  // each hedge_after), kEveryHolder asks every member (and waits read_grace for the rest once
  // enough answered). Entries carry their holders in `holders`: the clusters whose page had the
  // newest version, and those its records name that answer this server now. Only one page is
  // asked with whole records (this process's copy's, else the first candidate's), the others with
  // versions only (StorageListRequest.versions_only); when an entry's newest version is in none
  // of the whole pages (a copy behind, or this cluster's copy not answering), the listing is asked
  // again with whole pages.
  struct Listing {
    // The pages and the merged one live on one arena: thousands of records parsed, merged and
    // dropped without a heap allocation (and a free) per field.
    std::shared_ptr<google::protobuf::Arena> arena;
    mcos::v1::StorageListResponse* page = nullptr;  // on `arena`
    std::vector<std::vector<std::string>> holders;  // per entry of page->entries()
  };
  absl::StatusOr<Listing> List(const mcos::v1::StorageListRequest& request,
                               const std::vector<std::string>& members, uint32_t write_concern,
                               const ReplicaMap& replicas,
                               ReadScope scope = ReadScope::kEveryHolder);

  // What AskReplicas counts (defined in the .cc).
  struct Tally;
  // ReadAsync's quorum read (defined in the .cc).
  class QuorumRead;

  const CoordinatorOptions& options() const { return options_; }

  // Runs `task` on the threads of `cluster`'s calls (e.g. this cluster's commit of an upload held
  // in memory, which blocks on the disk: never on a gRPC callback thread).
  void Schedule(const std::string& cluster, std::function<void()> task);

  // Probes the clusters that are due (every known one each probe_period, a failing one on its
  // backoff) on their own threads; a probe that succeeds admits its cluster again. A cluster no
  // request used for 10 minutes (e.g. removed from the federation) is forgotten.
  void ProbeOnce();
  // Whether requests call `cluster` now (false once a call failed, until a probe succeeds).
  bool IsAdmitted(const std::string& cluster);
  // Whether `cluster` answered a call or probe of this server and none failed since.
  bool Answers(const std::string& cluster);
  // The same, given the replica to call `cluster` through (remembered for its probes: a cluster
  // restarted at another address is probed at the new one).
  bool Admit(const std::string& cluster, const std::shared_ptr<replication::Replica>& replica);
  // A call to `cluster` ended with `status`: unreachable (UNAVAILABLE, DEADLINE_EXCEEDED) stops
  // requests from calling it until a probe succeeds; anything else admits it. Callers outside the
  // coordinator report what they saw of a cluster's calls (a streamed write that stalled).
  // `from`, the replica the call went through: a failure of one the cluster is no longer called
  // through (it restarted at another address, and its old address's calls were cut) is ignored.
  void Report(const std::string& cluster, const absl::Status& status,
              const replication::Replica* from = nullptr);

 private:
  // List's merge of one quorum's pages; with `versions_only`, all but one page carry only the
  // records' versions, and nullopt means that an entry's newest version is in no whole page.
  absl::StatusOr<std::optional<Listing>> ListOnce(const mcos::v1::StorageListRequest& request,
                                                  const std::vector<std::string>& members,
                                                  uint32_t write_concern,
                                                  const ReplicaMap& replicas, ReadScope scope,
                                                  bool versions_only);

  class Executor;
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
  // With `stats`, the calls are stats: a replica that starts them without blocking
  // (Replica::stats_async) is called from the asking thread, not its cluster's threads.
  void AskReplicas(Candidates candidates, size_t needed, ReadScope scope, absl::Time deadline,
                   Tally& tally, const MakeCall& make_call, bool stats = false);
  // One write's rounds (defined in the .cc).
  struct Write;
  void StartRound(const std::shared_ptr<Write>& write);
  void OnSent(const std::shared_ptr<Write>& write, const std::string& cluster,
              const absl::StatusOr<replication::WriteAck>& ack);
  void MaybeFinish(const std::shared_ptr<Write>& write, std::unique_lock<std::mutex> lock);

  const CoordinatorOptions options_;
  const Enqueue enqueue_;
  common::HybridLogicalClock& hlc_;
  common::Clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  struct Health {
    std::shared_ptr<replication::Replica> replica;  // the last one seen, for probes
    bool failing = false;
    bool answered = false;  // a call or probe succeeded since this server started
    int failures = 0;       // consecutive failed calls and probes
    bool probing = false;
    absl::Time next_probe = absl::InfinitePast();
    absl::Time last_used = absl::InfinitePast();  // by a request: idle ones are forgotten
  };
  std::map<std::string, Health> health_;
  std::unique_ptr<common::Daemon> prober_;
  // Calls in flight that were started without blocking (Replica::StatAsync, CopyAsync): the
  // destructor waits for them.
  void StartAsyncCall();
  void EndAsyncCall();
  std::mutex calls_mu_;
  std::condition_variable calls_done_;
  int async_calls_ = 0;
};

// "k of R replica clusters answered, W needed" as UNAVAILABLE.
absl::Status TooFewReplicas(size_t answered, size_t replicas, size_t needed,
                            absl::string_view what);

// How long a write's copy in storage must stay readable under its version once replaced, so
// that the coordinator can send it to every replica in every round: the rounds' copy deadlines.
absl::Duration ReplicaReadableFor(const CoordinatorOptions& options, uint64_t size);

// Whether the replicas that acknowledge a write of `placement` also make a read quorum
// (W >= R - W + 1, and not degraded: a degraded write may be answered by fewer than W), so that
// what they held before the write tells whether the object existed (Replicated::replaced_live).
bool WriteAnswersAReadQuorum(const mcos::v1::Placement& placement);

// The fewest replicas of `placement` that hold any acknowledged write: W, or while the option's
// data moves, W (or all, if fewer) of the live layout whose set is smallest (data written before
// the move, e.g. that of a cluster that joined with one replica, is only on the former set).
// Reads ask all replicas but this many less one, listings all ring members but this many less
// one, so that they always meet a copy.
size_t CopiesOfAnyWrite(const mcos::v1::Placement& placement);

// `names` sorted by their position in `order` (names not in it last).
void SortByOrder(std::vector<std::string>& names,
                 const google::protobuf::RepeatedPtrField<std::string>& order);

// Whether a strict create or update of `placement` can be written before it is checked
// (WriteFirst): W = 2 and R <= 3, not degraded. Then any other cluster that stores it makes W
// with this one (so a write stored anywhere is committed here and acknowledged, and one refused
// is stored nowhere), and the two make a read quorum (2W > R: for a create nothing acknowledged
// was live, for an update the newest acknowledged version was live).
bool OneTripWrite(const mcos::v1::Placement& placement);

// The key a probe stats: a valid name that no user can own.
mcos::v1::ObjectKey ProbeKey();

}  // namespace mcos::server
