// Deterministic test content and its digests, and the object keys unit tests name.
#pragma once

#include <cstring>
#include <random>
#include <string>

#include "common/hash.h"
#include "mcos/v1/common.pb.h"

namespace mcos::testing {

// `n` pseudo-random bytes from `seed` (incompressible, reproducible).
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t r = rng();
    std::memcpy(&s[i], &r, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

inline std::string Md5Hex(const std::string& s) {
  auto d = common::StreamingDigest::Md5();
  d.Update(s);
  return d.FinishHex();
}

inline std::string Sha256Hex(const std::string& s) {
  auto d = common::StreamingDigest::Sha256();
  d.Update(s);
  return d.FinishHex();
}

// The key of `object` in container "c" of user "u" (or the ones given).
inline mcos::v1::ObjectKey Key(const std::string& object, const std::string& container = "c",
                               const std::string& user = "u") {
  mcos::v1::ObjectKey k;
  k.set_user(user);
  k.set_container(container);
  k.set_object(object);
  return k;
}

}  // namespace mcos::testing
