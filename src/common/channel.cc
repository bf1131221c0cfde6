#include "common/channel.h"

#include "common/channel_arguments.h"

namespace mcos::common {

std::shared_ptr<grpc::Channel> ConnectInsecure(const std::string& endpoint) {
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments());
}

std::shared_ptr<grpc::Channel> ConnectInternal(const std::string& endpoint, ServiceAuth& auth,
                                               bool own_connection) {
  ChannelTuning tuning;
  tuning.own_connection = own_connection;
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      endpoint, auth.channel_credentials(), ClientChannelArguments(tuning), auth.Interceptors());
}

}  // namespace mcos::common
