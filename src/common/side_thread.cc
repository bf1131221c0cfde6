#include "common/side_thread.h"

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mcos::common {
namespace {

// One side thread: waits for a task, runs it, clears it.
struct Worker {
  absl::Mutex mu;
  const absl::FunctionRef<void()>* task ABSL_GUARDED_BY(mu) = nullptr;

  void Loop() {
    absl::MutexLock lock(&mu);
    while (true) {
      mu.Await(absl::Condition(
          +[](const absl::FunctionRef<void()>** t) { return *t != nullptr; }, &task));
      const absl::FunctionRef<void()>* run = task;
      mu.Unlock();
      (*run)();
      mu.Lock();
      task = nullptr;
    }
  }
};

// The side threads, started as needed up to kSideThreads and kept for the life of the process.
class Pool {
 public:
  // An idle worker, started if there are fewer than kSideThreads; nullptr if all are busy.
  Worker* Take() {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Worker* w = idle_.back();
      idle_.pop_back();
      return w;
    }
    if (started_ >= kSideThreads) return nullptr;
    ++started_;
    auto* w = new Worker;  // lives as long as the process, as its thread
    std::thread([w] { w->Loop(); }).detach();
    return w;
  }
  void GiveBack(Worker* w) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(w);
  }

 private:
  absl::Mutex mu_;
  std::vector<Worker*> idle_ ABSL_GUARDED_BY(mu_);
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

Pool& ThePool() {
  static Pool* pool = new Pool;  // never destroyed: its threads may outlive static destruction
  return *pool;
}

}  // namespace

void RunBeside(absl::FunctionRef<void()> there, absl::FunctionRef<void()> here) {
  Worker* w = ThePool().Take();
  if (w == nullptr) {
    here();
    there();
    return;
  }
  {
    absl::MutexLock lock(&w->mu);
    w->task = &there;
  }
  here();
  {
    absl::MutexLock lock(&w->mu);
    w->mu.Await(absl::Condition(
        +[](const absl::FunctionRef<void()>** t) { return *t == nullptr; }, &w->task));
  }
  ThePool().GiveBack(w);
}

}  // namespace mcos::common
