// The bare streaming reference for benchmarks (mcos.v1.BenchService): a sink that discards and a
// source that sends zeros. Stateless and thread-safe.
#pragma once

#include "mcos/v1/bench.grpc.pb.h"

namespace mcos::common {

class BenchGrpcService final : public mcos::v1::BenchService::Service {
 public:
  grpc::Status Sink(grpc::ServerContext* context, grpc::ServerReader<mcos::v1::BenchChunk>* reader,
                    mcos::v1::BenchSummary* summary) override;
  grpc::Status Source(grpc::ServerContext* context, const mcos::v1::BenchSourceRequest* request,
                      grpc::ServerWriter<mcos::v1::BenchChunk>* writer) override;
};

}  // namespace mcos::common
