// Every error a client can provoke on the network path has its documented code and a message a
// person can act on: requests that do not parse (a string that is not valid UTF-8, a malformed
// message), credentials given twice, upload messages that are not what they claim. Each case here
// answered INTERNAL with an empty message (or the wrong code) before.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/sdk/client.h"
#include "mcos/v1/user.grpc.pb.h"
#include "tests/support/cluster_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos {
namespace {

using client::Client;

// Field `field` (wire type 2) holding `bytes`, as protobuf encodes it.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out;
  out.push_back(static_cast<char>((field << 3) | 2));
  out.push_back(static_cast<char>(bytes.size()));  // short fields only
  return out + bytes;
}

const std::string kNotUtf8("f\xff\xfeo", 4);

class WrongCodesE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    cluster_ = new testing::ClusterProcess(MCOS_CLUSTER_BIN, dir_->path());
    ASSERT_TRUE(cluster_->Start().ok());
    ASSERT_TRUE(cluster_->AddUser("fred", "fred-pw").ok());
    Client fred(cluster_->endpoint());
    ASSERT_TRUE(fred.Login("fred", "fred-pw").ok());
    token_ = new std::string(fred.token());
    ASSERT_TRUE(fred.CreateContainer("box").ok());
    std::istringstream in("kept");
    ASSERT_TRUE(fred.CreateObject("box", "keep", in, {}).ok());
  }
  static void TearDownTestSuite() {
    cluster_->Stop();
    delete cluster_;
    delete dir_;
    delete token_;
  }

  // Sends `body` as the raw request of a unary UserService method.
  static grpc::Status RawUnary(const std::string& method, const std::string& body,
                               bool with_token = true) {
    auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    if (with_token) ctx.AddMetadata("authorization", "Bearer " + *token_);
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&ctx, "/mcos.v1.UserService/" + method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  static testing::TempDir* dir_;
  static testing::ClusterProcess* cluster_;
  static std::string* token_;
};

testing::TempDir* WrongCodesE2eTest::dir_ = nullptr;
testing::ClusterProcess* WrongCodesE2eTest::cluster_ = nullptr;
std::string* WrongCodesE2eTest::token_ = nullptr;

TEST_F(WrongCodesE2eTest, StringsThatAreNotUtf8AreInvalidArguments) {
  const std::pair<std::string, std::string> cases[] = {
      {"StatObject", LengthDelimited(1, kNotUtf8) + LengthDelimited(2, "o")},
      {"StatObject", LengthDelimited(1, "box") + LengthDelimited(2, kNotUtf8)},
      {"CreateContainer", LengthDelimited(1, kNotUtf8)},
      {"ListObjects", LengthDelimited(1, kNotUtf8)},
      {"DeleteObject", LengthDelimited(1, "box") + LengthDelimited(2, kNotUtf8)},
      {"Login", LengthDelimited(1, kNotUtf8) + LengthDelimited(2, "pw")},
  };
  for (const auto& [method, body] : cases) {
    const grpc::Status s = RawUnary(method, body, method != "Login");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_NE(s.error_message().find("UTF-8"), std::string::npos) << s.error_message();
  }
}

TEST_F(WrongCodesE2eTest, AMalformedMessageIsAnInvalidArgument) {
  // Field 1 claims 80 bytes and has 1.
  const grpc::Status s = RawUnary("StatObject", std::string("\x0a\x50\x41", 3));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("cannot be parsed"), std::string::npos) << s.error_message();
}

TEST_F(WrongCodesE2eTest, TwoAuthorizationHeadersAreUnauthenticated) {
  auto stub = mcos::v1::UserService::NewStub(
      grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + *token_);
  ctx.AddMetadata("authorization", "Bearer " + *token_);
  mcos::v1::StatObjectRequest req;
  req.set_container("box");
  req.set_object("keep");
  mcos::v1::ObjectInfo info;
  const grpc::Status s = stub->StatObject(&ctx, req, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("more than one"), std::string::npos) << s.error_message();
}

// Raw upload messages: a header whose names are not UTF-8, a malformed message in the middle of
// the data, a second header, an empty message, data after the finish message. Each is refused with
// INVALID_ARGUMENT and stores nothing.
TEST_F(WrongCodesE2eTest, MalformedUploadMessagesAreInvalidArgumentsAndStoreNothing) {
  auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const std::string header =
      LengthDelimited(1, LengthDelimited(1, "box") + LengthDelimited(2, "keep"));
  const std::string data = LengthDelimited(2, "replaced");
  const std::string finish = LengthDelimited(3, "");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{LengthDelimited(1, LengthDelimited(1, kNotUtf8) + LengthDelimited(2, "keep"))}, "UTF-8"},
      {{header, data, std::string("\x12\x50\x41", 3)}, "message 3"},
      {{header, data, header}, "exactly one header"},
      {{header, data, ""}, "neither data nor finish"},
      {{header, data, finish, data}, "follow the finish"},
      {{data}, "must be the header"},
  };
  for (const auto& [messages, expected] : cases) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + *token_);
    grpc::CompletionQueue cq;
    auto call = stub.PrepareCall(&ctx, "/mcos.v1.UserService/UpdateObject", &cq);
    void* tag = nullptr;
    bool ok = false;
    int next = 1;
    call->StartCall(reinterpret_cast<void*>(next++));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    for (const auto& m : messages) {
      grpc::Slice slice(m);
      grpc::ByteBuffer buffer(&slice, 1);
      call->Write(buffer, reinterpret_cast<void*>(next++));
      ASSERT_TRUE(cq.Next(&tag, &ok));
      if (!ok) break;  // the server answered already
    }
    call->WritesDone(reinterpret_cast<void*>(next++));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(next++));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(next++));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << expected;
    EXPECT_NE(status.error_message().find(expected), std::string::npos) << status.error_message();
  }
  Client fred(cluster_->endpoint());
  MCOS_ASSERT_OK(fred.Login("fred", "fred-pw"));
  std::ostringstream out;
  MCOS_ASSERT_OK(fred.DownloadObject("box", "keep", out));
  EXPECT_EQ(out.str(), "kept");
}

// A declared MD5 that does not match says so without the digests.
TEST_F(WrongCodesE2eTest, DigestMismatchesDoNotShowDigests) {
  Client fred(cluster_->endpoint());
  MCOS_ASSERT_OK(fred.Login("fred", "fred-pw"));
  std::istringstream in("something else");
  client::PutOptions options;
  options.md5_hex = std::string(32, 'a');
  auto put = fred.UpdateObject("box", "keep", in, options);
  MCOS_EXPECT_CODE(put, kInvalidArgument);
  EXPECT_NE(put.status().message().find("MD5 differs"), std::string::npos) << put.status();
  EXPECT_EQ(put.status().message().find(options.md5_hex), std::string::npos) << put.status();
  EXPECT_EQ(put.status().message().find("fred"), std::string::npos) << put.status();
}

}  // namespace
}  // namespace mcos
