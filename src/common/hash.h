// Content hashes: streaming MD5 (etag) and SHA-256 (checksum) through OpenSSL's EVP, and the fast
// per-chunk checksum (XXH3-64) that guards every stored chunk. Not thread-safe per instance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace mcos::common {

class StreamingDigest {
 public:
  static StreamingDigest Md5();
  static StreamingDigest Sha256();

  StreamingDigest(StreamingDigest&&) noexcept;
  StreamingDigest& operator=(StreamingDigest&&) noexcept;
  ~StreamingDigest();

  void Update(absl::string_view data);
  // Lowercase hex of the digest; the digest cannot be updated afterwards.
  std::string FinishHex();

 private:
  explicit StreamingDigest(bool sha256);
  evp_md_ctx_st* ctx_ = nullptr;
};

// XXH3-64 of `data` seeded with `seed`. Part of the on-disk format: never change it.
uint64_t ChunkChecksum(absl::string_view data, uint64_t seed);
// XXH3-64 of `data` (unseeded).
uint64_t Hash64(absl::string_view data);

// XXH3-64 of content given in pieces (Hash64 of their concatenation): what a streamed replica write
// checks its content with, hop by hop, instead of computing MD5 and SHA-256 again.
class StreamingHash64 {
 public:
  StreamingHash64();
  StreamingHash64(StreamingHash64&&) noexcept;
  StreamingHash64& operator=(StreamingHash64&&) noexcept;
  ~StreamingHash64();

  void Update(absl::string_view data);
  // The hash of everything given so far (more may follow).
  uint64_t Digest() const;

 private:
  void* state_ = nullptr;  // XXH3_state_t
};

// True if `s` is exactly `len` lowercase or uppercase hex digits.
bool IsHex(absl::string_view s, size_t len);

}  // namespace mcos::common
