#include "replication/replicate_link.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace mcos::replication {

// One ClusterReplicate call. Holds itself until gRPC is done with it. The hold (AddHold) keeps
// the call open while operations may still be written from outside its reactions (Submit); it is
// removed once no write can follow: the stream broke, or it was retired and half-closed.
class ReplicateStream final : public grpc::ClientBidiReactor<mcos::v1::ClusterReplicateRequest,
                                                             mcos::v1::ClusterReplicateResponse> {
 public:
  ReplicateStream(std::string cluster, std::shared_ptr<ReplicateLink::Live> live)
      : counted_(std::move(live)), cluster_(std::move(cluster)), opened_(absl::Now()) {}
  ReplicateStream(const ReplicateStream&) = delete;
  ReplicateStream& operator=(const ReplicateStream&) = delete;

  // Creates the call (writes may be started from here on) without starting it; nothing here can
  // run a reaction, so it may be called under a lock.
  void Prepare(std::shared_ptr<ReplicateStream> self, mcos::v1::ClusterService::Stub& stub) {
    self_ = std::move(self);
    stub.async()->ClusterReplicate(&ctx_, this);
    AddHold();
    StartRead(&in_);
  }
  // gRPC may run reactions inside this: never under a lock a reaction takes.
  void Go() { StartCall(); }

  // Adds `op` to the next message; false if this stream takes no more.
  bool Submit(mcos::v1::ClusterReplicateOp& op, absl::Time deadline, ReplicateLink::Done& done) {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_ || retired_) return false;
    const uint64_t id = next_id_++;
    op.set_id(id);
    const absl::Duration left = deadline - absl::Now();
    if (deadline != absl::InfiniteFuture()) {
      op.set_timeout_ms(static_cast<uint32_t>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 1, int64_t{1} << 31)));
    }
    unanswered_.emplace(id, Pending{deadline, std::move(done)});
    *queued_.add_ops() = std::move(op);
    if (writing_) return true;  // goes with the next message, when this write is done
    StartNextWrite(lock);
    return true;
  }

  // Fails the operations whose deadline passed (their callbacks go to `expired`) and returns the
  // earliest deadline left.
  absl::Time Expire(absl::Time now, std::vector<std::function<void()>>& expired) {
    std::unique_lock<std::mutex> lock(mu_);
    absl::Time next = absl::InfiniteFuture();
    std::vector<uint64_t> gone;
    for (auto it = unanswered_.begin(); it != unanswered_.end();) {
      if (it->second.deadline > now) {
        next = std::min(next, it->second.deadline);
        ++it;
        continue;
      }
      gone.push_back(it->first);
      expired.emplace_back([done = std::move(it->second.done), cluster = cluster_] {
        done(absl::DeadlineExceededError(
                 absl::StrCat("cluster '", cluster, "' did not answer in time")),
             nullptr);
      });
      it = unanswered_.erase(it);
    }
    if (gone.empty()) return next;
    // Not yet sent: dropped. A stream with an operation this late is used no more, and once none
    // is left unanswered it is cancelled (its peer may be frozen with the write half full).
    auto* ops = queued_.mutable_ops();
    ops->erase(std::remove_if(ops->begin(), ops->end(),
                              [&](const mcos::v1::ClusterReplicateOp& op) {
                                return std::find(gone.begin(), gone.end(), op.id()) != gone.end();
                              }),
               ops->end());
    retired_ = true;
    const bool cancel = unanswered_.empty();
    Settle(lock);
    if (lock.owns_lock()) lock.unlock();
    if (cancel) ctx_.TryCancel();
    return next;
  }

  // Takes no more operations; closes its side once what it holds is written.
  void Retire() {
    std::unique_lock<std::mutex> lock(mu_);
    retired_ = true;
    Settle(lock);
  }

  void Cancel() { ctx_.TryCancel(); }

  bool usable(absl::Time now) {
    std::lock_guard<std::mutex> lock(mu_);
    return !closed_ && !retired_ && now - opened_ < ReplicateLink::kStreamLifetime;
  }

  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::unique_lock<std::mutex> lock(mu_);
      closed_ = true;
      Settle(lock);
      return;
    }
    std::vector<std::pair<ReplicateLink::Done, mcos::v1::ClusterReplicateAnswer*>> answered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& answer : *in_.mutable_answers()) {
        auto it = unanswered_.find(answer.id());
        if (it == unanswered_.end()) continue;  // expired meanwhile
        answered.emplace_back(std::move(it->second.done), &answer);
        unanswered_.erase(it);
      }
    }
    for (auto& [done, answer] : answered) done(absl::OkStatus(), answer);
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      closed_ = true;  // the call ended; OnDone fails what is unanswered
    } else if (!queued_.ops().empty() && !closed_) {
      StartNextWrite(lock);
      return;
    }
    Settle(lock);
  }

  void OnDone(const grpc::Status& status) override {
    std::map<uint64_t, Pending> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      closed_ = true;
      left.swap(unanswered_);
    }
    const absl::Status why =
        status.error_code() == grpc::StatusCode::UNIMPLEMENTED
            ? absl::UnimplementedError(
                  absl::StrCat("cluster '", cluster_, "' does not serve ClusterReplicate"))
            : absl::UnavailableError(absl::StrCat(
                  "the replication stream to cluster '", cluster_, "' ended before it answered",
                  status.ok() ? std::string() : absl::StrCat(": ", status.error_message())));
    for (auto& [id, pending] : left) pending.done(why, nullptr);
    std::shared_ptr<ReplicateStream> self;
    {
      std::lock_guard<std::mutex> lock(mu_);
      self.swap(self_);
    }
    // `self` may be the last reference: this goes with it, at the end of this call.
  }

 private:
  struct Pending {
    absl::Time deadline;
    ReplicateLink::Done done;
  };

  // Writes what is queued (mu_ held; released for the write).
  void StartNextWrite(std::unique_lock<std::mutex>& lock) {
    out_.Clear();
    out_.Swap(&queued_);
    writing_ = true;
    lock.unlock();
    StartWrite(&out_);
  }

  // Once no write is under way and none can follow (the stream broke, or it is retired and what
  // it held is written), half-closes it (if it did not break) and lets it end.
  void Settle(std::unique_lock<std::mutex>& lock) {
    if (released_ || writing_ || !(closed_ || (retired_ && queued_.ops().empty()))) return;
    released_ = true;
    const bool half_close = !closed_;
    lock.unlock();
    if (half_close) StartWritesDone();
    RemoveHold();
  }

  // Counts the stream among the link's live ones from its construction until its ClientContext
  // (declared after it, destroyed before it) is gone: the context holds a reference to the
  // link's channel, which the link's owner must be the one to release.
  class Counted {
   public:
    explicit Counted(std::shared_ptr<ReplicateLink::Live> live) : live_(std::move(live)) {
      std::lock_guard<std::mutex> lock(live_->mu);
      ++live_->streams;
    }
    ~Counted() {
      std::lock_guard<std::mutex> lock(live_->mu);
      --live_->streams;
      live_->gone.notify_all();
    }
    Counted(const Counted&) = delete;
    Counted& operator=(const Counted&) = delete;

   private:
    const std::shared_ptr<ReplicateLink::Live> live_;
  };

  const Counted counted_;
  const std::string cluster_;
  const absl::Time opened_;
  grpc::ClientContext ctx_;
  std::shared_ptr<ReplicateStream> self_;
  std::mutex mu_;
  mcos::v1::ClusterReplicateResponse in_;
  mcos::v1::ClusterReplicateRequest out_;     // being written
  mcos::v1::ClusterReplicateRequest queued_;  // for the next write
  std::map<uint64_t, Pending> unanswered_;
  uint64_t next_id_ = 1;
  bool writing_ = false;
  bool closed_ = false;   // no answer can come any more
  bool retired_ = false;  // takes no new operations
  bool released_ = false;
  bool done_ = false;
};

ReplicateLink::ReplicateLink(std::string cluster,
                             std::shared_ptr<mcos::v1::ClusterService::Stub> stub)
    : cluster_(std::move(cluster)), stub_(std::move(stub)) {}

ReplicateLink::~ReplicateLink() {
  std::vector<std::shared_ptr<ReplicateStream>> streams;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    streams.swap(streams_);
    current_.reset();
  }
  wake_.notify_all();
  if (expirer_.joinable()) expirer_.join();
  for (auto& s : streams) s->Cancel();
  streams.clear();
  // A stream's ClientContext holds a reference to the channel: once every stream (and its
  // context) is gone, the stub's reference is the last, and the channel goes with the owner of
  // this link on the owner's thread, not at the end of a reaction on one of gRPC's threads (see
  // common/channel.cc). Cancelled, the streams end at once.
  std::unique_lock<std::mutex> lock(live_->mu);
  if (!live_->gone.wait_for(lock, std::chrono::seconds(5), [&] { return live_->streams == 0; })) {
    common::LogError("the replication streams to cluster '", cluster_,
                     "' did not end within 5 s of their cancellation");
  }
}

void ReplicateLink::Submit(mcos::v1::ClusterReplicateOp op, absl::Time deadline, Done done) {
  // A stream that takes no more (it ended, broke or aged) is replaced, at most twice per
  // operation: a stream that ends at once fails its operation instead. Streams are started,
  // retired and written outside mu_ (gRPC may run their reactions inside those calls).
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<ReplicateStream> stream;
    std::shared_ptr<ReplicateStream> fresh;
    std::shared_ptr<ReplicateStream> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
      // The deadline thread starts with the first operation (a peer's replica that sends none
      // costs no thread).
      if (!expirer_.joinable()) expirer_ = std::thread([this] { ExpireLoop(); });
      if (current_ == nullptr || !current_->usable(absl::Now())) {
        old = std::move(current_);
        std::erase_if(streams_, [](const auto& s) { return s->done(); });
        current_ = std::make_shared<ReplicateStream>(cluster_, live_);
        current_->Prepare(current_, *stub_);
        streams_.push_back(current_);
        fresh = current_;
      }
      stream = current_;
      if (deadline < next_expiry_) {
        next_expiry_ = deadline;
        wake_.notify_one();
      }
    }
    if (fresh != nullptr) fresh->Go();
    if (old != nullptr) old->Retire();
    if (stream->Submit(op, deadline, done)) return;
  }
  done(absl::UnavailableError(
           absl::StrCat("no replication stream to cluster '", cluster_, "' could be opened")),
       nullptr);
}

void ReplicateLink::ExpireLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const absl::Time wake = next_expiry_;
    if (wake == absl::InfiniteFuture()) {
      wake_.wait(lock);
    } else {
      wake_.wait_for(lock,
                     absl::ToChronoMilliseconds(std::max(absl::ZeroDuration(), wake - absl::Now()) +
                                                absl::Milliseconds(1)));
    }
    if (stop_) break;
    const absl::Time now = absl::Now();
    if (now < next_expiry_) continue;
    next_expiry_ = absl::InfiniteFuture();  // Submit lowers it meanwhile if it must
    std::vector<std::shared_ptr<ReplicateStream>> streams;
    for (auto it = streams_.begin(); it != streams_.end();) {
      if ((*it)->done()) {
        it = streams_.erase(it);
      } else {
        streams.push_back(*it++);
      }
    }
    lock.unlock();
    std::vector<std::function<void()>> expired;
    absl::Time next = absl::InfiniteFuture();
    for (auto& stream : streams) next = std::min(next, stream->Expire(now, expired));
    for (auto& f : expired) f();
    lock.lock();
    next_expiry_ = std::min(next_expiry_, next);
  }
}

}  // namespace mcos::replication
