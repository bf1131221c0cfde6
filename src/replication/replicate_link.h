// The coordinating side of ClusterService.ClusterReplicate: one long-lived stream to a peer
// cluster that carries its small replica operations (small writes, tombstones, stats), batched
// into one message while a write is under way, each answered by its id. A gRPC call costs far
// more than a message on an open stream (a new HTTP/2 stream, headers, the credential's check at
// the peer, a synchronous server thread there), and a replicated create makes two peer writes and
// a peer stat.
//
// Each operation has its own deadline, kept here (a thread per link, started by the first
// operation, sleeps until the next one):
// one not answered by then fails with DEADLINE_EXCEEDED, whatever the others do. An operation
// whose stream ends before its answer fails with UNAVAILABLE (UNIMPLEMENTED from a server that
// has no ClusterReplicate), and the next operation opens a new stream. A stream is used for at
// most 5 minutes (the peer checked its credential once, when it opened); then it is closed once
// its answers are in, and a new one is opened. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "mcos/v1/cluster.grpc.pb.h"

namespace mcos::replication {

class ReplicateStream;

class ReplicateLink {
 public:
  // An operation's answer: OK with the answer (its code 0), or why there is none (the
  // operation's own error is in the answer, not here).
  using Done = std::function<void(absl::Status, mcos::v1::ClusterReplicateAnswer*)>;

  // `cluster` names the peer in messages; the stub's channel carries the peer credential.
  ReplicateLink(std::string cluster, std::shared_ptr<mcos::v1::ClusterService::Stub> stub);
  // Cancels the streams (their unanswered operations fail), stops the deadline thread and waits
  // until gRPC is done with every stream and its ClientContext is gone (at most 5 s), so that the
  // channel's last reference is the caller's. Not to be destroyed under a lock the operations'
  // callbacks take, nor in one of them.
  ~ReplicateLink();
  ReplicateLink(const ReplicateLink&) = delete;
  ReplicateLink& operator=(const ReplicateLink&) = delete;

  // Sends `op` (its id and timeout are set here); `done` is called exactly once, on a gRPC thread
  // or the link's thread, never inside this call.
  void Submit(mcos::v1::ClusterReplicateOp op, absl::Time deadline, Done done);

  // How long a stream is used before a new one is opened.
  static constexpr absl::Duration kStreamLifetime = absl::Minutes(5);

  // The link's streams not yet destroyed (each may outlive the link until gRPC is done with it).
  struct Live {
    std::mutex mu;
    std::condition_variable gone;
    int streams = 0;
  };

 private:
  void ExpireLoop();

  const std::string cluster_;
  const std::shared_ptr<mcos::v1::ClusterService::Stub> stub_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::shared_ptr<ReplicateStream> current_;
  // Every stream not yet done (the current one and those closing), for their deadlines.
  std::vector<std::shared_ptr<ReplicateStream>> streams_;
  absl::Time next_expiry_ = absl::InfiniteFuture();
  bool stop_ = false;
  std::thread expirer_;
  const std::shared_ptr<Live> live_ = std::make_shared<Live>();
};

}  // namespace mcos::replication
