#include "storage/storage_grpc_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace mcos::storage {
namespace {

using common::ToGrpcStatus;

grpc::Status Invalid(const std::string& message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, message};
}

// An option name, or empty (objects written without one).
absl::Status ValidatePutHeader(const mcos::v1::StoragePutHeader& h) {
  MCOS_RETURN_IF_ERROR(ValidateObjectKey(h.key()));
  if (!common::IsSet(h.version())) {
    return absl::InvalidArgumentError("the put header has no version stamp (version.hlc is 0)");
  }
  MCOS_RETURN_IF_ERROR(common::ValidateContentType(h.content_type()));
  MCOS_RETURN_IF_ERROR(common::ValidateUserMetadata(h.metadata()));
  MCOS_RETURN_IF_ERROR(common::ValidateOptionField(h.option()));
  MCOS_RETURN_IF_ERROR(common::ValidateHolders(h.holders()));
  if (!h.md5_hex().empty() && !common::IsHex(h.md5_hex(), 32)) {
    return absl::InvalidArgumentError("md5_hex must be 32 hex digits");
  }
  if (!h.sha256_hex().empty() && !common::IsHex(h.sha256_hex(), 64)) {
    return absl::InvalidArgumentError("sha256_hex must be 64 hex digits");
  }
  return absl::OkStatus();
}

absl::Status ValidatePutFinish(const mcos::v1::StoragePutFinish& f) {
  if (!f.md5_hex().empty() && !common::IsHex(f.md5_hex(), 32)) {
    return absl::InvalidArgumentError("finish.md5_hex must be 32 hex digits");
  }
  if (!f.sha256_hex().empty() && !common::IsHex(f.sha256_hex(), 64)) {
    return absl::InvalidArgumentError("finish.sha256_hex must be 64 hex digits");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateObjectKey(const mcos::v1::ObjectKey& key) {
  MCOS_RETURN_IF_ERROR(common::ValidateOwnerId(key.user()));
  MCOS_RETURN_IF_ERROR(common::ValidateContainerName(key.container()));
  return common::ValidateObjectName(key.object());
}

StorageGrpcService::StorageGrpcService(Engine& engine, prometheus::Registry& registry,
                                       common::ServiceAuth& auth,
                                       std::function<mcos::v1::DiskStatusResponse()> disk)
    : engine_(engine),
      auth_(auth),
      disk_(std::move(disk)),
      bytes_in_(prometheus::BuildCounter()
                    .Name("mcos_storage_bytes_received_total")
                    .Help("Object bytes received by Put")
                    .Register(registry)
                    .Add({})),
      bytes_out_(prometheus::BuildCounter()
                     .Name("mcos_storage_bytes_sent_total")
                     .Help("Object bytes sent by Get")
                     .Register(registry)
                     .Add({})) {}

grpc::Status StorageGrpcService::Put(grpc::ServerContext* context,
                                     grpc::ServerReader<mcos::v1::StoragePutRequest>* reader,
                                     mcos::v1::StoragePutResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  mcos::v1::StoragePutRequest message;
  if (!reader->Read(&message)) {
    return context->IsCancelled()
               ? grpc::Status::CANCELLED
               : Invalid("empty put stream: the first message must be the header");
  }
  if (!message.has_header()) return Invalid("the first message of a put must be the header");
  if (auto s = ValidatePutHeader(message.header()); !s.ok()) return ToGrpcStatus(s);
  auto stream = engine_.BeginPut(message.header());
  if (!stream.ok()) return ToGrpcStatus(stream.status());
  if (const auto& superseded = (*stream)->superseded()) {
    // Read the rest of the stream before answering: a caller still writing when the answer
    // arrives would see its stream cancelled (gRPC's in-process transport never delivers the
    // answer then), not "superseded".
    while (reader->Read(&message)) message.clear_part();
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    *response = ToPutResponse(*superseded);
    return grpc::Status::OK;
  }
  bool finished = false;
  mcos::v1::StoragePutFinish finish;
  while (reader->Read(&message)) {
    if (finished) return Invalid("a put stream may not continue after its finish message");
    switch (message.part_case()) {
      case mcos::v1::StoragePutRequest::kData: {
        const std::string& data = message.data();
        if (data.size() > kMaxClientChunkBytes) {
          return Invalid(absl::StrCat("a data chunk of ", data.size(),
                                      " bytes exceeds the 1 MiB limit; send smaller chunks; "
                                      "nothing was stored"));
        }
        if (auto s = (*stream)->Append(data); !s.ok()) return ToGrpcStatus(s);
        bytes_in_.Increment(static_cast<double>(data.size()));
        message.clear_part();  // a stalled upload holds no chunk here
        break;
      }
      case mcos::v1::StoragePutRequest::kFinish:
        finished = true;
        finish = std::move(*message.mutable_finish());
        break;
      default:
        return Invalid("a put stream has exactly one header, at its start");
    }
  }
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  if (!finished) {
    return Invalid("the put stream ended without its finish message; nothing was stored");
  }
  if (auto s = ValidatePutFinish(finish); !s.ok()) return ToGrpcStatus(s);
  auto result = (*stream)->Commit(finish);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = ToPutResponse(*std::move(result));
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::Get(grpc::ServerContext* context,
                                     const mcos::v1::StorageGetRequest* request,
                                     grpc::ServerWriter<mcos::v1::StorageGetResponse>* writer) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = ValidateObjectKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  auto reader = engine_.OpenReader(*request);
  if (!reader.ok()) return ToGrpcStatus(reader.status());
  mcos::v1::StorageGetResponse message;
  *message.mutable_record() = (*reader)->record();
  if (!writer->Write(message)) return grpc::Status::CANCELLED;
  while (true) {
    auto more = (*reader)->Next(message.mutable_data());
    if (!more.ok()) return ToGrpcStatus(more.status());
    if (!*more) break;
    const size_t n = message.data().size();
    if (!writer->Write(message)) return grpc::Status::CANCELLED;
    bytes_out_.Increment(static_cast<double>(n));
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::Stat(grpc::ServerContext* context,
                                      const mcos::v1::StorageStatRequest* request,
                                      mcos::v1::StorageStatResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = ValidateObjectKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  auto record = engine_.Stat(request->key(), request->include_tombstone());
  if (!record.ok()) return ToGrpcStatus(record.status());
  *response->mutable_record() = *std::move(record);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::Delete(grpc::ServerContext* context,
                                        const mcos::v1::StorageDeleteRequest* request,
                                        mcos::v1::StorageDeleteResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = ValidateObjectKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  if (!common::IsSet(request->version())) {
    return Invalid("the delete request has no version stamp (version.hlc is 0)");
  }
  if (auto s = common::ValidateOptionField(request->option()); !s.ok()) return ToGrpcStatus(s);
  auto result = engine_.Delete(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_applied(result->applied);
  *response->mutable_record() = std::move(result->record);
  response->set_reason(result->reason);
  response->set_prior(result->prior);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::List(grpc::ServerContext* context,
                                      const mcos::v1::StorageListRequest* request,
                                      mcos::v1::StorageListResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  absl::Status s = common::ValidateOwnerId(request->user());
  if (s.ok()) s = common::ValidateContainerName(request->container());
  if (s.ok()) {
    s = common::ValidateObjectListing(request->prefix(), request->marker(), request->delimiter());
  }
  if (!s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(engine_.List(*request, response));
}

grpc::Status StorageGrpcService::ContainerUsage(grpc::ServerContext* context,
                                                const mcos::v1::ContainerUsageRequest* request,
                                                mcos::v1::ContainerUsageResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  absl::Status s = common::ValidateOwnerId(request->user());
  if (s.ok() && request->containers_size() > static_cast<int>(kMaxListLimit)) {
    s = absl::InvalidArgumentError("at most 10000 containers per usage request");
  }
  for (const auto& c : request->containers()) {
    if (s.ok()) s = common::ValidateContainerName(c);
  }
  if (!s.ok()) return ToGrpcStatus(s);
  auto usage = engine_.Usage(*request);
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  *response = *std::move(usage);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::PartitionUsage(grpc::ServerContext* context,
                                                const mcos::v1::PartitionUsageRequest* request,
                                                mcos::v1::PartitionUsageResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = common::ValidateUserName(request->option()); !s.ok()) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("option: ", s.message())));
  }
  auto usage = engine_.PartitionUsage(*request);
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  *response = *std::move(usage);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::PartitionDigests(grpc::ServerContext* context,
                                                  const mcos::v1::PartitionDigestsRequest* request,
                                                  mcos::v1::PartitionDigestsResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = common::ValidateOptionField(request->option()); !s.ok()) return ToGrpcStatus(s);
  auto digests = engine_.PartitionDigests(*request);
  if (!digests.ok()) return ToGrpcStatus(digests.status());
  *response = *std::move(digests);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::ScanPartition(grpc::ServerContext* context,
                                               const mcos::v1::ScanPartitionRequest* request,
                                               mcos::v1::ScanPartitionResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = common::ValidateOptionField(request->option()); !s.ok()) return ToGrpcStatus(s);
  auto page = engine_.ScanPartition(*request);
  if (!page.ok()) return ToGrpcStatus(page.status());
  *response = *std::move(page);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::ReleaseKept(grpc::ServerContext* context,
                                             const mcos::v1::StorageReleaseKeptRequest* request,
                                             mcos::v1::StorageReleaseKeptResponse*) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = ValidateObjectKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  engine_.ReleaseKept(request->key(), request->version());
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::AddHolders(grpc::ServerContext* context,
                                            const mcos::v1::StorageAddHoldersRequest* request,
                                            mcos::v1::StorageAddHoldersResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (auto s = ValidateObjectKey(request->key()); !s.ok()) return ToGrpcStatus(s);
  if (!common::IsSet(request->version())) {
    return Invalid("AddHolders needs the version whose holders it adds");
  }
  if (request->holders().empty()) return Invalid("AddHolders needs at least one cluster");
  if (auto s = common::ValidateHolders(request->holders()); !s.ok()) return ToGrpcStatus(s);
  auto added = engine_.AddHolders(
      request->key(), request->version(),
      std::vector<std::string>(request->holders().begin(), request->holders().end()));
  if (!added.ok()) return ToGrpcStatus(added.status());
  response->set_added(*added);
  return grpc::Status::OK;
}

grpc::Status StorageGrpcService::DiskStatus(grpc::ServerContext* context,
                                            const mcos::v1::DiskStatusRequest*,
                                            mcos::v1::DiskStatusResponse* response) {
  MCOS_REQUIRE_SERVICE_CALLER(auth_, context);
  if (!disk_) return {grpc::StatusCode::UNIMPLEMENTED, "this storage node watches no disk"};
  *response = disk_();
  return grpc::Status::OK;
}

}  // namespace mcos::storage
