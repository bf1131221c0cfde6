#include "common/hash.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <utility>

#include "common/status_macros.h"

namespace mcos::common {

StreamingDigest::StreamingDigest(bool sha256) : ctx_(EVP_MD_CTX_new()) {
  MCOS_CHECK(ctx_ != nullptr);
  MCOS_CHECK(EVP_DigestInit_ex(ctx_, sha256 ? EVP_sha256() : EVP_md5(), nullptr) == 1);
}

StreamingDigest StreamingDigest::Md5() { return StreamingDigest(false); }
StreamingDigest StreamingDigest::Sha256() { return StreamingDigest(true); }

StreamingDigest::StreamingDigest(StreamingDigest&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

StreamingDigest& StreamingDigest::operator=(StreamingDigest&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

StreamingDigest::~StreamingDigest() { EVP_MD_CTX_free(ctx_); }

void StreamingDigest::Update(absl::string_view data) {
  MCOS_CHECK(EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1);
}

std::string StreamingDigest::FinishHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  MCOS_CHECK(EVP_DigestFinal_ex(ctx_, md, &len) == 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(size_t{len} * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xF];
  }
  return out;
}

uint64_t ChunkChecksum(absl::string_view data, uint64_t seed) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

uint64_t Hash64(absl::string_view data) { return XXH3_64bits(data.data(), data.size()); }

StreamingHash64::StreamingHash64() : state_(XXH3_createState()) {
  MCOS_CHECK(state_ != nullptr);
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

StreamingHash64::StreamingHash64(StreamingHash64&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

StreamingHash64& StreamingHash64::operator=(StreamingHash64&& other) noexcept {
  std::swap(state_, other.state_);
  return *this;
}

StreamingHash64::~StreamingHash64() {
  if (state_ != nullptr) XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}

void StreamingHash64::Update(absl::string_view data) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data.data(), data.size());
}

uint64_t StreamingHash64::Digest() const {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

bool IsHex(absl::string_view s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!ok) return false;
  }
  return true;
}

}  // namespace mcos::common
