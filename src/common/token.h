// Signed bearer tokens: "<base64url(claims)>.<base64url(HMAC-SHA256(key, claims))>", where claims
// is the serialized mcos.v1.TokenClaims. Any process holding the federation key can check a token
// without asking anyone. Thread-safe (immutable after construction).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mcos/v1/common.pb.h"

namespace mcos::common {

class TokenSigner {
 public:
  friend std::string DeriveKey(absl::string_view key, absl::string_view purpose);
  // `key` must be at least 32 bytes.
  explicit TokenSigner(std::string key) : key_(std::move(key)) {}

  std::string Sign(const mcos::v1::TokenClaims& claims) const;
  // The claims of a token signed with this key and not expired at `now`. UNAUTHENTICATED (with a
  // message saying why: malformed, forged, expired) otherwise.
  absl::StatusOr<mcos::v1::TokenClaims> Verify(absl::string_view token, absl::Time now) const;

 private:
  std::string Mac(absl::string_view data) const;
  std::string key_;
};

inline constexpr char kRevokedTokenMessage[] =
    "this token was revoked (its user was removed or changed its password): log in again";

// The identity that owns a token's data (TokenClaims.uid, or the user name in tokens made before
// identities existed).
inline const std::string& TokenOwner(const mcos::v1::TokenClaims& claims) {
  return claims.uid().empty() ? claims.user() : claims.uid();
}

// A key for one purpose derived from `key` (HMAC-SHA256(key, purpose), 32 bytes): tokens signed
// with it never verify under `key` or under a key of another purpose.
std::string DeriveKey(absl::string_view key, absl::string_view purpose);
// Reads the key file at `path`, creating it (mode 0600, 32 random bytes, hex) if missing.
absl::StatusOr<std::string> LoadOrCreateKeyFile(const std::string& path);

// The keys a cluster's processes hold. Without a federation secret the cluster key signs users'
// tokens too (a cluster of its own); with one, users' tokens are signed with a key derived from
// the secret, so that a token from any cluster works at every cluster of the federation, while
// service credentials stay per cluster (a process of one cluster is nobody at another).
struct ClusterKeys {
  std::string cluster;        // service credentials of this cluster (ServiceAuth, kCluster)
  std::string user_tokens;    // users' and admins' tokens
  std::string peer;           // peer credentials (ServiceAuth, kFederation); empty: no federation
  std::string federation_id;  // names the federation (derived from the secret); empty: none
};
// Keys from the cluster key and the federation secret file (empty path: no federation). The
// secret must be at least 32 bytes and not readable by group or others: FAILED_PRECONDITION
// (naming the file and the fix) otherwise.
absl::StatusOr<ClusterKeys> LoadClusterKeys(const std::string& cluster_key,
                                            const std::string& federation_secret_file);
// Random bytes as lowercase hex (for ids, keys and generated passwords).
std::string RandomHex(size_t bytes);

}  // namespace mcos::common
