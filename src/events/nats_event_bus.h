// The event bus over NATS (NATS.c): one connection per process to its cluster's nats-server,
// which it keeps trying to reach (at start and after every loss) without ever failing a caller.
// Publish puts the event in an outbox that one thread drains in order with JetStream publishes
// (gathered for `linger`, then sent in batches of up to 256, each event acknowledged by the stream
// that stores it before the batch leaves the outbox; a batch that was not wholly stored is sent
// again, and JetStream drops the repeats by message id); while the server or JetStream is away the
// outbox holds up to `outbox_limit` events, dropping the oldest beyond it (counted). The streams
// of `NatsOptions::streams` are created (or updated) at connect, and again until JetStream
// answers. A subscription follows one domain's stream with a JetStream ordered consumer on the
// same connection, so it misses no event the stream stored, whatever went away meanwhile.
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "events/event_bus.h"

namespace mcos::events {

struct NatsStream {
  std::string name;
  std::vector<std::string> subjects;
  // Retention: messages older than this, or past this many bytes (oldest first), go.
  int64_t max_age_seconds = int64_t{24} * 3600;
  int64_t max_bytes = int64_t{1} << 30;
};

struct NatsOptions {
  // nats://HOST:PORT (a comma-separated list is tried in turn).
  std::string url;
  std::string user;
  std::string password;
  // Shown by the server for this connection (e.g. "mcos-cluster alpha").
  std::string name;
  size_t outbox_limit = 100000;
  // How long the publisher lets events gather before it sends what the outbox holds (unless it
  // holds a full batch already): fewer, bigger batches for the server, at that much latency.
  // 25 ms: per replicated 4 KiB create, the nats-servers' CPU went from 0.54-0.62 ms to
  // 0.23-0.26 (docs/design.md).
  absl::Duration linger = absl::Milliseconds(25);
  std::vector<NatsStream> streams;
};

class NatsEventBus final : public EventBus {
 public:
  // INVALID_ARGUMENT for an empty or malformed URL; an unreachable server is not an error.
  static absl::StatusOr<std::unique_ptr<NatsEventBus>> Start(NatsOptions options);
  ~NatsEventBus() override;

  void Publish(std::string subject, std::string payload) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(const Follow& follow,
                                                          OnEvent on_event) override;

  bool connected() const;
  // Events stored by JetStream, dropped from a full outbox, and waiting now.
  uint64_t published() const;
  uint64_t dropped() const;
  size_t waiting() const;

 private:
  // Events sent to JetStream together before their acknowledgements are awaited.
  static constexpr size_t kPublishBatch = 256;

  explicit NatsEventBus(NatsOptions options);
  // One pass of the publisher: publishes the outbox's events in order until it is empty, or
  // UNAVAILABLE at the first that NATS did not store (tried again next pass).
  absl::Status PublishPass(common::Pacer& pacer);
  // Creates or updates the configured streams; false (logged once per cause) if JetStream did
  // not answer.
  bool EnsureStreams();

  const NatsOptions options_;
  // NATS.c's options, connection and JetStream context (nats.h stays out of this header).
  struct Handles;
  std::unique_ptr<Handles> nats_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<std::string, std::string>> outbox_ ABSL_GUARDED_BY(mu_);
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  // Events taken off the front so far (published or dropped).
  uint64_t popped_ ABSL_GUARDED_BY(mu_) = 0;
  // The publisher's own (its passes run one at a time).
  bool streams_ready_ = false;
  // Drains the outbox: woken by every Publish, and every 0.5 s while NATS is away.
  std::unique_ptr<common::Daemon> publisher_;
};

}  // namespace mcos::events
