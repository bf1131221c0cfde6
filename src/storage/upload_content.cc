#include "storage/upload_content.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/version.h"

namespace mcos::storage {

using mcos::v1::ObjectKey;
using mcos::v1::ObjectRecord;

std::string Describe(const ObjectKey& key) {
  return absl::StrCat("object '", key.container(), "/", key.object(), "' of user '", key.user(),
                      "'");
}

const mcos::v1::Version& WantedVersion(const mcos::v1::StoragePutHeader& header,
                                       const mcos::v1::StoragePutFinish& finish) {
  return header.version_at_finish() ? finish.version() : header.version();
}

UploadContent::UploadContent(const mcos::v1::StoragePutHeader& header)
    : header_(header),
      digests_given_(header.version_at_finish()),
      md5_(common::StreamingDigest::Md5()),
      sha256_(common::StreamingDigest::Sha256()) {}

absl::Status UploadContent::Add(absl::string_view data) {
  return Add(data, [] { return absl::OkStatus(); });
}

absl::Status UploadContent::Add(absl::string_view data,
                                absl::FunctionRef<absl::Status()> meanwhile) {
  // Pieces this large pay for the hand-off to the side thread many times over.
  constexpr size_t kSideMin = 64 << 10;
  size_ += data.size();
  if (header_.has_size() && size_ > header_.size()) return SizeMismatch(header_.size());
  if (digests_given_) {
    xxh3_.Update(data);
    return meanwhile();
  }
  if (data.size() < kSideMin) {
    md5_.Update(data);
    sha256_.Update(data);
    return meanwhile();
  }
  absl::Status status;
  common::RunBeside([&] { md5_.Update(data); },
                    [&] {
                      sha256_.Update(data);
                      status = meanwhile();
                    });
  return status;
}

absl::StatusOr<ObjectRecord> UploadContent::Finish(const mcos::v1::StoragePutFinish& finish) {
  if (header_.version_at_finish() != common::IsSet(finish.version())) {
    return absl::InvalidArgumentError(absl::StrCat(
        header_.version_at_finish()
            ? "a put whose header has version_at_finish needs the version in its finish message"
            : "a finish message may carry a version only when the header has version_at_finish",
        "; nothing was stored for ", Describe(header_.key())));
  }
  if (header_.has_size() && size_ != header_.size()) return SizeMismatch(header_.size());
  if (finish.has_size() && size_ != finish.size()) return SizeMismatch(finish.size());
  std::string md5, sha256;
  if (digests_given_) {
    if (!finish.has_xxh3() || !common::IsHex(finish.md5_hex(), 32) ||
        !common::IsHex(finish.sha256_hex(), 64)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the finish message of a streamed replica write must carry xxh3, md5_hex and "
          "sha256_hex; nothing was stored for ",
          Describe(header_.key())));
    }
    if (finish.xxh3() != xxh3_.Digest()) return DigestMismatch("XXH3-64");
    md5 = absl::AsciiStrToLower(finish.md5_hex());
    sha256 = absl::AsciiStrToLower(finish.sha256_hex());
  } else {
    md5 = md5_.FinishHex();
    sha256 = sha256_.FinishHex();
  }
  for (const std::string* want : {&header_.md5_hex(), &finish.md5_hex()}) {
    if (!want->empty() && absl::AsciiStrToLower(*want) != md5) return DigestMismatch("MD5");
  }
  for (const std::string* want : {&header_.sha256_hex(), &finish.sha256_hex()}) {
    if (!want->empty() && absl::AsciiStrToLower(*want) != sha256) return DigestMismatch("SHA-256");
  }
  const mcos::v1::Version& version = WantedVersion(header_, finish);
  ObjectRecord record;
  record.set_size(size_);
  record.set_etag(md5);
  record.set_checksum(absl::StrCat("sha256:", sha256));
  record.set_content_type(header_.content_type());
  *record.mutable_metadata() = header_.metadata();
  *record.mutable_version() = version;
  common::ToProtoTimestamp(common::HlcTime(version.hlc()), record.mutable_modified());
  record.set_partition(header_.partition());
  record.set_option(header_.option());
  *record.mutable_holders() = header_.holders();
  return record;
}

absl::Status UploadContent::SizeMismatch(uint64_t declared) const {
  return absl::InvalidArgumentError(absl::StrCat(
      "the content is ", size_, declared < size_ ? "+" : "", " bytes but the client declared ",
      declared, "; nothing was stored for ", Describe(header_.key())));
}

// Says which digest differs, never the digests themselves.
absl::Status UploadContent::DigestMismatch(absl::string_view which) const {
  return absl::InvalidArgumentError(absl::StrCat(
      "the content's ", which, " differs from the one the client declared (the data ",
      "was changed or cut on the way); nothing was stored for ", Describe(header_.key())));
}

}  // namespace mcos::storage
