// Helpers shared by the load tools: timed concurrent loops with latency percentiles.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace mcos::tools {

using Clock = std::chrono::steady_clock;

struct Stats {
  uint64_t ops = 0;
  uint64_t errors = 0;
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// A channel with its own TCP connection (gRPC shares one between equal channels otherwise).
inline std::shared_ptr<grpc::Channel> OwnConnection(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

// Runs `op(client_index, op_index)` from `clients` threads for `seconds`.
template <typename Op>
Stats RunConcurrent(int clients, double seconds, Op op) {
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  std::atomic<uint64_t> errors{0};
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto& mine = latencies[static_cast<size_t>(c)];
      for (uint64_t i = 0; Clock::now() < stop; ++i) {
        const auto t0 = Clock::now();
        if (!op(c, i)) errors.fetch_add(1);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  Stats s;
  s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.reserve(all.size() + l.size());
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  s.ops = all.size();
  s.errors = errors.load();
  if (!all.empty()) {
    s.p50_ms = all[all.size() / 2];
    s.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return s;
}

// Runs `op(client_index, op_index)` for op_index in [0, counts[client_index]) from one thread per
// client, as fast as it goes.
template <typename Op>
Stats RunCounts(const std::vector<uint64_t>& counts, Op op) {
  std::vector<std::vector<double>> latencies(counts.size());
  std::atomic<uint64_t> errors{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(counts.size());
  for (size_t c = 0; c < counts.size(); ++c) {
    threads.emplace_back([&, c] {
      auto& mine = latencies[c];
      mine.reserve(counts[c]);
      for (uint64_t i = 0; i < counts[c]; ++i) {
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
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  s.ops = all.size();
  s.errors = errors.load();
  if (!all.empty()) {
    s.p50_ms = all[all.size() / 2];
    s.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return s;
}

inline void PrintStats(const char* what, const Stats& s) {
  std::printf("%-28s %10.0f ops/s   p50 %7.3f ms   p99 %7.3f ms   (%lu ops, %lu errors)\n", what,
              static_cast<double>(s.ops) / s.seconds, s.p50_ms, s.p99_ms,
              static_cast<unsigned long>(s.ops), static_cast<unsigned long>(s.errors));
  std::fflush(stdout);
}

inline double MBps(uint64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

}  // namespace mcos::tools
