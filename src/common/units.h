// Sizes written for people (header-only: the SDK and the CLI use it without mcos_common).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcos::common {

// As `ls -h` prints a size: bytes up to 1023, then one decimal and K, M, G, T, P (base 1024).
inline std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes);
  static constexpr const char* kUnits[] = {"K", "M", "G", "T", "P"};
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f%s", v, kUnits[unit]);
}

}  // namespace mcos::common
