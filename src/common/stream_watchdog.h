// Ends streaming calls that make no progress: a client that opens an upload or a download and then
// stalls would otherwise hold its buffers (and, for the synchronous handlers, a thread) forever.
// Each stream records its progress with Touch(); once a stream has been idle for the timeout, the
// watchdog calls its OnIdle() (once) and forgets it. Thread-safe. Used by the servers and by the
// SDK (a library of its own that depends on abseil only).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace mcos::common {

class StreamWatchdog {
 public:
  class Stream {
   public:
    Stream() { Touch(); }
    virtual ~Stream() = default;
    // Records progress now.
    void Touch() { last_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed); }
    absl::Duration IdleFor(absl::Time now) const {
      return now - absl::FromUnixNanos(last_ns_.load(std::memory_order_relaxed));
    }
    // Called at most once, on the watchdog's thread with none of its locks held, after the stream
    // made no progress for the timeout. Must end the call (cancel it, or finish it with
    // DEADLINE_EXCEEDED) and may do so inline.
    virtual void OnIdle(absl::Duration idle) = 0;

   private:
    std::atomic<int64_t> last_ns_{0};
  };

  // Streams idle for `idle_timeout` are ended; a zero or negative timeout disables the watchdog.
  explicit StreamWatchdog(absl::Duration idle_timeout);
  ~StreamWatchdog();
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;

  void Add(const std::shared_ptr<Stream>& stream);
  // Forgets `stream` (no OnIdle after this returns, unless one is already running).
  void Remove(const Stream* stream);
  // Calls OnIdle of every stream idle at `now`; returns how many. The thread started by Start()
  // calls it periodically; tests call it directly.
  int RunOnce(absl::Time now);
  // Checks every `period` (by default a tenth of the timeout, at least 100 ms) until destroyed.
  void Start();

 private:
  const absl::Duration idle_timeout_;
  absl::Mutex mu_;
  absl::flat_hash_map<const Stream*, std::shared_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

// A blocking streaming call (a grpc::ClientContext or grpc::ServerContext) that the watchdog
// cancels once it is idle. Call Detach() before the context dies.
template <typename Context>
class CancelOnIdle final : public StreamWatchdog::Stream {
 public:
  // `on_idle` (optional) runs before the cancellation, e.g. to log.
  explicit CancelOnIdle(Context* context,
                        std::function<void(Context&, absl::Duration)> on_idle = {})
      : context_(context), on_idle_(std::move(on_idle)) {}
  void OnIdle(absl::Duration idle) override {
    absl::MutexLock lock(&mu_);
    if (context_ == nullptr) return;
    fired_ = true;
    if (on_idle_) on_idle_(*context_, idle);
    context_->TryCancel();
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  // Whether the watchdog cancelled the call.
  bool fired() {
    absl::MutexLock lock(&mu_);
    return fired_;
  }

 private:
  absl::Mutex mu_;
  Context* context_ ABSL_GUARDED_BY(mu_);
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  const std::function<void(Context&, absl::Duration)> on_idle_;
};

}  // namespace mcos::common
