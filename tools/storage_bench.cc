// mcos-storage-bench: load on one mcos-storage process over loopback.
//   * small objects: N concurrent clients (one connection each) put, then get, objects of a fixed
//     size for a fixed time; ops/s, p50 and p99 latency;
//   * large streams: a put and a get of one big object, next to the bare gRPC stream
//     (BenchService Sink/Source in the same process) as the reference;
//   * optionally the storage process's peak RSS while a huge object streams through.
// With --storage-bin it starts its own mcos-storage (in a temp dir, --enable-bench-service) and
// stops it at the end; otherwise it uses --endpoint (which must serve BenchService for the
// reference figures).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/subprocess.h"
#include "common/version.h"
#include "mcos/v1/bench.grpc.pb.h"
#include "storage/storage_client.h"
#include "tools/bench_util.h"

namespace {

using mcos::tools::Clock;
using mcos::tools::MBps;
using mcos::tools::OwnConnection;
using mcos::tools::PrintStats;
using mcos::tools::RunConcurrent;
using mcos::tools::Stats;

mcos::common::HybridLogicalClock& Hlc() {
  static auto* hlc = new mcos::common::HybridLogicalClock(mcos::common::SystemClock::Get());
  return *hlc;
}

mcos::v1::StoragePutHeader Header(const std::string& object) {
  mcos::v1::StoragePutHeader h;
  h.mutable_key()->set_user("bench");
  h.mutable_key()->set_container("bench");
  h.mutable_key()->set_object(object);
  h.mutable_version()->set_hlc(Hlc().Now());
  h.mutable_version()->set_cluster("bench");
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"mcos-storage-bench: throughput and latency of one mcos-storage node"};
  std::string endpoint, storage_bin, data_dir;
  int clients = 16;
  double seconds = 5;
  size_t small_bytes = 4096;
  uint64_t large_mib = 256;
  uint64_t rss_mib = 0;
  bool no_sync = false;
  cli.add_option("--endpoint", endpoint, "Use a running mcos-storage at HOST:PORT");
  cli.add_option("--storage-bin", storage_bin, "Start this mcos-storage binary instead");
  cli.add_option("--data-dir", data_dir, "Data dir for the started node (default: a temp dir)");
  std::string key_file;
  cli.add_option("--token-key-file", key_file,
                 "The node's token key (default: DATA_DIR/token.key for a started node)");
  cli.add_flag("--no-sync", no_sync, "Start the node with --no-sync (non-durable commits)");
  cli.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  cli.add_option("--seconds", seconds, "Duration of each small-object phase")
      ->capture_default_str();
  cli.add_option("--small-bytes", small_bytes, "Size of small objects")->capture_default_str();
  cli.add_option("--large-mib", large_mib, "Size of the large stream (MiB); 0 skips it")
      ->capture_default_str();
  cli.add_option("--rss-mib", rss_mib,
                 "Also stream an object this big (MiB) and report the node's peak RSS "
                 "(needs --storage-bin)");
  mcos::common::AddVersionFlag(cli, "mcos-storage-bench");
  MCOS_CLI_PARSE(cli, argc, argv);

  std::unique_ptr<mcos::common::Subprocess> node;
  std::string temp_dir;
  if (!storage_bin.empty()) {
    if (data_dir.empty()) {
      temp_dir = mcos::tools::MakeTempDir();
      data_dir = temp_dir;
    }
    if (key_file.empty()) key_file = data_dir + "/token.key";
    std::vector<std::string> args = {storage_bin,        "--data-dir",  data_dir,
                                     "--listen",         "127.0.0.1:0", "--enable-bench-service",
                                     "--token-key-file", key_file};
    if (no_sync) args.emplace_back("--no-sync");
    auto p = mcos::tools::SpawnListening(args, data_dir + "/storage.log", &endpoint);
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(p.status().message()).c_str());
      return 1;
    }
    node = std::move(*p);
  }
  if (endpoint.empty()) {
    std::fprintf(stderr, "error: pass --endpoint HOST:PORT or --storage-bin PATH\n");
    return 2;
  }
  std::printf("mcos-storage-bench: endpoint %s, %d clients, %zu-byte objects, %s commits\n",
              endpoint.c_str(), clients, small_bytes, no_sync ? "NON-durable" : "durable (fsync)");

  auto key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (key_file.empty() || !key.ok()) {
    std::fprintf(stderr, "error: pass --token-key-file FILE (the node's token key)\n");
    return 2;
  }
  mcos::common::ServiceAuth auth(*key, "storage-bench");
  std::vector<std::unique_ptr<mcos::storage::StorageClient>> conns;
  conns.reserve(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    conns.push_back(std::make_unique<mcos::storage::StorageClient>(OwnConnection(endpoint, &auth)));
  }
  std::string small(small_bytes, '\0');
  std::mt19937_64 rng(42);
  for (auto& ch : small) ch = static_cast<char>(rng());

  std::vector<uint64_t> written(static_cast<size_t>(clients), 0);
  const Stats puts = RunConcurrent(clients, seconds, [&](int c, uint64_t i) {
    auto r = conns[static_cast<size_t>(c)]->PutBytes(Header(absl::StrCat("s/", c, "/", i)), small);
    if (r.ok()) written[static_cast<size_t>(c)] = i + 1;
    return r.ok();
  });
  PrintStats(no_sync ? "put (no fsync)" : "put (durable)", puts);

  const Stats gets = RunConcurrent(clients, seconds, [&](int c, uint64_t i) {
    const uint64_t n = std::max<uint64_t>(1, written[static_cast<size_t>(c)]);
    mcos::v1::StorageGetRequest req;
    req.mutable_key()->set_user("bench");
    req.mutable_key()->set_container("bench");
    req.mutable_key()->set_object(absl::StrCat("s/", c, "/", (i * 7919) % n));
    uint64_t got = 0;
    auto r = conns[static_cast<size_t>(c)]->Get(req, [&](absl::string_view d) {
      got += d.size();
      return absl::OkStatus();
    });
    return r.ok() && got == small_bytes;
  });
  PrintStats("get", gets);

  auto channel = OwnConnection(endpoint, &auth);
  mcos::storage::StorageClient big(channel);
  std::string chunk(1 << 20, '\0');
  for (auto& ch : chunk) ch = static_cast<char>(rng());

  auto stream_put = [&](const std::string& name, uint64_t bytes) -> double {
    uint64_t left = bytes;
    const auto t0 = Clock::now();
    auto r = big.Put(Header(name), [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
      const auto n = std::min<size_t>({cap, left, chunk.size()});
      std::copy_n(chunk.data(), n, buf);
      left -= n;
      return n;
    });
    if (!r.ok()) {
      std::fprintf(stderr, "put %s: %s\n", name.c_str(), std::string(r.status().message()).c_str());
      return 0;
    }
    return MBps(bytes, Clock::now() - t0);
  };
  auto stream_get = [&](const std::string& name, uint64_t bytes) -> double {
    mcos::v1::StorageGetRequest req;
    req.mutable_key()->set_user("bench");
    req.mutable_key()->set_container("bench");
    req.mutable_key()->set_object(name);
    uint64_t got = 0;
    const auto t0 = Clock::now();
    auto r = big.Get(req, [&](absl::string_view d) {
      got += d.size();
      return absl::OkStatus();
    });
    if (!r.ok() || got != bytes) {
      std::fprintf(stderr, "get %s failed\n", name.c_str());
      return 0;
    }
    return MBps(bytes, Clock::now() - t0);
  };

  if (large_mib > 0) {
    const uint64_t bytes = large_mib << 20;
    const auto [sink_mbps, source_mbps] =
        mcos::tools::BareStreamMBps(mcos::tools::OwnConnection(endpoint), chunk, bytes);
    const double put_mbps = stream_put("large", bytes);
    const double get_mbps = stream_get("large", bytes);
    mcos::tools::PrintStreamRatio(absl::StrCat("put ", large_mib, " MiB stream"), put_mbps,
                                  sink_mbps);
    mcos::tools::PrintStreamRatio(absl::StrCat("get ", large_mib, " MiB stream"), get_mbps,
                                  source_mbps);
  }
  if (rss_mib > 0) {
    if (!node) {
      std::fprintf(stderr, "--rss-mib needs --storage-bin (the node's pid)\n");
    } else {
      const uint64_t bytes = rss_mib << 20;
      const auto before = mcos::common::PeakRssBytes(node->pid());
      const double put_mbps = stream_put("huge", bytes);
      const double get_mbps = stream_get("huge", bytes);
      const auto after = mcos::common::PeakRssBytes(node->pid());
      std::printf(
          "%-28s put %.1f MB/s, get %.1f MB/s; storage peak RSS %.1f MiB (%.1f MiB "
          "before)\n",
          absl::StrCat(rss_mib, " MiB stream").c_str(), put_mbps, get_mbps,
          after.ok() ? static_cast<double>(*after) / (1 << 20) : -1.0,
          before.ok() ? static_cast<double>(*before) / (1 << 20) : -1.0);
    }
  }
  if (node) {
    node->Signal(SIGTERM);
    node->Wait();
  }
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  return 0;
}
