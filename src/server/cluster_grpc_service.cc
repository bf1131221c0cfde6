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

grpc::Status ClusterGrpcService::Put(grpc::ServerContext* context,
                                     grpc::ServerReader<mcos::v1::ClusterPutObjectRequest>* reader,
                                     mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  mcos::v1::ClusterPutObjectRequest in;
  if (!reader->Read(&in) || !in.has_header()) {
    return Invalid("a replica write starts with its header; nothing was stored");
  }
  const mcos::v1::ClusterPutObjectHeader header = in.header();
  absl::Status valid = ValidateKey(header.key());
  if (valid.ok()) valid = ValidateVersion(header.version());
  if (valid.ok()) valid = common::ValidateContentType(header.content_type());
  if (valid.ok()) valid = common::ValidateUserMetadata(header.metadata());
  if (valid.ok() && !header.has_size()) {
    valid = absl::InvalidArgumentError("a replica write must declare its size");
  }
  if (valid.ok() && !common::IsHex(header.md5_hex(), 32)) {
    valid = absl::InvalidArgumentError("a replica write must carry md5_hex (32 hex digits)");
  }
  if (valid.ok() && !header.sha256_hex().empty() && !common::IsHex(header.sha256_hex(), 64)) {
    valid = absl::InvalidArgumentError("sha256_hex must be 64 hex digits");
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  // A replayed or late write is the storage service's to refuse: it reads the whole stream and
  // answers applied = false.
  auto sctx = grpc::ClientContext::FromServerContext(*context);
  mcos::v1::StoragePutResponse stored;
  auto writer = b->storage->stub().Put(sctx.get(), &stored);
  mcos::v1::StoragePutRequest out;
  auto* h = out.mutable_header();
  *h->mutable_key() = header.key();
  *h->mutable_version() = header.version();
  h->set_content_type(header.content_type());
  *h->mutable_metadata() = header.metadata();
  h->set_size(header.size());
  h->set_md5_hex(absl::AsciiStrToLower(header.md5_hex()));
  h->set_sha256_hex(absl::AsciiStrToLower(header.sha256_hex()));
  h->set_precondition(mcos::v1::WRITE_PRECONDITION_NONE);
  h->set_partition(header.partition());
  h->set_option(header.option());
  bool open = writer->Write(out);
  uint64_t received = 0;
  grpc::Status bad;
  while (open && reader->Read(&in)) {
    if (!in.has_data()) {
      bad = Invalid("a replica write carries one header, then only data; nothing was stored");
      break;
    }
    received += in.data().size();
    if (in.data().size() > kMaxChunk || received > header.size()) {
      bad = Invalid(in.data().size() > kMaxChunk
                        ? "a data chunk exceeds 1 MiB; nothing was stored"
                        : "more data than the header's size; nothing was stored");
      break;
    }
    out.set_data(std::move(*in.mutable_data()));
    open = writer->Write(out);
  }
  if (open) {
    if (bad.ok() && received == header.size() && !context->IsCancelled()) {
      out.mutable_finish()->set_size(header.size());
      writer->Write(out);
    } else {
      sctx->TryCancel();  // nothing is stored without the finish message
    }
  }
  // Else the storage service ended the stream itself (it holds this version or a newer one, or
  // refused the write): its status says which.
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!bad.ok()) return bad;
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  if (!open && s.error_code() == grpc::StatusCode::CANCELLED) {
    // gRPC's in-process transport reports a stream that the storage service ended early (it
    // holds this version or a newer one) as cancelled: ask it what it holds.
    auto held = b->storage->Stat(header.key(), /*include_tombstone=*/true);
    if (held.ok() && !common::IsNewer(header.version(), held->version())) {
      response->set_applied(false);
      *response->mutable_stored_version() = held->version();
      response->set_cluster(app_.cluster_id_);
      return grpc::Status::OK;
    }
    return {grpc::StatusCode::UNAVAILABLE,
            "this cluster's storage service ended the replica write; retry"};
  }
  if (received != header.size() && open) {
    return Invalid(absl::StrCat("the replica write ended after ", received, " of ", header.size(),
                                " bytes; nothing was stored"));
  }
  if (!s.ok()) return s;
  response->set_applied(stored.applied());
  *response->mutable_stored_version() = stored.record().version();
  response->set_cluster(app_.cluster_id_);
  return grpc::Status::OK;
}

grpc::Status ClusterGrpcService::ClusterStatObject(
    grpc::ServerContext* context, const mcos::v1::ClusterStatObjectRequest* request,
    mcos::v1::ClusterStatObjectResponse* response) {
  MCOS_REQUIRE_PEER(context);
  if (auto s = ValidateKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  auto record = b->storage->Stat(request->key(), request->include_tombstone());
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
  mcos::v1::StorageGetRequest req;
  *req.mutable_key() = request->key();
  req.set_offset(request->offset());
  req.set_length(request->length());
  if (request->has_version()) *req.mutable_version() = request->version();
  auto sctx = grpc::ClientContext::FromServerContext(*context);
  auto reader = b->storage->stub().Get(sctx.get(), req);
  mcos::v1::StorageGetResponse in;
  mcos::v1::ClusterDownloadObjectResponse out;
  while (reader->Read(&in)) {
    if (in.has_record()) {
      *out.mutable_record() = std::move(*in.mutable_record());
    } else {
      out.set_data(std::move(*in.mutable_data()));
    }
    if (!writer->Write(out)) {
      sctx->TryCancel();
      reader->Finish().IgnoreError();
      return grpc::Status::CANCELLED;
    }
  }
  return reader->Finish();
}

grpc::Status ClusterGrpcService::ClusterDeleteObject(
    grpc::ServerContext* context, const mcos::v1::ClusterDeleteObjectRequest* request,
    mcos::v1::ClusterWriteResponse* response) {
  MCOS_REQUIRE_PEER(context);
  absl::Status valid = ValidateKey(request->key());
  if (valid.ok()) valid = ValidateVersion(request->version());
  if (!valid.ok()) return ToGrpcStatus(valid);
  auto b = app_.backends();
  if (!b.ok()) return ToGrpcStatus(b.status());
  mcos::v1::StorageDeleteRequest req;
  *req.mutable_key() = request->key();
  *req.mutable_version() = request->version();
  req.set_precondition(mcos::v1::WRITE_PRECONDITION_NONE);
  req.set_partition(request->partition());
  req.set_option(request->option());
  auto result = b->storage->Delete(req);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_applied(result->applied());
  *response->mutable_stored_version() = result->record().version();
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
  auto listing = b->storage->List(*request);
  if (!listing.ok()) return ToGrpcStatus(listing.status());
  *response = *std::move(listing);
  return grpc::Status::OK;
}

}  // namespace mcos::server
