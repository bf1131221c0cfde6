// Events (shared/DESIGN.md, "Events"): small messages on subjects, never object data and never on
// a request's path. A publisher hands an event over and returns at once; a subscriber is called
// for each event on a subject (NATS wildcards: `*` one token, `>` the rest) stored from then on in
// the streams it follows. The production bus is NATS JetStream (nats_event_bus.h); MemoryEventBus
// is its twin for unit tests. Implementations are thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace mcos::events {

// A live subscription: destroying it ends it (no call of its callback begins afterwards, and none
// is under way once the destructor returns).
class Subscription {
 public:
  virtual ~Subscription() = default;
};

using OnEvent = std::function<void(const std::string& subject, const std::string& payload)>;

// Where a subscriber's events come from: the stream `stream` at the JetStream domain `domain` (one
// per cluster: events::JetStreamDomain; empty: the bus's own server's), only its subjects
// matching `filter`.
struct Follow {
  std::string stream;
  std::string domain;
  std::string filter;
};

class EventBus {
 public:
  virtual ~EventBus() = default;
  // Hands an event over; never blocks on the network. While the bus cannot be reached events
  // wait (in order) in a bounded outbox; past its bound the oldest are dropped and counted.
  virtual void Publish(std::string subject, std::string payload) = 0;
  // Calls `on_event` for every event stored from now on in the stream `follow` names, in the
  // stream's order, on one thread of the bus. If the stream's server (or the link to it) cannot be
  // reached now it is tried again in the background, and after an outage the subscription
  // resumes where it stopped: every event the stream stores while the subscription lives reaches
  // `on_event` once (within the stream's retention). A stream also keeps what the links between
  // the servers carried to it from other domains' publishers.
  // UNAVAILABLE when the bus cannot take the subscription now.
  virtual absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(const Follow& follow,
                                                                  OnEvent on_event) = 0;
};

// The subject of the object events of one container: "mcos.object." and 16 hex digits of a hash
// of (owner, container) (names may hold any character but '/', subjects may not). Different
// containers may share one: subscribers check the key in the payload.
std::string ObjectSubject(absl::string_view owner, absl::string_view container);

// The subject of a cluster's service events: "mcos.service." and 16 hex digits of a hash of the
// cluster's name (names may hold dots).
std::string ServiceSubject(absl::string_view cluster);

// Whether NATS subject `subject` matches `filter` (tokens split by '.'; `*` matches one token,
// a final `>` one or more).
bool SubjectMatches(absl::string_view filter, absl::string_view subject);

// In-memory, one stream for every domain: Publish delivers at once, on the caller's thread, to
// every subscription whose filter matches, and records the event.
class MemoryEventBus final : public EventBus {
 public:
  void Publish(std::string subject, std::string payload) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(const Follow& follow,
                                                          OnEvent on_event) override;
  // Every event published so far: (subject, payload).
  std::vector<std::pair<std::string, std::string>> published() const;

 private:
  class MemorySubscription;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, std::string>> published_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::pair<std::string, OnEvent>> subscriptions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mcos::events
