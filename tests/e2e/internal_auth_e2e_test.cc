// Every method of every internal service refuses callers without the cluster's service credential:
// no credential is UNAUTHENTICATED, a user's or an admin's token PERMISSION_DENIED, a service token
// passes. The services and their methods are found through server reflection (their descriptors
// too), so a new internal service or method is covered without editing this test. Run on
// mcos-cluster (one port) and on each process of a split cluster.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/sdk/client.h"
#include "common/service_auth.h"
#include "common/token.h"
#include "tests/support/cluster_process.h"
#include "tests/support/split_cluster.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos {
namespace {

using client::Client;

// Services anyone may call (with their own checks: user tokens, admin tokens, none at all).
const std::set<std::string> kPublic = {
    "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection", "mcos.v1.UserService", "mcos.v1.AdminService"};

std::shared_ptr<grpc::Channel> Channel(const std::string& endpoint) {
  return grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
}

// What server reflection says about a process: its services, and a pool with the descriptors of
// their files (so this test needs no generated code of the services it checks).
struct Reflected {
  std::vector<std::string> services;
  google::protobuf::DescriptorPool pool;
};

// A generic streaming call driven one operation at a time (every kind of method fits on the wire).
class GenericCall {
 public:
  GenericCall(const std::string& endpoint, const std::string& path, const std::string& token)
      : stub_(Channel(endpoint)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    call_ = stub_.PrepareCall(&ctx_, path, &cq_);
    Step([&](void* t) { call_->StartCall(t); });
  }
  // False once the call is over.
  bool Write(const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    return Step([&](void* t) { call_->Write(buffer, t); });
  }
  std::optional<std::string> Read() {
    grpc::ByteBuffer response;
    if (!Step([&](void* t) { call_->Read(&response, t); })) return std::nullopt;
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (response.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return bytes;
  }
  // Half-closes, drains what the server still sends, and returns the status.
  grpc::Status Finish() {
    Step([&](void* t) { call_->WritesDone(t); });
    while (Read()) {
    }
    grpc::Status status;
    Step([&](void* t) { call_->Finish(&status, t); });
    return status;
  }

 private:
  template <typename Start>
  bool Step(Start start) {
    void* tag = nullptr;
    bool ok = false;
    start(reinterpret_cast<void*>(next_++));
    return cq_.Next(&tag, &ok) && ok;
  }

  grpc::GenericStub stub_;
  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  intptr_t next_ = 1;
};

// Field `field` of wire type 2 (a string or a message) holding `bytes`.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag(static_cast<uint32_t>(field << 3 | 2));
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
  coded.Trim();
  return out;
}

// The length-delimited values of field `field` of an encoded message.
std::vector<std::string> Field(const std::string& message, int field) {
  google::protobuf::UnknownFieldSet fields;
  std::vector<std::string> out;
  if (!fields.ParseFromString(message)) return out;
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& f = fields.field(i);
    if (f.number() == field && f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(f.length_delimited());
    }
  }
  return out;
}

// Speaks grpc.reflection.v1alpha without its generated code (the servers' libgrpc++_reflection
// carries the same descriptors, and a binary that has both aborts): requests and responses are
// encoded by hand. ServerReflectionRequest: list_services = 7, file_containing_symbol = 4.
// ServerReflectionResponse: file_descriptor_response = 4 {file_descriptor_proto = 1},
// list_services_response = 6 {service = 1 {name = 1}}.
void Reflect(const std::string& endpoint, Reflected& out) {
  GenericCall call(endpoint, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "");
  auto ask = [&](const std::string& request) -> std::string {
    EXPECT_TRUE(call.Write(request));
    auto response = call.Read();
    EXPECT_TRUE(response.has_value());
    return response.value_or("");
  };
  for (const auto& list : Field(ask(LengthDelimited(7, "*")), 6)) {
    for (const auto& service : Field(list, 1)) {
      for (const auto& name : Field(service, 1)) out.services.push_back(name);
    }
  }
  // The files of the services, with their dependencies (each sent once per stream).
  std::vector<google::protobuf::FileDescriptorProto> files;
  for (const std::string& name : out.services) {
    for (const auto& response : Field(ask(LengthDelimited(4, name)), 4)) {
      for (const auto& bytes : Field(response, 1)) files.emplace_back().ParseFromString(bytes);
    }
  }
  const grpc::Status status = call.Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Build them dependencies first.
  for (bool progress = true; progress && !files.empty();) {
    progress = false;
    for (auto it = files.begin(); it != files.end();) {
      bool ready = true;
      for (const auto& dep : it->dependency()) ready &= out.pool.FindFileByName(dep) != nullptr;
      if (ready && out.pool.FindFileByName(it->name()) == nullptr) {
        ASSERT_NE(out.pool.BuildFile(*it), nullptr) << it->name();
      }
      if (ready) {
        it = files.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
  EXPECT_TRUE(files.empty()) << "unresolved dependencies of " << files.front().name();
}

// Calls /service/method with one empty request message, as a stream (which fits every kind of
// method on the wire), and returns the status.
grpc::Status CallEmpty(const std::string& endpoint, const std::string& path,
                       const std::string& token) {
  GenericCall call(endpoint, path, token);
  call.Write("");
  return call.Finish();
}

// Calls every method of every internal service at `endpoint` four ways; returns the services it
// swept.
std::set<std::string> Sweep(const std::string& endpoint, const std::string& user_token,
                            const std::string& admin_token, const std::string& service_token,
                            const std::string& foreign_token) {
  std::set<std::string> swept;
  Reflected reflected;
  Reflect(endpoint, reflected);
  for (const std::string& name : reflected.services) {
    if (kPublic.count(name) > 0) continue;
    const google::protobuf::ServiceDescriptor* service = reflected.pool.FindServiceByName(name);
    EXPECT_NE(service, nullptr) << name << " is listed but its descriptor is not served";
    if (service == nullptr) continue;
    swept.insert(name);
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string path = absl::StrCat("/", name, "/", service->method(i)->name());
      const grpc::Status none = CallEmpty(endpoint, path, "");
      EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << path << " without a credential: " << none.error_message();
      const grpc::Status forged = CallEmpty(endpoint, path, foreign_token);
      EXPECT_EQ(forged.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << path << " with another cluster's service token: " << forged.error_message();
      for (const std::string* token : {&user_token, &admin_token}) {
        const grpc::Status s = CallEmpty(endpoint, path, *token);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << path << " with a " << (token == &user_token ? "user's" : "admin's")
            << " token: " << s.error_message();
      }
      // Passes the credential check (the empty request may still fail: Authenticate answers
      // UNAUTHENTICATED for a wrong password, and says so).
      const grpc::Status service_call = CallEmpty(endpoint, path, service_token);
      EXPECT_NE(service_call.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << path << " with the service credential: " << service_call.error_message();
      EXPECT_EQ(service_call.error_message().find("service credential"), std::string::npos)
          << path << " with the service credential: " << service_call.error_message();
    }
  }
  return swept;
}

std::string ServiceToken(const std::string& key_path) {
  auto key = common::LoadOrCreateKeyFile(key_path);
  EXPECT_TRUE(key.ok()) << key.status();
  return common::ServiceAuth(*key, "test").Token();
}

std::string ForeignToken() { return common::ServiceAuth(std::string(64, 'x'), "intruder").Token(); }

TEST(InternalAuthE2eTest, EveryInternalMethodOfMcosClusterNeedsTheServiceCredential) {
  testing::TempDir dir;
  testing::ClusterProcess cluster(MCOS_CLUSTER_BIN, dir.path());
  MCOS_ASSERT_OK(cluster.Start());
  MCOS_ASSERT_OK(cluster.AddUser("uma", "uma-pw"));
  Client user(cluster.endpoint());
  MCOS_ASSERT_OK(user.Login("uma", "uma-pw"));
  Client admin(cluster.endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kAdminPassword));
  const auto swept = Sweep(cluster.endpoint(), user.token(), admin.token(),
                           ServiceToken(cluster.token_key_path()), ForeignToken());
  EXPECT_EQ(swept, (std::set<std::string>{"mcos.v1.ClusterService", "mcos.v1.ControllerService",
                                          "mcos.v1.PeerControllerService",
                                          "mcos.v1.ResolverService", "mcos.v1.StorageService"}));
  // And a service credential is not a user: the user API refuses it.
  Client service_as_user(cluster.endpoint());
  service_as_user.set_token(ServiceToken(cluster.token_key_path()));
  MCOS_EXPECT_CODE(service_as_user.ListContainers(), kPermissionDenied);
}

TEST(InternalAuthE2eTest, EveryInternalMethodOfTheSplitProcessesNeedsTheServiceCredential) {
  testing::TempDir dir;
  testing::SplitCluster cluster(dir.path(), MCOS_STORAGE_BIN, MCOS_CONTROLLER_BIN,
                                MCOS_RESOLVER_BIN, MCOS_SERVER_BIN);
  MCOS_ASSERT_OK(cluster.Start());
  Client admin(cluster.controller->endpoint());
  MCOS_ASSERT_OK(admin.Login("admin", testing::kSplitAdminPassword));
  MCOS_ASSERT_OK(admin.AddUser("uma", "uma-pw", false));
  Client user(cluster.server->endpoint());
  MCOS_ASSERT_OK(user.Login("uma", "uma-pw"));
  const std::string service = ServiceToken(cluster.key_path);
  std::set<std::string> swept;
  for (const auto* p : {cluster.storage.get(), cluster.controller.get(), cluster.resolver.get(),
                        cluster.server.get()}) {
    for (const auto& s :
         Sweep(p->endpoint(), user.token(), admin.token(), service, ForeignToken())) {
      swept.insert(s);
    }
  }
  EXPECT_EQ(swept, (std::set<std::string>{"mcos.v1.ClusterService", "mcos.v1.ControllerService",
                                          "mcos.v1.PeerControllerService",
                                          "mcos.v1.ResolverService", "mcos.v1.StorageService"}));
}

}  // namespace
}  // namespace mcos
