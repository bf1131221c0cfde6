#include "storage/storage_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace mcos::storage {

using common::FromGrpcStatus;

StorageClient::StorageClient(std::shared_ptr<grpc::Channel> channel, absl::Duration unary_deadline)
    : stub_(mcos::v1::StorageService::NewStub(std::move(channel))),
      unary_deadline_(unary_deadline) {}

void StorageClient::SetDeadline(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + unary_deadline_));
}

absl::StatusOr<mcos::v1::StoragePutResponse> StorageClient::Put(
    const mcos::v1::StoragePutHeader& header, const ChunkSource& source, size_t chunk_bytes) {
  chunk_bytes = std::clamp<size_t>(chunk_bytes, 1, size_t{1} << 20);
  grpc::ClientContext context;
  mcos::v1::StoragePutResponse response;
  auto writer = stub_->Put(&context, &response);
  mcos::v1::StoragePutRequest message;
  *message.mutable_header() = header;
  // Buffer hints let gRPC coalesce the header, the chunks and the finish of a small object into one
  // write, and WriteLast merges the finish with the half-close.
  const auto buffered = grpc::WriteOptions().set_buffer_hint();
  bool open = writer->Write(message, buffered);
  std::string* data = message.mutable_data();
  while (open) {
    data->resize(chunk_bytes);
    auto n = source(data->data(), chunk_bytes);
    if (!n.ok()) {
      context.TryCancel();
      writer->Finish().IgnoreError();
      return n.status();
    }
    if (*n == 0) break;
    data->resize(*n);
    open = writer->Write(message, buffered);
  }
  if (open) {
    message.mutable_finish();
    writer->WriteLast(message, grpc::WriteOptions());
  } else {
    writer->WritesDone();
  }
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<mcos::v1::StoragePutResponse> StorageClient::PutBytes(
    const mcos::v1::StoragePutHeader& header, absl::string_view content) {
  size_t pos = 0;
  return Put(header, [&](char* buffer, size_t capacity) -> absl::StatusOr<size_t> {
    const size_t n = std::min(capacity, content.size() - pos);
    std::copy_n(content.data() + pos, n, buffer);
    pos += n;
    return n;
  });
}

absl::StatusOr<mcos::v1::ObjectRecord> StorageClient::Get(
    const mcos::v1::StorageGetRequest& request, const ChunkSink& sink) {
  grpc::ClientContext context;
  auto reader = stub_->Get(&context, request);
  mcos::v1::StorageGetResponse message;
  mcos::v1::ObjectRecord record;
  bool have_record = false;
  while (reader->Read(&message)) {
    if (message.has_record()) {
      record = std::move(*message.mutable_record());
      have_record = true;
      continue;
    }
    if (!have_record) {
      context.TryCancel();
      reader->Finish().IgnoreError();
      return absl::InternalError("the storage node sent data before the object's record");
    }
    if (auto s = sink(message.data()); !s.ok()) {
      context.TryCancel();
      reader->Finish().IgnoreError();
      return s;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!have_record) return absl::InternalError("the storage node sent no record");
  return record;
}

absl::StatusOr<mcos::v1::ObjectRecord> StorageClient::Stat(const mcos::v1::ObjectKey& key,
                                                           bool include_tombstone) {
  grpc::ClientContext context;
  SetDeadline(context);
  mcos::v1::StorageStatRequest request;
  *request.mutable_key() = key;
  request.set_include_tombstone(include_tombstone);
  mcos::v1::StorageStatResponse response;
  const grpc::Status status = stub_->Stat(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::move(*response.mutable_record());
}

absl::StatusOr<mcos::v1::StorageDeleteResponse> StorageClient::Delete(
    const mcos::v1::StorageDeleteRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  mcos::v1::StorageDeleteResponse response;
  const grpc::Status status = stub_->Delete(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<mcos::v1::StorageListResponse> StorageClient::List(
    const mcos::v1::StorageListRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  mcos::v1::StorageListResponse response;
  const grpc::Status status = stub_->List(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace mcos::storage
