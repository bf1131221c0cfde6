// Helpers shared by the load tools: timed concurrent loops with latency percentiles.
#pragma once

#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "common/channel.h"
#include "common/channel_arguments.h"
#include "common/service_auth.h"
#include "common/subprocess.h"
#include "mcos/v1/bench.grpc.pb.h"

namespace mcos::tools {

using Clock = std::chrono::steady_clock;

struct Stats {
  uint64_t ops = 0;
  uint64_t errors = 0;
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// A channel with its own TCP connection (gRPC shares one between equal channels otherwise); with
// `auth`, every call carries its service credential (for the cluster's internal services).
inline std::shared_ptr<grpc::Channel> OwnConnection(const std::string& endpoint,
                                                    common::ServiceAuth* auth = nullptr) {
  if (auth != nullptr) return common::ConnectInternal(endpoint, *auth, /*own_connection=*/true);
  common::ChannelTuning tuning;
  tuning.own_connection = true;
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(),
                                   common::ClientChannelArguments(tuning));
}

// Runs `op(client, i)` from one thread per client for i = 0, 1, ... while `more(client, i)`.
template <typename More, typename Op>
Stats RunLoops(size_t clients, More more, Op op) {
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<uint64_t> errors{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto& mine = latencies[c];
      for (uint64_t i = 0; more(c, i); ++i) {
        const auto t0 = Clock::now();
        if (!op(static_cast<int>(c), i)) errors.fetch_add(1);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  Stats s;
  s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  s.ops = all.size();
  s.errors = errors.load();
  if (!all.empty()) {
    s.p50_ms = all[all.size() / 2];
    s.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return s;
}

// Runs `op(client_index, op_index)` from `clients` threads for `seconds`.
template <typename Op>
Stats RunConcurrent(int clients, double seconds, Op op) {
  const auto stop = Clock::now() + std::chrono::duration<double>(seconds);
  return RunLoops(
      static_cast<size_t>(clients), [stop](size_t, uint64_t) { return Clock::now() < stop; }, op);
}

// Runs `op(client_index, op_index)` for op_index in [0, counts[client_index]), one thread per
// client, as fast as it goes.
template <typename Op>
Stats RunCounts(const std::vector<uint64_t>& counts, Op op) {
  return RunLoops(
      counts.size(), [&counts](size_t c, uint64_t i) { return i < counts[c]; }, op);
}

inline double MBps(uint64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

// The reference of the stream benchmarks: MB/s of a bare client stream of `bytes` in chunks of
// `block` into BenchService.Sink, and of a bare server stream out of BenchService.Source, on
// `channel`. 0 when the call failed (e.g. the process does not serve BenchService).
inline std::pair<double, double> BareStreamMBps(const std::shared_ptr<grpc::Channel>& channel,
                                                const std::string& block, uint64_t bytes) {
  auto bench = mcos::v1::BenchService::NewStub(channel);
  double sink = 0, source = 0;
  {
    grpc::ClientContext ctx;
    mcos::v1::BenchSummary summary;
    auto w = bench->Sink(&ctx, &summary);
    mcos::v1::BenchChunk msg;
    msg.set_data(block);
    const auto t0 = Clock::now();
    for (uint64_t sent = 0; sent < bytes; sent += block.size()) w->Write(msg);
    w->WritesDone();
    if (w->Finish().ok()) sink = MBps(bytes, Clock::now() - t0);
  }
  {
    grpc::ClientContext ctx;
    mcos::v1::BenchSourceRequest req;
    req.set_bytes(bytes);
    req.set_chunk_size(static_cast<uint32_t>(block.size()));
    mcos::v1::BenchChunk msg;
    const auto t0 = Clock::now();
    auto r = bench->Source(&ctx, req);
    uint64_t got = 0;
    while (r->Read(&msg)) got += msg.data().size();
    if (r->Finish().ok() && got == bytes) source = MBps(bytes, Clock::now() - t0);
  }
  return {sink, source};
}

// One line: a stream's MB/s next to the bare gRPC stream's, and their ratio (the MB/s alone when
// the bare stream was not measured: over TLS, or against a federation).
inline void PrintStreamRatio(const std::string& what, double mbps, double bare_mbps) {
  if (bare_mbps > 0) {
    std::printf("%-28s %10.1f MB/s   bare gRPC stream %8.1f MB/s   ratio %5.1f%%\n", what.c_str(),
                mbps, bare_mbps, 100 * mbps / bare_mbps);
  } else {
    std::printf("%-28s %10.1f MB/s\n", what.c_str(), mbps);
  }
  std::fflush(stdout);
}

// A new directory under the system's temp directory, for a process the benchmark starts.
inline std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "mcos-bench-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

// Starts `argv` (logging to `log`) and waits for its "listening on" line; sets `endpoint`.
inline absl::StatusOr<std::unique_ptr<common::Subprocess>> SpawnListening(
    const std::vector<std::string>& argv, const std::string& log, std::string* endpoint) {
  auto p = common::Subprocess::Start(argv, log);
  if (!p.ok()) return p.status();
  auto addr = (*p)->WaitForListening(absl::Seconds(30));
  if (!addr.ok()) return addr.status();
  *endpoint = *addr;
  return p;
}

// What the servers under test spent: CPU time summed over every thread of some processes, and
// the context switches of each thread by id (from /proc; a process gone counts nothing).
struct ServerCost {
  double cpu_ms = 0;
  std::map<std::string, uint64_t> switches;  // "pid/tid" -> voluntary and involuntary switches

  // What was spent since `before`: the switches of the threads alive now (those that ended
  // meanwhile are not counted; a thread's own counter only grows).
  std::pair<double, uint64_t> Since(const ServerCost& before) const {
    uint64_t n = 0;
    for (const auto& [thread, count] : switches) {
      auto it = before.switches.find(thread);
      n += count - (it == before.switches.end() ? 0 : std::min(count, it->second));
    }
    return {cpu_ms - before.cpu_ms, n};
  }
};

inline ServerCost ReadServerCost(const std::vector<int>& pids) {
  ServerCost cost;
  const double ms_per_tick = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  for (int pid : pids) {
    const std::string proc = "/proc/" + std::to_string(pid);
    std::ifstream stat(proc + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15;
    // the process's figures include its threads', those that ended too.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int f = 3; f <= 15 && rest >> field; ++f) {
      if (f == 14) utime = std::stoull(field);
      if (f == 15) stime = std::stoull(field);
    }
    cost.cpu_ms += static_cast<double>(utime + stime) * ms_per_tick;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(proc + "/task", ec)) {
      std::ifstream status(task.path() / "status");
      uint64_t n = 0;
      while (std::getline(status, line)) {
        if (absl::StartsWith(line, "voluntary_ctxt_switches:") ||
            absl::StartsWith(line, "nonvoluntary_ctxt_switches:")) {
          n += std::stoull(line.substr(line.find(':') + 1));
        }
      }
      cost.switches[std::to_string(pid) + "/" + task.path().filename().string()] = n;
    }
  }
  return cost;
}

// One phase's line; with `cost` (the servers' spending over the phase), per operation too.
inline void PrintStats(const char* what, const Stats& s,
                       const std::optional<std::pair<double, uint64_t>>& cost = std::nullopt) {
  std::printf("%-28s %10.0f ops/s   p50 %7.3f ms   p99 %7.3f ms   (%lu ops, %lu errors)", what,
              static_cast<double>(s.ops) / s.seconds, s.p50_ms, s.p99_ms,
              static_cast<unsigned long>(s.ops), static_cast<unsigned long>(s.errors));
  if (cost && s.ops > 0) {
    const auto ops = static_cast<double>(s.ops);
    std::printf("   server CPU %.3f ms/op, %.1f switches/op", cost->first / ops,
                static_cast<double>(cost->second) / ops);
  }
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace mcos::tools
