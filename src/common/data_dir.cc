#include "common/data_dir.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace mcos::common {

absl::Status PreparePrivateDir(const std::string& path) {
  namespace fs = std::filesystem;
  umask(077);
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data directory ", path, ": ", ec.message()));
  }
  auto tighten = [&](const fs::path& p) -> absl::Status {
    std::error_code e;
    const fs::file_status st = fs::symlink_status(p, e);
    if (e || fs::is_symlink(st)) return absl::OkStatus();  // gone meanwhile, or not ours to chmod
    const fs::perms extra = fs::perms::group_all | fs::perms::others_all;
    if ((st.permissions() & extra) == fs::perms::none) return absl::OkStatus();
    fs::permissions(p, extra, fs::perm_options::remove | fs::perm_options::nofollow, e);
    if (e) {
      return absl::UnavailableError(
          absl::StrCat("cannot make ", p.string(), " private (chmod go-rwx): ", e.message()));
    }
    return absl::OkStatus();
  };
  if (auto s = tighten(path); !s.ok()) return s;
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (auto s = tighten(it->path()); !s.ok()) return s;
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot read data directory ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace mcos::common
