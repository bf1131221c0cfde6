#include "server/coordinator.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
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

// `names` sorted by their position in `order` (names not in it last).
void SortByOrder(std::vector<std::string>& names,
                 const google::protobuf::RepeatedPtrField<std::string>& order) {
  auto rank = [&](const std::string& n) {
    auto it = std::find(order.begin(), order.end(), n);
    return std::distance(order.begin(), it);
  };
  std::stable_sort(names.begin(), names.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
}

}  // namespace

absl::Status TooFewReplicas(size_t answered, size_t replicas, size_t needed,
                            absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(answered, " of ", replicas,
                                             " replica clusters answered, ", needed, " needed (",
                                             what, "); retry when more clusters are up"));
}

class Coordinator::Executor {
 public:
  explicit Executor(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      threads_.emplace_back([this] {
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

Coordinator::Coordinator(CoordinatorOptions options, Enqueue enqueue)
    : options_(options), enqueue_(std::move(enqueue)) {}

Coordinator::~Coordinator() {
  std::map<std::string, std::unique_ptr<Executor>> executors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    executors.swap(executors_);
  }
  executors.clear();  // joins their threads after their queued tasks ran
}

void Coordinator::Schedule(const std::string& cluster, std::function<void()> task) {
  Executor* executor = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = executors_[cluster];
    if (e == nullptr) e = std::make_unique<Executor>(options_.threads_per_cluster);
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

bool Coordinator::Admit(const std::string& cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  Health& h = health_[cluster];
  if (h.failures > 0 && (h.in_flight > 0 || absl::Now() < h.retry_after)) return false;
  ++h.in_flight;
  return true;
}

void Coordinator::Report(const std::string& cluster, const absl::Status& status) {
  const bool unreachable = absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
  std::lock_guard<std::mutex> lock(mu_);
  Health& h = health_[cluster];
  --h.in_flight;
  if (!unreachable) {
    if (h.failures > 0) common::LogInfo("replica cluster '", cluster, "' answers again");
    h.failures = 0;
    return;
  }
  if (h.failures == 0) {
    common::LogWarning("replica cluster '", cluster, "' does not answer (", status.message(),
                       "); its writes are queued until it does");
  }
  ++h.failures;
  h.retry_after = absl::Now() + std::min(absl::Seconds(5),
                                         absl::Milliseconds(100) * (1 << std::min(h.failures, 6)));
}

// ---- writes ---------------------------------------------------------------------------------

void Coordinator::Replicate(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                            const mcos::v1::Placement& placement,
                            const std::shared_ptr<Replica>& local, const ReplicaMap& replicas,
                            std::function<void(absl::StatusOr<std::vector<std::string>>)> done) {
  struct State {
    std::mutex mu;
    size_t acks = 0;
    size_t pending = 0;
    std::vector<std::string> holders;
    bool answered = false;
    std::function<void(absl::StatusOr<std::vector<std::string>>)> done;
  };
  auto state = std::make_shared<State>();
  state->done = std::move(done);
  const auto r = static_cast<size_t>(placement.replicas_size());
  const size_t w = WriteConcern(placement);
  const bool degraded = placement.degraded();
  const auto& order = placement.replicas();
  // Answers once (outside the lock) when W hold it, or when nothing is pending any more.
  auto maybe_answer = [state, r, w, degraded, order](std::unique_lock<std::mutex> lock) {
    if (state->answered) return;
    std::optional<absl::StatusOr<std::vector<std::string>>> answer;
    if (state->acks >= w || (state->pending == 0 && degraded && state->acks > 0)) {
      std::vector<std::string> holders = state->holders;
      SortByOrder(holders, order);
      answer = std::move(holders);
    } else if (state->pending == 0) {
      answer = TooFewReplicas(state->acks, r, w, "write");
    }
    if (!answer) return;
    state->answered = true;
    auto done_fn = std::move(state->done);
    lock.unlock();
    done_fn(*std::move(answer));
  };

  std::vector<std::pair<std::string, std::shared_ptr<Replica>>> targets;
  {
    std::unique_lock<std::mutex> lock(state->mu);
    for (const auto& c : placement.replicas()) {
      if (local != nullptr && c == local->cluster()) {
        ++state->acks;
        state->holders.push_back(c);
        continue;
      }
      auto it = replicas.find(c);
      if (it == replicas.end() || it->second == nullptr) {
        enqueue_(key, record, c, "no server of the cluster is known here");
        continue;
      }
      if (!Admit(c)) {
        enqueue_(key, record, c, "the cluster did not answer recent calls");
        continue;
      }
      targets.emplace_back(c, it->second);
    }
    state->pending = targets.size();
  }
  const absl::Time deadline =
      replication::CopyDeadline(record.tombstone() ? 0 : record.size(), options_.replica_timeout);
  for (auto& [cluster, replica] : targets) {
    Schedule(cluster, [this, state, key, record, local, cluster = cluster, replica = replica,
                       deadline, maybe_answer] {
      auto ack = local != nullptr ? replication::Copy(*local, *replica, key, record, deadline)
                                  : absl::StatusOr<replication::WriteAck>(
                                        absl::FailedPreconditionError("no local copy to send"));
      Report(cluster, ack.status());
      if (!ack.ok()) {
        enqueue_(key, record, cluster, std::string(ack.status().message()));
      }
      std::unique_lock<std::mutex> lock(state->mu);
      --state->pending;
      if (ack.ok()) {
        // Applied, or it already holds this version or a newer one: either way it holds it.
        ++state->acks;
        state->holders.push_back(cluster);
      }
      maybe_answer(std::move(lock));
    });
  }
  maybe_answer(std::unique_lock<std::mutex>(state->mu));
}

absl::StatusOr<std::vector<std::string>> Coordinator::ReplicateAndWait(
    const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
    const mcos::v1::Placement& placement, const std::shared_ptr<Replica>& local,
    const ReplicaMap& replicas) {
  auto result = std::make_shared<absl::StatusOr<std::vector<std::string>>>();
  auto ready = std::make_shared<absl::Notification>();
  Replicate(key, record, placement, local, replicas,
            [result, ready](absl::StatusOr<std::vector<std::string>> r) {
              *result = std::move(r);
              ready->Notify();
            });
  ready->WaitForNotification();
  return *result;
}

// ---- reads ----------------------------------------------------------------------------------

// How many replicas were asked and answered: what AskReplicas waits on.
struct Coordinator::Tally {
  std::mutex mu;
  std::condition_variable changed;
  size_t asked = 0;
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

void Coordinator::AskReplicas(Candidates candidates, size_t needed, ReadScope scope,
                              absl::Time deadline, Tally& tally, const MakeCall& make_call) {
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
        ++tally.asked;
      }
      Dispatch(cluster, *replica, here, make_call(cluster, replica));
    }
    for (auto& task : here) task();
  };
  if (scope == ReadScope::kEveryHolder) {
    // All at once; once the quorum answered, the others get the grace.
    ask(candidates.size());
    std::unique_lock<std::mutex> lock(tally.mu);
    while (tally.done < tally.asked) {
      absl::Time until = deadline;
      if (tally.quorum_at) until = std::min(until, *tally.quorum_at + options_.read_grace);
      if (absl::Now() >= until) return;
      tally.changed.wait_until(lock, absl::ToChronoTime(until));
    }
    return;
  }
  // Only as many as the quorum needs; another candidate for each one that fails.
  while (true) {
    size_t want = 0;
    {
      std::unique_lock<std::mutex> lock(tally.mu);
      const size_t outstanding = tally.asked - tally.done;
      if (tally.answered >= needed) return;
      if (tally.answered + outstanding < needed && next < candidates.size()) {
        want = needed - tally.answered - outstanding;
      } else if (outstanding == 0 || absl::Now() >= deadline) {
        return;  // nobody left to ask, or out of time
      } else {
        const size_t done = tally.done;
        tally.changed.wait_until(lock, absl::ToChronoTime(deadline),
                                 [&] { return tally.done != done; });
        continue;
      }
    }
    ask(want);
  }
}

Coordinator::Candidates Coordinator::Admitted(
    const google::protobuf::RepeatedPtrField<std::string>& clusters, const ReplicaMap& replicas) {
  Candidates out;
  for (const auto& c : clusters) {
    auto it = replicas.find(c);
    if (it != replicas.end() && it->second != nullptr && Admit(c)) out.emplace_back(c, it->second);
  }
  return out;
}

absl::StatusOr<Newest> Coordinator::Read(const mcos::v1::ObjectKey& key,
                                         const mcos::v1::Placement& placement,
                                         const ReplicaMap& replicas, ReadScope scope) {
  const auto r = static_cast<size_t>(placement.replicas_size());
  // A degraded option reads whatever answers, as it writes.
  const size_t needed = placement.degraded() ? 1 : r - WriteConcern(placement) + 1;
  // An answer: the record, or nullopt for "holds nothing".
  using Answer = std::optional<mcos::v1::ObjectRecord>;
  auto gather = std::make_shared<Gather<Answer>>();
  const absl::Time deadline = absl::Now() + options_.replica_timeout;
  AskReplicas(Admitted(placement.replicas(), replicas), needed, scope, deadline, *gather,
              [this, gather, key, deadline, needed](const std::string& cluster,
                                                    const std::shared_ptr<Replica>& replica) {
                return [this, gather, key, deadline, needed, cluster, replica] {
                  auto record = replica->Stat(key, deadline);
                  Report(cluster, record.status());
                  std::optional<Answer> answer;
                  if (record.ok()) {
                    answer = Answer(*std::move(record));
                  } else if (absl::IsNotFound(record.status())) {
                    answer = Answer(std::nullopt);
                  }
                  gather->Add(cluster, std::move(answer), needed);
                };
              });
  std::lock_guard<std::mutex> lock(gather->mu);
  if (gather->answered < needed) return TooFewReplicas(gather->answered, r, needed, "read");
  Newest newest;
  for (const auto& [cluster, answer] : gather->answers) {
    if (!answer) continue;
    if (!newest.record || common::IsNewer(answer->version(), newest.record->version())) {
      newest.record = *answer;
    }
  }
  if (newest.record) {
    for (const auto& [cluster, answer] : gather->answers) {
      if (answer && common::CompareVersions(answer->version(), newest.record->version()) == 0) {
        newest.holders.push_back(cluster);
      }
    }
    SortByOrder(newest.holders, placement.replicas());
  }
  return newest;
}

void Coordinator::ReadAsync(const mcos::v1::ObjectKey& key, const mcos::v1::Placement& placement,
                            const ReplicaMap& replicas, ReadScope scope,
                            std::function<void(absl::StatusOr<Newest>)> done) {
  // Its own threads: Read waits for the replicas' threads, never for its own.
  Schedule(" reads", [this, key, placement, replicas, scope, done = std::move(done)] {
    done(Read(key, placement, replicas, scope));
  });
}

// ---- listings -------------------------------------------------------------------------------

absl::StatusOr<Coordinator::Listing> Coordinator::List(const mcos::v1::StorageListRequest& request,
                                                       const std::vector<std::string>& members,
                                                       uint32_t write_concern,
                                                       const ReplicaMap& replicas) {
  const size_t w = std::max<size_t>(1, std::min<size_t>(write_concern, members.size()));
  const size_t needed = members.size() - w + 1;
  auto gather = std::make_shared<Gather<mcos::v1::StorageListResponse>>();
  const absl::Time deadline = absl::Now() + options_.replica_timeout;
  mcos::v1::StorageListRequest req = request;
  req.set_include_tombstones(true);
  google::protobuf::RepeatedPtrField<std::string> clusters(members.begin(), members.end());
  // Every member: the merged entries name every holder.
  AskReplicas(Admitted(clusters, replicas), needed, ReadScope::kEveryHolder, deadline, *gather,
              [this, gather, req, deadline, needed](const std::string& cluster,
                                                    const std::shared_ptr<Replica>& replica) {
                return [this, gather, req, deadline, needed, cluster, replica] {
                  auto page = replica->List(req, deadline);
                  Report(cluster, page.status());
                  std::optional<mcos::v1::StorageListResponse> answer;
                  if (page.ok()) answer = *std::move(page);
                  gather->Add(cluster, std::move(answer), needed);
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
    if (!page.next_marker().empty() && (!cutoff || page.next_marker() < *cutoff)) {
      cutoff = page.next_marker();
    }
  }
  // A k-way merge of the pages, each sorted by name (entries and common prefixes apart).
  struct Cursor {
    const std::string* cluster;
    mcos::v1::StorageListResponse* page;
    int entry = 0;
    int prefix = 0;
  };
  std::vector<Cursor> cursors;
  for (auto& [cluster, page] : gather->answers) cursors.push_back({&cluster, &page});
  auto rank = [&](const std::string& c) {
    return std::find(members.begin(), members.end(), c) - members.begin();
  };
  const uint32_t limit = request.limit() == 0 ? 1000u : std::min<uint32_t>(request.limit(), 10000u);
  Listing out;
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
    std::vector<std::string> holders;
    for (Cursor& c : cursors) {
      if (c.prefix < c.page->common_prefixes_size() && c.page->common_prefixes(c.prefix) == name) {
        prefix = true;
        ++c.prefix;
      }
      if (c.entry < c.page->entries_size() && c.page->entries(c.entry).object() == name) {
        mcos::v1::ObjectRecord* r = c.page->mutable_entries(c.entry)->mutable_record();
        if (newest == nullptr || common::IsNewer(r->version(), newest->version())) {
          newest = r;
          holders = {*c.cluster};
        } else if (common::CompareVersions(r->version(), newest->version()) == 0) {
          holders.push_back(*c.cluster);
        }
        ++c.entry;
      }
    }
    if (emitted == limit) {
      full = true;
      break;
    }
    if (prefix) {
      out.page.add_common_prefixes(name);
    } else if (newest != nullptr && !newest->tombstone()) {
      auto* e = out.page.add_entries();
      e->set_object(name);
      *e->mutable_record() = std::move(*newest);
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
    out.page.set_next_marker(last);
  } else if (cutoff) {
    out.page.set_next_marker(*cutoff);
  }
  return out;
}

}  // namespace mcos::server
