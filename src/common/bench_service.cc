#include "common/bench_service.h"

#include <algorithm>

namespace mcos::common {

grpc::Status BenchGrpcService::Sink(grpc::ServerContext* context,
                                    grpc::ServerReader<mcos::v1::BenchChunk>* reader,
                                    mcos::v1::BenchSummary* summary) {
  mcos::v1::BenchChunk chunk;
  uint64_t bytes = 0;
  uint64_t chunks = 0;
  while (reader->Read(&chunk)) {
    bytes += chunk.data().size();
    ++chunks;
  }
  summary->set_bytes(bytes);
  summary->set_chunks(chunks);
  return grpc::Status::OK;
}

grpc::Status BenchGrpcService::Source(grpc::ServerContext* context,
                                      const mcos::v1::BenchSourceRequest* request,
                                      grpc::ServerWriter<mcos::v1::BenchChunk>* writer) {
  const uint64_t chunk_size = std::clamp<uint64_t>(request->chunk_size(), 1, 4u << 20);
  mcos::v1::BenchChunk chunk;
  uint64_t left = request->bytes();
  while (left > 0) {
    const uint64_t n = std::min(left, chunk_size);
    if (chunk.data().size() != n) chunk.mutable_data()->assign(n, '\0');
    if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
    left -= n;
  }
  return grpc::Status::OK;
}

}  // namespace mcos::common
