// What every MCOS command line has in common (include only from a main.cc: CLI11 is slow to
// compile): `--version`, and usage errors that exit with status 2 after CLI11's message.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace mcos::common {

inline void AddVersionFlag(CLI::App& cli, const std::string& program) {
  cli.set_version_flag("--version", program + " " + MCOS_VERSION);
}

}  // namespace mcos::common

// Parses the command line; returns from main with 0 after --help or --version, and with 2 (after
// printing the reason) on a usage error.
#define MCOS_CLI_PARSE(cli, argc, argv) \
  try {                                 \
    (cli).parse((argc), (argv));        \
  } catch (const CLI::Success& e) {     \
    return (cli).exit(e);               \
  } catch (const CLI::ParseError& e) {  \
    (cli).exit(e);                      \
    return 2;                           \
  }
