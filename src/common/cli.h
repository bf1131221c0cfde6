// What every MCOS command line has in common (include only from a main.cc: CLI11 is slow to
// compile): `--version`, and usage errors that exit with status 2 after CLI11's message.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/tls.h"

namespace mcos::common {

inline void AddVersionFlag(CLI::App& cli, const std::string& program) {
  cli.set_version_flag("--version", program + " " + MCOS_VERSION);
}

// --config FILE (TOML/INI, the flags' names as keys). A key that names no flag (a typo, a section
// that is not one) is an error, not silently ignored: MCOS_CLI_PARSE then names it and the file.
inline void AddConfigFlag(CLI::App& cli) {
  cli.set_config("--config", "", "Read options from this TOML/INI file (the flags' names as keys)");
  cli.allow_config_extras(CLI::config_extras_mode::error);
}

// Why CLI11 refused `file` in words that name the key: the first section or key of the file that
// names no option of `cli` ("unknown key 'max-uplaods' (line 3)"), else CLI11's `reason`.
inline std::string DescribeConfigError(CLI::App& cli, const std::string& file,
                                       const std::string& reason) {
  std::ifstream in(file);
  std::string line, section;
  int section_line = 0;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t begin = line.find_first_not_of(" \t");
    if (begin == std::string::npos || line[begin] == '#' || line[begin] == ';') continue;
    line = line.substr(begin);
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      section_line = n;
      continue;
    }
    std::string key = line.substr(0, line.find('='));
    key.erase(key.find_last_not_of(" \t\"'") + 1);
    key.erase(0, key.find_first_not_of(" \t\"'"));
    if (!section.empty()) {
      std::string why = "key '";
      why.append(key)
          .append("' (line ")
          .append(std::to_string(n))
          .append(") is in section [")
          .append(section)
          .append("] (line ")
          .append(std::to_string(section_line))
          .append("), which is not known: every option is a top-level key, named as its flag");
      return why;
    }
    if (cli.get_option_no_throw("--" + key) == nullptr) {
      return "unknown key '" + key + "' (line " + std::to_string(n) + "): see --help for the names";
    }
  }
  return reason;
}

// The file given to --config, if any.
inline std::string ConfigFileOf(CLI::App& cli) {
  const CLI::Option* config = cli.get_config_ptr();
  return config != nullptr && config->count() > 0 ? config->as<std::string>() : std::string();
}

// --tls-cert, --tls-key, --tls-ca and --tls-client-ca (common/tls.h), in the group "TLS".
inline void AddTlsFlags(CLI::App& cli, TlsFiles& tls, bool calls_services = true) {
  const char* group = "TLS";
  cli.add_option("--tls-cert", tls.cert_file,
                 "Serve TLS with this PEM certificate (chain); re-read when it changes")
      ->group(group);
  cli.add_option("--tls-key", tls.key_file, "The private key of --tls-cert (PEM)")->group(group);
  if (calls_services) {
    cli.add_option("--tls-ca", tls.ca_file,
                   "Call the cluster's other services over TLS, verified with this CA (PEM); "
                   "they then see --tls-cert as this process's client certificate")
        ->group(group);
  }
  cli.add_option("--tls-client-ca", tls.client_ca_file,
                 "Require client certificates signed by this CA (PEM): mutual TLS")
      ->group(group);
}

// --federation-secret-file (shared/API.md, Federations; common::LoadClusterKeys), and for the
// processes that peer (controllers) --federation-sync-period-ms into `sync_period_ms`.
inline void AddFederationSecretFlag(CLI::App& cli, std::string& path,
                                    int* sync_period_ms = nullptr) {
  cli.add_option("--federation-secret-file", path,
                 "The federation's shared secret (at least 32 bytes, mode 0600, the same file at "
                 "every cluster and every process): tokens then work at every cluster, and "
                 "clusters can peer (mcos admin cluster add)");
  if (sync_period_ms != nullptr) {
    cli.add_option("--federation-sync-period-ms", *sync_period_ms,
                   "How often each peer cluster is checked and pulled from (changes made here are "
                   "pushed at once)")
        ->capture_default_str()
        ->check(CLI::Range(20, 60000));
  }
}

}  // namespace mcos::common

// Parses the command line; returns from main with 0 after --help or --version, and with 2 (after
// printing the reason) on a usage error.
#define MCOS_CLI_PARSE(cli, argc, argv)                                                        \
  try {                                                                                        \
    (cli).parse((argc), (argv));                                                               \
  } catch (const CLI::Success& e) {                                                            \
    return (cli).exit(e);                                                                      \
  } catch (const CLI::ParseError& e) {                                                         \
    const std::string mcos_config_ = mcos::common::ConfigFileOf(cli);                          \
    if (!mcos_config_.empty() && dynamic_cast<const CLI::ConfigError*>(&e) != nullptr) {       \
      std::fprintf(stderr, "error in %s (--config): %s\n", mcos_config_.c_str(),               \
                   mcos::common::DescribeConfigError(cli, mcos_config_, e.what()).c_str());    \
      return 2;                                                                                \
    }                                                                                          \
    if (!mcos_config_.empty() && (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr ||  \
                                  dynamic_cast<const CLI::ValidationError*>(&e) != nullptr)) { \
      std::fprintf(stderr, "error: %s (a value on the command line or in %s)\n", e.what(),     \
                   mcos_config_.c_str());                                                      \
      return 2;                                                                                \
    }                                                                                          \
    (cli).exit(e);                                                                             \
    return 2;                                                                                  \
  }
