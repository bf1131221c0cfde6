#include "server/cluster_grpc_service.h"

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

// The time left of the peer's call, for the calls it makes here.
absl::Time DeadlineOf(const grpc::ServerContext& context) {
  const auto d = context.deadline();
  return d == std::chrono::system_clock::time_point::max() ? absl::InfiniteFuture()
                                                           : absl::FromChrono(d);
}

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
  return Store(*context, header.key(), *record, source, *response);
}

grpc::Status ClusterGrpcService::ClusterPutSmallObject(
    grpc::ServerContext* context, const mcos::v1::ClusterPutSmallObjectRequest* request,
    mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  if (!request->has_header())
    return Invalid("a replica write needs its header; nothing was stored");
  const mcos::v1::ClusterPutObjectHeader& header = request->header();
  if (absl::Status s = ValidateReplicaHeader(header); !s.ok()) return ToGrpcStatus(s);
  if (header.version_at_finish()) {
    return Invalid(
        "a small replica write carries its whole content: version_at_finish is for streamed ones "
        "(ClusterCreateObject); nothing was stored");
  }
  auto record = DeclaredRecord(header);
  if (!record.ok()) return ToGrpcStatus(record.status());
  if (request->data().size() > replication::kSmallWriteMax) {
    return Invalid(absl::StrCat("a small replica write carries at most ",
                                replication::kSmallWriteMax,
                                " bytes: stream it (ClusterCreateObject); nothing was stored"));
  }
  if (request->data().size() != record->size()) {
    return Invalid(absl::StrCat("the replica write carries ", request->data().size(),
                                " bytes, its header says ", record->size(),
                                "; nothing was stored"));
  }
  auto source =
      replication::MemoryReader(*record, std::make_shared<const std::string>(request->data()));
  return Store(*context, header.key(), *record, *source, *response);
}

grpc::Status ClusterGrpcService::Store(const grpc::ServerContext& context,
                                       const mcos::v1::ObjectKey& key,
                                       const mcos::v1::ObjectRecord& record,
                                       replication::ObjectReader& source,
                                       mcos::v1::ClusterWriteResponse& response) {
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  // This cluster's clock moves past every version it receives (a hybrid logical clock), so that
  // its own later writes are newer than what it holds.
  app_.hlc_.Observe(record.version().hlc());
  auto ack = b->local->Put(key, record, source, DeadlineOf(context));
  if (!ack.ok()) return ToGrpcStatus(ack.status());
  response.set_applied(ack->applied);
  *response.mutable_stored_version() = ack->stored_version;
  response.set_cluster(app_.cluster_id_);
  return grpc::Status::OK;
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
  if (auto s = ValidateKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  auto record = b->local->Stat(request->key(), DeadlineOf(*context));
  if (record.ok() && record->tombstone() && !request->include_tombstone()) {
    record = ObjectNotFound(request->key());
  }
  if (!record.ok()) return ToGrpcStatus(record.status());
  *response->mutable_info() = app_.ToInfo(request->key(), *record);
  *response->mutable_version() = record->version();
  response->set_tombstone(record->tombstone());
  *response->mutable_record() = *std::move(record);
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
  absl::Status valid = ValidateKey(request->key());
  if (valid.ok()) valid = ValidateVersion(request->version());
  if (valid.ok() && !request->option().empty()) valid = common::ValidateUserName(request->option());
  if (!valid.ok()) return ToGrpcStatus(valid);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  app_.hlc_.Observe(request->version().hlc());
  auto ack = b->local->Delete(
      request->key(),
      replication::TombstoneRecord(request->version(), request->partition(), request->option()),
      DeadlineOf(*context));
  if (!ack.ok()) return ToGrpcStatus(ack.status());
  response->set_applied(ack->applied);
  *response->mutable_stored_version() = ack->stored_version;
  response->set_cluster(app_.cluster_id_);
  return grpc::Status::OK;
}

grpc::Status ClusterGrpcService::ClusterListObjects(grpc::ServerContext* context,
                                                    const mcos::v1::StorageListRequest* request,
                                                    mcos::v1::StorageListResponse* response) {
  MCOS_REQUIRE_PEER(context);
  absl::Status valid = common::ValidateOwnerId(request->user());
  if (valid.ok()) valid = common::ValidateContainerName(request->container());
  if (valid.ok()) {
    valid =
        common::ValidateObjectListing(request->prefix(), request->marker(), request->delimiter());
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  auto listing = b->local->List(*request, DeadlineOf(*context));
  if (!listing.ok()) return ToGrpcStatus(listing.status());
  *response = *std::move(listing);
  return grpc::Status::OK;
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

}  // namespace mcos::server
