#include "common/service_auth.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_auth.h"

namespace mcos::common {
namespace {

constexpr absl::Duration kLifetime = absl::Hours(1);
constexpr absl::Duration kRenewBefore = absl::Minutes(10);

// Adds `authorization: Bearer <service token>` to every call of a channel.
class ServiceTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ServiceTokenInterceptor(ServiceAuth& auth) : auth_(auth) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization",
                                                 absl::StrCat("Bearer ", auth_.Token()));
    }
    methods->Proceed();
  }

 private:
  ServiceAuth& auth_;
};

class ServiceTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ServiceTokenInterceptorFactory(ServiceAuth& auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new ServiceTokenInterceptor(auth_);
  }

 private:
  ServiceAuth& auth_;
};

}  // namespace

ServiceAuth::ServiceAuth(const std::string& key, std::string name, const std::string& user_key,
                         CredentialScope scope)
    : scope_(scope),
      service_signer_(DeriveKey(key, scope == CredentialScope::kCluster
                                         ? "mcos service credential v1"
                                         : "mcos peer credential v1")),
      user_signer_(user_key.empty() ? key : user_key),
      name_(std::move(name)) {}

namespace {
const char* RoleOf(CredentialScope scope) {
  return scope == CredentialScope::kCluster ? kServiceRole : kPeerRole;
}
}  // namespace

std::string ServiceAuth::Token() {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (now >= renew_at_) {
    mcos::v1::TokenClaims claims;
    claims.set_user(absl::StrCat(RoleOf(scope_), ":", name_));
    claims.set_role(RoleOf(scope_));
    claims.set_issued_unix(absl::ToUnixSeconds(now));
    claims.set_expires_unix(absl::ToUnixSeconds(now + kLifetime));
    token_ = service_signer_.Sign(claims);
    renew_at_ = now + kLifetime - kRenewBefore;
  }
  return token_;
}

bool ServiceAuth::IsServiceToken(absl::string_view token) const {
  auto claims = service_signer_.Verify(token, absl::Now());
  return claims.ok() && claims->role() == RoleOf(scope_);
}

absl::Status ServiceAuth::CheckCaller(const grpc::ServerContextBase& context) const {
  return CallerName(context).status();
}

absl::StatusOr<std::string> ServiceAuth::CallerName(const grpc::ServerContextBase& context) const {
  const bool cluster = scope_ == CredentialScope::kCluster;
  const char* what = cluster ? "an internal service of the cluster, for its own services"
                             : "a peer service of the federation, for its clusters only";
  auto token = BearerToken(context);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("no ", cluster ? "service" : "peer", " credential: this is ", what));
  }
  const absl::Time now = absl::Now();
  auto claims = service_signer_.Verify(*token, now);
  if (claims.ok() && claims->role() == RoleOf(scope_)) {
    absl::string_view caller = claims->user();
    const std::string prefix = absl::StrCat(RoleOf(scope_), ":");
    if (absl::StartsWith(caller, prefix)) caller.remove_prefix(prefix.size());
    return std::string(caller);
  }
  if (user_signer_.Verify(*token, now).ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("a user's or admin's token is not accepted here: this is ", what));
  }
  if (!claims.ok() && absl::StrContains(claims.status().message(), "token expired")) {
    // Signed with the right key: a credential lives an hour, so the caller's clock is an hour or
    // more behind this one's (or this one's ahead).
    return absl::UnauthenticatedError(absl::StrCat(
        "expired ", cluster ? "service" : "peer",
        " credential: by this process's clock it expired; the caller's clock and this one's "
        "differ by an hour or more: check their time synchronisation (NTP)"));
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "invalid ", cluster ? "service" : "peer", " credential (malformed, forged or expired): ",
      cluster ? "check that every process of the cluster has the same token key"
              : "check that every cluster of the federation has the same federation secret"));
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ServiceAuth::Interceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<ServiceTokenInterceptorFactory>(*this));
  return out;
}

}  // namespace mcos::common
