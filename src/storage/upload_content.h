// The content of an upload as it arrives (size, MD5, SHA-256) checked against what the client
// declared: shared by the storage engines and by a coordinator that sends a small upload to its
// replicas before storing it (a create's one-round-trip write).
#pragma once

#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "common/side_thread.h"
#include "mcos/v1/storage.pb.h"

namespace mcos::storage {

// "object 'c/o' of user 'u'", for messages.
std::string Describe(const mcos::v1::ObjectKey& key);

// The version an upload asks to commit: the header's, or the finish message's when the header has
// version_at_finish (a replica streamed before its coordinator knew the version).
const mcos::v1::Version& WantedVersion(const mcos::v1::StoragePutHeader& header,
                                       const mcos::v1::StoragePutFinish& finish);

// The content of one upload as it arrives: counts and hashes it, and checks it against what the
// header and the finish message declared.
class UploadContent {
 public:
  explicit UploadContent(const mcos::v1::StoragePutHeader& header);
  // INVALID_ARGUMENT as soon as more bytes arrived than the header declared.
  absl::Status Add(absl::string_view data);
  // The same, and runs `meanwhile` (what the caller does with `data`), whose error it returns. A
  // large piece's MD5 is computed on a side thread (common::RunBeside) while this one computes its
  // SHA-256 and runs `meanwhile`: one upload is then not bound by one core's MD5 and SHA-256 in a
  // row.
  absl::Status Add(absl::string_view data, absl::FunctionRef<absl::Status()> meanwhile);
  uint64_t size() const { return size_; }
  // Checks size, MD5 and SHA-256 (a streamed replica write: its XXH3-64 instead, the digests as
  // given) and that the version comes where the header says
  // (INVALID_ARGUMENT, nothing may be stored) and returns the record of the new version
  // (WantedVersion) without its data layout (chunk_size, chunk_count, data_id) and
  // without `created`, which depends on the stored version.
  absl::StatusOr<mcos::v1::ObjectRecord> Finish(const mcos::v1::StoragePutFinish& finish);

 private:
  absl::Status SizeMismatch(uint64_t declared) const;
  absl::Status DigestMismatch(absl::string_view which) const;

  const mcos::v1::StoragePutHeader& header_;
  // A streamed replica write (version_at_finish) is checked by XXH3-64 and keeps the digests
  // the finish message gives; any other upload computes them.
  const bool digests_given_;
  common::StreamingDigest md5_;
  common::StreamingDigest sha256_;
  common::StreamingHash64 xxh3_;
  uint64_t size_ = 0;
};

}  // namespace mcos::storage
