#include "common/channel.h"

namespace mcos::common {
namespace {

grpc::ChannelArguments Arguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  args.SetMaxSendMessageSize(64 * 1024 * 1024);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

}  // namespace

std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint) {
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), Arguments());
}

std::shared_ptr<grpc::Channel> ConnectInternal(const std::string& endpoint, ServiceAuth& auth) {
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      endpoint, grpc::InsecureChannelCredentials(), Arguments(), auth.Interceptors());
}

}  // namespace mcos::common
