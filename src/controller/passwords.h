// Password hashing with argon2id (libargon2), in its self-describing encoded form.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcos::controller {

struct Argon2Params {
  uint32_t iterations = 2;
  uint32_t memory_kib = 64 * 1024;
  uint32_t parallelism = 1;
};

// The encoded argon2id hash of `password` with a fresh random salt. INVALID_ARGUMENT for an empty
// or over-long (> 1024 bytes) password.
absl::StatusOr<std::string> HashPassword(absl::string_view password, const Argon2Params& params);
// True if `password` matches `encoded` (constant time in the password).
bool VerifyPassword(const std::string& encoded, absl::string_view password);

}  // namespace mcos::controller
