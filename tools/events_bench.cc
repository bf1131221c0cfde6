// mcos-events-bench: how fast the event bus drains its outbox into JetStream, i.e. how fast a
// cluster's events catch up after its nats-server was away (every event then waits in the
// outbox). Puts --events events in a NatsEventBus's outbox at once and reports how long JetStream
// took to store them all.
//
//   nats-server -js -a 127.0.0.1 -p 14222 -sd "$(mktemp -d)" &
//   mcos-events-bench --nats nats://127.0.0.1:14222 --events 20000
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "events/nats_event_bus.h"

int main(int argc, char** argv) {
  CLI::App cli{"Measures how fast the event bus stores a backlog of events in JetStream"};
  std::string url;
  int events = 20000;
  int bytes = 300;
  cli.add_option("--nats", url,
                 "The nats-server (JetStream enabled) to publish to: nats://HOST:PORT")
      ->required();
  cli.add_option("--events", events, "Events in the backlog")->capture_default_str();
  cli.add_option("--bytes", bytes, "Size of each event's payload")->capture_default_str();
  CLI11_PARSE(cli, argc, argv);

  mcos::events::NatsOptions options;
  options.url = url;
  options.name = "mcos-events-bench";
  options.outbox_limit = static_cast<size_t>(events);
  const std::string stream = absl::StrCat("MCOS_BENCH_", absl::ToUnixMillis(absl::Now()));
  options.streams.push_back({stream, {absl::StrCat(stream, ".>")}});
  auto bus = mcos::events::NatsEventBus::Start(options);
  if (!bus.ok()) {
    std::fprintf(stderr, "error: %s\n", bus.status().ToString().c_str());
    return 1;
  }
  // The publisher starts on the first event, while the rest are still being added.
  const absl::Time start = absl::Now();
  for (int i = 0; i < events; ++i) {
    (*bus)->Publish(absl::StrCat(stream, ".o", i % 100),
                    absl::StrCat(i, ":", std::string(static_cast<size_t>(bytes), 'x')));
  }
  const absl::Time deadline = start + absl::Minutes(5);
  while ((*bus)->published() < static_cast<uint64_t>(events) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const uint64_t stored = (*bus)->published();
  std::printf("%llu of %d events stored in %.3f s: %.0f events/s\n",
              static_cast<unsigned long long>(stored), events, seconds,
              static_cast<double>(stored) / seconds);
  return stored == static_cast<uint64_t>(events) ? 0 : 1;
}
