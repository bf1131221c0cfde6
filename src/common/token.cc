#include "common/token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace mcos::common {

std::string TokenSigner::Mac(absl::string_view data) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  MCOS_CHECK(HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
                  &len) != nullptr);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string DeriveKey(absl::string_view key, absl::string_view purpose) {
  return TokenSigner(std::string(key)).Mac(purpose);
}

std::string TokenSigner::Sign(const mcos::v1::TokenClaims& claims) const {
  const std::string payload = absl::WebSafeBase64Escape(claims.SerializeAsString());
  return absl::StrCat(payload, ".", absl::WebSafeBase64Escape(Mac(payload)));
}

absl::StatusOr<mcos::v1::TokenClaims> TokenSigner::Verify(absl::string_view token,
                                                          absl::Time now) const {
  const size_t dot = token.find('.');
  if (dot == absl::string_view::npos || token.size() > 4096) {
    return absl::UnauthenticatedError("malformed token: log in again");
  }
  const absl::string_view payload = token.substr(0, dot);
  std::string mac;
  // Only the canonical encoding is accepted, so that one token has exactly one spelling (base64's
  // unused low bits in the last character would otherwise let several strings pass).
  if (!absl::WebSafeBase64Unescape(token.substr(dot + 1), &mac) ||
      absl::WebSafeBase64Escape(mac) != token.substr(dot + 1)) {
    return absl::UnauthenticatedError("malformed token: log in again");
  }
  const std::string expected = Mac(payload);
  if (mac.size() != expected.size() ||
      CRYPTO_memcmp(mac.data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError("invalid token signature: log in again");
  }
  std::string raw;
  mcos::v1::TokenClaims claims;
  if (!absl::WebSafeBase64Unescape(payload, &raw) || !claims.ParseFromString(raw)) {
    return absl::UnauthenticatedError("malformed token: log in again");
  }
  if (absl::FromUnixSeconds(claims.expires_unix()) <= now) {
    return absl::UnauthenticatedError("token expired: log in again");
  }
  return claims;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  MCOS_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) ==
             1);
  return absl::BytesToHexString(raw);
}

absl::StatusOr<std::string> LoadOrCreateKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string key(absl::StripAsciiWhitespace(ss.str()));
    if (key.size() < 32) {
      return absl::FailedPreconditionError(
          absl::StrCat("key file ", path, " holds fewer than 32 characters; replace it"));
    }
    return key;
  }
  const std::string key = RandomHex(32);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot create key file ", path));
  }
  const std::string line = key + "\n";
  const bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("cannot write key file ", path));
  return key;
}

absl::StatusOr<ClusterKeys> LoadClusterKeys(const std::string& cluster_key,
                                            const std::string& federation_secret_file) {
  ClusterKeys keys;
  keys.cluster = cluster_key;
  keys.user_tokens = cluster_key;
  if (federation_secret_file.empty()) return keys;
  struct stat st {};
  if (stat(federation_secret_file.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the federation secret file ", federation_secret_file,
                     ": it does not exist (make one with: head -c 32 /dev/urandom | base64 > FILE; "
                     "chmod 600 FILE; give every cluster of the federation the same file)"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the federation secret file ", federation_secret_file,
                     " is readable by group or others: chmod 600 it"));
  }
  std::ifstream in(federation_secret_file);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the federation secret file ", federation_secret_file));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string secret(absl::StripAsciiWhitespace(ss.str()));
  if (secret.size() < 32) {
    return absl::FailedPreconditionError(
        absl::StrCat("the federation secret in ", federation_secret_file, " has ", secret.size(),
                     " bytes; it needs at least 32 (head -c 32 /dev/urandom | base64 > FILE)"));
  }
  keys.user_tokens = DeriveKey(secret, "mcos federation user tokens v1");
  keys.peer = DeriveKey(secret, "mcos federation peers v1");
  keys.federation_id =
      absl::BytesToHexString(DeriveKey(secret, "mcos federation id v1")).substr(0, 16);
  return keys;
}

}  // namespace mcos::common
