// A certificate authority made in the test with the openssl command (EC P-256 keys), and
// certificates it signs for 127.0.0.1 and localhost (usable as server and client certificates).
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mcos::testing {

struct CertFiles {
  std::string cert;
  std::string key;
};

class TestCa {
 public:
  // Creates `dir`/`name`.pem and its key.
  static absl::StatusOr<TestCa> Create(const std::string& dir, const std::string& name) {
    TestCa ca;
    ca.dir_ = dir;
    ca.files_ = {absl::StrCat(dir, "/", name, ".pem"), absl::StrCat(dir, "/", name, ".key")};
    if (auto s = Run(absl::StrCat(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
            "-subj /CN=",
            name, " -keyout ", ca.files_.key, " -out ", ca.files_.cert));
        !s.ok()) {
      return s;
    }
    return ca;
  }

  const std::string& cert() const { return files_.cert; }

  // A certificate for `name` signed by this CA, valid for 127.0.0.1 and localhost.
  absl::StatusOr<CertFiles> Issue(const std::string& name) const {
    const CertFiles out{absl::StrCat(dir_, "/", name, ".pem"),
                        absl::StrCat(dir_, "/", name, ".key")};
    const std::string csr = absl::StrCat(dir_, "/", name, ".csr");
    const std::string ext = absl::StrCat(dir_, "/", name, ".ext");
    std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                       << "extendedKeyUsage=serverAuth,clientAuth\n";
    if (auto s = Run(absl::StrCat(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=", name,
            " -keyout ", out.key, " -out ", csr));
        !s.ok()) {
      return s;
    }
    if (auto s = Run(absl::StrCat("openssl x509 -req -in ", csr, " -CA ", files_.cert, " -CAkey ",
                                  files_.key, " -CAcreateserial -days 2 -extfile ", ext, " -out ",
                                  out.cert));
        !s.ok()) {
      return s;
    }
    return out;
  }

 private:
  static absl::Status Run(const std::string& cmd) {
    const int rc = std::system(absl::StrCat(cmd, " >/dev/null 2>&1").c_str());
    if (rc != 0) return absl::InternalError(absl::StrCat("failed (", rc, "): ", cmd));
    return absl::OkStatus();
  }
  std::string dir_;
  CertFiles files_;
};

}  // namespace mcos::testing
