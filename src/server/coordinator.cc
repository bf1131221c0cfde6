#include "server/coordinator.h"

#include <grpcpp/alarm.h>
#include <pthread.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/version.h"

namespace mcos::server {
namespace {

using replication::Replica;

size_t WriteConcern(const mcos::v1::Placement& p) {
  const auto r = static_cast<size_t>(p.replicas_size());
  const size_t w = p.write_concern() == 0 ? r / 2 + 1 : p.write_concern();
  return std::max<size_t>(1, std::min(w, r));
}

// Whether the clusters that took a write are enough: `needed` of the replicas, or, while the
// option's data moves, `needed` (or all, if fewer) of each live layout's set.
bool WriteQuorum(const mcos::v1::Placement& p, const std::vector<std::string>& took,
                 size_t needed) {
  if (p.write_sets().empty()) return took.size() >= needed;
  for (const auto& set : p.write_sets()) {
    size_t n = 0;
    for (const auto& c : set.clusters()) n += std::count(took.begin(), took.end(), c) > 0 ? 1 : 0;
    if (n < std::min<size_t>(needed, static_cast<size_t>(set.clusters_size()))) return false;
  }
  return true;
}

}  // namespace

void SortByOrder(std::vector<std::string>& names,
                 const google::protobuf::RepeatedPtrField<std::string>& order) {
  auto rank = [&](const std::string& n) {
    auto it = std::find(order.begin(), order.end(), n);
    return std::distance(order.begin(), it);
  };
  std::stable_sort(names.begin(), names.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
}

absl::Status TooFewReplicas(size_t answered, size_t replicas, size_t needed,
                            absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(answered, " of ", replicas,
                                             " replica clusters answered, ", needed, " needed (",
                                             what, "); retry when more clusters are up"));
}

size_t CopiesOfAnyWrite(const mcos::v1::Placement& placement) {
  size_t w = WriteConcern(placement);
  for (const auto& set : placement.write_sets()) {
    w = std::min(w, std::max<size_t>(1, static_cast<size_t>(set.clusters_size())));
  }
  return w;
}

bool WriteAnswersAReadQuorum(const mcos::v1::Placement& placement) {
  const size_t w = WriteConcern(placement);
  return !placement.degraded() && placement.write_sets().empty() &&
         2 * w > static_cast<size_t>(placement.replicas_size());
}

bool OneTripWrite(const mcos::v1::Placement& placement) {
  return !placement.degraded() && placement.write_sets().empty() && WriteConcern(placement) == 2 &&
         placement.replicas_size() <= 3;
}

absl::Duration ReplicaReadableFor(const CoordinatorOptions& options, uint64_t size) {
  const absl::Duration round =
      replication::CopyDeadline(size, options.replica_timeout) - absl::Now() + absl::Seconds(1);
  return round * std::max(1, options.max_write_rounds);
}

mcos::v1::ObjectKey ProbeKey() {
  mcos::v1::ObjectKey key;
  key.set_user("_0000000000000000");
  key.set_container(".mcos-probe");
  key.set_object("probe");
  return key;
}

class Coordinator::Executor {
 public:
  // `cluster` names the threads (as profilers and top show them: "to <cluster>").
  Executor(int threads, const std::string& cluster) {
    const std::string name = absl::StrCat("to ", cluster).substr(0, 15);
    for (int i = 0; i < std::max(1, threads); ++i) {
      threads_.emplace_back([this, name] {
        pthread_setname_np(pthread_self(), name.c_str());
        while (true) {
          std::function<void()> task;
          {
            std::unique_lock<std::mutex> lock(mu_);
            work_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          task();
        }
      });
    }
  }
  ~Executor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Schedule(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    work_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable work_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

Coordinator::Coordinator(CoordinatorOptions options, Enqueue enqueue,
                         common::HybridLogicalClock& hlc)
    : options_(options), enqueue_(std::move(enqueue)), hlc_(hlc), clock_(*options.clock) {
  if (options_.start_prober) {
    prober_ = std::make_unique<common::Daemon>("replica prober", absl::Milliseconds(100),
                                               [this](common::Pacer&) {
                                                 ProbeOnce();
                                                 return absl::OkStatus();
                                               });
    prober_->Start();
  }
}

Coordinator::~Coordinator() {
  if (prober_ != nullptr) prober_->Stop();
  {
    // Stats started without blocking end by their deadlines.
    std::unique_lock<std::mutex> lock(calls_mu_);
    calls_done_.wait(lock, [this] { return async_calls_ == 0; });
  }
  // Joins their threads after their queued tasks ran; a task may schedule another (holders
  // recorded after a write's last answer), on an executor made anew: joined in the next pass.
  while (true) {
    std::map<std::string, std::unique_ptr<Executor>> executors;
    {
      std::lock_guard<std::mutex> lock(mu_);
      executors.swap(executors_);
    }
    if (executors.empty()) break;
    executors.clear();
  }
}

void Coordinator::StartAsyncCall() {
  std::lock_guard<std::mutex> lock(calls_mu_);
  ++async_calls_;
}

void Coordinator::EndAsyncCall() {
  std::lock_guard<std::mutex> lock(calls_mu_);
  if (--async_calls_ == 0) calls_done_.notify_all();
}

void Coordinator::Schedule(const std::string& cluster, std::function<void()> task) {
  Executor* executor = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = executors_[cluster];
    if (e == nullptr) e = std::make_unique<Executor>(options_.threads_per_cluster, cluster);
    executor = e.get();
  }
  executor->Schedule(std::move(task));
}

void Coordinator::Dispatch(const std::string& cluster, const Replica& replica,
                           std::vector<std::function<void()>>& here, std::function<void()> task) {
  if (replica.in_process()) {
    here.push_back(std::move(task));
  } else {
    Schedule(cluster, std::move(task));
  }
}

bool Coordinator::Admit(const std::string& cluster,
                        const std::shared_ptr<replication::Replica>& replica) {
  std::shared_ptr<replication::Replica> replaced;  // released after the lock: it may wait
  std::lock_guard<std::mutex> lock(mu_);
  Health& h = health_[cluster];
  if (h.replica != replica) {
    replaced = std::move(h.replica);
    h.replica = replica;
  }
  h.last_used = clock_.Now();
  return !h.failing;
}

bool Coordinator::IsAdmitted(const std::string& cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = health_.find(cluster);
  return it == health_.end() || !it->second.failing;
}

bool Coordinator::Answers(const std::string& cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = health_.find(cluster);
  return it != health_.end() && it->second.answered && !it->second.failing;
}

void Coordinator::Report(const std::string& cluster, const absl::Status& status,
                         const Replica* from) {
  const bool unreachable = absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
  std::lock_guard<std::mutex> lock(mu_);
  Health& h = health_[cluster];
  if (unreachable && from != nullptr && h.replica != nullptr && h.replica.get() != from) return;
  if (!unreachable) {
    if (h.failing) common::LogInfo("replica cluster '", cluster, "' answers again");
    h.failing = false;
    h.answered = true;
    h.failures = 0;
    return;
  }
  if (!h.failing) {
    common::LogWarning("replica cluster '", cluster, "' does not answer (", status.message(),
                       "); its writes are queued until a probe of it succeeds");
  }
  h.failing = true;
  ++h.failures;
  h.next_probe = clock_.Now() + std::min(options_.probe_period,
                                         absl::Milliseconds(100) * (1 << std::min(h.failures, 6)));
}

void Coordinator::ProbeOnce() {
  std::vector<std::pair<std::string, std::shared_ptr<Replica>>> due;
  // A replica let go may wait for its calls to end (a peer's replication streams): never under
  // mu_, which their answers take.
  std::vector<std::shared_ptr<Replica>> forgotten;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_.Now();
    for (auto it = health_.begin(); it != health_.end();) {
      const bool idle = !it->second.probing && now - it->second.last_used > absl::Minutes(10);
      if (idle) forgotten.push_back(std::move(it->second.replica));
      it = idle ? health_.erase(it) : std::next(it);
    }
    for (auto& [cluster, h] : health_) {
      if (h.replica == nullptr || h.probing || now < h.next_probe) continue;
      h.probing = true;
      // The next regular probe; Report moves a failing cluster's to its backoff.
      h.next_probe = now + options_.probe_period;
      due.emplace_back(cluster, h.replica);
    }
  }
  std::vector<std::function<void()>> here;
  for (auto& [cluster, replica] : due) {
    Dispatch(cluster, *replica, here, [this, cluster = cluster, replica = replica] {
      auto answer = replica->Stat(ProbeKey(), absl::Now() + options_.probe_timeout);
      Report(cluster,
             answer.ok() || absl::IsNotFound(answer.status()) ? absl::OkStatus() : answer.status(),
             replica.get());
      std::lock_guard<std::mutex> lock(mu_);
      health_[cluster].probing = false;
    });
  }
  for (auto& task : here) task();
}

absl::Status Coordinator::CheckWritable(const mcos::v1::Placement& placement,
                                        const std::string& local, const ReplicaMap& replicas) {
  if (placement.degraded()) return absl::OkStatus();
  const size_t w = WriteConcern(placement);
  std::vector<std::string> up;
  std::vector<std::string> down;
  for (const auto& c : placement.replicas()) {
    auto it = replicas.find(c);
    const bool known = it != replicas.end() && it->second != nullptr;
    if (c == local || (known && Admit(c, it->second))) {
      up.push_back(c);
    } else {
      down.push_back(c);
    }
  }
  const size_t reachable = up.size();
  if (WriteQuorum(placement, up, w)) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("only ", reachable, " of ", placement.replicas_size(),
                                             " replica clusters can be reached now, ", w,
                                             " needed (", absl::StrJoin(down, ", "),
                                             down.size() == 1 ? " does" : " do",
                                             " not answer); nothing was stored: retry when more "
                                             "clusters are up"));
}

// ---- writes ---------------------------------------------------------------------------------

// One replicated write: its rounds, each sending `record` (re-stamped from the second round on)
// to the replicas, and what they answered. Guarded by `mu`.
struct Coordinator::Write {
  mcos::v1::ObjectKey key;
  mcos::v1::Placement placement;
  std::shared_ptr<Replica> source;
  ReplicaMap replicas;
  std::function<void(absl::StatusOr<Replicated>)> done;
  // The first round's writes already streamed to their clusters, to finish instead of copying.
  Streams streams;

  std::mutex mu;
  int round = 1;
  // The version under which `source` holds the content (the first round's; set once).
  mcos::v1::Version source_version;
  // This round's version.
  mcos::v1::ObjectRecord record;
  size_t acks = 0;
  size_t pending = 0;
  std::vector<std::string> holders;
  // The clusters counted in acks (holders, and those that hold a later write of this cluster).
  std::vector<std::string> took;
  // Replicated::replaced_live, over every round.
  bool replaced_live = false;
  // The newest version a replica held instead of taking this round's.
  std::optional<mcos::v1::Version> newer;
  bool answered = false;
  bool released = false;          // the source's kept copy (ReleaseKept)
  bool holders_recorded = false;  // at the source's cluster (Replica::AddHolders)
};

void Coordinator::Replicate(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                            const mcos::v1::Placement& placement,
                            const std::shared_ptr<Replica>& source, const ReplicaMap& replicas,
                            std::function<void(absl::StatusOr<Replicated>)> done, Streams streams) {
  auto write = std::make_shared<Write>();
  write->streams = std::move(streams);
  write->key = key;
  write->placement = placement;
  write->source = source;
  write->replicas = replicas;
  write->done = std::move(done);
  write->record = record;
  write->source_version = record.version();
  hlc_.Observe(record.version().hlc());
  StartRound(write);
}

void Coordinator::StartRound(const std::shared_ptr<Write>& write) {
  Write& w = *write;
  const mcos::v1::ObjectKey& key = w.key;
  struct Target {
    std::string cluster;
    std::shared_ptr<Replica> replica;
    std::shared_ptr<replication::ReplicaWriter> stream;  // the first round's, when streamed
  };
  std::vector<Target> targets;
  std::vector<std::pair<std::string, std::string>> queued;  // (cluster, reason)
  mcos::v1::ObjectRecord record;
  Streams unused;
  int round = 0;
  {
    std::lock_guard<std::mutex> lock(w.mu);
    round = w.round;
    record = w.record;
    w.acks = 0;
    w.holders.clear();
    w.took.clear();
    w.newer.reset();
    const std::string here = w.source != nullptr ? w.source->cluster() : std::string();
    for (const auto& c : w.placement.replicas()) {
      if (w.round == 1 && c == here) {
        // The caller committed it here.
        ++w.acks;
        w.holders.push_back(c);
        w.took.push_back(c);
        continue;
      }
      auto it = w.replicas.find(c);
      if (it == w.replicas.end() || it->second == nullptr) {
        queued.emplace_back(c, "no server of the cluster is known here");
      } else if (!Admit(c, it->second)) {
        queued.emplace_back(c, "the cluster did not answer recent calls");
      } else {
        auto stream = w.streams.extract(c);
        targets.push_back({c, it->second, stream ? std::move(stream.mapped()) : nullptr});
      }
    }
    w.pending = targets.size();
    unused.swap(w.streams);
  }
  for (auto& [cluster, stream] : unused) {
    if (stream != nullptr) stream->Abort();
  }
  for (const auto& [cluster, reason] : queued) enqueue_(key, record, cluster, reason);
  const absl::Time deadline =
      replication::CopyDeadline(record.tombstone() ? 0 : record.size(), options_.replica_timeout);
  std::vector<std::function<void()>> here;
  for (auto& t : targets) {
    // A tombstone, or content held in memory, to a replica that takes writes without blocking:
    // started from this thread, answered on gRPC's (a failed one is handed to the threads of the
    // source's cluster, since the queue it goes to may block, and the failing cluster's threads
    // may all wait on calls to it).
    if (t.stream == nullptr && write->source != nullptr && t.replica->writes_async()) {
      StartAsyncCall();
      auto on_sent = [this, write, cluster = t.cluster,
                      replica = t.replica.get()](const absl::StatusOr<replication::WriteAck>& ack) {
        Report(cluster, ack.status(), replica);
        if (ack.ok()) {
          OnSent(write, cluster, ack);
        } else {
          Schedule(write->source->cluster(),
                   [this, write, cluster, ack] { OnSent(write, cluster, ack); });
        }
        EndAsyncCall();
      };
      if (replication::CopyAsync(*write->source, *t.replica, key, record, deadline,
                                 &write->source_version, on_sent)) {
        continue;
      }
      EndAsyncCall();
    }
    Dispatch(t.cluster, *t.replica, here,
             [this, write, key, record, cluster = t.cluster, replica = t.replica,
              stream = std::move(t.stream), deadline] {
               // Streamed while the upload arrived: only its finish is left. Else the content
               // as the source holds it: under the first stamp (a large object's copy here
               // stays readable under it for a while even once replaced).
               auto ack = stream != nullptr ? stream->Finish(record, deadline)
                          : write->source != nullptr
                              ? replication::Copy(*write->source, *replica, key, record, deadline,
                                                  &write->source_version)
                              : absl::StatusOr<replication::WriteAck>(
                                    absl::FailedPreconditionError("no local copy to send"));
               Report(cluster, ack.status(), replica.get());
               OnSent(write, cluster, ack);
             });
  }
  {
    // Every call may have been answered already, and the next round begun by the last answer:
    // this round is then over, and must not begin another.
    std::unique_lock<std::mutex> lock(w.mu);
    if (w.round == round) MaybeFinish(write, std::move(lock));
  }
  for (auto& task : here) task();
}

void Coordinator::OnSent(const std::shared_ptr<Write>& write, const std::string& cluster,
                         const absl::StatusOr<replication::WriteAck>& ack) {
  Write& w = *write;
  if (!ack.ok()) {
    mcos::v1::ObjectRecord record;
    {
      std::lock_guard<std::mutex> lock(w.mu);
      record = w.record;
    }
    enqueue_(w.key, record, cluster, std::string(ack.status().message()));
  } else if (!ack->applied && common::IsSet(ack->stored_version)) {
    hlc_.Observe(ack->stored_version.hlc());
  }
  std::unique_lock<std::mutex> lock(w.mu);
  --w.pending;
  if (ack.ok()) {
    const int held = common::CompareVersions(ack->stored_version, w.record.version());
    if (ack->applied || held == 0) {
      // It took this version, or holds exactly it already (a retry).
      ++w.acks;
      w.holders.push_back(cluster);
      w.took.push_back(cluster);
      if (!ack->applied || ack->prior != mcos::v1::WRITE_PRIOR_ABSENT) w.replaced_live = true;
    } else if (held > 0 && ack->stored_version.cluster() == w.record.version().cluster()) {
      // A later write of this same cluster replaced it there. That write was not acknowledged
      // before this one began (this cluster's own storage commits every write it coordinates,
      // each above the last), so this write is ordered just before it: it counts, without being
      // named as a holder.
      ++w.acks;
      w.took.push_back(cluster);
      w.replaced_live = true;
    } else if (held > 0 && (!w.newer || common::IsNewer(ack->stored_version, *w.newer))) {
      w.newer = ack->stored_version;
    }
  }
  MaybeFinish(write, std::move(lock));
}

void Coordinator::MaybeFinish(const std::shared_ptr<Write>& write,
                              std::unique_lock<std::mutex> lock) {
  Write& w = *write;
  // Once answered and every call of the round ended, the source's copy is needed no more, and
  // the copy at the source's cluster records who took this version (reads then need not ask).
  // They run on this cluster's threads: the last answer may come on one of gRPC's, which must not
  // wait for the disk.
  auto release_when_done = [this, &write, &w](std::unique_lock<std::mutex> held) {
    const bool done = w.answered && w.pending == 0 && w.source != nullptr && !w.record.tombstone();
    const bool release = done && !w.released;
    if (release) w.released = true;
    std::shared_ptr<Replica> local;
    mcos::v1::Version version;
    std::vector<std::string> holders;
    if (done && !w.holders_recorded && w.holders.size() > 1) {
      w.holders_recorded = true;
      auto it = w.replicas.find(w.source->cluster());
      const bool holds =
          std::find(w.holders.begin(), w.holders.end(), w.source->cluster()) != w.holders.end();
      if (it != w.replicas.end() && holds) {
        local = it->second;
        version = w.record.version();
        holders = w.holders;
      }
    }
    held.unlock();
    if (!release && local == nullptr) return;
    auto finish = [write, release, local, version, holders] {
      if (release) write->source->ReleaseKept(write->key, write->source_version);
      // Best effort: a read that finds holders missing asks the replicas instead.
      if (local != nullptr) local->AddHoldersLater(write->key, version, holders);
    };
    // Without waiting where this cluster's storage is in this process (else on its threads).
    if ((!release || write->source->in_process()) && (local == nullptr || local->writes_async())) {
      finish();
    } else {
      Schedule(w.source->cluster(), std::move(finish));
    }
  };
  if (w.answered) {
    release_when_done(std::move(lock));
    return;
  }
  const auto r = static_cast<size_t>(w.placement.replicas_size());
  const size_t needed = WriteConcern(w.placement);
  std::optional<absl::StatusOr<Replicated>> answer;
  if (WriteQuorum(w.placement, w.took, needed) ||
      (w.pending == 0 && w.placement.degraded() && w.acks > 0)) {
    Replicated done{w.record, w.holders, w.replaced_live};
    SortByOrder(done.holders, w.placement.replicas());
    answer = std::move(done);
  } else if (w.pending > 0) {
    return;
  } else if (w.newer && w.round < options_.max_write_rounds) {
    // Replicas held a newer version: this write is stamped above it and sent to all again.
    ++w.round;
    mcos::v1::Version stamp;
    stamp.set_hlc(hlc_.Observe(w.newer->hlc()));
    stamp.set_cluster(w.record.version().cluster());
    *w.record.mutable_version() = stamp;
    lock.unlock();
    // On this cluster's threads: the round copies to this cluster's storage in this process.
    Schedule(w.source != nullptr ? w.source->cluster() : std::string(),
             [this, write] { StartRound(write); });
    return;
  } else if (w.acks == 0 && w.round == 1) {
    answer = TooFewReplicas(0, r, needed, "write");
  } else {
    std::vector<std::string> holders = w.holders;
    SortByOrder(holders, w.placement.replicas());
    answer = absl::UnavailableError(absl::StrCat(
        w.acks, " of ", r, " replica clusters took the write, ", needed,
        " needed: the write is in doubt: ",
        holders.empty() ? std::string("no cluster holds its last stamp")
                        : absl::StrCat("it is stored at ", absl::StrJoin(holders, ", ")),
        ", and the others get it when they answer again unless a newer write replaces it; "
        "retry it (that is safe), or delete the object to undo it"));
  }
  w.answered = true;
  auto done = std::move(w.done);
  lock.unlock();
  done(*std::move(answer));
  release_when_done(std::unique_lock<std::mutex>(w.mu));
}

absl::StatusOr<Replicated> Coordinator::ReplicateAndWait(const mcos::v1::ObjectKey& key,
                                                         const mcos::v1::ObjectRecord& record,
                                                         const mcos::v1::Placement& placement,
                                                         const std::shared_ptr<Replica>& source,
                                                         const ReplicaMap& replicas,
                                                         Streams streams) {
  auto result = std::make_shared<absl::StatusOr<Replicated>>();
  auto ready = std::make_shared<absl::Notification>();
  Replicate(
      key, record, placement, source, replicas,
      [result, ready](absl::StatusOr<Replicated> r) {
        *result = std::move(r);
        ready->Notify();
      },
      std::move(streams));
  ready->WaitForNotification();
  return *result;
}

// ---- reads ----------------------------------------------------------------------------------

// How many replicas were asked and answered: what AskReplicas waits on.
struct Coordinator::Tally {
  std::mutex mu;
  std::condition_variable changed;
  std::set<std::string> asked;
  size_t answered = 0;
  size_t done = 0;
  std::optional<absl::Time> quorum_at;
};

namespace {

// Answers of parallel calls to replicas, by cluster.
template <typename T>
struct Gather : Coordinator::Tally {
  std::map<std::string, T> answers;

  // One call ended: with an answer, or (nullopt) without one.
  void Add(const std::string& cluster, std::optional<T> answer, size_t needed) {
    std::lock_guard<std::mutex> lock(mu);
    if (answer) {
      answers.emplace(cluster, *std::move(answer));
      if (++answered >= needed && !quorum_at) quorum_at = absl::Now();
    }
    ++done;
    changed.notify_all();
  }
};

}  // namespace

namespace {

// The newest version among a read's answers (by cluster; nullopt: holds nothing) and, as its
// holders, the clusters that answered with it.
Newest NewestOf(const std::map<std::string, std::optional<mcos::v1::ObjectRecord>>& answers) {
  Newest newest;
  for (const auto& [cluster, answer] : answers) {
    if (!answer) continue;
    if (!newest.record || common::IsNewer(answer->version(), newest.record->version())) {
      newest.record = *answer;
    }
  }
  if (newest.record) {
    for (const auto& [cluster, answer] : answers) {
      if (answer && common::CompareVersions(answer->version(), newest.record->version()) == 0) {
        newest.holders.push_back(cluster);
      }
    }
  }
  return newest;
}

// The clusters known to hold `newest` (NewestOf `answers`): those that answered with it and those
// their records name.
std::set<std::string> KnownHolders(
    const Newest& newest,
    const std::map<std::string, std::optional<mcos::v1::ObjectRecord>>& answers) {
  std::set<std::string> known;
  for (const auto& cluster : newest.holders) {
    known.insert(cluster);
    const auto& answer = answers.at(cluster);
    known.insert(answer->holders().begin(), answer->holders().end());
  }
  return known;
}

// Those of `holders` that `answer`, a record of exactly `version`, does not name; none when it
// is of another version or nothing.
std::vector<std::string> NotRecorded(const std::optional<mcos::v1::ObjectRecord>& answer,
                                     const mcos::v1::Version& version,
                                     const std::vector<std::string>& holders) {
  std::vector<std::string> add;
  if (!answer || common::CompareVersions(answer->version(), version) != 0) return add;
  const auto& recorded = answer->holders();
  for (const auto& h : holders) {
    if (std::find(recorded.begin(), recorded.end(), h) == recorded.end()) add.push_back(h);
  }
  return add;
}

}  // namespace

void Coordinator::AskReplicas(Candidates candidates, size_t needed, ReadScope scope,
                              absl::Time deadline, Tally& tally, const MakeCall& make_call,
                              bool stats) {
  if (scope == ReadScope::kQuorum) {
    // This cluster's copy first: it costs no network.
    std::stable_partition(candidates.begin(), candidates.end(),
                          [](const auto& c) { return c.second->in_process(); });
  }
  size_t next = 0;
  // Asks the next `count` candidates (those in this process last, on this thread).
  auto ask = [&](size_t count) {
    std::vector<std::function<void()>> here;
    for (; count > 0 && next < candidates.size(); --count, ++next) {
      const auto& [cluster, replica] = candidates[next];
      {
        std::lock_guard<std::mutex> lock(tally.mu);
        tally.asked.insert(cluster);
      }
      if (stats && replica->stats_async()) {
        here.push_back(make_call(cluster, replica));
      } else {
        Dispatch(cluster, *replica, here, make_call(cluster, replica));
      }
    }
    for (auto& task : here) task();
  };
  if (scope == ReadScope::kEveryHolder) {
    // All at once; once the quorum answered, the others get the grace.
    ask(candidates.size());
    std::unique_lock<std::mutex> lock(tally.mu);
    while (tally.done < tally.asked.size()) {
      absl::Time until = deadline;
      if (tally.quorum_at) until = std::min(until, *tally.quorum_at + options_.read_grace);
      if (absl::Now() >= until) return;
      tally.changed.wait_until(lock, absl::ToChronoTime(until));
    }
    return;
  }
  // Only as many as the quorum needs; another candidate for each one that fails, and one more
  // each time hedge_after passes without enough answers (a frozen cluster does not fail fast).
  absl::Time hedge_at = absl::InfiniteFuture();
  while (true) {
    size_t want = 0;
    {
      std::unique_lock<std::mutex> lock(tally.mu);
      const size_t outstanding = tally.asked.size() - tally.done;
      const absl::Time now = absl::Now();
      if (tally.answered >= needed) return;
      if (tally.answered + outstanding < needed && next < candidates.size()) {
        want = needed - tally.answered - outstanding;
      } else if (outstanding == 0 || now >= deadline) {
        return;  // nobody left to ask, or out of time
      } else if (now >= hedge_at && next < candidates.size()) {
        want = 1;
      } else {
        const size_t done = tally.done;
        const absl::Time until = next < candidates.size() ? std::min(deadline, hedge_at) : deadline;
        tally.changed.wait_until(lock, absl::ToChronoTime(until),
                                 [&] { return tally.done != done; });
        continue;
      }
    }
    ask(want);
    hedge_at = absl::Now() + options_.hedge_after;
  }
}

Coordinator::Candidates Coordinator::Admitted(
    const google::protobuf::RepeatedPtrField<std::string>& clusters, const ReplicaMap& replicas) {
  Candidates out;
  for (const auto& c : clusters) {
    auto it = replicas.find(c);
    if (it != replicas.end() && it->second != nullptr && Admit(c, it->second)) {
      out.emplace_back(c, it->second);
    }
  }
  return out;
}

absl::StatusOr<Newest> Coordinator::Read(const mcos::v1::ObjectKey& key,
                                         const mcos::v1::Placement& placement,
                                         const ReplicaMap& replicas, ReadScope scope) {
  const auto r = static_cast<size_t>(placement.replicas_size());
  // A degraded option reads whatever answers, as it writes.
  const size_t needed = placement.degraded() ? 1 : r - CopiesOfAnyWrite(placement) + 1;
  // An answer: the record, or nullopt for "holds nothing".
  using Answer = std::optional<mcos::v1::ObjectRecord>;
  auto gather = std::make_shared<Gather<Answer>>();
  const absl::Time deadline = absl::Now() + options_.replica_timeout;
  const MakeCall make_call = [this, gather, key, deadline, needed](
                                 const std::string& cluster,
                                 const std::shared_ptr<Replica>& replica) {
    return [this, gather, key, deadline, needed, cluster, replica] {
      auto answered = [this, gather, needed, cluster,
                       from = replica.get()](absl::StatusOr<mcos::v1::ObjectRecord> record) {
        Report(cluster, record.status(), from);
        std::optional<Answer> answer;
        if (record.ok()) {
          answer = Answer(*std::move(record));
        } else if (absl::IsNotFound(record.status())) {
          answer = Answer(std::nullopt);
        }
        gather->Add(cluster, std::move(answer), needed);
      };
      if (!replica->stats_async()) {
        answered(replica->Stat(key, deadline));
        return;
      }
      StartAsyncCall();
      replica->StatAsync(key, deadline, [this, answered](auto record) {
        answered(std::move(record));
        EndAsyncCall();
      });
    };
  };
  const Candidates candidates = Admitted(placement.replicas(), replicas);
  // The quorum first (this cluster's copy first); a holder the answers already vouch for
  // (ObjectRecord.holders) is not asked.
  AskReplicas(candidates, needed, ReadScope::kQuorum, deadline, *gather, make_call,
              /*stats=*/true);
  // The newest version among the answers so far, and who is known to hold it: the clusters that
  // answered with it and those their records name.
  auto newest_known = [&]() {
    Newest newest = NewestOf(gather->answers);
    std::set<std::string> known = KnownHolders(newest, gather->answers);
    return std::make_pair(std::move(newest), std::move(known));
  };
  if (scope == ReadScope::kEveryHolder) {
    Candidates rest;
    {
      std::lock_guard<std::mutex> lock(gather->mu);
      if (gather->answered >= needed) {
        const auto [newest, known] = newest_known();
        if (newest.record && !newest.record->tombstone()) {
          for (const auto& c : candidates) {
            if (gather->asked.count(c.first) == 0 && known.count(c.first) == 0) {
              rest.push_back(c);
            }
          }
        }
      }
    }
    if (!rest.empty()) {
      AskReplicas(std::move(rest), needed, ReadScope::kEveryHolder, deadline, *gather, make_call,
                  /*stats=*/true);
    }
  }
  std::unique_lock<std::mutex> lock(gather->mu);
  if (gather->answered < needed) return TooFewReplicas(gather->answered, r, needed, "read");
  auto [newest, known] = newest_known();
  if (!newest.record) return newest;
  hlc_.Observe(newest.record->version().hlc());
  newest.answered = newest.holders;
  SortByOrder(newest.answered, placement.replicas());
  // This cluster's copy learns the holders that had to be asked, so that the next read need not.
  std::vector<std::pair<std::shared_ptr<Replica>, std::vector<std::string>>> learned;
  if (scope == ReadScope::kEveryHolder && !newest.record->tombstone()) {
    // The holders that can be called now: those that answered with it, and those the answers'
    // records name that were not asked and that answer this server now (one that failed, that
    // the breaker keeps out, or that has not answered it yet is not named, as when it was asked).
    for (const auto& [cluster, replica] : candidates) {
      if (known.count(cluster) > 0 && gather->asked.count(cluster) == 0 && Answers(cluster)) {
        newest.holders.push_back(cluster);
      }
    }
    for (const auto& [cluster, replica] : candidates) {
      auto it = gather->answers.find(cluster);
      if (!replica->in_process() || it == gather->answers.end()) continue;
      auto add = NotRecorded(it->second, newest.record->version(), newest.holders);
      if (!add.empty()) learned.emplace_back(replica, std::move(add));
    }
  }
  lock.unlock();
  for (const auto& [replica, add] : learned) {
    replica->AddHolders(key, newest.record->version(), add, deadline).IgnoreError();
  }
  SortByOrder(newest.holders, placement.replicas());
  return newest;
}

// A quorum read that no thread waits for: it asks as Read does (this cluster's copy first, on
// the calling thread; a peer's stat without blocking; another candidate for each that fails and
// one more each time hedge_after passes without enough answers) and goes on in the answers'
// callbacks. Counted among the coordinator's async calls until `done` ran.
class Coordinator::QuorumRead : public std::enable_shared_from_this<Coordinator::QuorumRead> {
 public:
  using Done = std::function<void(absl::StatusOr<Newest>)>;
  // kEveryHolder: once the quorum answered, the holders its answers vouch for are named without
  // asking them; if a holder of a live version might be left that none vouches for, the read is
  // done again as Read does it (on the coordinator's threads), which asks it.
  QuorumRead(Coordinator& coordinator, mcos::v1::ObjectKey key, mcos::v1::Placement placement,
             ReplicaMap replicas, Candidates candidates, size_t needed, absl::Time deadline,
             ReadScope scope, Done done)
      : c_(coordinator),
        key_(std::move(key)),
        placement_(std::move(placement)),
        replicas_(std::move(replicas)),
        candidates_(std::move(candidates)),
        needed_(needed),
        deadline_(deadline),
        scope_(scope),
        done_(std::move(done)) {
    std::stable_partition(candidates_.begin(), candidates_.end(),
                          [](const auto& c) { return c.second->in_process(); });
    c_.StartAsyncCall();
  }

  void Start() {
    std::unique_lock<std::mutex> lock(mu_);
    Step(lock);
  }

 private:
  using Answer = std::optional<mcos::v1::ObjectRecord>;

  // Decides what comes next (mu_ held; released on the way out): the answer, or more asks.
  void Step(std::unique_lock<std::mutex>& lock) {
    if (finished_) return;
    size_t want = 0;
    if (answers_.size() >= needed_) {
      Finish(lock);
      return;
    }
    if (answers_.size() + outstanding_ < needed_ && next_ < candidates_.size()) {
      want = needed_ - answers_.size() - outstanding_;
    } else if (outstanding_ == 0) {
      Finish(lock);  // nobody left to ask
      return;
    }
    Candidates ask;
    for (; want > 0 && next_ < candidates_.size(); --want) ask.push_back(candidates_[next_++]);
    outstanding_ += ask.size();
    const bool hedge = !ask.empty() && next_ < candidates_.size() && !hedging_;
    if (hedge) hedging_ = true;
    lock.unlock();
    if (hedge) ArmHedge();
    for (const auto& [cluster, replica] : ask) Call(cluster, replica);
  }

  // In hedge_after, one more candidate unless enough answered meanwhile. A new alarm each time
  // (one is not set again from its own callback); they go with this read (destroyed, a pending
  // one is cancelled) and hold it only weakly.
  void ArmHedge() {
    auto alarm = std::make_unique<grpc::Alarm>();
    grpc::Alarm* armed = alarm.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      hedges_.push_back(std::move(alarm));
    }
    std::weak_ptr<QuorumRead> weak = weak_from_this();
    armed->Set(absl::ToChronoTime(absl::Now() + c_.options_.hedge_after), [weak](bool fired) {
      if (auto self = weak.lock()) self->Hedge(fired);
    });
  }

  void Hedge(bool fired) {
    std::unique_lock<std::mutex> lock(mu_);
    hedging_ = false;
    if (!fired || finished_ || answers_.size() >= needed_ || next_ >= candidates_.size()) return;
    if (absl::Now() >= deadline_) return;
    const auto [cluster, replica] = candidates_[next_++];
    ++outstanding_;
    const bool again = next_ < candidates_.size();
    if (again) hedging_ = true;
    lock.unlock();
    if (again) ArmHedge();
    Call(cluster, replica);
  }

  void Call(const std::string& cluster, const std::shared_ptr<Replica>& replica) {
    auto self = shared_from_this();
    if (replica->in_process()) {
      Answered(cluster, replica.get(), replica->Stat(key_, deadline_));
    } else if (replica->stats_async()) {
      c_.StartAsyncCall();
      replica->StatAsync(key_, deadline_, [self, cluster, from = replica.get()](auto record) {
        self->Answered(cluster, from, std::move(record));
        self->c_.EndAsyncCall();
      });
    } else {
      c_.Schedule(cluster, [self, cluster, replica] {
        self->Answered(cluster, replica.get(), replica->Stat(self->key_, self->deadline_));
      });
    }
  }

  void Answered(const std::string& cluster, const Replica* from,
                absl::StatusOr<mcos::v1::ObjectRecord> record) {
    c_.Report(cluster, record.status(), from);
    std::unique_lock<std::mutex> lock(mu_);
    --outstanding_;
    if (record.ok()) {
      answers_.emplace(cluster, *std::move(record));
    } else if (absl::IsNotFound(record.status())) {
      answers_.emplace(cluster, std::nullopt);
    }
    Step(lock);
  }

  // The newest version among the answers and the clusters that answered with it (mu_ held;
  // released to call done_).
  void Finish(std::unique_lock<std::mutex>& lock) {
    finished_ = true;
    absl::StatusOr<Newest> result;
    if (answers_.size() < needed_) {
      result = TooFewReplicas(answers_.size(), static_cast<size_t>(placement_.replicas_size()),
                              needed_, "read");
    } else {
      Newest newest = NewestOf(answers_);
      if (newest.record) {
        c_.hlc_.Observe(newest.record->version().hlc());
        newest.answered = newest.holders;
        SortByOrder(newest.answered, placement_.replicas());
        if (scope_ == ReadScope::kEveryHolder && !newest.record->tombstone() &&
            !NameEveryHolder(newest)) {
          // A candidate no answer vouches for: asked by Read (its answers may change the newest).
          lock.unlock();
          c_.Schedule(" reads", [self = shared_from_this()] {
            self->done_(self->c_.Read(self->key_, self->placement_, self->replicas_,
                                      ReadScope::kEveryHolder));
            self->c_.EndAsyncCall();
          });
          return;
        }
        SortByOrder(newest.holders, placement_.replicas());
      }
      result = std::move(newest);
    }
    lock.unlock();
    done_(std::move(result));
    c_.EndAsyncCall();
  }

  // kEveryHolder (mu_ held): adds to `newest.holders` the clusters the answers with its version
  // name that answer this server now, and records at this cluster's copy those it did not name;
  // false (nothing changed) if a candidate not asked is named by no answer.
  bool NameEveryHolder(Newest& newest) {
    const std::set<std::string> known = KnownHolders(newest, answers_);
    for (size_t i = next_; i < candidates_.size(); ++i) {
      if (known.count(candidates_[i].first) == 0) return false;
    }
    for (size_t i = next_; i < candidates_.size(); ++i) {
      if (c_.Answers(candidates_[i].first)) newest.holders.push_back(candidates_[i].first);
    }
    for (size_t i = 0; i < next_; ++i) {
      const auto& [cluster, replica] = candidates_[i];
      auto it = answers_.find(cluster);
      if (!replica->in_process() || it == answers_.end()) continue;
      auto add = NotRecorded(it->second, newest.record->version(), newest.holders);
      if (!add.empty()) replica->AddHoldersLater(key_, newest.record->version(), add);
    }
    return true;
  }

  Coordinator& c_;
  const mcos::v1::ObjectKey key_;
  const mcos::v1::Placement placement_;
  const ReplicaMap replicas_;
  Candidates candidates_;
  const size_t needed_;
  const absl::Time deadline_;
  const ReadScope scope_;
  const Done done_;
  std::mutex mu_;
  std::vector<std::unique_ptr<grpc::Alarm>> hedges_;
  size_t next_ = 0;
  size_t outstanding_ = 0;
  std::map<std::string, Answer> answers_;
  bool hedging_ = false;
  bool finished_ = false;
};

void Coordinator::ReadAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                            const ReplicaMap& replicas, ReadScope scope,
                            std::function<void(absl::StatusOr<Newest>)> done) {
  const auto r = static_cast<size_t>(placement.replicas_size());
  const size_t needed = placement.degraded() ? 1 : r - CopiesOfAnyWrite(placement) + 1;
  auto read = std::make_shared<QuorumRead>(
      *this, key, placement, replicas, Admitted(placement.replicas(), replicas), needed,
      absl::Now() + options_.replica_timeout, scope, std::move(done));
  read->Start();
}

// ---- strict creates and updates in one round trip -------------------------------------------

void Coordinator::WriteFirst(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                             const std::shared_ptr<const std::string>& data,
                             mcos::v1::WritePrecondition precondition,
                             const std::optional<mcos::v1::Version>& held,
                             const mcos::v1::Placement& placement,
                             const std::shared_ptr<Replica>& local, const ReplicaMap& replicas,
                             std::function<void(absl::StatusOr<WriteDecision>)> done) {
  struct State {
    std::mutex mu;
    size_t pending = 0;
    std::vector<std::string> holders;         // the other clusters that stored it
    std::vector<std::string> unknown;         // sent, and no answer says what they did
    std::optional<mcos::v1::Version> newest;  // the newest version held by those that refused
    bool newest_live = false;
    bool refused = false;
    bool decided = false;
    bool stored_here = false;  // `local` stored it: later holders are recorded at once
    bool storing = false;      // `local` is storing it: later holders wait in `late`
    std::vector<std::string> late;
    std::vector<std::pair<std::string, std::string>> queue;  // (cluster, why) once stored here
    std::function<void(absl::StatusOr<WriteDecision>)> done;
  };
  auto state = std::make_shared<State>();
  state->done = std::move(done);
  const std::string here = local->cluster();
  const size_t needed = WriteConcern(placement) - 1;  // besides this cluster
  std::vector<std::pair<std::string, std::shared_ptr<Replica>>> targets;
  for (const auto& c : placement.replicas()) {
    if (c == here) continue;
    auto it = replicas.find(c);
    if (it == replicas.end() || it->second == nullptr) {
      state->queue.emplace_back(c, "no server of the cluster is known here");
    } else if (!Admit(c, it->second)) {
      state->queue.emplace_back(c, "the cluster did not answer recent calls");
    } else {
      targets.emplace_back(c, it->second);
    }
  }
  state->pending = targets.size();
  const auto r = static_cast<size_t>(placement.replicas_size());
  // Stores it here once W-1 others did (by the storage engine's committing thread, else on this
  // cluster's threads: the disk), then answers and queues or records what the others did.
  auto stored_here = [this, state, key, record, local,
                      placement](const absl::StatusOr<replication::WriteAck>& ack) {
    std::vector<std::string> holders;
    std::vector<std::string> late;
    std::vector<std::pair<std::string, std::string>> queue;
    std::function<void(absl::StatusOr<WriteDecision>)> done;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->storing = false;
      state->stored_here = ack.ok() && ack->applied;
      holders = state->holders;
      late.swap(state->late);
      if (ack.ok()) queue.swap(state->queue);
      done = std::move(state->done);
    }
    if (!ack.ok()) {
      SortByOrder(holders, placement.replicas());
      done(absl::UnavailableError(
          absl::StrCat("the write is in doubt: ", absl::StrJoin(holders, ", "),
                       " stored it, but this cluster could not (", ack.status().message(),
                       "); it takes effect when they send it here: stat the object to see")));
      return;
    }
    if (ack->applied) {
      holders.push_back(local->cluster());
    } else {
      // A newer write of the object came here meanwhile: this write is ordered just before it
      // (as a write of this cluster that a later one replaced counts), held by the others.
      hlc_.Observe(ack->stored_version.hlc());
    }
    SortByOrder(holders, placement.replicas());
    WriteDecision d;
    d.kind = WriteDecision::Kind::kStored;
    d.holders = holders;
    done(std::move(d));
    if (!late.empty() && ack->applied) local->AddHoldersLater(key, record.version(), late);
    if (queue.empty()) return;
    // The queue may block: not on the engine's committing thread.
    auto send_to_queue = [this, key, record, queue = std::move(queue)] {
      for (const auto& [cluster, why] : queue) enqueue_(key, record, cluster, why);
    };
    if (local->writes_async()) {
      Schedule(local->cluster(), std::move(send_to_queue));
    } else {
      send_to_queue();
    }
  };
  auto store_here = [this, state, key, record, data, local, stored_here] {
    mcos::v1::ObjectRecord held = record;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      for (const auto& h : state->holders) held.add_holders(h);
    }
    const absl::Time deadline = replication::CopyDeadline(record.size(), options_.replica_timeout);
    if (local->writes_async()) {
      StartAsyncCall();  // this coordinator stays until it is answered
      local->PutAsync(key, held, data, deadline,
                      [this, stored_here](const absl::StatusOr<replication::WriteAck>& ack) {
                        stored_here(ack);
                        EndAsyncCall();
                      });
      return;
    }
    auto source = replication::MemoryReader(held, data);
    stored_here(local->Put(key, held, *source, deadline));
  };
  // What a failed, refused or never-stored write answers once every call ended (mu held).
  const bool create = precondition == mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST;
  auto undecided = [state, needed, r, placement, create, held]() -> absl::StatusOr<WriteDecision> {
    if (!state->holders.empty() || !state->unknown.empty()) {
      std::vector<std::string> maybe = state->holders;
      maybe.insert(maybe.end(), state->unknown.begin(), state->unknown.end());
      SortByOrder(maybe, placement.replicas());
      return absl::UnavailableError(absl::StrCat(
          "the ", create ? "create" : "update", " is in doubt: ", absl::StrJoin(maybe, ", "),
          " did not say whether it stored it, and no write quorum did; it takes "
          "effect only if one did: stat the object to see",
          create ? ", or retry (ALREADY_EXISTS then means it did)" : ""));
    }
    if (!state->refused) return TooFewReplicas(0, r, needed + 1, create ? "create" : "update");
    WriteDecision d;
    if (create && state->newest && state->newest_live) {
      d.kind = WriteDecision::Kind::kExists;
    } else if (!create && state->newest && !state->newest_live &&
               (!held || common::IsNewer(*state->newest, *held))) {
      d.kind = WriteDecision::Kind::kMissing;
    } else {
      d.kind = WriteDecision::Kind::kCheck;
    }
    return d;
  };
  if (targets.empty()) {
    absl::StatusOr<WriteDecision> answer;
    std::function<void(absl::StatusOr<WriteDecision>)> done_now;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->decided = true;
      answer = undecided();
      done_now = std::move(state->done);
    }
    done_now(std::move(answer));
    return;
  }
  const absl::Time deadline = replication::CopyDeadline(record.size(), options_.replica_timeout);
  for (auto& [cluster, replica] : targets) {
    StartAsyncCall();
    replica->PutIfAsync(
        key, record, data, deadline, precondition,
        [this, state, store_here, undecided, needed, here, key, record, local, cluster = cluster,
         from = replica.get()](const absl::StatusOr<replication::WriteAck>& ack) {
          Report(cluster, ack.status(), from);
          std::optional<absl::StatusOr<WriteDecision>> answer;
          std::function<void(absl::StatusOr<WriteDecision>)> done_now;
          bool store = false;
          bool record_holder = false;
          std::vector<std::pair<std::string, std::string>> queue;
          {
            std::lock_guard<std::mutex> lock(state->mu);
            --state->pending;
            std::string why;
            if (ack.ok() && ack->applied) {
              if (state->decided) {
                // Stored there after this cluster decided: a holder to record here.
                if (state->stored_here) {
                  record_holder = true;
                } else if (state->storing) {
                  state->late.push_back(cluster);
                }
              }
              state->holders.push_back(cluster);
            } else if (ack.ok()) {
              state->refused = true;
              why = ack->prior == mcos::v1::WRITE_PRIOR_LIVE
                        ? "it held another live version when the write came"
                        : "it held no live version when the write came";
              if (common::IsSet(ack->stored_version) &&
                  (!state->newest || common::IsNewer(ack->stored_version, *state->newest))) {
                state->newest = ack->stored_version;
                state->newest_live = ack->prior == mcos::v1::WRITE_PRIOR_LIVE;
                hlc_.Observe(ack->stored_version.hlc());
              }
            } else {
              why = std::string(ack.status().message());
              state->unknown.push_back(cluster);
            }
            if (!why.empty()) state->queue.emplace_back(cluster, why);
            if (!state->decided && state->holders.size() >= needed) {
              state->decided = true;
              state->storing = true;
              store = true;
            } else if (!state->decided && state->pending == 0) {
              state->decided = true;
              answer = undecided();
              done_now = std::move(state->done);
            }
            if (state->stored_here) queue.swap(state->queue);
          }
          if (store) {
            if (local->writes_async()) {
              store_here();  // answered on the storage engine's committing thread
            } else {
              Schedule(here, store_here);
            }
          }
          if (answer) done_now(*std::move(answer));
          if (record_holder && local->writes_async()) {
            local->AddHoldersLater(key, record.version(), {cluster});  // without waiting
            record_holder = false;
          }
          if (record_holder || !queue.empty()) {
            // Both may block (the disk, the queue): on this cluster's threads, not gRPC's.
            Schedule(here,
                     [this, key, record, local, cluster, record_holder, queue = std::move(queue)] {
                       if (record_holder) local->AddHoldersLater(key, record.version(), {cluster});
                       for (const auto& [c, why] : queue) enqueue_(key, record, c, why);
                     });
          }
          EndAsyncCall();
        });
  }
}

// ---- listings -------------------------------------------------------------------------------

absl::StatusOr<Coordinator::Listing> Coordinator::List(const mcos::v1::StorageListRequest& request,
                                                       const std::vector<std::string>& members,
                                                       uint32_t write_concern,
                                                       const ReplicaMap& replicas,
                                                       ReadScope scope) {
  for (const bool versions_only : {true, false}) {
    absl::StatusOr<std::optional<Listing>> listing =
        ListOnce(request, members, write_concern, replicas, scope, versions_only);
    if (!listing.ok()) return listing.status();
    if (listing->has_value()) return std::move(**listing);
    // An entry's newest version came only in a page without records: ask for whole pages.
  }
  return absl::InternalError("a listing of whole pages asked for whole pages again");
}

absl::StatusOr<std::optional<Coordinator::Listing>> Coordinator::ListOnce(
    const mcos::v1::StorageListRequest& request, const std::vector<std::string>& members,
    uint32_t write_concern, const ReplicaMap& replicas, ReadScope scope, bool versions_only) {
  const size_t w = std::max<size_t>(1, std::min<size_t>(write_concern, members.size()));
  const size_t needed = members.size() - w + 1;
  auto arena = std::make_shared<google::protobuf::Arena>();
  // Pages on the arena (late ones too: each call keeps the arena).
  auto gather = std::make_shared<Gather<mcos::v1::StorageListResponse*>>();
  const absl::Time deadline = absl::Now() + options_.replica_timeout;
  mcos::v1::StorageListRequest req = request;
  req.set_include_tombstones(true);
  google::protobuf::RepeatedPtrField<std::string> clusters(members.begin(), members.end());
  Candidates candidates = Admitted(clusters, replicas);
  // One page with records: this process's copy's (asked first), else the first candidate's; the
  // others only with versions, which is enough wherever they agree with it.
  std::string whole;
  if (versions_only && !candidates.empty()) {
    auto here = std::find_if(candidates.begin(), candidates.end(),
                             [](const auto& c) { return c.second->in_process(); });
    whole = here != candidates.end() ? here->first : candidates.front().first;
  }
  AskReplicas(
      std::move(candidates), needed, scope, deadline, *gather,
      [this, arena, gather, req, deadline, needed, whole, versions_only](
          const std::string& cluster, const std::shared_ptr<Replica>& replica) {
        mcos::v1::StorageListRequest asked = req;
        asked.set_versions_only(versions_only && cluster != whole);
        return [this, arena, gather, asked = std::move(asked), deadline, needed, cluster, replica] {
          auto* page =
              google::protobuf::Arena::CreateMessage<mcos::v1::StorageListResponse>(arena.get());
          const absl::Status listed = replica->List(asked, deadline, page);
          Report(cluster, listed, replica.get());
          std::optional<mcos::v1::StorageListResponse*> answer;
          if (listed.ok()) answer = page;
          gather->Add(cluster, answer, needed);
        };
      });
  std::lock_guard<std::mutex> lock(gather->mu);
  if (gather->answered < needed) {
    return TooFewReplicas(gather->answered, members.size(), needed, "listing");
  }
  // A replica that had more than its page may hold names past its last one that the others do
  // not: the merged page is exact only up to the smallest such marker.
  std::optional<std::string> cutoff;
  for (const auto& [cluster, page] : gather->answers) {
    if (!page->next_marker().empty() && (!cutoff || page->next_marker() < *cutoff)) {
      cutoff = page->next_marker();
    }
  }
  // A k-way merge of the pages, each sorted by name (entries and common prefixes apart).
  struct Cursor {
    const std::string* cluster;
    mcos::v1::StorageListResponse* page;
    bool records;  // its entries carry whole records, not only versions
    int entry = 0;
    int prefix = 0;
  };
  std::vector<Cursor> cursors;
  for (auto& [cluster, page] : gather->answers) {
    cursors.push_back({&cluster, page, !versions_only || cluster == whole});
  }
  auto rank = [&](const std::string& c) {
    return std::find(members.begin(), members.end(), c) - members.begin();
  };
  // The members a record's holders may add: those that answer this server now and whose page is
  // not here (a page that is here says itself whether it holds the version).
  std::vector<const std::string*> vouchable;
  for (const auto& m : members) {
    if (gather->answers.count(m) == 0 && Answers(m)) vouchable.push_back(&m);
  }
  const uint32_t limit = request.limit() == 0 ? 1000u : std::min<uint32_t>(request.limit(), 10000u);
  Listing out;
  out.arena = arena;
  out.page = google::protobuf::Arena::CreateMessage<mcos::v1::StorageListResponse>(arena.get());
  uint32_t emitted = 0;
  bool full = false;
  std::string last;
  while (true) {
    const std::string* smallest = nullptr;
    for (const Cursor& c : cursors) {
      if (c.entry < c.page->entries_size()) {
        const std::string& n = c.page->entries(c.entry).object();
        if (smallest == nullptr || n < *smallest) smallest = &n;
      }
      if (c.prefix < c.page->common_prefixes_size()) {
        const std::string& n = c.page->common_prefixes(c.prefix);
        if (smallest == nullptr || n < *smallest) smallest = &n;
      }
    }
    if (smallest == nullptr || (cutoff && *smallest > *cutoff)) break;
    const std::string name = *smallest;  // the cursors move past it below
    bool prefix = false;
    mcos::v1::ObjectRecord* newest = nullptr;
    bool newest_whole = false;  // `newest` is a whole record
    std::vector<std::string> holders;
    // The pages' records of the newest version: what they hold and what they name.
    std::vector<const mcos::v1::ObjectRecord*> same;
    for (Cursor& c : cursors) {
      if (c.prefix < c.page->common_prefixes_size() && c.page->common_prefixes(c.prefix) == name) {
        prefix = true;
        ++c.prefix;
      }
      if (c.entry < c.page->entries_size() && c.page->entries(c.entry).object() == name) {
        mcos::v1::ObjectRecord* r = c.page->mutable_entries(c.entry)->mutable_record();
        if (newest == nullptr || common::IsNewer(r->version(), newest->version())) {
          newest = r;
          newest_whole = c.records;
          holders = {*c.cluster};
          same = {r};
        } else if (common::CompareVersions(r->version(), newest->version()) == 0) {
          holders.push_back(*c.cluster);
          same.push_back(r);
          if (c.records && !newest_whole) {
            newest = r;
            newest_whole = true;
          }
        }
        ++c.entry;
      }
    }
    if (newest != nullptr && !vouchable.empty()) {
      for (const std::string* m : vouchable) {
        const bool named = std::any_of(same.begin(), same.end(), [&](const auto* r) {
          return std::find(r->holders().begin(), r->holders().end(), *m) != r->holders().end();
        });
        if (named) holders.push_back(*m);
      }
    }
    if (emitted == limit) {
      full = true;
      break;
    }
    if (prefix) {
      out.page->add_common_prefixes(name);
    } else if (newest != nullptr && !newest->tombstone()) {
      if (!newest_whole) return std::nullopt;  // only a page of versions has it: ask for records
      auto* e = out.page->add_entries();
      e->set_object(name);
      e->mutable_record()->Swap(newest);  // both on the arena: no copy
      std::stable_sort(holders.begin(), holders.end(),
                       [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
      out.holders.push_back(std::move(holders));
    } else {
      last = name;  // a tombstone: hidden, but the next page starts after it
      continue;
    }
    ++emitted;
    last = name;
  }
  if (full) {
    out.page->set_next_marker(last);
  } else if (cutoff) {
    out.page->set_next_marker(*cutoff);
  }
  return out;
}

}  // namespace mcos::server
