#include "server/cluster_grpc_service.h"

#include <memory>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "server/server_app.h"

namespace mcos::server {
namespace {

using common::DeadlineOf;
using common::ToGrpcStatus;

constexpr size_t kMaxChunk = size_t{1} << 20;

grpc::Status Invalid(absl::string_view message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, std::string(message)};
}

absl::Status ValidateKey(const mcos::v1::ObjectKey& key) {
  MCOS_RETURN_IF_ERROR(common::ValidateOwnerId(key.user()));
  return ValidateObjectRef(key.container(), key.object());
}

absl::Status ValidateVersion(const mcos::v1::Version& v) {
  if (v.hlc() == 0 || v.cluster().empty()) {
    return absl::InvalidArgumentError("a replica write needs the coordinator's version stamp");
  }
  return common::ValidateClusterName(v.cluster());
}

}  // namespace

ClusterGrpcService::ClusterGrpcService(ServerApp& app, prometheus::Registry& registry)
    : app_(app),
      replicated_(prometheus::BuildCounter()
                      .Name("mcos_cluster_replicate_operations_total")
                      .Help("Operations peer clusters sent on ClusterReplicate streams, by kind "
                            "(put, delete, stat) and status code")
                      .Register(registry)) {
  SetMessageAllocatorFor_ClusterListObjects(&list_messages_);
}

#define MCOS_REQUIRE_PEER(context)                              \
  do {                                                          \
    const absl::Status mcos_peer_ = app_.CheckPeer(*(context)); \
    if (!mcos_peer_.ok()) return ToGrpcStatus(mcos_peer_);      \
  } while (false)

grpc::Status ClusterGrpcService::ClusterCreateObject(
    grpc::ServerContext* context, grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
    mcos::v1::ClusterWriteResponse* response) {
  return Put(context, reader, response);
}

grpc::Status ClusterGrpcService::ClusterUpdateObject(
    grpc::ServerContext* context, grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
    mcos::v1::ClusterWriteResponse* response) {
  return Put(context, reader, response);
}

namespace {

// The data messages of a replica write, as the content a Replica stores: checked as they arrive
// (one header, then only data of at most 1 MiB each and `size` bytes in all). Whatever is wrong
// ends the content with an error, so that nothing is stored.
class ReplicaWriteSource final : public replication::ObjectReader {
 public:
  ReplicaWriteSource(grpc::ServerContext& context,
                     grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>& reader,
                     mcos::v1::ObjectRecord record)
      : context_(context), reader_(reader), record_(std::move(record)) {}

  const mcos::v1::ObjectRecord& record() const override { return record_; }

  bool Next(std::string* data) override {
    if (done_) return false;
    mcos::v1::ClusterPutObjectRequest in;
    if (!reader_.Read(&in)) {
      if (context_.IsCancelled()) {
        End(absl::CancelledError("the coordinator cancelled the replica write"));
      } else if (received_ != record_.size()) {
        End(absl::InvalidArgumentError(absl::StrCat("the replica write ended after ", received_,
                                                    " of ", record_.size(),
                                                    " bytes; nothing was stored")));
      } else {
        End(absl::OkStatus());
      }
      return false;
    }
    if (!in.has_data()) {
      End(absl::InvalidArgumentError(
          "a replica write carries one header, then only data; nothing was stored"));
      return false;
    }
    received_ += in.data().size();
    if (in.data().size() > kMaxChunk || received_ > record_.size()) {
      End(absl::InvalidArgumentError(in.data().size() > kMaxChunk
                                         ? "a data chunk exceeds 1 MiB; nothing was stored"
                                         : "more data than the header's size; nothing was stored"));
      return false;
    }
    *data = std::move(*in.mutable_data());
    return true;
  }

  absl::Status Finish() override {
    std::string ignored;
    while (Next(&ignored)) {
    }
    return status_;
  }

  // The replica stops reading (it holds this version already, or failed): what the coordinator
  // still sends is read to its end and dropped, so that the answer reaches it.
  void Cancel() override {
    if (!done_) {
      mcos::v1::ClusterPutObjectRequest ignored;
      while (reader_.Read(&ignored)) {
      }
      End(absl::CancelledError("the replica write was not read to its end"));
    }
  }

 private:
  void End(absl::Status status) {
    done_ = true;
    status_ = std::move(status);
  }

  grpc::ServerContext& context_;
  grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>& reader_;
  const mcos::v1::ObjectRecord record_;
  uint64_t received_ = 0;
  bool done_ = false;
  absl::Status status_;
};

}  // namespace

namespace {

// What every replica write's header must be (names, version, content type, metadata, option,
// holders).
absl::Status ValidateReplicaHeader(const mcos::v1::ClusterPutObjectHeader& header) {
  MCOS_RETURN_IF_ERROR(ValidateKey(header.key()));
  MCOS_RETURN_IF_ERROR(ValidateVersion(header.version()));
  MCOS_RETURN_IF_ERROR(common::ValidateContentType(header.content_type()));
  MCOS_RETURN_IF_ERROR(common::ValidateUserMetadata(header.metadata()));
  if (!header.option().empty()) MCOS_RETURN_IF_ERROR(common::ValidateUserName(header.option()));
  return common::ValidateHolders(header.holders());
}

// The version a replica write whose header declares it (not version_at_finish) carries, as this
// cluster's storage must check and keep it. A replayed or late write is the storage's to refuse
// (applied = false).
absl::StatusOr<mcos::v1::ObjectRecord> DeclaredRecord(
    const mcos::v1::ClusterPutObjectHeader& header) {
  if (!header.has_size()) {
    return absl::InvalidArgumentError("a replica write must declare its size; nothing was stored");
  }
  if (!common::IsHex(header.md5_hex(), 32)) {
    return absl::InvalidArgumentError(
        "a replica write must carry md5_hex (32 hex digits); nothing was stored");
  }
  if (!header.sha256_hex().empty() && !common::IsHex(header.sha256_hex(), 64)) {
    return absl::InvalidArgumentError("sha256_hex must be 64 hex digits; nothing was stored");
  }
  mcos::v1::ObjectRecord record;
  *record.mutable_version() = header.version();
  record.set_content_type(header.content_type());
  *record.mutable_metadata() = header.metadata();
  record.set_size(header.size());
  record.set_etag(absl::AsciiStrToLower(header.md5_hex()));
  if (!header.sha256_hex().empty()) {
    record.set_checksum(absl::StrCat("sha256:", absl::AsciiStrToLower(header.sha256_hex())));
  }
  record.set_partition(header.partition());
  record.set_option(header.option());
  *record.mutable_holders() = header.holders();
  return record;
}

}  // namespace

grpc::Status ClusterGrpcService::Put(grpc::ServerContext* context,
                                     grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
                                     mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  mcos::v1::ClusterPutObjectRequest in;
  if (!reader->Read(&in) || !in.has_header()) {
    return Invalid("a replica write starts with its header; nothing was stored");
  }
  const mcos::v1::ClusterPutObjectHeader& header = in.header();
  if (absl::Status s = ValidateReplicaHeader(header); !s.ok()) return ToGrpcStatus(s);
  if (header.version_at_finish()) return PutStreamed(*context, *reader, header, *response);
  auto record = DeclaredRecord(header);
  if (!record.ok()) return ToGrpcStatus(record.status());
  ReplicaWriteSource source(*context, *reader, *record);
  return Store(DeadlineOf(*context), header.key(), *record, source, *response);
}

grpc::Status ClusterGrpcService::ClusterPutSmallObject(
    grpc::ServerContext* context, const mcos::v1::ClusterPutSmallObjectRequest* request,
    mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  return PutSmall(*request, DeadlineOf(*context), *response);
}

absl::StatusOr<mcos::v1::ObjectRecord> ClusterGrpcService::CheckSmall(
    const mcos::v1::ClusterPutSmallObjectRequest& request) const {
  if (!request.has_header()) {
    return absl::InvalidArgumentError("a replica write needs its header; nothing was stored");
  }
  const mcos::v1::ClusterPutObjectHeader& header = request.header();
  MCOS_RETURN_IF_ERROR(ValidateReplicaHeader(header));
  if (header.version_at_finish()) {
    return absl::InvalidArgumentError(
        "a small replica write carries its whole content: version_at_finish is for streamed ones "
        "(ClusterCreateObject); nothing was stored");
  }
  MCOS_ASSIGN_OR_RETURN(mcos::v1::ObjectRecord record, DeclaredRecord(header));
  if (request.data().size() > replication::kSmallWriteMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("a small replica write carries at most ", replication::kSmallWriteMax,
                     " bytes: stream it (ClusterCreateObject); nothing was stored"));
  }
  if (request.data().size() != record.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the replica write carries ", request.data().size(),
                     " bytes, its header says ", record.size(), "; nothing was stored"));
  }
  return record;
}

grpc::Status ClusterGrpcService::PutSmall(const mcos::v1::ClusterPutSmallObjectRequest& request,
                                          absl::Time deadline,
                                          mcos::v1::ClusterWriteResponse& response,
                                          mcos::v1::WritePrecondition precondition) {
  auto record = CheckSmall(request);
  if (!record.ok()) return ToGrpcStatus(record.status());
  auto source =
      replication::MemoryReader(*record, std::make_shared<const std::string>(request.data()));
  return Store(deadline, request.header().key(), *record, *source, response, precondition);
}

grpc::Status ClusterGrpcService::Store(absl::Time deadline, const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& record,
                                       replication::ObjectReader& source,
                                       mcos::v1::ClusterWriteResponse& response,
                                       mcos::v1::WritePrecondition precondition) {
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  // This cluster's clock moves past every version it receives (a hybrid logical clock), so that
  // its own later writes are newer than what it holds.
  app_.hlc_.Observe(record.version().hlc());
  const bool conditional = precondition != mcos::v1::WRITE_PRECONDITION_NONE;
  auto ack = conditional ? b->local->PutIf(key, record, source, deadline, precondition)
                         : b->local->Put(key, record, source, deadline);
  if (!ack.ok()) return ToGrpcStatus(ack.status());
  FillWrite(*ack, conditional, response);
  return grpc::Status::OK;
}

void ClusterGrpcService::FillWrite(const replication::WriteAck& ack, bool with_prior,
                                   mcos::v1::ClusterWriteResponse& response) const {
  response.set_applied(ack.applied);
  *response.mutable_stored_version() = ack.stored_version;
  if (with_prior) response.set_prior(ack.prior);
  response.set_cluster(app_.cluster_id_);
}

grpc::Status ClusterGrpcService::PutStreamed(
    grpc::ServerContext& context, grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>& reader,
    const mcos::v1::ClusterPutObjectHeader& header, mcos::v1::ClusterWriteResponse& response) {
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  mcos::v1::ObjectRecord record;
  *record.mutable_version() = header.version();
  record.set_content_type(header.content_type());
  *record.mutable_metadata() = header.metadata();
  record.set_partition(header.partition());
  record.set_option(header.option());
  *record.mutable_holders() = header.holders();
  const absl::Time deadline = DeadlineOf(context);
  auto writer = b->local->OpenWrite(header.key(), record, deadline, nullptr);
  if (!writer.ok()) return ToGrpcStatus(writer.status());
  // Unless the finish message arrives and the content matches it, the writer goes unfinished and
  // this cluster stores nothing.
  mcos::v1::ClusterPutObjectRequest in;
  uint64_t received = 0;
  common::StreamingHash64 hash;  // checked against the finish's: the hop from the coordinator
  bool finished = false;
  while (!finished && reader.Read(&in)) {
    switch (in.part_case()) {
      case mcos::v1::ClusterPutObjectRequest::kData:
        if (in.data().size() > kMaxChunk) {
          return Invalid("a data chunk exceeds 1 MiB; nothing was stored");
        }
        received += in.data().size();
        hash.Update(in.data());
        if (absl::Status s = (*writer)->Append(std::move(*in.mutable_data())); !s.ok()) {
          return ToGrpcStatus(s);
        }
        break;
      case mcos::v1::ClusterPutObjectRequest::kFinish:
        finished = true;
        break;
      default:
        return Invalid(
            "a streamed replica write carries one header, then data, then its finish; "
            "nothing was stored");
    }
  }
  if (!finished) {
    return context.IsCancelled()
               ? grpc::Status(grpc::StatusCode::CANCELLED,
                              "the coordinator cancelled the replica write; nothing was stored")
               : Invalid(absl::StrCat("the streamed replica write ended after ", received,
                                      " bytes without its finish message; nothing was stored"));
  }
  const mcos::v1::StoragePutFinish& f = in.finish();
  absl::Status valid = ValidateVersion(f.version());
  if (valid.ok() && !common::IsHex(f.md5_hex(), 32)) {
    valid =
        absl::InvalidArgumentError("a replica write's finish must carry md5_hex (32 hex digits)");
  }
  if (valid.ok() && !common::IsHex(f.sha256_hex(), 64)) {
    valid = absl::InvalidArgumentError(
        "a replica write's finish must carry sha256_hex (64 hex digits)");
  }
  if (valid.ok() && (!f.has_size() || f.size() != received)) {
    valid = absl::InvalidArgumentError(absl::StrCat("the replica write's finish declares ",
                                                    f.has_size() ? f.size() : 0, " bytes but ",
                                                    received, " arrived; nothing was stored"));
  }
  if (valid.ok() && (!f.has_xxh3() || f.xxh3() != hash.Digest())) {
    valid = absl::InvalidArgumentError(
        f.has_xxh3() ? "the replica write's content differs from its finish's XXH3-64 (changed or "
                       "cut on the way); nothing was stored"
                     : "a replica write's finish must carry xxh3; nothing was stored");
  }
  if (valid.ok() && reader.Read(&in)) {
    valid = absl::InvalidArgumentError(
        "nothing may follow the finish message of a replica write; nothing was stored");
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  *record.mutable_version() = f.version();
  record.set_size(f.size());
  record.set_etag(absl::AsciiStrToLower(f.md5_hex()));
  record.set_checksum(absl::StrCat("sha256:", absl::AsciiStrToLower(f.sha256_hex())));
  // This cluster's clock moves past every version it receives.
  app_.hlc_.Observe(f.version().hlc());
  auto ack = (*writer)->Finish(record, deadline);
  if (!ack.ok()) return ToGrpcStatus(ack.status());
  response.set_applied(ack->applied);
  *response.mutable_stored_version() = ack->stored_version;
  response.set_cluster(app_.cluster_id_);
  return grpc::Status::OK;
}

grpc::Status ClusterGrpcService::ClusterStatObject(
    grpc::ServerContext* context, const mcos::v1::ClusterStatObjectRequest* request,
    mcos::v1::ClusterStatObjectResponse* response) {
  MCOS_REQUIRE_PEER(context);
  return StatReplica(*request, DeadlineOf(*context), *response);
}

grpc::Status ClusterGrpcService::StatReplica(const mcos::v1::ClusterStatObjectRequest& request,
                                             absl::Time deadline,
                                             mcos::v1::ClusterStatObjectResponse& response) {
  if (auto s = ValidateKey(request.key()); !s.ok()) return ToGrpcStatus(s);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  auto record = b->local->Stat(request.key(), deadline);
  if (record.ok() && record->tombstone() && !request.include_tombstone()) {
    record = ObjectNotFound(request.key());
  }
  if (!record.ok()) return ToGrpcStatus(record.status());
  *response.mutable_info() = app_.ToInfo(request.key(), *record);
  *response.mutable_version() = record->version();
  response.set_tombstone(record->tombstone());
  *response.mutable_record() = *std::move(record);
  return grpc::Status::OK;
}

grpc::Status ClusterGrpcService::ClusterDownloadObject(
    grpc::ServerContext* context, const mcos::v1::ClusterDownloadObjectRequest* request,
    grpc::ServerWriter<mcos::v1::ClusterDownloadObjectResponse>* writer) {
  MCOS_REQUIRE_PEER(context);
  if (auto s = ValidateKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  auto reader =
      b->local->Open(request->key(), request->offset(), request->length(),
                     request->has_version() ? &request->version() : nullptr, DeadlineOf(*context));
  if (!reader.ok()) return ToGrpcStatus(reader.status());
  mcos::v1::ClusterDownloadObjectResponse out;
  *out.mutable_record() = (*reader)->record();
  bool open = writer->Write(out);
  out.clear_record();
  std::string data;
  while (open && (*reader)->Next(&data)) {
    out.set_data(std::move(data));
    open = writer->Write(out);
  }
  if (!open) {
    (*reader)->Cancel();
    (*reader)->Finish().IgnoreError();
    return grpc::Status::CANCELLED;  // the peer went away
  }
  return ToGrpcStatus((*reader)->Finish());
}

grpc::Status ClusterGrpcService::ClusterDeleteObject(
    grpc::ServerContext* context, const mcos::v1::ClusterDeleteObjectRequest* request,
    mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  return DeleteReplica(*request, DeadlineOf(*context), *response);
}

absl::Status ClusterGrpcService::CheckDelete(const mcos::v1::ClusterDeleteObjectRequest& request) {
  MCOS_RETURN_IF_ERROR(ValidateKey(request.key()));
  MCOS_RETURN_IF_ERROR(ValidateVersion(request.version()));
  if (!request.option().empty()) MCOS_RETURN_IF_ERROR(common::ValidateUserName(request.option()));
  return absl::OkStatus();
}

grpc::Status ClusterGrpcService::DeleteReplica(const mcos::v1::ClusterDeleteObjectRequest& request,
                                               absl::Time deadline,
                                               mcos::v1::ClusterWriteResponse& response) {
  if (absl::Status valid = CheckDelete(request); !valid.ok()) return ToGrpcStatus(valid);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  app_.hlc_.Observe(request.version().hlc());
  auto ack = b->local->Delete(
      request.key(),
      replication::TombstoneRecord(request.version(), request.partition(), request.option()),
      deadline);
  if (!ack.ok()) return ToGrpcStatus(ack.status());
  FillWrite(*ack, /*with_prior=*/true, response);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* ClusterGrpcService::ClusterListObjects(
    grpc::CallbackServerContext* context, const mcos::v1::StorageListRequest* request,
    mcos::v1::StorageListResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status valid = app_.CheckPeer(*context);
  if (valid.ok()) valid = common::ValidateOwnerId(request->user());
  if (valid.ok()) valid = common::ValidateContainerName(request->container());
  if (valid.ok()) {
    valid =
        common::ValidateObjectListing(request->prefix(), request->marker(), request->delimiter());
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  auto b = app_.backends();
  if (!b.ok()) {
    reactor->Finish(ToGrpcStatus(b.status()));
    return reactor;
  }
  // A scan of thousands of records: not on a gRPC callback thread.
  Run([reactor, request, response, local = b->local, deadline = DeadlineOf(*context)] {
    reactor->Finish(ToGrpcStatus(local->List(*request, deadline, response)));
  });
  return reactor;
}

grpc::Status ClusterGrpcService::ReadLocal(
    const grpc::ServerContext& context, const std::string& option,
    const std::function<absl::Status(replication::Replica&, absl::Time)>& read) {
  if (auto s = common::ValidateOptionField(option); !s.ok()) return ToGrpcStatus(s);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  return ToGrpcStatus(read(*b->local, DeadlineOf(context)));
}

grpc::Status ClusterGrpcService::ClusterPartitionDigests(
    grpc::ServerContext* context, const mcos::v1::PartitionDigestsRequest* request,
    mcos::v1::PartitionDigestsResponse* response) {
  MCOS_REQUIRE_PEER(context);
  return ReadLocal(*context, request->option(), [&](replication::Replica& local, absl::Time d) {
    MCOS_ASSIGN_OR_RETURN(*response, local.PartitionDigests(*request, d));
    return absl::OkStatus();
  });
}

grpc::Status ClusterGrpcService::ClusterScanPartition(grpc::ServerContext* context,
                                                      const mcos::v1::ScanPartitionRequest* request,
                                                      mcos::v1::ScanPartitionResponse* response) {
  MCOS_REQUIRE_PEER(context);
  return ReadLocal(*context, request->option(), [&](replication::Replica& local, absl::Time d) {
    MCOS_ASSIGN_OR_RETURN(*response, local.ScanPartition(*request, d));
    return absl::OkStatus();
  });
}

namespace {

// The tombstones a peer asks about: at most 1000, each a valid key and version.
absl::Status ValidateTombstones(
    const google::protobuf::RepeatedPtrField<mcos::v1::TombstoneRef>& tombstones) {
  if (tombstones.size() > 1000) {
    return absl::InvalidArgumentError("at most 1000 tombstones per call");
  }
  for (const auto& t : tombstones) {
    MCOS_RETURN_IF_ERROR(ValidateKey(t.key()));
    MCOS_RETURN_IF_ERROR(ValidateVersion(t.version()));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status ClusterGrpcService::ClusterCheckTombstones(
    grpc::ServerContext* context, const mcos::v1::CheckTombstonesRequest* request,
    mcos::v1::CheckTombstonesResponse* response) {
  MCOS_REQUIRE_PEER(context);
  if (auto s = ValidateTombstones(request->tombstones()); !s.ok()) return ToGrpcStatus(s);
  auto checks = app_.CheckTombstones(*request, DeadlineOf(*context));
  if (!checks.ok()) return ToGrpcStatus(checks.status());
  *response = *std::move(checks);
  return grpc::Status::OK;
}

grpc::Status ClusterGrpcService::ClusterPurgeTombstones(
    grpc::ServerContext* context, const mcos::v1::PurgeTombstonesRequest* request,
    mcos::v1::PurgeTombstonesResponse* response) {
  MCOS_REQUIRE_PEER(context);
  if (auto s = ValidateTombstones(request->tombstones()); !s.ok()) return ToGrpcStatus(s);
  auto purged = app_.PurgeTombstones(*request, DeadlineOf(*context));
  if (!purged.ok()) return ToGrpcStatus(purged.status());
  *response = *std::move(purged);
  return grpc::Status::OK;
}

// The server side of one ClusterReplicate stream. Reads the peer's messages while fewer than
// kMaxUnanswered of its operations are unanswered (beyond that, HTTP/2 flow control holds the
// peer back), hands each operation to the service's threads, and writes the answers as they come,
// all that queued meanwhile in one message. Deletes itself once gRPC is done with the call and no
// operation it started is still running.
class ReplicateReactor final : public grpc::ServerBidiReactor<mcos::v1::ClusterReplicateRequest,
                                                              mcos::v1::ClusterReplicateResponse> {
 public:
  static constexpr size_t kMaxUnanswered = 1000;

  // A stream authenticated once must not outlive its credential (an hour): after its lifetime
  // (ServerOptions::replication_stream_lifetime, 20 minutes) the server reads no more, answers
  // what it read and finishes; coordinators move to a new stream every 5 minutes, so this only
  // ends streams of clients that do not.
  ReplicateReactor(ClusterGrpcService& service, const absl::Status& admitted)
      : service_(service), opened_(absl::Now()), lifetime_(service.StreamLifetime()) {
    if (!admitted.ok()) {
      finished_ = true;
      Finish(ToGrpcStatus(admitted));
      return;
    }
    reading_ = true;
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    std::vector<std::shared_ptr<mcos::v1::ClusterReplicateOp>> writes;  // started unlocked
    std::unique_lock<std::mutex> lock(mu_);
    reading_ = false;
    if (!ok) {
      reads_done_ = true;  // the peer closed its side (or the call ended)
      MaybeFinish(lock);
      return;
    }
    if (absl::Now() - opened_ > lifetime_) {
      // Its credential was checked too long ago: nothing more is done on this stream.
      reads_done_ = true;
      for (const auto& op : in_.ops()) {
        auto* answer = queued_.add_answers();
        answer->set_id(op.id());
        answer->set_code(grpc::StatusCode::UNAVAILABLE);
        answer->set_message(absl::StrCat("the replication stream is older than ",
                                         absl::FormatDuration(lifetime_),
                                         "; send on a new one (nothing was done)"));
      }
      in_.Clear();
    } else if (absl::Status accepted = Accept(lock, writes); !accepted.ok()) {
      reads_done_ = true;
      failure_ = ToGrpcStatus(accepted);
      MaybeFinish(lock);
      return;
    }
    MaybeWrite(lock);
    MaybeRead(lock);
    MaybeFinish(lock);
    lock.unlock();
    // Counted in running_: this reactor stays until each is answered.
    for (const auto& op : writes) Start(op);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) broken_ = true;
    MaybeWrite(lock);
    MaybeFinish(lock);
  }

  void OnCancel() override {
    std::unique_lock<std::mutex> lock(mu_);
    broken_ = true;
    MaybeFinish(lock);
  }

  void OnDone() override {
    std::unique_lock<std::mutex> lock(mu_);
    done_ = true;
    if (running_ == 0) {
      lock.unlock();
      delete this;
    }
  }

 private:
  // Checks every operation of the message read and starts them (mu_ held), but for the writes
  // the storage takes without blocking, moved to `writes` for Start once mu_ is released (they may
  // be answered before they return).
  absl::Status Accept(std::unique_lock<std::mutex>& /*lock*/,
                      std::vector<std::shared_ptr<mcos::v1::ClusterReplicateOp>>& writes) {
    if (in_.ops().empty()) {
      return absl::InvalidArgumentError(
          "a ClusterReplicate message carries at least one operation");
    }
    for (const auto& op : in_.ops()) {
      if (op.op_case() == mcos::v1::ClusterReplicateOp::OP_NOT_SET) {
        return absl::InvalidArgumentError(
            absl::StrCat("ClusterReplicate operation ", op.id(),
                         " names no operation (put, create, update, delete or stat)"));
      }
      if (!unanswered_.insert(op.id()).second) {
        return absl::InvalidArgumentError(absl::StrCat("ClusterReplicate operation id ", op.id(),
                                                       " is used by an unanswered operation"));
      }
    }
    const absl::Time now = absl::Now();
    const bool stats_here = service_.ReadsInProcess();
    const bool writes_here = service_.WritesInProcess();
    for (auto& op : *in_.mutable_ops()) {
      const absl::Time deadline =
          op.timeout_ms() == 0 ? absl::InfiniteFuture() : now + absl::Milliseconds(op.timeout_ms());
      if (stats_here && op.has_stat()) {
        // A read of the engine in this process takes microseconds: answered here, without
        // waking another thread.
        unanswered_.erase(op.id());
        *queued_.add_answers() = service_.Do(op, deadline);
        continue;
      }
      auto owned = std::make_shared<mcos::v1::ClusterReplicateOp>();
      owned->Swap(&op);
      ++running_;
      if (writes_here && !owned->has_stat()) {
        writes.push_back(std::move(owned));
        continue;
      }
      service_.Run([this, owned = std::move(owned), deadline] {
        mcos::v1::ClusterReplicateAnswer answer;
        if (absl::Now() > deadline) {
          answer.set_id(owned->id());
          answer.set_code(grpc::StatusCode::DEADLINE_EXCEEDED);
          answer.set_message(
              "the operation waited at this cluster beyond its timeout and was not done");
        } else {
          answer = service_.Do(*owned, deadline);
        }
        Answered(std::move(answer));
      });
    }
    in_.Clear();
    return absl::OkStatus();
  }

  // Starts a write on this thread; its answer comes through Answered (from the storage engine's
  // committing thread), or the service's threads do it if the storage cannot take it so.
  void Start(const std::shared_ptr<mcos::v1::ClusterReplicateOp>& op) {
    if (service_.DoAsync(*op, [this](mcos::v1::ClusterReplicateAnswer answer) {
          Answered(std::move(answer));
        })) {
      return;
    }
    const absl::Time deadline = op->timeout_ms() == 0
                                    ? absl::InfiniteFuture()
                                    : absl::Now() + absl::Milliseconds(op->timeout_ms());
    service_.Run([this, op, deadline] { Answered(service_.Do(*op, deadline)); });
  }

  void Answered(mcos::v1::ClusterReplicateAnswer answer) {
    std::unique_lock<std::mutex> lock(mu_);
    --running_;
    if (done_) {
      if (running_ == 0) {
        lock.unlock();
        delete this;
      }
      return;
    }
    unanswered_.erase(answer.id());
    if (!finished_) *queued_.add_answers() = std::move(answer);
    MaybeWrite(lock);
    MaybeRead(lock);
    MaybeFinish(lock);
  }

  void MaybeWrite(std::unique_lock<std::mutex>& /*lock*/) {
    if (writing_ || finished_ || broken_ || queued_.answers().empty()) return;
    out_.Clear();
    out_.Swap(&queued_);
    writing_ = true;
    StartWrite(&out_);
  }

  void MaybeRead(std::unique_lock<std::mutex>& /*lock*/) {
    if (reading_ || reads_done_ || finished_ || broken_ || unanswered_.size() >= kMaxUnanswered) {
      return;
    }
    reading_ = true;
    StartRead(&in_);
  }

  // Finishes once nothing is left to answer (or the stream broke, or the peer broke the protocol)
  // and no write is under way.
  void MaybeFinish(std::unique_lock<std::mutex>& /*lock*/) {
    if (finished_ || writing_) return;
    const bool drained = reads_done_ && unanswered_.empty() && queued_.answers().empty();
    if (!drained && !broken_ && failure_.ok()) return;
    finished_ = true;
    Finish(broken_ ? grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled")
                   : failure_);
  }

  ClusterGrpcService& service_;
  const absl::Time opened_;
  const absl::Duration lifetime_;
  std::mutex mu_;
  mcos::v1::ClusterReplicateRequest in_;
  mcos::v1::ClusterReplicateResponse out_;     // being written
  mcos::v1::ClusterReplicateResponse queued_;  // answers waiting for the next write
  absl::flat_hash_set<uint64_t> unanswered_;
  grpc::Status failure_;  // the peer broke the protocol: the stream ends with this
  int running_ = 0;       // operations handed to the service's threads
  bool reading_ = false;
  bool reads_done_ = false;
  bool writing_ = false;
  bool broken_ = false;  // cancelled, or a write failed
  bool finished_ = false;
  bool done_ = false;
};

grpc::ServerBidiReactor<mcos::v1::ClusterReplicateRequest, mcos::v1::ClusterReplicateResponse>*
ClusterGrpcService::ClusterReplicate(grpc::CallbackServerContext* context) {
  return new ReplicateReactor(*this, app_.CheckPeer(*context));
}

absl::Duration ClusterGrpcService::StreamLifetime() const {
  return app_.options_.replication_stream_lifetime;
}

bool ClusterGrpcService::ReadsInProcess() {
  auto b = app_.backends();
  return b.ok() && b->local->in_process();
}

bool ClusterGrpcService::WritesInProcess() {
  auto b = app_.backends();
  return b.ok() && b->local->in_process() && b->local->writes_async();
}

void ClusterGrpcService::Run(std::function<void()> task) {
  app_.coordinator_->Schedule(app_.cluster_id_, std::move(task));
}

mcos::v1::ClusterReplicateAnswer ClusterGrpcService::Do(const mcos::v1::ClusterReplicateOp& op,
                                                        absl::Time deadline) {
  grpc::Status status;
  const char* kind = "none";
  mcos::v1::ClusterWriteResponse write;
  switch (op.op_case()) {
    case mcos::v1::ClusterReplicateOp::kPut:
      kind = "put";
      status = PutSmall(op.put(), deadline, write);
      break;
    case mcos::v1::ClusterReplicateOp::kCreate:
      kind = "create";
      status = PutSmall(op.create(), deadline, write, mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST);
      break;
    case mcos::v1::ClusterReplicateOp::kUpdate:
      kind = "update";
      status = PutSmall(op.update(), deadline, write, mcos::v1::WRITE_PRECONDITION_MUST_EXIST);
      break;
    case mcos::v1::ClusterReplicateOp::kDelete:
      kind = "delete";
      status = DeleteReplica(op.delete_(), deadline, write);
      break;
    case mcos::v1::ClusterReplicateOp::kStat: {
      mcos::v1::ClusterReplicateAnswer answer;
      answer.set_id(op.id());
      status = StatReplica(op.stat(), deadline, *answer.mutable_stat());
      Count("stat", status);
      if (!status.ok()) {
        answer.clear_response();
        answer.set_code(status.error_code());
        answer.set_message(status.error_message());
      }
      return answer;
    }
    case mcos::v1::ClusterReplicateOp::OP_NOT_SET:
      status = Invalid("the operation names no operation (put, create, update, delete or stat)");
      break;
  }
  return Answer(op.id(), kind, status, std::move(write));
}

bool ClusterGrpcService::DoAsync(
    mcos::v1::ClusterReplicateOp& op,
    const std::function<void(mcos::v1::ClusterReplicateAnswer)>& done) {
  auto b = app_.backends();
  if (!b.ok() || !b->local->writes_async()) return false;
  const uint64_t id = op.id();
  auto answer_write = [this, id, done](const char* kind, bool with_prior,
                                       const absl::StatusOr<replication::WriteAck>& ack) {
    mcos::v1::ClusterWriteResponse write;
    if (ack.ok()) FillWrite(*ack, with_prior, write);
    done(Answer(id, kind, ToGrpcStatus(ack.status()), std::move(write)));
  };
  if (op.has_delete_()) {
    const mcos::v1::ClusterDeleteObjectRequest& request = op.delete_();
    if (absl::Status valid = CheckDelete(request); !valid.ok()) {
      answer_write("delete", true, valid);
      return true;
    }
    app_.hlc_.Observe(request.version().hlc());
    b->local->DeleteAsync(
        request.key(),
        replication::TombstoneRecord(request.version(), request.partition(), request.option()),
        absl::InfiniteFuture(), [answer_write](const absl::StatusOr<replication::WriteAck>& ack) {
          answer_write("delete", true, ack);
        });
    return true;
  }
  mcos::v1::ClusterPutSmallObjectRequest* request = nullptr;
  const char* kind = nullptr;
  auto precondition = mcos::v1::WRITE_PRECONDITION_NONE;
  if (op.has_put()) {
    request = op.mutable_put();
    kind = "put";
  } else if (op.has_create()) {
    request = op.mutable_create();
    kind = "create";
    precondition = mcos::v1::WRITE_PRECONDITION_MUST_NOT_EXIST;
  } else if (op.has_update()) {
    request = op.mutable_update();
    kind = "update";
    precondition = mcos::v1::WRITE_PRECONDITION_MUST_EXIST;
  } else {
    return false;
  }
  auto record = CheckSmall(*request);
  if (!record.ok()) {
    answer_write(kind, false, record.status());
    return true;
  }
  app_.hlc_.Observe(record->version().hlc());
  auto data = std::make_shared<const std::string>(std::move(*request->mutable_data()));
  auto answered = [answer_write, kind,
                   precondition](const absl::StatusOr<replication::WriteAck>& ack) {
    answer_write(kind, precondition != mcos::v1::WRITE_PRECONDITION_NONE, ack);
  };
  if (precondition == mcos::v1::WRITE_PRECONDITION_NONE) {
    b->local->PutAsync(request->header().key(), *record, std::move(data), absl::InfiniteFuture(),
                       std::move(answered));
  } else {
    b->local->PutIfAsync(request->header().key(), *record, std::move(data), absl::InfiniteFuture(),
                         precondition, std::move(answered));
  }
  return true;
}

void ClusterGrpcService::Count(const char* kind, const grpc::Status& status) {
  replicated_
      .Add({{"kind", kind},
            {"code", common::StatusCodeName(static_cast<absl::StatusCode>(status.error_code()))}})
      .Increment();
}

mcos::v1::ClusterReplicateAnswer ClusterGrpcService::Answer(uint64_t id, const char* kind,
                                                            const grpc::Status& status,
                                                            mcos::v1::ClusterWriteResponse write) {
  Count(kind, status);
  mcos::v1::ClusterReplicateAnswer answer;
  answer.set_id(id);
  if (status.ok()) {
    *answer.mutable_write() = std::move(write);
  } else {
    answer.set_code(status.error_code());
    answer.set_message(status.error_message());
  }
  return answer;
}

}  // namespace mcos::server
