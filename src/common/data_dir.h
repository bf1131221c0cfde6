// A process's data directory: private to the user the process runs as. The directory and every
// directory under it are made 0700 and every file 0600 (group and others lose every bit), also
// when they existed before with looser modes, and the process's umask becomes 077 so that what
// RocksDB, SQLite and the process create later is private too: a controller's database holds the
// users' password hashes, a storage node every object.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace mcos::common {

// Creates `path` (and its parents) if missing and tightens it as above. UNAVAILABLE naming the
// path when it cannot be created or changed.
absl::Status PreparePrivateDir(const std::string& path);
// Writes `content` to `path` (replaced whole: a temporary file renamed over it), mode 0600.
// UNAVAILABLE naming the path when it cannot be written.
absl::Status WritePrivateFile(const std::string& path, const std::string& content);

}  // namespace mcos::common
