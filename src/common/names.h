// Validation of names that arrive from the network (API.md rules). Each function returns OK or
// INVALID_ARGUMENT with a message naming the field and the rule it breaks.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace mcos::common {

inline constexpr size_t kMaxContainerNameBytes = 255;
inline constexpr size_t kMaxObjectNameBytes = 1024;
inline constexpr size_t kMaxUserNameBytes = 64;

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// 1-255 bytes of valid UTF-8, no '/', NUL or control characters (U+0000-U+001F, U+007F).
absl::Status ValidateContainerName(absl::string_view name);
// 1-1024 bytes of valid UTF-8, no NUL or control characters; '/' allowed.
absl::Status ValidateObjectName(absl::string_view name);
// 1-64 bytes of [A-Za-z0-9._-], starting with a letter or digit.
absl::Status ValidateUserName(absl::string_view name);
// The owner of containers and objects (ObjectKey.user): a user name, or "_" and 16 lowercase hex
// digits for a name that was removed and added again (controller.proto User.uid).
absl::Status ValidateOwnerId(absl::string_view owner);
// A cluster's name (--name): 1-63 letters, digits and '-', starting with a letter or digit.
absl::Status ValidateClusterName(absl::string_view name);
// ObjectRecord.holders and the holders of replica writes: at most kMaxHolders cluster names.
inline constexpr int kMaxHolders = 16;
absl::Status ValidateHolders(const google::protobuf::RepeatedPtrField<std::string>& holders);
// The option field of an internal request (the option that places an object): empty (the records
// written without one), or an option name (the rules of a user name).
absl::Status ValidateOptionField(absl::string_view option);
// Listing prefixes, markers and delimiters: valid UTF-8 without NUL/control characters, at most
// `max_bytes` long; empty allowed.
absl::Status ValidateListToken(absl::string_view field, absl::string_view value, size_t max_bytes);

inline constexpr size_t kMaxMetadataBytes = size_t{8} << 10;
inline constexpr size_t kMaxContentTypeBytes = 256;

// The prefix, marker (each at most an object name long) and delimiter (at most 255 bytes) of an
// object listing.
absl::Status ValidateObjectListing(absl::string_view prefix, absl::string_view marker,
                                   absl::string_view delimiter);

// User metadata: keys 1-128 bytes, keys and values valid UTF-8 without NUL/control characters,
// all keys and values together at most 8 KiB.
absl::Status ValidateUserMetadata(const google::protobuf::Map<std::string, std::string>& metadata);
// At most 256 bytes of printable ASCII (empty allowed).
absl::Status ValidateContentType(absl::string_view content_type);

}  // namespace mcos::common
