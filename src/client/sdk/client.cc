#include "client/sdk/client.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/channel_arguments.h"
#include "common/stream_watchdog.h"

namespace mcos::client {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return {static_cast<absl::StatusCode>(s.error_code()), s.error_message()};
}

// Runs the call first, then returns its response (never evaluate both in one expression: the
// order of function arguments is unspecified).
template <typename T, typename Call>
absl::StatusOr<T> Run(Call&& call) {
  T response;
  const grpc::Status s = call(&response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::Status ReadPem(const std::string& path, const char* what, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in || ss.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  }
  *out = ss.str();
  return absl::OkStatus();
}

// TLS when any TLS option is set (a file that cannot be read leaves the verification to the
// system's roots, which refuse the server: never plaintext), plaintext otherwise.
std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const ClientOptions& o,
                                                          absl::Status* setup) {
  if (!o.tls && o.tls_ca_file.empty() && o.tls_cert_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    setup->Update(ReadPem(o.tls_ca_file, "the TLS CA file", &ssl.pem_root_certs));
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    setup->Update(absl::InvalidArgumentError(
        "a TLS client certificate needs its private key, and a key its certificate"));
  } else if (!o.tls_cert_file.empty()) {
    setup->Update(ReadPem(o.tls_cert_file, "the TLS client certificate", &ssl.pem_cert_chain));
    setup->Update(ReadPem(o.tls_key_file, "the TLS client key", &ssl.pem_private_key));
  }
  return grpc::SslCredentials(ssl);
}

// Registers a blocking stream with the watchdog for its lifetime.
class IdleWatch {
 public:
  IdleWatch(common::StreamWatchdog& watchdog, grpc::ClientContext* context)
      : watchdog_(watchdog),
        stream_(std::make_shared<common::CancelOnIdle<grpc::ClientContext>>(context)) {
    watchdog_.Add(stream_);
  }
  ~IdleWatch() {
    watchdog_.Remove(stream_.get());
    stream_->Detach();
  }
  IdleWatch(const IdleWatch&) = delete;
  IdleWatch& operator=(const IdleWatch&) = delete;
  void Touch() { stream_->Touch(); }
  bool fired() { return stream_->fired(); }

 private:
  common::StreamWatchdog& watchdog_;
  std::shared_ptr<common::CancelOnIdle<grpc::ClientContext>> stream_;
};

}  // namespace

Client::Client(const std::string& endpoint, ClientOptions options)
    : options_(std::move(options)), token_(options_.token) {
  common::ChannelTuning tuning;
  tuning.connect_timeout = options_.connect_timeout;
  tuning.keepalive = options_.keepalive;
  tuning.own_connection = options_.own_connection;
  auto channel = grpc::CreateCustomChannel(endpoint, MakeCredentials(options_, &setup_),
                                           common::ClientChannelArguments(tuning));
  user_ = mcos::v1::UserService::NewStub(channel);
  admin_ = mcos::v1::AdminService::NewStub(channel);
  watchdog_ = std::make_unique<common::StreamWatchdog>(options_.stream_idle_timeout);
  watchdog_->Start();
}

Client::~Client() = default;

absl::Status Client::StreamStatus(const grpc::Status& s, bool idled, const char* what,
                                  const char* advice) const {
  if (idled) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the ", what, " made no progress for ", absl::FormatDuration(options_.stream_idle_timeout),
        ": the server or the network stopped answering (raise --timeout for slower links)",
        advice));
  }
  return FromGrpc(s);
}

void Client::set_token(const std::string& token) {
  absl::MutexLock lock(&mu_);
  token_ = token;
}

std::string Client::token() {
  absl::MutexLock lock(&mu_);
  return token_;
}

void Client::Prepare(grpc::ClientContext& ctx, bool unary) {
  const std::string t = token();
  if (!t.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", t));
  if (unary) ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
}

absl::StatusOr<mcos::v1::LoginResponse> Client::Login(const std::string& user,
                                                      const std::string& password) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  mcos::v1::LoginRequest req;
  req.set_user_name(user);
  req.set_password(password);
  mcos::v1::LoginResponse resp;
  grpc::Status s = user_->Login(&ctx, req, &resp);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    // A controller (mcos-controller) serves AdminService only: log in there.
    grpc::ClientContext admin_ctx;
    admin_ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
    s = admin_->Login(&admin_ctx, req, &resp);
  }
  if (!s.ok()) return FromGrpc(s);
  set_token(resp.token());
  return resp;
}

absl::StatusOr<mcos::v1::ListContainersResponse> Client::ListContainers(const std::string& prefix,
                                                                        const std::string& marker,
                                                                        uint32_t limit) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::ListContainersRequest req;
  req.set_prefix(prefix);
  req.set_marker(marker);
  req.set_limit(limit);
  return Run<mcos::v1::ListContainersResponse>(
      [&](auto* resp) { return user_->ListContainers(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ContainerInfo> Client::CreateContainer(const std::string& container,
                                                                const std::string& option) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::CreateContainerRequest req;
  req.set_container(container);
  req.set_option(option);
  return Run<mcos::v1::ContainerInfo>(
      [&](auto* resp) { return user_->CreateContainer(&ctx, req, resp); });
}

absl::Status Client::DeleteContainer(const std::string& container) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::DeleteContainerRequest req;
  req.set_container(container);
  mcos::v1::DeleteContainerResponse resp;
  return FromGrpc(user_->DeleteContainer(&ctx, req, &resp));
}

absl::StatusOr<mcos::v1::ListObjectsResponse> Client::ListObjects(
    const mcos::v1::ListObjectsRequest& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  return Run<mcos::v1::ListObjectsResponse>(
      [&](auto* resp) { return user_->ListObjects(&ctx, request, resp); });
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::Put(PutMode mode, const std::string& container,
                                                 const std::string& object, std::istream& in,
                                                 const PutOptions& options) {
  grpc::ClientContext ctx;
  Prepare(ctx, false);
  IdleWatch idle(*watchdog_, &ctx);
  mcos::v1::ObjectInfo info;
  auto writer = mode == PutMode::kUpdate ? user_->UpdateObject(&ctx, &info)
                                         : user_->CreateObject(&ctx, &info);
  mcos::v1::PutObjectRequest msg;
  auto* h = msg.mutable_header();
  h->set_container(container);
  h->set_object(object);
  h->set_content_type(options.content_type);
  for (const auto& [k, v] : options.metadata) (*h->mutable_metadata())[k] = v;
  if (options.size) h->set_size(*options.size);
  h->set_md5_hex(options.md5_hex);
  h->set_overwrite(mode == PutMode::kCreateOrReplace);
  const auto buffered = grpc::WriteOptions().set_buffer_hint();
  bool open = writer->Write(msg, buffered);
  const uint64_t total = options.size.value_or(0);
  uint64_t done = 0;
  std::string* data = msg.mutable_data();
  while (open) {
    data->resize(kChunk);
    in.read(data->data(), static_cast<std::streamsize>(kChunk));
    if (in.bad()) {
      ctx.TryCancel();
      writer->Finish().IgnoreError();
      return absl::DataLossError("cannot read the input; nothing was stored");
    }
    const auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    data->resize(n);
    open = writer->Write(msg, buffered);
    idle.Touch();
    done += n;
    if (options.progress) options.progress(done, total);
    if (n < kChunk) break;
  }
  // The finish message tells the server the content is complete, so it commits at once (an
  // upload that ends without it and without a declared size waits out the server's settle time).
  if (open) {
    msg.mutable_finish()->set_size(done);
    writer->WriteLast(msg, grpc::WriteOptions());
  } else {
    writer->WritesDone();
  }
  const grpc::Status s = writer->Finish();
  if (!s.ok()) {
    return StreamStatus(s, idle.fired(), "upload",
                        "; stat the object to see whether it was stored");
  }
  return info;
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::PutObject(const std::string& container,
                                                       const std::string& object, std::istream& in,
                                                       const PutOptions& options) {
  return Put(PutMode::kCreateOrReplace, container, object, in, options);
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::CreateObject(const std::string& container,
                                                          const std::string& object,
                                                          std::istream& in,
                                                          const PutOptions& options) {
  return Put(PutMode::kCreate, container, object, in, options);
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::UpdateObject(const std::string& container,
                                                          const std::string& object,
                                                          std::istream& in,
                                                          const PutOptions& options) {
  return Put(PutMode::kUpdate, container, object, in, options);
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::StatObject(const std::string& container,
                                                        const std::string& object) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::StatObjectRequest req;
  req.set_container(container);
  req.set_object(object);
  return Run<mcos::v1::ObjectInfo>([&](auto* resp) { return user_->StatObject(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ObjectInfo> Client::DownloadObject(const std::string& container,
                                                            const std::string& object,
                                                            std::ostream& out,
                                                            const GetOptions& options) {
  grpc::ClientContext ctx;
  Prepare(ctx, false);
  IdleWatch idle(*watchdog_, &ctx);
  mcos::v1::DownloadObjectRequest req;
  req.set_container(container);
  req.set_object(object);
  req.set_offset(options.offset);
  req.set_length(options.length);
  auto reader = user_->DownloadObject(&ctx, req);
  mcos::v1::DownloadObjectResponse msg;
  mcos::v1::ObjectInfo info;
  uint64_t done = 0;
  uint64_t total = 0;
  while (reader->Read(&msg)) {
    idle.Touch();
    if (msg.has_info()) {
      info = msg.info();
      const uint64_t rest = info.size() > options.offset ? info.size() - options.offset : 0;
      total = options.length > 0 ? std::min(options.length, rest) : rest;
      continue;
    }
    out.write(msg.data().data(), static_cast<std::streamsize>(msg.data().size()));
    if (!out) {
      ctx.TryCancel();
      reader->Finish().IgnoreError();
      return absl::DataLossError("cannot write the output");
    }
    done += msg.data().size();
    if (options.progress) options.progress(done, total);
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return StreamStatus(s, idle.fired(), "download", "");
  return info;
}

absl::StatusOr<std::string> Client::DeleteObject(const std::string& container,
                                                 const std::string& object) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::DeleteObjectRequest req;
  req.set_container(container);
  req.set_object(object);
  mcos::v1::DeleteObjectResponse resp;
  const grpc::Status s = user_->DeleteObject(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return resp.version();
}

void WatchCancel::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (call_ != nullptr) call_->TryCancel();
}

absl::Status Client::WatchObjects(
    const std::string& container, const std::string& prefix,
    const std::function<bool(const mcos::v1::ObjectChange&)>& on_change,
    const std::function<void()>& on_ready, WatchCancel* cancel) {
  grpc::ClientContext ctx;
  Prepare(ctx, false);
  if (cancel != nullptr) {
    absl::MutexLock lock(&cancel->mu_);
    if (cancel->cancelled_) return absl::OkStatus();
    cancel->call_ = &ctx;
  }
  absl::Cleanup forget = [cancel] {
    if (cancel == nullptr) return;
    absl::MutexLock lock(&cancel->mu_);
    cancel->call_ = nullptr;
  };
  auto cancelled = [cancel] {
    if (cancel == nullptr) return false;
    absl::MutexLock lock(&cancel->mu_);
    return cancel->cancelled_;
  };
  mcos::v1::WatchObjectsRequest req;
  req.set_container(container);
  req.set_prefix(prefix);
  auto reader = user_->WatchObjects(&ctx, req);
  // The server sends its headers once it has subscribed.
  reader->WaitForInitialMetadata();
  if (on_ready) on_ready();
  mcos::v1::ObjectChange change;
  while (reader->Read(&change)) {
    if (!on_change(change)) {
      ctx.TryCancel();
      reader->Finish().IgnoreError();
      return absl::OkStatus();
    }
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok() && !cancelled()) return FromGrpc(s);
  return absl::OkStatus();
}

absl::StatusOr<mcos::v1::UserInfo> Client::AddUser(const std::string& name,
                                                   const std::string& password, bool admin,
                                                   const std::string& identity) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::AddUserRequest req;
  req.set_name(name);
  req.set_password(password);
  req.set_role(admin ? "admin" : "user");
  req.set_identity(identity);
  return Run<mcos::v1::UserInfo>([&](auto* resp) { return admin_->AddUser(&ctx, req, resp); });
}

absl::Status Client::RemoveUser(const std::string& name) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::RemoveUserRequest req;
  req.set_name(name);
  mcos::v1::RemoveUserResponse resp;
  return FromGrpc(admin_->RemoveUser(&ctx, req, &resp));
}

absl::Status Client::SetPassword(const std::string& name, const std::string& password) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::SetPasswordRequest req;
  req.set_name(name);
  req.set_password(password);
  mcos::v1::SetPasswordResponse resp;
  return FromGrpc(admin_->SetPassword(&ctx, req, &resp));
}

absl::StatusOr<mcos::v1::ListUsersResponse> Client::ListUsers() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::ListUsersRequest req;
  return Run<mcos::v1::ListUsersResponse>(
      [&](auto* resp) { return admin_->ListUsers(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ClusterStatus> Client::GetCluster(const std::string& id) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::GetClusterRequest req;
  req.set_id(id);
  return Run<mcos::v1::ClusterStatus>(
      [&](auto* resp) { return admin_->GetCluster(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ListClustersResponse> Client::ListClusters() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::ListClustersRequest req;
  return Run<mcos::v1::ListClustersResponse>(
      [&](auto* resp) { return admin_->ListClusters(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ClusterInfo> Client::AddCluster(const std::string& controller_endpoint) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::AddClusterRequest req;
  req.set_controller_endpoint(controller_endpoint);
  return Run<mcos::v1::ClusterInfo>(
      [&](auto* resp) { return admin_->AddCluster(&ctx, req, resp); });
}

absl::Status Client::RemoveCluster(const std::string& id) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::RemoveClusterRequest req;
  req.set_id(id);
  return Run<mcos::v1::RemoveClusterResponse>(
             [&](auto* resp) { return admin_->RemoveCluster(&ctx, req, resp); })
      .status();
}

absl::StatusOr<mcos::v1::RemoveClusterResponse> Client::RemoveCluster(
    const mcos::v1::RemoveClusterRequest& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  return Run<mcos::v1::RemoveClusterResponse>(
      [&](auto* resp) { return admin_->RemoveCluster(&ctx, request, resp); });
}

absl::StatusOr<mcos::v1::RepairStatus> Client::GetRepairStatus() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::GetRepairStatusRequest req;
  return Run<mcos::v1::RepairStatus>(
      [&](auto* resp) { return admin_->GetRepairStatus(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::RebalanceStatus> Client::GetRebalanceStatus() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::GetRebalanceStatusRequest req;
  return Run<mcos::v1::RebalanceStatus>(
      [&](auto* resp) { return admin_->GetRebalanceStatus(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::RebalanceStatus> Client::PauseRebalance(bool paused) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  return Run<mcos::v1::RebalanceStatus>([&](auto* resp) {
    return paused ? admin_->PauseRebalance(&ctx, mcos::v1::PauseRebalanceRequest(), resp)
                  : admin_->ResumeRebalance(&ctx, mcos::v1::ResumeRebalanceRequest(), resp);
  });
}

absl::StatusOr<mcos::v1::RebalanceStatus> Client::SetRebalanceRate(double mb_per_second) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::SetRebalanceRateRequest req;
  req.set_max_mb_per_second(mb_per_second);
  return Run<mcos::v1::RebalanceStatus>(
      [&](auto* resp) { return admin_->SetRebalanceRate(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ListRingsResponse> Client::ListRings() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::ListRingsRequest req;
  return Run<mcos::v1::ListRingsResponse>(
      [&](auto* resp) { return admin_->ListRings(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::Ring> Client::CreateRing(const mcos::v1::Ring& ring) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::CreateRingRequest req;
  *req.mutable_ring() = ring;
  return Run<mcos::v1::Ring>([&](auto* resp) { return admin_->CreateRing(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::UpdateRingResponse> Client::UpdateRing(
    const mcos::v1::UpdateRingRequest& req) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  return Run<mcos::v1::UpdateRingResponse>(
      [&](auto* resp) { return admin_->UpdateRing(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::ListOptionsResponse> Client::ListOptions() {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::ListOptionsRequest req;
  return Run<mcos::v1::ListOptionsResponse>(
      [&](auto* resp) { return admin_->ListOptions(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::Option> Client::AddOption(const mcos::v1::Option& option) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::AddOptionRequest req;
  *req.mutable_option() = option;
  return Run<mcos::v1::Option>([&](auto* resp) { return admin_->AddOption(&ctx, req, resp); });
}

absl::StatusOr<mcos::v1::SetOptionRingResponse> Client::SetOptionRing(
    const mcos::v1::SetOptionRingRequest& req) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  return Run<mcos::v1::SetOptionRingResponse>(
      [&](auto* resp) { return admin_->SetOptionRing(&ctx, req, resp); });
}

absl::Status Client::RemoveOption(const std::string& name) {
  grpc::ClientContext ctx;
  Prepare(ctx, true);
  mcos::v1::RemoveOptionRequest req;
  req.set_name(name);
  mcos::v1::RemoveOptionResponse resp;
  return FromGrpc(admin_->RemoveOption(&ctx, req, &resp));
}

}  // namespace mcos::client
