#include "common/names.h"

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mcos::common {
namespace {

bool HasControlChar(absl::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

absl::Status CheckText(absl::string_view what, absl::string_view name, size_t max_bytes,
                       bool allow_empty) {
  if (name.empty() && !allow_empty)
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", name.size(), " bytes long; the limit is ", max_bytes));
  }
  if (!IsValidUtf8(name)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8"));
  }
  if (HasControlChar(name)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL or control character"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

absl::Status ValidateContainerName(absl::string_view name) {
  if (auto s = CheckText("container name", name, kMaxContainerNameBytes, false); !s.ok()) return s;
  if (absl::StrContains(name, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("container name '", name, "' contains '/', which containers may not have"));
  }
  return absl::OkStatus();
}

absl::Status ValidateObjectName(absl::string_view name) {
  return CheckText("object name", name, kMaxObjectNameBytes, false);
}

absl::Status ValidateUserName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("user name is empty");
  if (name.size() > kMaxUserNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "user name is ", name.size(), " bytes long; the limit is ", kMaxUserNameBytes));
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) {
    return absl::InvalidArgumentError("user name must start with a letter or a digit");
  }
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "user name may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHolders(const google::protobuf::RepeatedPtrField<std::string>& holders) {
  if (holders.size() > kMaxHolders) {
    return absl::InvalidArgumentError(
        absl::StrCat("holders names ", holders.size(), " clusters; at most ", kMaxHolders));
  }
  for (const std::string& h : holders) {
    if (auto s = ValidateClusterName(h); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("holders: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptionField(absl::string_view option) {
  if (option.empty()) return absl::OkStatus();
  if (auto s = ValidateUserName(option); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("option: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateClusterName(absl::string_view name) {
  if (name.empty() || name.size() > 63) {
    return absl::InvalidArgumentError("a cluster name is 1-63 characters long");
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) {
    return absl::InvalidArgumentError("a cluster name must start with a letter or a digit");
  }
  for (char c : name) {
    if (!alnum(c) && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster name '", name, "' may contain only letters, digits and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOwnerId(absl::string_view owner) {
  if (owner.size() == 17 && owner[0] == '_') {
    for (char c : owner.substr(1)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
        return absl::InvalidArgumentError("owner id must be a user name or '_' and 16 hex digits");
      }
    }
    return absl::OkStatus();
  }
  return ValidateUserName(owner);
}

absl::Status ValidateListToken(absl::string_view field, absl::string_view value, size_t max_bytes) {
  return CheckText(field, value, max_bytes, true);
}

absl::Status ValidateObjectListing(absl::string_view prefix, absl::string_view marker,
                                   absl::string_view delimiter) {
  if (auto s = ValidateListToken("prefix", prefix, kMaxObjectNameBytes); !s.ok()) return s;
  if (auto s = ValidateListToken("marker", marker, kMaxObjectNameBytes); !s.ok()) return s;
  return ValidateListToken("delimiter", delimiter, 255);
}

absl::Status ValidateUserMetadata(const google::protobuf::Map<std::string, std::string>& metadata) {
  size_t total = 0;
  for (const auto& [key, value] : metadata) {
    if (auto s = CheckText("metadata key", key, 128, false); !s.ok()) return s;
    if (auto s = CheckText(absl::StrCat("metadata value of '", key, "'"), value, kMaxMetadataBytes,
                           true);
        !s.ok()) {
      return s;
    }
    total += key.size() + value.size();
  }
  if (total > kMaxMetadataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata is ", total, " bytes in all; the limit is ", kMaxMetadataBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateContentType(absl::string_view content_type) {
  if (content_type.size() > kMaxContentTypeBytes) {
    return absl::InvalidArgumentError(absl::StrCat("content type is ", content_type.size(),
                                                   " bytes long; the limit is ",
                                                   kMaxContentTypeBytes));
  }
  for (char c : content_type) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("content type may contain only printable ASCII");
    }
  }
  return absl::OkStatus();
}

}  // namespace mcos::common
