#include "controller/passwords.h"

#include <argon2.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace mcos::controller {

absl::StatusOr<std::string> HashPassword(absl::string_view password, const Argon2Params& params) {
  if (password.empty()) return absl::InvalidArgumentError("the password is empty");
  if (password.size() > 1024) {
    return absl::InvalidArgumentError("the password is longer than 1024 bytes");
  }
  unsigned char salt[16];
  if (RAND_bytes(salt, sizeof(salt)) != 1) return absl::InternalError("no random bytes for a salt");
  const size_t len = argon2_encodedlen(params.iterations, params.memory_kib, params.parallelism,
                                       sizeof(salt), 32, Argon2_id);
  std::vector<char> encoded(len);
  const int rc = argon2id_hash_encoded(params.iterations, params.memory_kib, params.parallelism,
                                       password.data(), password.size(), salt, sizeof(salt), 32,
                                       encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    return absl::InternalError(absl::StrCat("argon2id: ", argon2_error_message(rc)));
  }
  return std::string(encoded.data());
}

bool VerifyPassword(const std::string& encoded, absl::string_view password) {
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace mcos::controller
