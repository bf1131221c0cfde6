// mcos-delay-proxy: a TCP proxy on a free loopback port that delays every byte by a fixed time in
// each direction (tests/support/delay_proxy.h), for benchmarks of a federation whose clusters are
// far apart: tools/federation.sh starts one in front of each cluster when MCOS_FEDERATION_DELAY_MS
// is set, and the cluster tells its peers to call it there (mcos-cluster --advertise).
//
// It prints its endpoint, then forwards each new connection to 127.0.0.1:PORT, PORT read from
// --target-port-file at that moment (so that the proxy can start before the cluster it fronts).
// Runs until killed.
#include "tests/support/delay_proxy.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "common/cli.h"

int main(int argc, char** argv) {
  CLI::App cli{"mcos-delay-proxy: a loopback TCP proxy that delays each direction"};
  int delay_ms = 40;
  std::string port_file;
  cli.add_option("--delay-ms", delay_ms, "Delay of each direction (ms)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  cli.add_option("--target-port-file", port_file,
                 "File holding the port to forward to (127.0.0.1:PORT), read at each connection")
      ->required();
  mcos::common::AddVersionFlag(cli, "mcos-delay-proxy");
  MCOS_CLI_PARSE(cli, argc, argv);
  mcos::testing::DelayProxy proxy(
      [port_file] {
        std::ifstream in(port_file);
        int port = 0;
        in >> port;
        return port;
      },
      absl::Milliseconds(delay_ms));
  std::printf("%s\n", proxy.endpoint().c_str());
  std::fflush(stdout);
  while (true) pause();
}
