#include "common/channel.h"

#include <grpcpp/generic/generic_stub.h>

#include <mutex>

#include "common/channel_arguments.h"

namespace mcos::common {

namespace {

// gRPC (1.51, with the epoll1 engine) runs the callback API's reactions on the threads of one
// completion queue shared by every channel that made a callback call, and counted by them: when
// the last such channel is destroyed, the queue is shut down, its threads joined and the queue
// freed. A channel whose last reference goes on one of those threads (a ClientContext destroyed
// in a reaction, once the stub is gone) frees the queue under the thread that runs on it, which
// then aborts in gRPC ("prior > 0" in grpc_cq_internal_unref; seen in a test process that
// destroyed a peer replica right after its calls). So the process keeps one channel that never
// goes and holds the queue: a call is created on it (that takes the queue's reference) and never
// started, so the channel never resolves or connects anything.
void KeepCallbackThreads() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct Keeper : grpc::ClientUnaryReactor {
      std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
          "unix-abstract:mcos-never-connected", grpc::InsecureChannelCredentials());
      grpc::ClientContext ctx;
      grpc::ByteBuffer request;
      grpc::ByteBuffer response;
    };
    static auto* const keeper = new Keeper;  // reachable until exit, never destroyed
    grpc::GenericStub stub(keeper->channel);
    stub.PrepareUnaryCall(&keeper->ctx, "/mcos.KeepCallbackThreads/Never", grpc::StubOptions(),
                          &keeper->request, &keeper->response, keeper);
  });
}

}  // namespace

std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint) {
  KeepCallbackThreads();
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments());
}

std::shared_ptr<grpc::Channel> ConnectInternal(const std::string& endpoint, ServiceAuth& auth,
                                               bool own_connection) {
  KeepCallbackThreads();
  ChannelTuning tuning;
  tuning.own_connection = own_connection;
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      endpoint, auth.channel_credentials(), ClientChannelArguments(tuning), auth.Interceptors());
}

}  // namespace mcos::common
