#include "replication/replica.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "mcos/v1/cluster.grpc.pb.h"
#include "mcos/v1/storage.grpc.pb.h"
#include "replication/replicate_link.h"
#include "storage/engine.h"

namespace mcos::replication {
namespace {

using common::FromGrpcStatus;

void SetDeadline(grpc::ClientContext& ctx, absl::Time deadline) {
  ctx.set_deadline(absl::ToChronoTime(deadline));
}

// One unary call with `deadline`: `call(context, response)` makes it.
template <typename Response, typename Call>
absl::Status UnaryInto(absl::Time deadline, Response* out, Call call) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, deadline);
  if (grpc::Status s = call(&ctx, out); !s.ok()) return FromGrpcStatus(s);
  return absl::OkStatus();
}

template <typename Response, typename Call>
absl::StatusOr<Response> Unary(absl::Time deadline, Call call) {
  Response resp;
  MCOS_RETURN_IF_ERROR(UnaryInto(deadline, &resp, call));
  return resp;
}

// "sha256:<hex>" -> "<hex>".
std::string Sha256Hex(const std::string& checksum) {
  return absl::StartsWith(checksum, "sha256:") ? checksum.substr(7) : std::string();
}

// A read over a server stream whose first message carries the record and the others data.
template <typename Response>
class StreamReader final : public ObjectReader {
 public:
  StreamReader(std::unique_ptr<grpc::ClientContext> ctx,
               std::unique_ptr<grpc::ClientReader<Response>> reader)
      : ctx_(std::move(ctx)), reader_(std::move(reader)) {}

  // Reads the record; the reader's error when the stream has none.
  absl::Status Start() {
    Response first;
    if (!reader_->Read(&first)) return FromGrpcStatus(reader_->Finish());
    if (!first.has_record()) {
      ctx_->TryCancel();
      reader_->Finish();
      return absl::DataLossError("the replica's answer did not start with the object's record");
    }
    record_ = std::move(*first.mutable_record());
    return absl::OkStatus();
  }

  const mcos::v1::ObjectRecord& record() const override { return record_; }

  bool Next(std::string* data) override {
    if (finished_) return false;
    Response r;
    while (reader_->Read(&r)) {
      if (r.has_data()) {
        *data = std::move(*r.mutable_data());
        return true;
      }
    }
    status_ = FromGrpcStatus(reader_->Finish());
    finished_ = true;
    return false;
  }

  absl::Status Finish() override {
    if (!finished_) {
      std::string ignored;
      while (Next(&ignored)) {
      }
    }
    return status_;
  }

  void Cancel() override { ctx_->TryCancel(); }

 private:
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<Response>> reader_;
  mcos::v1::ObjectRecord record_;
  bool finished_ = false;
  absl::Status status_;
};

// The storage service's delete request that writes `tombstone` (above a newer version held,
// with `restamp`).
mcos::v1::StorageDeleteRequest StorageDelete(const mcos::v1::ObjectKey& key,
                                             const mcos::v1::ObjectRecord& tombstone,
                                             bool restamp = false) {
  mcos::v1::StorageDeleteRequest req;
  *req.mutable_key() = key;
  *req.mutable_version() = tombstone.version();
  req.set_partition(tombstone.partition());
  req.set_option(tombstone.option());
  req.set_restamp(restamp);
  return req;
}

// A purge of exactly `version`'s tombstone, or with `release` of its record whatever it is.
mcos::v1::StorageDeleteRequest PurgeRequest(const mcos::v1::ObjectKey& key,
                                            const mcos::v1::Version& version,
                                            bool release = false) {
  mcos::v1::StorageDeleteRequest req;
  *req.mutable_key() = key;
  *req.mutable_version() = version;
  (release ? req.set_release(true) : req.set_purge(true));
  return req;
}

// A read request (StorageGetRequest or ClusterDownloadObjectRequest: the same fields).
template <typename Request>
Request ReadRequest(const mcos::v1::ObjectKey& key, uint64_t offset, uint64_t length,
                    const mcos::v1::Version* version) {
  Request req;
  *req.mutable_key() = key;
  req.set_offset(offset);
  req.set_length(length);
  if (version != nullptr) *req.mutable_version() = *version;
  return req;
}

// Starts the server stream `start(context)` returns and reads its record.
template <typename Response, typename Start>
absl::StatusOr<std::unique_ptr<ObjectReader>> OpenStream(absl::Time deadline, const Start& start) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  SetDeadline(*ctx, deadline);
  auto stream = start(ctx.get());
  auto reader = std::make_unique<StreamReader<Response>>(std::move(ctx), std::move(stream));
  if (auto s = reader->Start(); !s.ok()) return s;
  return std::unique_ptr<ObjectReader>(std::move(reader));
}

// Fills the fields that StoragePutHeader and ClusterPutObjectHeader share for a replica write of
// `record`'s version.
// Adds `cluster` to `holders` unless it is there.
void AddHolder(google::protobuf::RepeatedPtrField<std::string>* holders,
               const std::string& cluster) {
  if (std::find(holders->begin(), holders->end(), cluster) == holders->end()) {
    holders->Add()->assign(cluster);
  }
}

// What a replica that did not apply a write holds, as a create's answer says it.
mcos::v1::WritePrior HeldPrior(const mcos::v1::ObjectRecord& held) {
  return held.tombstone() ? mcos::v1::WRITE_PRIOR_ABSENT : mcos::v1::WRITE_PRIOR_LIVE;
}

// PutIf's answer from the write's: applied, it held what `precondition` asks; refused by it (a
// version older than the write that it does not allow), not applied, with what is held (`stat`).
template <typename Stat>
absl::StatusOr<WriteAck> ConditionalAnswer(absl::StatusOr<WriteAck> written,
                                           mcos::v1::WritePrecondition precondition,
                                           const mcos::v1::ObjectKey& key, const Stat& stat) {
  const bool create = precondition == mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST;
  if (written.ok()) {
    if (written->applied) {
      written->prior = create ? mcos::v1::WRITE_PRIOR_ABSENT : mcos::v1::WRITE_PRIOR_LIVE;
    }
    return written;
  }
  if (!absl::IsFailedPrecondition(written.status())) return written;
  absl::StatusOr<mcos::v1::ObjectRecord> held = stat();
  if (!create && absl::IsNotFound(held.status())) {
    return WriteAck{false, mcos::v1::Version(), mcos::v1::WRITE_PRIOR_ABSENT};
  }
  if (!held.ok()) return held.status();
  if (HeldPrior(*held) == (create ? mcos::v1::WRITE_PRIOR_ABSENT : mcos::v1::WRITE_PRIOR_LIVE)) {
    return absl::AbortedError(
        absl::StrCat("object '", key.object(), "' changed while its write was stored; retry it"));
  }
  return WriteAck{false, held->version(), HeldPrior(*held)};
}

// `holders` and, when set, `self` (the cluster storing it), each once.
void SetHolders(google::protobuf::RepeatedPtrField<std::string>* out,
                const google::protobuf::RepeatedPtrField<std::string>& holders,
                const std::string* self) {
  *out = holders;
  if (self != nullptr) AddHolder(out, *self);
}

// `self` is the cluster whose storage the header goes to (it names itself a holder); nullptr for a
// header sent to a peer cluster, which names itself.
template <typename Header>
void FillHeader(Header* h, const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                const std::string* self) {
  SetHolders(h->mutable_holders(), record.holders(), self);
  *h->mutable_key() = key;
  *h->mutable_version() = record.version();
  h->set_content_type(record.content_type());
  *h->mutable_metadata() = record.metadata();
  h->set_size(record.size());
  h->set_md5_hex(record.etag());
  h->set_sha256_hex(Sha256Hex(record.checksum()));
  h->set_partition(record.partition());
  h->set_option(record.option());
}

// The header of a streamed write (ReplicaWriter): `header`'s fields without size and digests, its
// version provisional (the finish message carries the one stored).
template <typename Header>
void FillStreamedHeader(Header* h, const mcos::v1::ObjectKey& key,
                        const mcos::v1::ObjectRecord& header, const std::string* self) {
  SetHolders(h->mutable_holders(), header.holders(), self);
  *h->mutable_key() = key;
  *h->mutable_version() = header.version();
  h->set_content_type(header.content_type());
  *h->mutable_metadata() = header.metadata();
  h->set_partition(header.partition());
  h->set_option(header.option());
  h->set_version_at_finish(true);
}

// The finish message of a streamed write that stores `record`'s version, whose content hashes to
// `xxh3` (common::Hash64).
mcos::v1::StoragePutFinish StreamedFinish(const mcos::v1::ObjectRecord& record, uint64_t xxh3) {
  mcos::v1::StoragePutFinish f;
  f.set_xxh3(xxh3);
  *f.mutable_version() = record.version();
  f.set_size(record.size());
  f.set_md5_hex(record.etag());
  f.set_sha256_hex(Sha256Hex(record.checksum()));
  return f;
}

// A streamed write to this cluster's storage service over a blocking client stream (the peer's
// side of a streamed replica write: one thread serves it).
class StorageStreamWriter final : public ReplicaWriter {
 public:
  StorageStreamWriter(mcos::v1::StorageService::Stub& stub, const std::string& cluster,
                      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& header,
                      absl::Time deadline) {
    SetDeadline(ctx_, deadline);
    writer_ = stub.Put(&ctx_, &resp_);
    mcos::v1::StoragePutRequest first;
    FillStreamedHeader(first.mutable_header(), key, header, &cluster);
    open_ = writer_->Write(first, grpc::WriteOptions().set_buffer_hint());
  }
  ~StorageStreamWriter() override {
    if (!done_) Abort();
  }

  absl::Status Append(std::string data) override {
    if (!open_) return Broken();
    hash_.Update(data);
    mcos::v1::StoragePutRequest r;
    r.set_data(std::move(data));
    open_ = writer_->Write(r);
    return open_ ? absl::OkStatus() : Broken();
  }

  absl::StatusOr<WriteAck> Finish(const mcos::v1::ObjectRecord& record, absl::Time) override {
    if (!open_) return Broken();
    mcos::v1::StoragePutRequest last;
    *last.mutable_finish() = StreamedFinish(record, hash_.Digest());
    writer_->WriteLast(last, grpc::WriteOptions());
    done_ = true;
    if (grpc::Status s = writer_->Finish(); !s.ok()) return FromGrpcStatus(s);
    return WriteAck{resp_.applied(), resp_.record().version()};
  }

  void Abort() override {
    if (done_) return;
    done_ = true;
    ctx_.TryCancel();
    writer_->Finish();
  }

 private:
  // The storage service ended the stream early: its status says why.
  absl::Status Broken() {
    if (done_) return absl::FailedPreconditionError("the streamed write has ended");
    done_ = true;
    grpc::Status s = writer_->Finish();
    return s.ok() ? absl::InternalError("the storage service ended a streamed write early")
                  : FromGrpcStatus(s);
  }

  grpc::ClientContext ctx_;
  mcos::v1::StoragePutResponse resp_;
  std::unique_ptr<grpc::ClientWriter<mcos::v1::StoragePutRequest>> writer_;
  common::StreamingHash64 hash_;
  bool open_ = false;
  bool done_ = false;
};

// A streamed write to a peer cluster (ClusterCreateObject with version_at_finish) on gRPC's
// callback API, so that the coordinator's upload never waits on it: Append queues the chunk and
// returns; one write is on the wire at a time; Finish queues the finish message (with the
// half-close) and waits for the answer. gRPC operations are started outside the lock (a
// reaction may run inline); `writing_` says who may start the next one. Lives until OnDone and
// until its handle is gone (`self_`).
class PeerStream final : public grpc::ClientWriteReactor<mcos::v1::ClusterPutObjectRequest> {
 public:
  explicit PeerStream(std::function<void()> on_drained) : on_drained_(std::move(on_drained)) {}

  void Start(const std::shared_ptr<PeerStream>& self, mcos::v1::ClusterService::Stub& stub,
             mcos::v1::ClusterPutObjectRequest header, absl::Time deadline) {
    self_ = self;
    SetDeadline(ctx_, deadline);
    stub.async()->ClusterCreateObject(&ctx_, &resp_, this);
    AddHold();  // released once no write will start any more (ReleaseHold)
    queue_.push_back(std::move(header));
    StartCall();
    Pump();
  }

  absl::Status Append(std::string data) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return absl::UnavailableError("the streamed replica write has ended");
      hash_.Update(data);
      buffered_ += data.size();
      if (buffered_ >= kWriterHighWater) full_ = true;
      queue_.emplace_back().set_data(std::move(data));
    }
    Pump();
    return absl::OkStatus();
  }

  uint64_t buffered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return buffered_;
  }

  absl::StatusOr<WriteAck> Finish(const mcos::v1::ObjectRecord& record, absl::Time deadline) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!closing_) {
        *queue_.emplace_back().mutable_finish() = StreamedFinish(record, hash_.Digest());
      }
    }
    Pump();
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return done_; })) {
      lock.unlock();
      ctx_.TryCancel();
      lock.lock();
      cv_.wait(lock, [this] { return done_; });
    }
    if (!status_.ok()) return FromGrpcStatus(status_);
    if (!last_sent_) return absl::UnavailableError("the streamed replica write was cut short");
    return WriteAck{resp_.applied(), resp_.stored_version()};
  }

  void Abort() {
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_ || (closing_ && last_sent_)) return;
      closing_ = true;
      queue_.clear();
      buffered_ = in_flight_;
      release = !writing_;
    }
    ctx_.TryCancel();
    if (release) ReleaseHold();
  }

  void OnWriteDone(bool ok) override {
    bool drained = false;
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      buffered_ -= std::min(buffered_, in_flight_);
      in_flight_ = 0;
      if (!ok) {  // broken: nothing more is sent, so nothing waits to be (OnDone says why)
        closing_ = true;
        queue_.clear();
        buffered_ = 0;
      }
      release = closing_;
      if (full_ && buffered_ < kWriterLowWater) {
        full_ = false;
        drained = true;
      }
    }
    if (release) {
      ReleaseHold();
    } else {
      Pump();
    }
    if (drained && on_drained_) on_drained_();
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<PeerStream> keep;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      closing_ = true;
      status_ = status;
      keep = std::move(self_);
    }
    cv_.notify_all();
    // `keep` may be the last reference: this object goes with it.
  }

 private:
  // Starts the next queued write unless one is under way or the stream is closing.
  void Pump() {
    mcos::v1::ClusterPutObjectRequest* next = nullptr;
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || closing_ || queue_.empty()) return;
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
      in_flight_ = current_.has_data() ? current_.data().size() : 0;
      last = current_.has_finish();
      if (last) {
        closing_ = true;
        last_sent_ = true;
      }
      next = &current_;
    }
    if (last) {
      StartWriteLast(next, grpc::WriteOptions());
      ReleaseHold();
    } else {
      StartWrite(next);
    }
  }

  void ReleaseHold() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!held_) return;
      held_ = false;
    }
    RemoveHold();
  }

  const std::function<void()> on_drained_;
  grpc::ClientContext ctx_;
  mcos::v1::ClusterWriteResponse resp_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<PeerStream> self_;
  std::deque<mcos::v1::ClusterPutObjectRequest> queue_;
  mcos::v1::ClusterPutObjectRequest current_;
  common::StreamingHash64 hash_;  // of everything appended
  uint64_t buffered_ = 0;
  uint64_t in_flight_ = 0;
  bool writing_ = false;
  bool held_ = true;
  bool full_ = false;
  bool closing_ = false;    // no write starts any more
  bool last_sent_ = false;  // the finish message went out
  bool done_ = false;
  grpc::Status status_;
};

// The handle the coordinator holds: an unfinished write is aborted when it goes.
class PeerStreamWriter final : public ReplicaWriter {
 public:
  explicit PeerStreamWriter(std::shared_ptr<PeerStream> stream) : stream_(std::move(stream)) {}
  ~PeerStreamWriter() override {
    if (!finished_) stream_->Abort();
  }
  absl::Status Append(std::string data) override { return stream_->Append(std::move(data)); }
  uint64_t buffered() const override { return stream_->buffered(); }
  absl::StatusOr<WriteAck> Finish(const mcos::v1::ObjectRecord& record,
                                  absl::Time deadline) override {
    finished_ = true;
    return stream_->Finish(record, deadline);
  }
  void Abort() override {
    finished_ = true;
    stream_->Abort();
  }

 private:
  std::shared_ptr<PeerStream> stream_;
  bool finished_ = false;
};

// Content in memory, read in chunks of at most 1 MiB.
class MemReader final : public ObjectReader {
 public:
  MemReader(mcos::v1::ObjectRecord r, std::shared_ptr<const std::string> d)
      : record_(std::move(r)), data_(std::move(d)) {}
  const mcos::v1::ObjectRecord& record() const override { return record_; }
  bool Next(std::string* data) override {
    if (pos_ >= data_->size()) return false;
    const size_t n = std::min(kChunk, data_->size() - pos_);
    data->assign(*data_, pos_, n);
    pos_ += n;
    return true;
  }
  absl::Status Finish() override { return absl::OkStatus(); }
  void Cancel() override {}

 private:
  static constexpr size_t kChunk = size_t{1} << 20;
  const mcos::v1::ObjectRecord record_;
  std::shared_ptr<const std::string> data_;
  size_t pos_ = 0;
};

// How a replica write stream went.
struct Streamed {
  absl::Status read;    // the source's error, if any
  grpc::Status status;  // the callee's answer
  bool open = true;     // false: the callee ended the stream early
};

// Writes `header`, then `source`'s chunks, then (when given, and every byte was sent) `finish`;
// cancels the stream when the source failed or fell short, so that nothing is stored. The header
// and the last chunk may wait in gRPC's buffer for what follows, so that a small object goes out
// in one flush instead of three. Sets `open` to false when the callee ended the stream early (its
// status then says why, e.g. that it already holds this version).
template <typename Request>
Streamed StreamWrite(grpc::ClientContext& ctx, grpc::ClientWriter<Request>& writer,
                     const Request& header, ObjectReader& source, uint64_t size,
                     const Request* finish) {
  Streamed out;
  uint64_t sent = 0;
  out.open = writer.Write(header, grpc::WriteOptions().set_buffer_hint());
  std::string chunk;
  while (out.open && source.Next(&chunk)) {
    sent += chunk.size();
    Request r;
    r.set_data(std::move(chunk));
    chunk.clear();
    grpc::WriteOptions options;
    if (sent == size) options.set_buffer_hint();  // the finish or the half-close follows
    out.open = writer.Write(r, options);
  }
  if (!out.open) {
    source.Cancel();
    source.Finish().IgnoreError();
  } else {
    out.read = source.Finish();
  }
  bool closed = false;
  if (out.open) {
    if (out.read.ok() && sent == size) {
      if (finish != nullptr) {
        writer.WriteLast(*finish, grpc::WriteOptions());  // the half-close goes with it
        closed = true;
      }
    } else {
      ctx.TryCancel();
    }
  }
  if (!closed) writer.WritesDone();
  out.status = writer.Finish();
  return out;
}

class StorageReplicaImpl final : public Replica {
 public:
  StorageReplicaImpl(std::string cluster, const std::shared_ptr<grpc::Channel>& channel)
      : cluster_(std::move(cluster)), stub_(mcos::v1::StorageService::NewStub(channel)) {}

  const std::string& cluster() const override { return cluster_; }

  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::StorageStatRequest req;
    *req.mutable_key() = key;
    req.set_include_tombstone(true);
    mcos::v1::StorageStatResponse resp;
    if (grpc::Status s = stub_->Stat(&ctx, req, &resp); !s.ok()) return FromGrpcStatus(s);
    return std::move(*resp.mutable_record());
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key,
                                                     uint64_t offset, uint64_t length,
                                                     const mcos::v1::Version* version,
                                                     absl::Time deadline) override {
    const auto req = ReadRequest<mcos::v1::StorageGetRequest>(key, offset, length, version);
    return OpenStream<mcos::v1::StorageGetResponse>(
        deadline, [&](grpc::ClientContext* ctx) { return stub_->Get(ctx, req); });
  }

  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                               ObjectReader& source, absl::Time deadline) override {
    return Write(key, record, source, deadline, /*repair=*/false);
  }

  absl::StatusOr<WriteAck> PutIf(const mcos::v1::ObjectKey& key,
                                 const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                 absl::Time deadline,
                                 mcos::v1::WritePrecondition precondition) override {
    return ConditionalAnswer(Write(key, record, source, deadline, /*repair=*/false, precondition),
                             precondition, key, [&] { return Stat(key, deadline); });
  }

  absl::StatusOr<std::unique_ptr<ReplicaWriter>> OpenWrite(const mcos::v1::ObjectKey& key,
                                                           const mcos::v1::ObjectRecord& header,
                                                           absl::Time deadline,
                                                           const std::function<void()>&) override {
    return std::unique_ptr<ReplicaWriter>(
        std::make_unique<StorageStreamWriter>(*stub_, cluster_, key, header, deadline));
  }

  absl::StatusOr<WriteAck> Repair(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                  absl::Time deadline) override {
    return Write(key, record, source, deadline, /*repair=*/true);
  }

  absl::StatusOr<mcos::v1::StoragePutResponse> StoreUpload(const mcos::v1::StoragePutHeader& header,
                                                           absl::string_view data,
                                                           const mcos::v1::StoragePutFinish& finish,
                                                           absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::StoragePutResponse resp;
    auto writer = stub_->Put(&ctx, &resp);
    mcos::v1::StoragePutRequest first;
    *first.mutable_header() = header;
    mcos::v1::StoragePutRequest last;
    *last.mutable_finish() = finish;
    MemReader content({}, std::make_shared<const std::string>(data));
    const Streamed done = StreamWrite(ctx, *writer, first, content, data.size(), &last);
    if (!done.status.ok()) return FromGrpcStatus(done.status);
    return resp;
  }

  absl::StatusOr<WriteAck> Write(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record, ObjectReader& source,
      absl::Time deadline, bool repair,
      mcos::v1::WritePrecondition precondition = mcos::v1::WRITE_PRECONDITION_NONE) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::StoragePutResponse resp;
    auto writer = stub_->Put(&ctx, &resp);
    mcos::v1::StoragePutRequest header;
    FillHeader(header.mutable_header(), key, record, &cluster_);
    header.mutable_header()->set_repair(repair);
    header.mutable_header()->set_precondition(precondition);
    mcos::v1::StoragePutRequest finish;
    finish.mutable_finish()->set_size(record.size());
    const Streamed done = StreamWrite(ctx, *writer, header, source, record.size(), &finish);
    const absl::Status& read = done.read;
    const bool open = done.open;
    const grpc::Status& s = done.status;
    if (!read.ok()) return read;
    if (!open && s.error_code() == grpc::StatusCode::CANCELLED) {
      // gRPC's in-process transport reports a stream that the storage service ended early (it
      // holds this version or a newer one) as cancelled: ask it what it holds.
      auto held = Stat(key, deadline);
      if (held.ok() && !common::IsNewer(record.version(), held->version())) {
        return WriteAck{false, held->version(), HeldPrior(*held)};
      }
    }
    if (!s.ok()) return FromGrpcStatus(s);
    return WriteAck{resp.applied(), resp.record().version(),
                    resp.applied() ? mcos::v1::WRITE_PRIOR_UNKNOWN : HeldPrior(resp.record())};
  }

  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& tombstone,
                                  absl::Time deadline) override {
    return SendDelete(StorageDelete(key, tombstone), deadline);
  }

  absl::StatusOr<WriteAck> DeleteAbove(const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& tombstone,
                                       absl::Time deadline) override {
    return SendDelete(StorageDelete(key, tombstone, /*restamp=*/true), deadline);
  }

  absl::StatusOr<WriteAck> Purge(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                 absl::Time deadline) override {
    return SendDelete(PurgeRequest(key, version), deadline);
  }

  absl::StatusOr<WriteAck> Release(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                   absl::Time deadline) override {
    return SendDelete(PurgeRequest(key, version, /*release=*/true), deadline);
  }

  absl::Status List(const mcos::v1::StorageListRequest& request, absl::Time deadline,
                    mcos::v1::StorageListResponse* out) override {
    return UnaryInto(deadline, out,
                     [&](auto* ctx, auto* resp) { return stub_->List(ctx, request, resp); });
  }

  absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::PartitionDigestsResponse>(deadline, [&](auto* ctx, auto* resp) {
      return stub_->PartitionDigests(ctx, request, resp);
    });
  }

  absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::ScanPartitionResponse>(
        deadline, [&](auto* ctx, auto* resp) { return stub_->ScanPartition(ctx, request, resp); });
  }

  absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                  const std::vector<std::string>& holders,
                                  absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::StorageAddHoldersRequest req;
    *req.mutable_key() = key;
    *req.mutable_version() = version;
    for (const auto& h : holders) req.add_holders(h);
    mcos::v1::StorageAddHoldersResponse resp;
    if (grpc::Status s = stub_->AddHolders(&ctx, req, &resp); !s.ok()) return FromGrpcStatus(s);
    return resp.added();
  }

  void ReleaseKept(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Now() + absl::Seconds(2));
    mcos::v1::StorageReleaseKeptRequest req;
    *req.mutable_key() = key;
    *req.mutable_version() = version;
    mcos::v1::StorageReleaseKeptResponse resp;
    stub_->ReleaseKept(&ctx, req, &resp);  // best effort: the copy expires anyway
  }

 private:
  absl::StatusOr<WriteAck> SendDelete(const mcos::v1::StorageDeleteRequest& req,
                                      absl::Time deadline) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::StorageDeleteResponse resp;
    if (grpc::Status s = stub_->Delete(&ctx, req, &resp); !s.ok()) return FromGrpcStatus(s);
    return WriteAck{resp.applied(), resp.record().version(), resp.prior()};
  }

  const std::string cluster_;
  std::unique_ptr<mcos::v1::StorageService::Stub> stub_;
};

class PeerReplicaImpl final : public Replica {
 public:
  PeerReplicaImpl(std::string cluster, std::string coordinator,
                  const std::shared_ptr<grpc::Channel>& channel)
      : cluster_(std::move(cluster)),
        coordinator_(std::move(coordinator)),
        stub_(mcos::v1::ClusterService::NewStub(channel)),
        link_(cluster_, stub_) {}

  const std::string& cluster() const override { return cluster_; }

  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key,
                                              absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::ClusterStatObjectRequest req;
    *req.mutable_key() = key;
    req.set_include_tombstone(true);
    mcos::v1::ClusterStatObjectResponse resp;
    return StatAnswer(cluster_, stub_->ClusterStatObject(&ctx, req, &resp), resp);
  }

  bool stats_async() const override { return true; }

  void StatAsync(const mcos::v1::ObjectKey& key, absl::Time deadline,
                 std::function<void(absl::StatusOr<mcos::v1::ObjectRecord>)> done) override {
    struct Call {
      grpc::ClientContext ctx;
      mcos::v1::ClusterStatObjectRequest req;
      mcos::v1::ClusterStatObjectResponse resp;
    };
    if (!unsupported_->load(std::memory_order_relaxed)) {
      mcos::v1::ClusterReplicateOp op;
      *op.mutable_stat()->mutable_key() = key;
      op.mutable_stat()->set_include_tombstone(true);
      link_.Submit(
          std::move(op), deadline,
          OnAnswer<mcos::v1::ObjectRecord>(std::move(done), [cluster = cluster_](auto& answer) {
            return StatAnswer(cluster, grpc::Status::OK, *answer.mutable_stat());
          }));
      return;
    }
    auto call = std::make_shared<Call>();
    SetDeadline(call->ctx, deadline);
    *call->req.mutable_key() = key;
    call->req.set_include_tombstone(true);
    stub_->async()->ClusterStatObject(
        &call->ctx, &call->req, &call->resp,
        [cluster = cluster_, call, done = std::move(done)](const grpc::Status& s) {
          done(StatAnswer(cluster, s, call->resp));
        });
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key,
                                                     uint64_t offset, uint64_t length,
                                                     const mcos::v1::Version* version,
                                                     absl::Time deadline) override {
    const auto req =
        ReadRequest<mcos::v1::ClusterDownloadObjectRequest>(key, offset, length, version);
    return OpenStream<mcos::v1::ClusterDownloadObjectResponse>(
        deadline, [&](grpc::ClientContext* ctx) { return stub_->ClusterDownloadObject(ctx, req); });
  }

  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                               ObjectReader& source, absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::ClusterWriteResponse resp;
    auto writer = stub_->ClusterCreateObject(&ctx, &resp);
    mcos::v1::ClusterPutObjectRequest header;
    FillHeader(header.mutable_header(), key, record, nullptr);
    header.mutable_header()->set_coordinator(coordinator_);
    // The peer stores the version only once `size` bytes arrived (no finish message).
    const Streamed done =
        StreamWrite(ctx, *writer, header, source, record.size(),
                    static_cast<const mcos::v1::ClusterPutObjectRequest*>(nullptr));
    const absl::Status& read = done.read;
    const grpc::Status& s = done.status;
    if (!read.ok()) return read;
    if (!s.ok()) return FromGrpcStatus(s);
    return WriteAck{resp.applied(), resp.stored_version(), resp.prior()};
  }

  absl::StatusOr<std::unique_ptr<ReplicaWriter>> OpenWrite(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& header, absl::Time deadline,
      const std::function<void()>& on_drained) override {
    mcos::v1::ClusterPutObjectRequest first;
    FillStreamedHeader(first.mutable_header(), key, header, nullptr);
    first.mutable_header()->set_coordinator(coordinator_);
    auto stream = std::make_shared<PeerStream>(on_drained);
    stream->Start(stream, *stub_, std::move(first), deadline);
    return std::unique_ptr<ReplicaWriter>(std::make_unique<PeerStreamWriter>(std::move(stream)));
  }

  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& tombstone,
                                  absl::Time deadline) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    mcos::v1::ClusterWriteResponse resp;
    return WriteAnswer(stub_->ClusterDeleteObject(&ctx, DeleteRequest(key, tombstone), &resp),
                       resp);
  }

  bool writes_async() const override { return true; }

  void PutAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                std::shared_ptr<const std::string> data, absl::Time deadline,
                std::function<void(absl::StatusOr<WriteAck>)> done) override {
    if (!unsupported_->load(std::memory_order_relaxed)) {
      mcos::v1::ClusterReplicateOp op;
      auto* put = op.mutable_put();
      FillHeader(put->mutable_header(), key, record, nullptr);
      put->mutable_header()->set_coordinator(coordinator_);
      put->set_data(*data);
      link_.Submit(std::move(op), deadline, StreamedWriteDone(std::move(done)));
      return;
    }
    auto call = std::make_shared<AsyncCall<mcos::v1::ClusterPutSmallObjectRequest>>();
    SetDeadline(call->ctx, deadline);
    FillHeader(call->req.mutable_header(), key, record, nullptr);
    call->req.mutable_header()->set_coordinator(coordinator_);
    call->req.set_data(*data);
    stub_->async()->ClusterPutSmallObject(&call->ctx, &call->req, &call->resp,
                                          [call, done = std::move(done)](const grpc::Status& s) {
                                            done(WriteAnswer(s, call->resp));
                                          });
  }

  void PutIfAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                  std::shared_ptr<const std::string> data, absl::Time deadline,
                  mcos::v1::WritePrecondition precondition,
                  std::function<void(absl::StatusOr<WriteAck>)> done) override {
    const bool create = precondition == mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST;
    if (unsupported_->load(std::memory_order_relaxed) ||
        (!create && precondition != mcos::v1::WRITE_PRECONDITION_MUST_EXIST)) {
      // Only on the replication stream: the cluster's server predates it.
      done(absl::UnimplementedError(absl::StrCat(
          "cluster '", cluster_, "' takes no conditional write before its coordinator's commit")));
      return;
    }
    mcos::v1::ClusterReplicateOp op;
    auto* put = create ? op.mutable_create() : op.mutable_update();
    FillHeader(put->mutable_header(), key, record, nullptr);
    put->mutable_header()->set_coordinator(coordinator_);
    put->set_data(*data);
    link_.Submit(std::move(op), deadline, StreamedWriteDone(std::move(done)));
  }

  void DeleteAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone,
                   absl::Time deadline,
                   std::function<void(absl::StatusOr<WriteAck>)> done) override {
    if (!unsupported_->load(std::memory_order_relaxed)) {
      mcos::v1::ClusterReplicateOp op;
      *op.mutable_delete_() = DeleteRequest(key, tombstone);
      link_.Submit(std::move(op), deadline, StreamedWriteDone(std::move(done)));
      return;
    }
    auto call = std::make_shared<AsyncCall<mcos::v1::ClusterDeleteObjectRequest>>();
    SetDeadline(call->ctx, deadline);
    call->req = DeleteRequest(key, tombstone);
    stub_->async()->ClusterDeleteObject(&call->ctx, &call->req, &call->resp,
                                        [call, done = std::move(done)](const grpc::Status& s) {
                                          done(WriteAnswer(s, call->resp));
                                        });
  }

  absl::Status List(const mcos::v1::StorageListRequest& request, absl::Time deadline,
                    mcos::v1::StorageListResponse* out) override {
    return UnaryInto(deadline, out, [&](auto* ctx, auto* resp) {
      return stub_->ClusterListObjects(ctx, request, resp);
    });
  }

  absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::PartitionDigestsResponse>(deadline, [&](auto* ctx, auto* resp) {
      return stub_->ClusterPartitionDigests(ctx, request, resp);
    });
  }

  absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::ScanPartitionResponse>(deadline, [&](auto* ctx, auto* resp) {
      return stub_->ClusterScanPartition(ctx, request, resp);
    });
  }

  absl::StatusOr<mcos::v1::CheckTombstonesResponse> CheckTombstones(
      const mcos::v1::CheckTombstonesRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::CheckTombstonesResponse>(deadline, [&](auto* ctx, auto* resp) {
      return stub_->ClusterCheckTombstones(ctx, request, resp);
    });
  }

  absl::StatusOr<mcos::v1::PurgeTombstonesResponse> PurgeTombstones(
      const mcos::v1::PurgeTombstonesRequest& request, absl::Time deadline) override {
    return Unary<mcos::v1::PurgeTombstonesResponse>(deadline, [&](auto* ctx, auto* resp) {
      return stub_->ClusterPurgeTombstones(ctx, request, resp);
    });
  }

 private:
  // One write on gRPC's callback API: what lives until its answer.
  template <typename Request>
  struct AsyncCall {
    grpc::ClientContext ctx;
    Request req;
    mcos::v1::ClusterWriteResponse resp;
  };

  mcos::v1::ClusterDeleteObjectRequest DeleteRequest(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone) const {
    mcos::v1::ClusterDeleteObjectRequest req;
    *req.mutable_key() = key;
    *req.mutable_version() = tombstone.version();
    req.set_partition(tombstone.partition());
    req.set_option(tombstone.option());
    req.set_coordinator(coordinator_);
    return req;
  }

  static absl::StatusOr<WriteAck> WriteAnswer(const grpc::Status& s,
                                              const mcos::v1::ClusterWriteResponse& resp) {
    if (!s.ok()) return FromGrpcStatus(s);
    return WriteAck{resp.applied(), resp.stored_version(), resp.prior()};
  }

  // The status of one operation of a ClusterReplicate stream.
  static absl::Status AnswerStatus(const mcos::v1::ClusterReplicateAnswer& answer) {
    if (answer.code() == 0) return absl::OkStatus();
    return {static_cast<absl::StatusCode>(answer.code()), answer.message()};
  }

  // What a stream operation's answer calls: `done` with the answer made into a T by `take`, or
  // with why there is none. A peer that does not serve ClusterReplicate (an older server, during
  // an upgrade) gets unary calls from then on; the operation that found out fails (a write is
  // queued, a read asks another replica).
  template <typename T>
  ReplicateLink::Done OnAnswer(
      std::function<void(absl::StatusOr<T>)> done,
      std::function<absl::StatusOr<T>(mcos::v1::ClusterReplicateAnswer&)> take) const {
    return [unsupported = unsupported_, done = std::move(done), take = std::move(take)](
               absl::Status s, mcos::v1::ClusterReplicateAnswer* answer) {
      if (s.ok()) s = AnswerStatus(*answer);
      if (!s.ok()) {
        if (absl::IsUnimplemented(s)) unsupported->store(true, std::memory_order_relaxed);
        done(s);
        return;
      }
      done(take(*answer));
    };
  }

  ReplicateLink::Done StreamedWriteDone(std::function<void(absl::StatusOr<WriteAck>)> done) const {
    return OnAnswer<WriteAck>(std::move(done), [](mcos::v1::ClusterReplicateAnswer& answer) {
      return absl::StatusOr<WriteAck>(WriteAck{
          answer.write().applied(), answer.write().stored_version(), answer.write().prior()});
    });
  }

  // A peer's answer to a stat: its record, or what went wrong.
  static absl::StatusOr<mcos::v1::ObjectRecord> StatAnswer(
      const std::string& cluster, const grpc::Status& s,
      mcos::v1::ClusterStatObjectResponse& resp) {
    if (!s.ok()) return FromGrpcStatus(s);
    if (!resp.has_record()) {
      return absl::DataLossError(
          absl::StrCat("cluster '", cluster, "' answered a stat without the object's record"));
    }
    return std::move(*resp.mutable_record());
  }

  const std::string cluster_;
  const std::string coordinator_;
  const std::shared_ptr<mcos::v1::ClusterService::Stub> stub_;
  // Set once the peer answers ClusterReplicate UNIMPLEMENTED: unary calls from then on.
  const std::shared_ptr<std::atomic<bool>> unsupported_ =
      std::make_shared<std::atomic<bool>>(false);
  ReplicateLink link_;
};

class InlineReplicaImpl final : public Replica {
 public:
  InlineReplicaImpl(std::string cluster, mcos::v1::ObjectRecord record, std::string data)
      : cluster_(std::move(cluster)),
        record_(std::move(record)),
        data_(std::make_shared<const std::string>(std::move(data))) {}

  const std::string& cluster() const override { return cluster_; }
  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey&, absl::Time) override {
    return record_;
  }
  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey&, uint64_t offset,
                                                     uint64_t length,
                                                     const mcos::v1::Version* version,
                                                     absl::Time) override {
    if (version != nullptr && common::CompareVersions(*version, record_.version()) != 0) {
      return absl::FailedPreconditionError("the copy in memory is another version");
    }
    if (offset != 0 || length != 0) return absl::UnimplementedError("no ranges from memory");
    return MemoryReader(record_, data_);
  }
  std::shared_ptr<const std::string> InMemory(const mcos::v1::ObjectKey&,
                                              const mcos::v1::Version& version) const override {
    return common::CompareVersions(version, record_.version()) == 0 ? data_ : nullptr;
  }
  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey&, const mcos::v1::ObjectRecord&,
                               ObjectReader&, absl::Time) override {
    return absl::UnimplementedError("a copy in memory takes no writes");
  }
  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey&, const mcos::v1::ObjectRecord&,
                                  absl::Time) override {
    return absl::UnimplementedError("a copy in memory takes no writes");
  }
  absl::Status List(const mcos::v1::StorageListRequest&, absl::Time,
                    mcos::v1::StorageListResponse*) override {
    return absl::UnimplementedError("a copy in memory has no listing");
  }

 private:
  const std::string cluster_;
  const mcos::v1::ObjectRecord record_;
  const std::shared_ptr<const std::string> data_;
};

// A storage engine in this process: the same answers as StorageReplicaImpl gets from the storage
// service over it, without gRPC. Calls are synchronous; deadlines do not apply.
class EngineReplicaImpl final : public Replica {
 public:
  EngineReplicaImpl(std::string cluster, storage::Engine& engine)
      : cluster_(std::move(cluster)), engine_(engine) {}

  const std::string& cluster() const override { return cluster_; }
  bool in_process() const override { return true; }

  absl::StatusOr<mcos::v1::ObjectRecord> Stat(const mcos::v1::ObjectKey& key, absl::Time) override {
    return engine_.Stat(key, /*include_tombstone=*/true);
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> Open(const mcos::v1::ObjectKey& key,
                                                     uint64_t offset, uint64_t length,
                                                     const mcos::v1::Version* version,
                                                     absl::Time) override {
    auto reader =
        engine_.OpenReader(ReadRequest<mcos::v1::StorageGetRequest>(key, offset, length, version));
    if (!reader.ok()) return reader.status();
    return std::unique_ptr<ObjectReader>(new Reader(*std::move(reader)));
  }

  absl::StatusOr<WriteAck> Put(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                               ObjectReader& source, absl::Time) override {
    return Write(key, record, source, /*repair=*/false);
  }

  absl::StatusOr<WriteAck> PutIf(const mcos::v1::ObjectKey& key,
                                 const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                 absl::Time deadline,
                                 mcos::v1::WritePrecondition precondition) override {
    return ConditionalAnswer(Write(key, record, source, /*repair=*/false, precondition),
                             precondition, key, [&] { return Stat(key, deadline); });
  }

  absl::StatusOr<WriteAck> Repair(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& record, ObjectReader& source,
                                  absl::Time) override {
    return Write(key, record, source, /*repair=*/true);
  }

  // Writes of content in memory and deletes are committed by the engine's committing thread
  // (storage::Engine::CommitAsync): the caller does not wait for the disk.
  bool writes_async() const override { return true; }

  void PutAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                std::shared_ptr<const std::string> data, absl::Time,
                std::function<void(absl::StatusOr<WriteAck>)> done) override {
    WriteAsync(key, record, *data, mcos::v1::WRITE_PRECONDITION_NONE, std::move(done));
  }

  void PutIfAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                  std::shared_ptr<const std::string> data, absl::Time,
                  mcos::v1::WritePrecondition precondition,
                  std::function<void(absl::StatusOr<WriteAck>)> done) override {
    WriteAsync(key, record, *data, precondition,
               [this, key, precondition, done = std::move(done)](absl::StatusOr<WriteAck> ack) {
                 done(ConditionalAnswer(std::move(ack), precondition, key,
                                        [&] { return Stat(key, absl::InfiniteFuture()); }));
               });
  }

  void DeleteAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone,
                   absl::Time, std::function<void(absl::StatusOr<WriteAck>)> done) override {
    engine_.DeleteAsync(StorageDelete(key, tombstone),
                        [done = std::move(done)](absl::StatusOr<storage::WriteResult> result) {
                          done(DeleteAck(std::move(result)));
                        });
  }

  void DeleteAboveAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& tombstone,
                        absl::Time, mcos::v1::WritePrecondition precondition,
                        std::function<void(absl::StatusOr<WriteAck>)> done) override {
    mcos::v1::StorageDeleteRequest request = StorageDelete(key, tombstone, /*restamp=*/true);
    request.set_precondition(precondition);
    engine_.DeleteAsync(std::move(request),
                        [done = std::move(done)](absl::StatusOr<storage::WriteResult> result) {
                          done(DeleteAck(std::move(result)));
                        });
  }

  absl::StatusOr<WriteAck> Write(
      const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record, ObjectReader& source,
      bool repair, mcos::v1::WritePrecondition precondition = mcos::v1::WRITE_PRECONDITION_NONE) {
    mcos::v1::StoragePutHeader header;
    FillHeader(&header, key, record, &cluster_);
    header.set_repair(repair);
    header.set_precondition(precondition);
    auto stream = engine_.BeginPut(header);
    if (!stream.ok()) return stream.status();
    if (const auto& superseded = (*stream)->superseded()) {
      source.Cancel();
      source.Finish().IgnoreError();
      return WriteAck{false, superseded->record.version(), HeldPrior(superseded->record)};
    }
    std::string chunk;
    while (source.Next(&chunk)) {
      if (absl::Status s = (*stream)->Append(chunk); !s.ok()) {
        source.Cancel();
        source.Finish().IgnoreError();
        return s;  // the stream is discarded: nothing stored
      }
    }
    if (absl::Status s = source.Finish(); !s.ok()) return s;
    mcos::v1::StoragePutFinish finish;
    finish.set_size(record.size());
    return PutAck((*stream)->Commit(finish));
  }

  // Write of `data` (in memory) through the engine's CommitAsync.
  void WriteAsync(const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
                  absl::string_view data, mcos::v1::WritePrecondition precondition,
                  std::function<void(absl::StatusOr<WriteAck>)> done) {
    mcos::v1::StoragePutHeader header;
    FillHeader(&header, key, record, &cluster_);
    header.set_precondition(precondition);
    auto stream = engine_.BeginPut(header);
    if (!stream.ok()) {
      done(stream.status());
      return;
    }
    if (const auto& superseded = (*stream)->superseded()) {
      done(WriteAck{false, superseded->record.version(), HeldPrior(superseded->record)});
      return;
    }
    if (absl::Status s = (*stream)->Append(data); !s.ok()) {
      done(s);  // the stream is discarded: nothing stored
      return;
    }
    mcos::v1::StoragePutFinish finish;
    finish.set_size(record.size());
    engine_.CommitAsync(*std::move(stream), std::move(finish),
                        [done = std::move(done)](absl::StatusOr<storage::WriteResult> result) {
                          done(PutAck(std::move(result)));
                        });
  }

  static absl::StatusOr<WriteAck> PutAck(absl::StatusOr<storage::WriteResult> result) {
    if (!result.ok()) return result.status();
    return WriteAck{result->applied, result->record.version(),
                    result->applied ? mcos::v1::WRITE_PRIOR_UNKNOWN : HeldPrior(result->record)};
  }

  static absl::StatusOr<WriteAck> DeleteAck(absl::StatusOr<storage::WriteResult> result) {
    if (!result.ok()) return result.status();
    return WriteAck{result->applied, result->record.version(), result->prior};
  }

  absl::StatusOr<mcos::v1::StoragePutResponse> StoreUpload(const mcos::v1::StoragePutHeader& header,
                                                           absl::string_view data,
                                                           const mcos::v1::StoragePutFinish& finish,
                                                           absl::Time) override {
    auto stream = engine_.BeginPut(header);
    if (!stream.ok()) return stream.status();
    // A superseded write appends nothing and commits to its answer (storage::PutStream).
    for (size_t at = 0; at < data.size(); at += storage::kMaxClientChunkBytes) {
      MCOS_RETURN_IF_ERROR((*stream)->Append(data.substr(at, storage::kMaxClientChunkBytes)));
    }
    MCOS_ASSIGN_OR_RETURN(auto result, (*stream)->Commit(finish));
    return storage::ToPutResponse(std::move(result));
  }

  void StoreUploadAsync(
      const mcos::v1::StoragePutHeader& header, absl::string_view data,
      const mcos::v1::StoragePutFinish& finish, absl::Time,
      std::function<void(absl::StatusOr<mcos::v1::StoragePutResponse>)> done) override {
    auto stream = engine_.BeginPut(header);
    if (!stream.ok()) {
      done(stream.status());
      return;
    }
    for (size_t at = 0; at < data.size(); at += storage::kMaxClientChunkBytes) {
      if (absl::Status s = (*stream)->Append(data.substr(at, storage::kMaxClientChunkBytes));
          !s.ok()) {
        done(s);
        return;
      }
    }
    engine_.CommitAsync(*std::move(stream), finish,
                        [done = std::move(done)](absl::StatusOr<storage::WriteResult> result) {
                          if (!result.ok()) {
                            done(result.status());
                            return;
                          }
                          done(storage::ToPutResponse(*std::move(result)));
                        });
  }

  absl::StatusOr<std::unique_ptr<ReplicaWriter>> OpenWrite(const mcos::v1::ObjectKey& key,
                                                           const mcos::v1::ObjectRecord& header,
                                                           absl::Time,
                                                           const std::function<void()>&) override {
    mcos::v1::StoragePutHeader h;
    FillStreamedHeader(&h, key, header, &cluster_);
    auto stream = engine_.BeginPut(h);
    if (!stream.ok()) return stream.status();
    return std::unique_ptr<ReplicaWriter>(std::make_unique<Writer>(*std::move(stream)));
  }

  absl::StatusOr<WriteAck> Delete(const mcos::v1::ObjectKey& key,
                                  const mcos::v1::ObjectRecord& tombstone, absl::Time) override {
    return WriteDelete(StorageDelete(key, tombstone));
  }

  absl::StatusOr<WriteAck> DeleteAbove(const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& tombstone,
                                       absl::Time) override {
    return WriteDelete(StorageDelete(key, tombstone, /*restamp=*/true));
  }

  absl::StatusOr<WriteAck> Purge(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                 absl::Time) override {
    return WriteDelete(PurgeRequest(key, version));
  }

  absl::StatusOr<WriteAck> Release(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                   absl::Time) override {
    return WriteDelete(PurgeRequest(key, version, /*release=*/true));
  }

  absl::Status List(const mcos::v1::StorageListRequest& request, absl::Time,
                    mcos::v1::StorageListResponse* out) override {
    return engine_.List(request, out);
  }

  absl::StatusOr<mcos::v1::PartitionDigestsResponse> PartitionDigests(
      const mcos::v1::PartitionDigestsRequest& request, absl::Time) override {
    return engine_.PartitionDigests(request);
  }

  absl::StatusOr<mcos::v1::ScanPartitionResponse> ScanPartition(
      const mcos::v1::ScanPartitionRequest& request, absl::Time) override {
    return engine_.ScanPartition(request);
  }

  absl::StatusOr<bool> AddHolders(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                                  const std::vector<std::string>& holders, absl::Time) override {
    return engine_.AddHolders(key, version, holders);
  }

  void AddHoldersLater(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version,
                       const std::vector<std::string>& holders) override {
    engine_.AddHoldersAsync(key, version, holders);
  }

  void ReleaseKept(const mcos::v1::ObjectKey& key, const mcos::v1::Version& version) override {
    engine_.ReleaseKept(key, version);
  }

 private:
  absl::StatusOr<WriteAck> WriteDelete(const mcos::v1::StorageDeleteRequest& req) {
    return DeleteAck(engine_.Delete(req));
  }

  class Writer final : public ReplicaWriter {
   public:
    explicit Writer(std::unique_ptr<storage::PutStream> stream) : stream_(std::move(stream)) {}
    absl::Status Append(std::string data) override {
      if (stream_ == nullptr) return absl::FailedPreconditionError("the write has ended");
      hash_.Update(data);
      return stream_->Append(data);
    }
    absl::StatusOr<WriteAck> Finish(const mcos::v1::ObjectRecord& record, absl::Time) override {
      if (stream_ == nullptr) return absl::FailedPreconditionError("the write has ended");
      auto result = stream_->Commit(StreamedFinish(record, hash_.Digest()));
      stream_.reset();
      if (!result.ok()) return result.status();
      return WriteAck{result->applied, result->record.version()};
    }
    void Abort() override { stream_.reset(); }  // discards what it wrote

   private:
    std::unique_ptr<storage::PutStream> stream_;
    common::StreamingHash64 hash_;
  };

  class Reader final : public ObjectReader {
   public:
    explicit Reader(std::unique_ptr<storage::ObjectReader> reader) : reader_(std::move(reader)) {}
    const mcos::v1::ObjectRecord& record() const override { return reader_->record(); }
    bool Next(std::string* data) override {
      if (!status_.ok()) return false;
      absl::StatusOr<bool> more = reader_->Next(data);
      if (!more.ok()) status_ = more.status();
      return more.ok() && *more;
    }
    absl::Status Finish() override { return status_; }
    void Cancel() override {
      if (status_.ok()) status_ = absl::CancelledError("the read was cancelled");
    }

   private:
    std::unique_ptr<storage::ObjectReader> reader_;
    absl::Status status_;
  };

  const std::string cluster_;
  storage::Engine& engine_;
};

}  // namespace

mcos::v1::ObjectRecord TombstoneRecord(const mcos::v1::Version& version, uint32_t partition,
                                       const std::string& option) {
  mcos::v1::ObjectRecord tombstone;
  *tombstone.mutable_version() = version;
  tombstone.set_tombstone(true);
  tombstone.set_partition(partition);
  tombstone.set_option(option);
  return tombstone;
}

namespace {

// The record a copy sends: `held` (what `from` holds under `from_version`, or under `record`'s
// version when that is null) as `record`'s version.
mcos::v1::ObjectRecord SentRecord(mcos::v1::ObjectRecord held, const Replica& from,
                                  const mcos::v1::ObjectRecord& record,
                                  const mcos::v1::Version* from_version) {
  if (from_version == nullptr || common::CompareVersions(*from_version, record.version()) == 0) {
    // `from` holds this very version: it and the holders it knows of go with it.
    AddHolder(held.mutable_holders(), from.cluster());
  } else {
    // Stamped again: nobody holds the new version yet.
    *held.mutable_version() = record.version();
    held.clear_holders();
  }
  return held;
}

}  // namespace

void Replica::PutAsync(
    const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
    std::shared_ptr<const std::string> data, absl::Time deadline,
    // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
    std::function<void(absl::StatusOr<WriteAck>)> done) {
  MemReader reader(record, std::move(data));
  done(Put(key, record, reader, deadline));
}

absl::StatusOr<WriteAck> Replica::PutIf(const mcos::v1::ObjectKey&, const mcos::v1::ObjectRecord&,
                                        ObjectReader& source, absl::Time,
                                        mcos::v1::WritePrecondition) {
  source.Cancel();
  source.Finish().IgnoreError();
  return absl::UnimplementedError(
      absl::StrCat("cluster '", cluster(), "' cannot take a conditional write here"));
}

void Replica::PutIfAsync(
    const mcos::v1::ObjectKey& key, const mcos::v1::ObjectRecord& record,
    std::shared_ptr<const std::string> data, absl::Time deadline,
    mcos::v1::WritePrecondition precondition,
    // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink; the async ones keep it
    std::function<void(absl::StatusOr<WriteAck>)> done) {
  MemReader reader(record, std::move(data));
  done(PutIf(key, record, reader, deadline, precondition));
}

std::unique_ptr<ObjectReader> MemoryReader(mcos::v1::ObjectRecord record,
                                           std::shared_ptr<const std::string> data) {
  return std::make_unique<MemReader>(std::move(record), std::move(data));
}

namespace {

// Reads through another reader, calling `after_chunk` with each chunk's size.
class PacedReader final : public ObjectReader {
 public:
  PacedReader(ObjectReader& inner, const std::function<bool(size_t)>& after_chunk)
      : inner_(inner), after_chunk_(after_chunk) {}
  const mcos::v1::ObjectRecord& record() const override { return inner_.record(); }
  bool Next(std::string* data) override {
    if (!inner_.Next(data)) return false;
    if (after_chunk_(data->size())) return true;
    inner_.Cancel();
    return false;
  }
  absl::Status Finish() override { return inner_.Finish(); }
  void Cancel() override { inner_.Cancel(); }

 private:
  ObjectReader& inner_;
  const std::function<bool(size_t)>& after_chunk_;
};

}  // namespace

absl::StatusOr<WriteAck> Copy(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
                              const mcos::v1::ObjectRecord& record, absl::Time deadline,
                              const mcos::v1::Version* from_version,
                              const std::function<bool(size_t)>& after_chunk) {
  if (record.tombstone()) return to.Delete(key, record, deadline);
  auto reader =
      from.Open(key, 0, 0, from_version != nullptr ? from_version : &record.version(), deadline);
  if (!reader.ok()) {
    return absl::Status(reader.status().code(),
                        absl::StrCat("reading the copy at cluster '", from.cluster(),
                                     "': ", reader.status().message()));
  }
  const mcos::v1::ObjectRecord sent = SentRecord((*reader)->record(), from, record, from_version);
  if (!after_chunk) return to.Put(key, sent, **reader, deadline);
  PacedReader paced(**reader, after_chunk);
  return to.Put(key, sent, paced, deadline);
}

bool CopyAsync(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
               const mcos::v1::ObjectRecord& record, absl::Time deadline,
               const mcos::v1::Version* from_version,
               std::function<void(absl::StatusOr<WriteAck>)> done) {
  if (!to.writes_async()) return false;
  if (record.tombstone()) {
    to.DeleteAsync(key, record, deadline, std::move(done));
    return true;
  }
  const mcos::v1::Version& version = from_version != nullptr ? *from_version : record.version();
  auto data = from.InMemory(key, version);
  if (data == nullptr || data->size() > kSmallWriteMax) return false;
  auto held = from.Stat(key, deadline);  // a copy in memory answers at once
  // The record must be that of the kept copy: a racing write may have replaced the object there
  // since (its record would then go with this write's bytes). Copy, which opens exactly that
  // version, sends it instead.
  if (!held.ok() || common::CompareVersions(held->version(), version) != 0) return false;
  to.PutAsync(key, SentRecord(*std::move(held), from, record, from_version), std::move(data),
              deadline, std::move(done));
  return true;
}

absl::StatusOr<WriteAck> RepairCopy(Replica& from, Replica& to, const mcos::v1::ObjectKey& key,
                                    const mcos::v1::ObjectRecord& record, absl::Time deadline) {
  auto reader = from.Open(key, 0, 0, &record.version(), deadline);
  if (!reader.ok()) {
    return absl::Status(reader.status().code(),
                        absl::StrCat("reading the copy at cluster '", from.cluster(),
                                     "': ", reader.status().message()));
  }
  return to.Repair(key, (*reader)->record(), **reader, deadline);
}

std::unique_ptr<Replica> StorageReplica(std::string cluster,
                                        const std::shared_ptr<grpc::Channel>& channel) {
  return std::make_unique<StorageReplicaImpl>(std::move(cluster), channel);
}

std::unique_ptr<Replica> EngineReplica(std::string cluster, storage::Engine& engine) {
  return std::make_unique<EngineReplicaImpl>(std::move(cluster), engine);
}

std::unique_ptr<Replica> InlineReplica(std::string cluster, mcos::v1::ObjectRecord record,
                                       std::string data) {
  return std::make_unique<InlineReplicaImpl>(std::move(cluster), std::move(record),
                                             std::move(data));
}

std::unique_ptr<Replica> PeerReplica(std::string cluster, std::string coordinator,
                                     const std::shared_ptr<grpc::Channel>& channel) {
  return std::make_unique<PeerReplicaImpl>(std::move(cluster), std::move(coordinator), channel);
}

absl::Time CopyDeadline(uint64_t size, absl::Duration base, double bytes_per_second) {
  return absl::Now() + base + absl::Seconds(static_cast<double>(size) / bytes_per_second);
}

}  // namespace mcos::replication
