#include "common/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mcos::common {
namespace {

using grpc::experimental::FileWatcherCertificateProvider;

unsigned ReloadSeconds() { return static_cast<unsigned>(absl::ToInt64Seconds(kTlsReloadInterval)); }

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file (a chain's leaf), or null.
std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto pem = ReadSmallFile(path);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", pem.status().message(), "; give a readable PEM file"));
  }
  return pem;
}

// The first certificate of the PEM file `path` named by `flag`, or why there is none.
absl::StatusOr<std::unique_ptr<X509, X509Deleter>> LoadCertificate(const std::string& flag,
                                                                   const std::string& path) {
  auto pem = ReadPem(flag, path);
  if (!pem.ok()) return pem.status();
  auto cert = FirstCertificate(*pem);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return cert;
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  return ss.str();
}

absl::Status ValidateTlsFiles(const TlsFiles& f) {
  if (f.cert_file.empty() != f.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together: give both (the certificate and its private key)");
  }
  if (!f.client_ca_file.empty() && f.cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first");
  }
  if (!f.cert_file.empty()) {
    auto cert = LoadCertificate("--tls-cert", f.cert_file);
    if (!cert.ok()) return cert.status();
    auto key_pem = ReadPem("--tls-key", f.key_file);
    if (!key_pem.ok()) return key_pem.status();
    Bio bio = MemoryBio(*key_pem);
    std::unique_ptr<EVP_PKEY, KeyDeleter> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (key == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key: ", f.key_file, " holds no unencrypted PEM private key"));
    }
    if (X509_check_private_key(cert->get(), key.get()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key: ", f.key_file, " is not the private key of the certificate in ",
                       f.cert_file));
    }
  }
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"--tls-ca", f.ca_file},
        {"--tls-client-ca", f.client_ca_file}}) {
    if (path.empty()) continue;
    if (auto ca = LoadCertificate(flag, path); !ca.ok()) return ca.status();
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& f) {
  if (!f.serves_tls()) return grpc::InsecureServerCredentials();
  std::shared_ptr<FileWatcherCertificateProvider> provider =
      f.client_ca_file.empty() ? std::make_shared<FileWatcherCertificateProvider>(
                                     f.key_file, f.cert_file, ReloadSeconds())
                               : std::make_shared<FileWatcherCertificateProvider>(
                                     f.key_file, f.cert_file, f.client_ca_file, ReloadSeconds());
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!f.client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& f) {
  if (!f.calls_with_tls()) return grpc::InsecureChannelCredentials();
  std::shared_ptr<FileWatcherCertificateProvider> provider =
      f.cert_file.empty()
          ? std::make_shared<FileWatcherCertificateProvider>(f.ca_file, ReloadSeconds())
          : std::make_shared<FileWatcherCertificateProvider>(f.key_file, f.cert_file, f.ca_file,
                                                             ReloadSeconds());
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!f.cert_file.empty()) options.watch_identity_key_cert_pairs();
  return grpc::experimental::TlsCredentials(options);
}

bool IsLoopbackListen(const std::string& listen) {
  absl::string_view host = listen;
  if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  return false;
}

}  // namespace mcos::common
