#include "common/service_auth.h"

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

ServiceAuth::ServiceAuth(const std::string& cluster_key, std::string name)
    : service_signer_(DeriveKey(cluster_key, "mcos service credential v1")),
      user_signer_(cluster_key),
      name_(std::move(name)) {}

std::string ServiceAuth::Token() {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (now >= renew_at_) {
    mcos::v1::TokenClaims claims;
    claims.set_user(absl::StrCat("service:", name_));
    claims.set_role(kServiceRole);
    claims.set_issued_unix(absl::ToUnixSeconds(now));
    claims.set_expires_unix(absl::ToUnixSeconds(now + kLifetime));
    token_ = service_signer_.Sign(claims);
    renew_at_ = now + kLifetime - kRenewBefore;
  }
  return token_;
}

bool ServiceAuth::IsServiceToken(absl::string_view token) const {
  auto claims = service_signer_.Verify(token, absl::Now());
  return claims.ok() && claims->role() == kServiceRole;
}

absl::Status ServiceAuth::CheckCaller(const grpc::ServerContextBase& context) const {
  auto token = BearerToken(context);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        "no service credential: this is an internal service of the cluster, for its own services");
  }
  const absl::Time now = absl::Now();
  auto claims = service_signer_.Verify(*token, now);
  if (claims.ok() && claims->role() == kServiceRole) return absl::OkStatus();
  if (user_signer_.Verify(*token, now).ok()) {
    return absl::PermissionDeniedError(
        "a user's or admin's token is not accepted here: this is an internal service of the "
        "cluster, for its own services");
  }
  return absl::UnauthenticatedError(
      "invalid service credential (malformed, forged or expired): check that every process of "
      "the cluster has the same token key");
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ServiceAuth::Interceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<ServiceTokenInterceptorFactory>(*this));
  return out;
}

}  // namespace mcos::common
