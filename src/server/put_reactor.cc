#include "server/put_reactor.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "server/server_app.h"
#include "storage/upload_content.h"

namespace mcos::server {
namespace {

using common::ToGrpcStatus;

constexpr size_t kMaxChunk = size_t{1} << 20;
// Uploads up to this size are kept in memory until their replicas have them (at most this times
// --max-uploads bytes in all).
constexpr size_t kInlineMax = size_t{256} << 10;

grpc::Status Invalid(absl::string_view message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, std::string(message)};
}

}  // namespace

// Invariants (all state is guarded by mu_):
//   * an upload of at most kInlineMax bytes is held in memory and committed in one call
//     (CommitInline), with no storage stream; once one outgrows that, it is streamed;
//   * at most one read of the user's stream and one write to the storage stream are outstanding;
//     a data message that arrives while a write is outstanding waits in queued_, and no further
//     read starts until all of it has been written (so at most kInlineMax and two chunks are
//     buffered per upload);
//   * nothing commits until the storage finish message is written or the call committing the
//     upload held in memory starts (finish_written_), which happens only in RequestCommit, only
//     after the client finished (see put_reactor.h);
//   * Finish is called once (answered_); after it no new operation starts on either stream;
//   * writes to the storage stream start only while this holds it (storage_held_: AddHold when
//     it starts, RemoveHold after the finish write, a failed write, or Fail), so its OnDone, after
//     which it must not be touched, cannot come in between;
//   * refs_ keeps this object alive: one for gRPC (dropped in OnDone), one per outstanding
//     unary call, one for the storage stream until its OnDone, one while the settle alarm is set,
//     one for CommitInline's call.
// mu_ is recursive because gRPC may run a reaction inline inside an operation started from a
// thread that is not one of its callback threads (the watchdog's, the alarm's); it is never held
// while Unref may delete this.
class PutReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(ServerApp& app, grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response,
             bool create)
      : app_(app), ctx_(ctx), response_(response), create_(create), storage_(*this) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto claims = app_.Authenticate(*ctx_);
    if (!claims.ok()) {
      Answer(ToGrpcStatus(claims.status()));
      return;
    }
    user_ = common::TokenOwner(*claims);
    if (auto s = app_.uploads_.Acquire(user_); !s.ok()) {
      Answer(ToGrpcStatus(s));
      return;
    }
    admitted_ = true;
    idle_ = std::make_shared<IdleHandle>(this);
    app_.watchdog_.Add(idle_);
    StartUserRead();
  }

  void OnReadDone(bool ok) override {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_) return;
    if (!ok) {
      OnClientEnd();
      return;
    }
    ++messages_;
    mcos::v1::PutObjectRequest message;
    if (!grpc::SerializationTraits<mcos::v1::PutObjectRequest>::Deserialize(&in_, &message).ok()) {
      Fail(Invalid(absl::StrCat(
          "message ", messages_,
          " of the upload is not a valid mcos.v1.PutObjectRequest (malformed, or a string that is "
          "not valid UTF-8: names must be valid UTF-8); nothing was stored")));
      return;
    }
    if (phase_ == Phase::kHeader) {
      if (!message.has_header()) {
        Fail(
            Invalid("the first message of an upload must be the header (container, object, ...); "
                    "nothing was stored"));
        return;
      }
      OnHeader(std::move(*message.mutable_header()));
      return;
    }
    if (finish_) {
      Fail(Invalid("nothing may follow the finish message of an upload; nothing was stored"));
      return;
    }
    switch (message.part_case()) {
      case mcos::v1::PutObjectRequest::kData: {
        std::string* data = message.mutable_data();
        if (data->size() > kMaxChunk) {
          Fail(Invalid(absl::StrCat("a data chunk of ", data->size(),
                                    " bytes exceeds the 1 MiB limit; send smaller chunks; nothing "
                                    "was stored")));
          return;
        }
        app_.bytes_in_.Increment(static_cast<double>(data->size()));
        received_bytes_ += data->size();
        if (storage_broken_) return;  // its OnDone answers the user
        if (KeepInline(*data)) {
          StartUserRead();
          return;
        }
        StreamToPeers(*data);
        if (writing_) {
          queued_.push_back(std::move(*data));  // the next read starts once all is written
        } else {
          WriteData(std::move(*data));
          ReadNext();
        }
        return;
      }
      case mcos::v1::PutObjectRequest::kFinish: {
        const auto& f = message.finish();
        if (!f.md5_hex().empty() && !common::IsHex(f.md5_hex(), 32)) {
          Fail(Invalid("finish.md5_hex must be 32 hex digits; nothing was stored"));
          return;
        }
        finish_ = f;
        StartUserRead();  // expect the end of the stream
        return;
      }
      case mcos::v1::PutObjectRequest::kHeader:
        Fail(Invalid("an upload has exactly one header, at its start; nothing was stored"));
        return;
      case mcos::v1::PutObjectRequest::PART_NOT_SET:
        Fail(Invalid("an upload message carries neither data nor finish; nothing was stored"));
        return;
    }
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Fail(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(mu_);
      if (admitted_) app_.uploads_.Release(user_);
    }
    if (idle_) {
      app_.watchdog_.Remove(idle_.get());
      idle_->Detach();
    }
    Unref();
  }

 private:
  enum class Phase { kHeader, kPreparing, kStreaming, kSettling, kCommitting, kReplicating };

  // The stream to this cluster's storage service.
  class StorageWriter final : public grpc::ClientWriteReactor<mcos::v1::StoragePutRequest> {
   public:
    explicit StorageWriter(PutReactor& owner) : owner_(owner) {}
    void OnWriteDone(bool ok) override { owner_.OnStorageWriteDone(ok); }
    void OnDone(const grpc::Status& s) override { owner_.OnStorageDone(s); }

   private:
    PutReactor& owner_;
  };

  // What the watchdog and the replica streams' drain callbacks hold: a pointer that OnDone clears,
  // so that they never reach a reactor gRPC is done with.
  class IdleHandle final : public common::StreamWatchdog::Stream {
   public:
    explicit IdleHandle(PutReactor* r) : reactor_(r) {}
    void OnIdle(absl::Duration idle) override {
      With([idle](PutReactor& r) { r.OnIdle(idle); });
    }
    // Runs `f` on the reactor unless gRPC is done with it.
    template <typename F>
    void With(F f) {
      PutReactor* r = nullptr;
      {
        absl::MutexLock lock(&mu_);
        r = reactor_;
        if (r != nullptr) r->Ref();
      }
      if (r == nullptr) return;
      f(*r);
      r->Unref();
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }

   private:
    absl::Mutex mu_;
    PutReactor* reactor_ ABSL_GUARDED_BY(mu_);
  };

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // idle_ is written only in the constructor, so reading it needs no lock.
  void Progress() {
    if (idle_) idle_->Touch();
  }

  void StartUserRead() { StartRead(&in_); }

  // Validates the header, then looks up the container, the placement and the current version
  // (unary calls, each continuing in its callback) before any data moves.
  void OnHeader(mcos::v1::PutObjectHeader header) {
    header_ = std::move(header);
    absl::Status s = ValidateObjectRef(header_.container(), header_.object());
    if (s.ok()) s = common::ValidateContentType(header_.content_type());
    if (s.ok()) s = common::ValidateUserMetadata(header_.metadata());
    if (s.ok() && !header_.md5_hex().empty() && !common::IsHex(header_.md5_hex(), 32)) {
      s = absl::InvalidArgumentError("md5_hex must be 32 hex digits");
    }
    if (!s.ok()) {
      Fail(ToGrpcStatus(s));
      return;
    }
    phase_ = Phase::kPreparing;
    key_.set_user(user_);
    key_.set_container(header_.container());
    key_.set_object(header_.object());
    container_req_.set_user(user_);
    container_req_.set_name(header_.container());
    if (app_.colocated_.get_container) {
      auto container = app_.colocated_.get_container(user_, header_.container());
      const grpc::Status status = ToGrpcStatus(container.status());
      if (container.ok()) container_ = *std::move(container);
      OnContainer(status);
      return;
    }
    SetDeadline(container_ctx_, absl::Seconds(30));
    Ref();
    app_.controller_->async()->GetContainer(&container_ctx_, &container_req_, &container_,
                                            [this](const grpc::Status& status) {
                                              OnContainer(status);
                                              Unref();
                                            });
  }

  void OnContainer(const grpc::Status& status) {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_) return;
    if (!status.ok()) {
      Fail(status);
      return;
    }
    auto b = app_.CachedBackends();
    if (!b.ok()) {
      Fail(ToGrpcStatus(b.status()));
      return;
    }
    backends_ = *std::move(b);
    *resolve_req_.add_keys() = key_;
    resolve_req_.set_option(container_.option());
    if (app_.colocated_.resolve) {
      auto resolved = app_.colocated_.resolve(resolve_req_);
      const grpc::Status status = ToGrpcStatus(resolved.status());
      if (resolved.ok()) resolve_resp_ = *std::move(resolved);
      OnPlaced(status);
      return;
    }
    SetDeadline(resolve_ctx_, absl::Seconds(5));
    Ref();
    backends_.resolver->async()->Resolve(&resolve_ctx_, &resolve_req_, &resolve_resp_,
                                         [this](const grpc::Status& s) {
                                           OnPlaced(s);
                                           Unref();
                                         });
  }

  void OnPlaced(const grpc::Status& status) {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_) return;
    auto placement = status.ok()
                         ? app_.CheckPlacement(resolve_resp_)
                         : absl::StatusOr<mcos::v1::Placement>(common::FromGrpcStatus(status));
    if (!placement.ok()) {
      Fail(ToGrpcStatus(placement.status()));
      return;
    }
    placement_ = *std::move(placement);
    if (create_ && header_.overwrite() && app_.Remote(placement_)) {
      Start(/*exists=*/false);  // create-or-replace: whether it exists does not matter
      return;
    }
    if (app_.Remote(placement_) && OneTripWrite(placement_) && backends_.local->in_process()) {
      // A strict create where nothing live is held here, or an update of the live version held
      // here, is sent to the replica clusters before it is stored (Coordinator::WriteFirst): they
      // say whether it exists as they take it.
      auto held = backends_.local->Stat(key_, absl::Now() + absl::Seconds(5));
      const bool live = held.ok() && !held->tombstone();
      if (held.ok()) app_.hlc_.Observe(held->version().hlc());
      if (create_ && (absl::IsNotFound(held.status()) || (held.ok() && !live))) {
        one_trip_ = true;
        Start(/*exists=*/false);
        return;
      }
      if (!create_ && live) {
        one_trip_ = true;
        held_ = *std::move(held);
        Start(/*exists=*/true);
        return;
      }
    }
    if (app_.Remote(placement_)) {
      // Whether the object exists is what the replica clusters' quorum says, not this cluster's
      // copy alone (it may have missed a write or a delete).
      Ref();
      app_.coordinator_->ReadAsync(key_, placement_, app_.Replicas(backends_, &placement_),
                                   Coordinator::ReadScope::kQuorum,
                                   [this](absl::StatusOr<Newest> newest) {
                                     OnQuorumStat(std::move(newest));
                                     Unref();
                                   });
      return;
    }
    *stat_req_.mutable_key() = key_;
    SetDeadline(stat_ctx_, absl::Seconds(30));
    Ref();
    backends_.storage->stub().async()->Stat(&stat_ctx_, &stat_req_, &stat_resp_,
                                            [this](const grpc::Status& s) {
                                              OnStat(s);
                                              Unref();
                                            });
  }

  // Fails fast on create-over-existing and update-of-missing (the storage re-checks atomically
  // at commit), then opens the storage stream.
  void OnStat(const grpc::Status& status) {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_) return;
    const bool exists = status.ok();
    if (!exists && status.error_code() != grpc::StatusCode::NOT_FOUND) {
      Fail(status);
      return;
    }
    Start(exists);
  }

  void OnQuorumStat(absl::StatusOr<Newest> newest) {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_) return;
    if (!newest.ok()) {
      Fail(ToGrpcStatus(newest.status()));
      return;
    }
    quorum_checked_ = true;
    Start(newest->record.has_value() && !newest->record->tombstone());
  }

  // Checks create/update against whether the object exists and, for a replicated write, that
  // enough replica clusters can be reached (a refused write stores nothing anywhere), then opens
  // the storage stream.
  void Start(bool exists) {
    const bool overwrite = create_ && header_.overwrite();
    if (create_ && exists && !overwrite) {
      Fail({grpc::StatusCode::ALREADY_EXISTS,
            absl::StrCat("object '", key_.object(), "' already exists in container '",
                         key_.container(), "': use update to replace it")});
      return;
    }
    if (!create_ && !exists) {
      Fail(ToGrpcStatus(ObjectNotFound(key_)));
      return;
    }
    if (app_.Remote(placement_)) {
      replicas_ = app_.Replicas(backends_, &placement_);
      if (absl::Status s =
              app_.coordinator_->CheckWritable(placement_, app_.cluster_id_, replicas_);
          !s.ok()) {
        Fail(ToGrpcStatus(s));
        return;
      }
    }
    auto* sh = out_.mutable_header();
    *sh->mutable_key() = key_;
    // Committed above whatever newer version this cluster holds by then (racing writers, a clock
    // behind another cluster's): the answer describes this upload's own version.
    stamp_ = app_.Stamp();
    *sh->mutable_version() = stamp_;
    sh->set_restamp(true);
    sh->add_holders(app_.cluster_id_);
    sh->set_content_type(header_.content_type());
    *sh->mutable_metadata() = header_.metadata();
    if (header_.has_size()) sh->set_size(header_.size());
    sh->set_md5_hex(absl::AsciiStrToLower(header_.md5_hex()));
    // After a quorum check this cluster's copy may be behind (a delete it missed): the quorum
    // decided, and the newest version still wins everywhere.
    sh->set_precondition(overwrite || quorum_checked_ ? mcos::v1::WRITE_PRECONDITION_NONE
                         : create_                    ? mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST
                                                      : mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
    sh->set_partition(placement_.partition());
    sh->set_option(placement_.option());
    phase_ = Phase::kStreaming;
    StartUserRead();
  }

  // Opens the stream to this cluster's storage service and writes the header (out_).
  void OpenStorage() {
    // A child of the user's call: its cancellation and deadline reach the storage stream.
    storage_ctx_ = grpc::ClientContext::FromCallbackServerContext(*ctx_);
    Ref();  // until the storage stream's OnDone
    storage_started_ = true;
    backends_.storage->stub().async()->Put(storage_ctx_.get(), &stored_, &storage_);
    // The hold keeps the stream (and its OnDone) back while this reactor may still start writes,
    // which it does from the user's stream's reactions, not only from the storage stream's.
    storage_.AddHold();
    storage_held_ = true;
    writing_ = true;
    storage_.StartWrite(&out_);
    storage_.StartCall();
  }

  // Keeps an upload's bytes in memory while it is small (see kInlineMax): it is then committed
  // here in one call (CommitInline) and sent to its replicas from memory. Returns false once it
  // outgrew that: from then on it is streamed, to this cluster's storage (OpenStorage; what was
  // kept is its first chunk) and, replicated, to the other replica clusters (OpenPeerStreams).
  bool KeepInline(const std::string& data) {
    if (storage_started_) return false;
    if (inline_.size() + data.size() <= kInlineMax) {
      inline_.append(data);
      return true;
    }
    if (app_.Remote(placement_)) OpenPeerStreams();
    OpenStorage();
    if (!inline_.empty()) queued_.push_back(std::move(inline_));
    std::string().swap(inline_);
    return false;
  }

  // Opens a streamed replica write to every other replica cluster that requests may call now and
  // sends it what was kept so far. Its version is the finish message's (this cluster's commit).
  void OpenPeerStreams() {
    mcos::v1::ObjectRecord header;
    *header.mutable_version() = stamp_;
    header.set_content_type(header_.content_type());
    *header.mutable_metadata() = header_.metadata();
    header.set_partition(placement_.partition());
    header.set_option(placement_.option());
    // True once a stream is finished: only this cluster's commit gives the finish its version.
    header.add_holders(app_.cluster_id_);
    const absl::Time deadline = common::DeadlineOf(*ctx_);
    for (const std::string& cluster : placement_.replicas()) {
      if (cluster == app_.cluster_id_) continue;
      auto it = replicas_.find(cluster);
      if (it == replicas_.end() || it->second == nullptr ||
          !app_.coordinator_->IsAdmitted(cluster)) {
        continue;  // the coordinator queues it
      }
      auto writer = it->second->OpenWrite(key_, header, deadline, [handle = idle_] {
        handle->With([](PutReactor& r) { r.OnPeerDrained(); });
      });
      if (!writer.ok()) continue;  // the coordinator copies it after the commit
      if (!inline_.empty()) (*writer)->Append(inline_).IgnoreError();  // Finish says
      streams_.emplace(cluster, *std::move(writer));
    }
  }

  void StreamToPeers(const std::string& data) {
    for (auto& [cluster, writer] : streams_) {
      writer->Append(data).IgnoreError();  // a broken stream fails its Finish: then queued
    }
  }

  bool PeersFull() const {
    for (const auto& [cluster, writer] : streams_) {
      if (writer->buffered() >= replication::kWriterHighWater) return true;
    }
    return false;
  }

  // Reads the user's next message unless a replica cluster's stream is too far behind: then
  // waits for it to drain (OnPeerDrained), at most the coordinator's stall timeout, after which
  // the clusters still behind are dropped from this write (queued) and the upload goes on.
  void ReadNext() {
    if (!PeersFull()) {
      StartUserRead();
      return;
    }
    read_deferred_ = true;
    deferred_since_ = absl::Now();
    ArmStallCheck(deferred_since_ + app_.coordinator_->options().stream_stall_timeout);
  }

  void OnPeerDrained() {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (answered_ || !read_deferred_ || PeersFull()) return;
    read_deferred_ = false;
    StartUserRead();
  }

  void ArmStallCheck(absl::Time when) {
    if (stall_armed_) return;
    stall_armed_ = true;
    Ref();
    stall_alarm_.Set(absl::ToChronoTime(when), [this](bool fired) {
      OnStallCheck(fired);
      Unref();
    });
  }

  void OnStallCheck(bool fired) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    stall_armed_ = false;
    if (!fired || answered_ || !read_deferred_) return;
    const absl::Duration stall = app_.coordinator_->options().stream_stall_timeout;
    if (absl::Now() - deferred_since_ < stall) {  // a later wait: check again at its end
      ArmStallCheck(deferred_since_ + stall);
      return;
    }
    for (auto it = streams_.begin(); it != streams_.end();) {
      if (it->second->buffered() < replication::kWriterHighWater) {
        ++it;
        continue;
      }
      common::LogWarning("upload of ", key_.container(), "/", key_.object(), ": replica cluster '",
                         it->first, "' took nothing for ", absl::FormatDuration(stall),
                         "; the write goes on without it (queued for it)");
      it->second->Abort();
      app_.coordinator_->Report(it->first,
                                absl::DeadlineExceededError("a streamed replica write stalled"));
      it = streams_.erase(it);
    }
    read_deferred_ = false;
    StartUserRead();
  }

  void WriteData(std::string data) {
    out_.set_data(std::move(data));
    writing_ = true;
    storage_.StartWrite(&out_);
  }

  void OnStorageWriteDone(bool ok) {
    Progress();
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    out_.clear_part();  // a stalled upload holds no chunk here
    if (!ok) {          // a broken stream: no more writes; its OnDone says why
      storage_broken_ = true;
      ReleaseStorage();
      return;
    }
    if (answered_) return;
    if (!queued_.empty()) {
      WriteData(std::move(queued_.front()));
      queued_.pop_front();
      if (queued_.empty()) ReadNext();
      return;
    }
    if (phase_ == Phase::kCommitting && !finish_written_ && !checking_) WriteFinish();
  }

  // Lets the storage stream end: no write starts after this.
  void ReleaseStorage() {
    if (!storage_held_) return;
    storage_held_ = false;
    storage_.RemoveHold();
  }

  // The user's stream ended: cleanly (the client half-closed) or not.
  void OnClientEnd() {
    if (ctx_->IsCancelled()) {
      Fail(grpc::Status::CANCELLED);
      return;
    }
    if (phase_ == Phase::kHeader) {
      Fail(
          Invalid("the upload ended before its header: send the header (container, object, ...) "
                  "first; nothing was stored"));
      return;
    }
    if (header_.has_size() || finish_ || app_.options_.upload_settle <= absl::ZeroDuration()) {
      RequestCommit();
      return;
    }
    phase_ = Phase::kSettling;
    settling_ = true;
    Ref();
    settle_alarm_.Set(absl::ToChronoTime(absl::Now() + app_.options_.upload_settle),
                      [this](bool fired) {
                        OnSettled(fired);
                        Unref();
                      });
  }

  void OnSettled(bool fired) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    settling_ = false;
    if (!fired || answered_) return;
    if (ctx_->IsCancelled()) {
      Fail(grpc::Status::CANCELLED);
      return;
    }
    RequestCommit();
  }

  void RequestCommit() {
    if (ctx_->deadline() < std::chrono::system_clock::now()) {
      Fail({grpc::StatusCode::DEADLINE_EXCEEDED,
            "the upload's deadline passed before it could be stored; nothing was stored"});
      return;
    }
    phase_ = Phase::kCommitting;
    if (one_trip_ && !storage_started_) {
      WriteFirst();
      return;
    }
    if (one_trip_) {
      // Outgrew memory: streamed as usual, and checked at the read quorum before its commit.
      CheckQuorumThen([this] { FinishStreamed(); });
      return;
    }
    if (!storage_started_) {
      CommitInline();
      return;
    }
    FinishStreamed();
  }

  void FinishStreamed() {
    if (storage_broken_) return;   // its OnDone answers the user
    if (!writing_) WriteFinish();  // else OnStorageWriteDone does it
  }

  // The existence check of a create or update that skipped it (one_trip_), then `commit` (mu_
  // held): ALREADY_EXISTS for a create if the read quorum's newest version is live, NOT_FOUND for
  // an update if it is not.
  void CheckQuorumThen(std::function<void()> commit) {
    one_trip_ = false;
    checking_ = true;  // nothing commits meanwhile
    Ref();
    app_.coordinator_->ReadAsync(key_, placement_, replicas_, Coordinator::ReadScope::kQuorum,
                                 [this, commit = std::move(commit)](absl::StatusOr<Newest> newest) {
                                   {
                                     std::lock_guard<std::recursive_mutex> lock(mu_);
                                     checking_ = false;
                                     if (!answered_) {
                                       const bool exists = newest.ok() &&
                                                           newest->record.has_value() &&
                                                           !newest->record->tombstone();
                                       if (!newest.ok()) {
                                         Fail(ToGrpcStatus(newest.status()));
                                       } else if (create_ && exists) {
                                         Fail(AlreadyExists());
                                       } else if (!create_ && !exists) {
                                         Fail(ToGrpcStatus(ObjectNotFound(key_)));
                                       } else {
                                         commit();
                                       }
                                     }
                                   }
                                   Unref();
                                 });
  }

  grpc::Status AlreadyExists() const {
    return {grpc::StatusCode::ALREADY_EXISTS,
            absl::StrCat("object '", key_.object(), "' already exists in container '",
                         key_.container(), "': use update to replace it")};
  }

  // A strict create or update held in memory, sent to the other replica clusters before it is
  // stored here (Coordinator::WriteFirst): stored here once W-1 of them took it, refused when what
  // they hold says so, answered once stored here.
  void WriteFirst() {
    auto* sh = out_.mutable_header();
    storage::UploadContent content(*sh);
    absl::Status added = content.Add(inline_);
    absl::StatusOr<mcos::v1::ObjectRecord> record =
        added.ok() ? content.Finish(StorageFinish()) : added;
    if (!record.ok()) {
      Fail(ToGrpcStatus(record.status()));
      return;
    }
    *record->mutable_created() = create_ ? record->modified() : held_.created();
    record->clear_holders();  // each names itself; this cluster once it stores it
    created_ = *std::move(record);
    created_data_ = std::make_shared<const std::string>(std::move(inline_));
    std::string().swap(inline_);
    phase_ = Phase::kReplicating;
    Ref();
    app_.coordinator_->WriteFirst(
        key_, created_, created_data_,
        create_ ? mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST
                : mcos::v1::WRITE_PRECONDITION_MUST_EXIST,
        create_ ? std::nullopt : std::optional<mcos::v1::Version>(held_.version()), placement_,
        backends_.local, replicas_, [this](absl::StatusOr<Coordinator::WriteDecision> decision) {
          {
            std::lock_guard<std::recursive_mutex> lock(mu_);
            OnCreateDecided(std::move(decision));
          }
          Unref();
        });
  }

  void OnCreateDecided(absl::StatusOr<Coordinator::WriteDecision> decision) {
    if (!decision.ok()) {
      if (!answered_) Answer(ToGrpcStatus(decision.status()));
      return;
    }
    switch (decision->kind) {
      case Coordinator::WriteDecision::Kind::kExists:
        if (!answered_) Answer(AlreadyExists());
        return;
      case Coordinator::WriteDecision::Kind::kMissing:
        if (!answered_) Answer(ToGrpcStatus(ObjectNotFound(key_)));
        return;
      case Coordinator::WriteDecision::Kind::kCheck:
        if (answered_) return;  // cancelled: nothing was stored
        // What the replicas hold does not decide (nothing was stored): checked and written as
        // any create or update, stamped above what the check saw.
        inline_ = *created_data_;
        CheckQuorumThen([this] {
          stamp_ = app_.Stamp();
          *out_.mutable_header()->mutable_version() = stamp_;
          out_.mutable_header()->set_precondition(mcos::v1::WRITE_PRECONDITION_NONE);
          CommitInline();
        });
        return;
      case Coordinator::WriteDecision::Kind::kStored:
        break;
    }
    app_.PublishChange(key_, created_, &decision->holders);
    if (answered_) return;
    grpc::SerializationTraits<mcos::v1::ObjectInfo>::Serialize(
        app_.ToInfo(key_, created_, &decision->holders), response_, &own_response_);
    Answer(grpc::Status::OK);
  }

  // The finish message in the storage stream's shape.
  mcos::v1::StoragePutFinish StorageFinish() const {
    mcos::v1::StoragePutFinish f;
    if (finish_) {
      if (finish_->has_size()) f.set_size(finish_->size());
      f.set_md5_hex(absl::AsciiStrToLower(finish_->md5_hex()));
    }
    return f;
  }

  // The point of no return of an upload kept whole in memory: this cluster's storage commits it
  // in one call (Replica::StoreUpload; in mcos-cluster a call into the engine, no stream) on one
  // of the coordinator's threads for this cluster, since it waits for the disk; then OnStored
  // goes on as for a streamed upload. The watchdog leaves it alone: its answer is the user's.
  void CommitInline() {
    finish_written_ = true;
    inline_commit_ = true;
    const absl::Time deadline =
        std::min(absl::Now() + absl::Seconds(60), common::DeadlineOf(*ctx_));
    Ref();
    auto on_stored = [this](absl::StatusOr<mcos::v1::StoragePutResponse> stored) {
      {
        std::lock_guard<std::recursive_mutex> lock(mu_);
        inline_commit_ = false;
        const grpc::Status status = ToGrpcStatus(stored.status());
        if (stored.ok()) stored_ = *std::move(stored);
        OnStored(status);
      }
      Unref();
    };
    if (backends_.local->writes_async()) {
      // The engine in this process: its committing thread commits it and goes on from there.
      backends_.local->StoreUploadAsync(out_.header(), inline_, StorageFinish(), deadline,
                                        std::move(on_stored));
      return;
    }
    app_.coordinator_->Schedule(
        app_.cluster_id_, [this, local = backends_.local, finish = StorageFinish(), deadline,
                           on_stored = std::move(on_stored)] {
          // out_'s header and inline_ change no more: nothing else runs until OnStored.
          on_stored(local->StoreUpload(out_.header(), inline_, finish, deadline));
        });
  }

  // The point of no return: the storage service commits once it reads this (unless the user's
  // cancellation reaches it first).
  void WriteFinish() {
    finish_written_ = true;
    writing_ = true;
    auto* f = out_.mutable_finish();
    *f = StorageFinish();
    if (app_.Remote(placement_)) {
      // Too big to keep in memory: its replicas are sent from the stored copy, which a racing
      // write may replace meanwhile; it stays readable under its version until the coordinator
      // has sent it everywhere (ReleaseKept), at most as long as it may take.
      const absl::Duration keep = ReplicaReadableFor(app_.coordinator_->options(), received_bytes_);
      f->set_keep_readable_ms(
          static_cast<uint32_t>(std::min<int64_t>(absl::ToInt64Milliseconds(keep), 3600000)));
    }
    storage_.StartWriteLast(&out_, grpc::WriteOptions());
    ReleaseStorage();
  }

  void OnStorageDone(const grpc::Status& status) {
    {
      std::lock_guard<std::recursive_mutex> lock(mu_);
      storage_done_ = true;
      OnStored(status);
    }
    Unref();
  }

  // This cluster's storage answered the upload (stored_ holds its answer when `status` is OK).
  // A version stored here is replicated and published even when the user's call already ended
  // (cancelled after the point of no return): its copies then agree.
  void OnStored(const grpc::Status& status) {
    const bool stored = status.ok() && finish_written_ && stored_.applied();
    if (answered_ && !stored) return;
    if (!status.ok()) {
      Fail(MapStorageError(status));
    } else if (!finish_written_ && stored_.applied()) {
      Fail({grpc::StatusCode::INTERNAL,
            "the storage service stored an upload before it ended; report this bug"});
    } else if (!stored_.applied()) {
      // Only a storage service that ignores `restamp` (an older one) answers this.
      Fail({grpc::StatusCode::ABORTED,
            absl::StrCat("a newer version of object '", key_.object(),
                         "' was stored meanwhile; this upload was not stored: retry it")});
    } else if (app_.Remote(placement_)) {
      // Stored here: now at the other replica clusters, answering once W hold it.
      app_.hlc_.Observe(stored_.record().version().hlc());
      phase_ = Phase::kReplicating;
      Ref();
      auto b = app_.CachedBackends();
      // A small upload is sent to the replicas from memory, not read back from storage.
      std::shared_ptr<replication::Replica> source =
          !storage_started_ && inline_.size() == stored_.record().size()
              ? replication::InlineReplica(app_.cluster_id_, stored_.record(), std::move(inline_))
              : (b.ok() ? b->local : nullptr);
      app_.coordinator_->Replicate(
          key_, stored_.record(), placement_, source, replicas_,
          [this](absl::StatusOr<Replicated> replicated) {
            OnReplicated(std::move(replicated));
            Unref();
          },
          std::exchange(streams_, {}));
    } else {
      // This upload's own version (stamped above a newer one stored meanwhile, if any).
      app_.hlc_.Observe(stored_.record().version().hlc());
      app_.PublishChange(key_, stored_.record());
      if (!answered_) {
        grpc::SerializationTraits<mcos::v1::ObjectInfo>::Serialize(
            app_.ToInfo(key_, stored_.record()), response_, &own_response_);
        Answer(grpc::Status::OK);
      }
    }
  }

  void OnReplicated(absl::StatusOr<Replicated> replicated) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (replicated.ok()) app_.PublishChange(key_, replicated->record, &replicated->holders);
    if (answered_) return;
    if (!replicated.ok()) {
      Answer(ToGrpcStatus(replicated.status()));
      return;
    }
    grpc::SerializationTraits<mcos::v1::ObjectInfo>::Serialize(
        app_.ToInfo(key_, replicated->record, &replicated->holders), response_, &own_response_);
    Answer(grpc::Status::OK);
  }

  // Ends a stream that made no progress for the watchdog's timeout.
  void OnIdle(absl::Duration idle) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    // Replicas have their own deadline; so has this cluster's commit of an upload held in memory.
    if (answered_ || phase_ == Phase::kReplicating || inline_commit_) return;
    const std::string seconds = absl::StrCat(absl::ToInt64Seconds(idle));
    if (writing_ || phase_ == Phase::kCommitting) {
      common::LogWarning("upload of ", key_.container(), "/", key_.object(), " by ", user_,
                         ": the storage service made no progress for ", seconds, " s");
      Fail({grpc::StatusCode::UNAVAILABLE,
            absl::StrCat("the storage service made no progress for ", seconds,
                         " s; nothing was stored; retry later")});
      return;
    }
    Fail({grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("the client sent nothing for ", seconds,
                       " s, so the server ended the upload; nothing was stored")});
  }

  // Turns the storage service's answer into the user's.
  grpc::Status MapStorageError(const grpc::Status& s) const {
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return create_ ? grpc::Status(
                           grpc::StatusCode::ALREADY_EXISTS,
                           absl::StrCat("object '", key_.object(),
                                        "' already exists in container '", key_.container(), "'"))
                     : ToGrpcStatus(ObjectNotFound(key_));
    }
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // Size or digest mismatch; say it without the storage node's naming of the object.
      std::string msg = s.error_message();
      if (const size_t pos = msg.find("; nothing was stored"); pos != std::string::npos) {
        msg = msg.substr(0, pos) + "; nothing was stored";
      }
      return Invalid(msg);
    }
    return s;
  }

  // Answers the user with an error and stops both streams.
  void Fail(const grpc::Status& status) {
    if (answered_) return;
    if (storage_started_ && !storage_done_) storage_ctx_->TryCancel();
    for (auto& [cluster, writer] : streams_) writer->Abort();  // nothing stored there either
    streams_.clear();
    ReleaseStorage();
    if (settling_) settle_alarm_.Cancel();
    Answer(status);
  }

  void Answer(const grpc::Status& status) {
    answered_ = true;
    if (stall_armed_) stall_alarm_.Cancel();
    Finish(status);
  }

  static void SetDeadline(grpc::ClientContext& ctx, absl::Duration d) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + d));
  }

  ServerApp& app_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const response_;
  const bool create_;
  std::atomic<int> refs_{1};
  std::recursive_mutex mu_;

  Phase phase_ = Phase::kHeader;
  std::string user_;
  bool admitted_ = false;
  std::shared_ptr<IdleHandle> idle_;  // set in the constructor only
  bool answered_ = false;
  bool writing_ = false;
  bool settling_ = false;
  bool storage_started_ = false;
  bool storage_done_ = false;
  bool storage_held_ = false;    // a hold on the storage stream: writes may still start
  bool storage_broken_ = false;  // a write to it failed: no more writes
  bool finish_written_ = false;
  bool own_response_ = false;
  int64_t messages_ = 0;
  uint64_t received_bytes_ = 0;

  grpc::ByteBuffer in_;
  mcos::v1::PutObjectHeader header_;
  std::optional<mcos::v1::PutObjectFinish> finish_;
  // Chunks waiting for the storage stream (at most what was kept in memory and one chunk).
  std::deque<std::string> queued_;
  // The bytes of an upload while it is at most kInlineMax (until the storage stream opens):
  // committed here and sent to its replica clusters from memory.
  std::string inline_;
  bool inline_commit_ = false;   // CommitInline's call is under way
  bool quorum_checked_ = false;  // existence came from the replica clusters (Remote placements)
  // A strict create or update sent before it is stored here (OneTripWrite; nothing live held
  // here, or for an update the live version held_):
  // Coordinator::WriteFirst when it stays in memory, else checked at the quorum before its
  // commit.
  bool one_trip_ = false;
  mcos::v1::ObjectRecord held_;                      // an update's: the live version held here
  bool checking_ = false;                            // CheckQuorumThen's read is under way
  mcos::v1::ObjectRecord created_;                   // what CreateFirst sent
  std::shared_ptr<const std::string> created_data_;  // its content
  mcos::v1::ObjectKey key_;
  ServerApp::Backends backends_;

  grpc::ClientContext container_ctx_;
  mcos::v1::GetContainerRequest container_req_;
  mcos::v1::Container container_;
  grpc::ClientContext resolve_ctx_;
  mcos::v1::ResolveRequest resolve_req_;
  mcos::v1::ResolveResponse resolve_resp_;
  mcos::v1::Placement placement_;
  ReplicaMap replicas_;      // a replicated write's (Remote placements)
  mcos::v1::Version stamp_;  // this upload's stamp (its commit here may restamp it)
  // Writes streamed to the other replica clusters as the upload arrives (uploads over
  // kInlineMax); handed to the coordinator at the commit, aborted if the upload fails.
  Streams streams_;
  bool read_deferred_ = false;  // the next read waits for a stream to drain
  absl::Time deferred_since_;
  bool stall_armed_ = false;
  grpc::Alarm stall_alarm_;
  grpc::ClientContext stat_ctx_;
  mcos::v1::StorageStatRequest stat_req_;
  mcos::v1::StorageStatResponse stat_resp_;

  std::unique_ptr<grpc::ClientContext> storage_ctx_;
  StorageWriter storage_;
  mcos::v1::StoragePutRequest out_;
  mcos::v1::StoragePutResponse stored_;
  grpc::Alarm settle_alarm_;
};

grpc::ServerReadReactor<grpc::ByteBuffer>* StartPut(ServerApp& app,
                                                    grpc::CallbackServerContext* context,
                                                    grpc::ByteBuffer* response, bool create) {
  return new PutReactor(app, context, response, create);
}

}  // namespace mcos::server
