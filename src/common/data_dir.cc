#include "common/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

absl::Status WritePrivateFile(const std::string& path, const std::string& content) {
  const std::string temporary = path + ".tmp";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      close(fd);
      unlink(temporary.c_str());
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  fchmod(fd, 0600);
  if (close(fd) != 0 || rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace mcos::common
