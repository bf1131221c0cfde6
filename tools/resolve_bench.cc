// mcos-resolve-bench: latency of ResolverService.Resolve over loopback at fixed request rates,
// single keys and batches. Open loop: each call has a scheduled send time and its latency counts
// from that time (no coordinated omission), so a resolver that falls behind shows it.
// With --cluster-bin it starts its own mcos-cluster in a temp dir.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/subprocess.h"
#include "common/token.h"
#include "mcos/v1/resolver.grpc.pb.h"
#include "tools/bench_util.h"

int main(int argc, char** argv) {
  CLI::App cli{"mcos-resolve-bench: Resolve latency at fixed lookup rates"};
  std::string endpoint, cluster_bin, rates = "1000,20000", batches = "1,100";
  double seconds = 3;
  int threads = 8;
  cli.add_option("--endpoint", endpoint, "A running resolver (or mcos-cluster) HOST:PORT");
  std::string key_file;
  cli.add_option("--token-key-file", key_file,
                 "The cluster's token key (default: the started cluster's DATA_DIR/token.key)");
  cli.add_option("--cluster-bin", cluster_bin, "Start this mcos-cluster binary instead");
  cli.add_option("--rates", rates, "Target lookups per second, comma-separated")
      ->capture_default_str();
  cli.add_option("--batches", batches, "Keys per Resolve call, comma-separated")
      ->capture_default_str();
  cli.add_option("--seconds", seconds, "Duration of each run")->capture_default_str();
  cli.add_option("--threads", threads, "Client threads")->capture_default_str();
  mcos::common::AddVersionFlag(cli, "mcos-resolve-bench");
  MCOS_CLI_PARSE(cli, argc, argv);

  std::unique_ptr<mcos::common::Subprocess> node;
  std::string temp_dir;
  if (!cluster_bin.empty()) {
    temp_dir = mcos::tools::MakeTempDir();
    auto p = mcos::tools::SpawnListening(
        {cluster_bin, "--data-dir", temp_dir + "/cluster", "--listen", "127.0.0.1:0"},
        temp_dir + "/cluster.log", &endpoint);
    if (!p.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(p.status().message()).c_str());
      return 1;
    }
    node = std::move(*p);
    if (key_file.empty()) key_file = temp_dir + "/cluster/token.key";
  }
  if (endpoint.empty()) {
    std::fprintf(stderr, "error: pass --endpoint HOST:PORT or --cluster-bin PATH\n");
    return 2;
  }
  auto key = mcos::common::LoadOrCreateKeyFile(key_file);
  if (key_file.empty() || !key.ok()) {
    std::fprintf(stderr, "error: pass --token-key-file FILE (the cluster's token key)\n");
    return 2;
  }
  mcos::common::ServiceAuth auth(*key, "resolve-bench");
  std::vector<std::shared_ptr<mcos::v1::ResolverService::Stub>> stubs;
  for (int t = 0; t < threads; ++t) {
    stubs.push_back(
        mcos::v1::ResolverService::NewStub(mcos::tools::OwnConnection(endpoint, &auth)));
  }
  std::printf("mcos-resolve-bench: endpoint %s, %d threads, open loop\n", endpoint.c_str(),
              threads);
  for (absl::string_view rate_text : absl::StrSplit(rates, ',')) {
    for (absl::string_view batch_text : absl::StrSplit(batches, ',')) {
      const double rate = std::stod(std::string(rate_text));
      const int batch = std::stoi(std::string(batch_text));
      const double calls_per_second = rate / batch;
      const auto start = mcos::tools::Clock::now() + std::chrono::milliseconds(50);
      const uint64_t total_calls = static_cast<uint64_t>(calls_per_second * seconds);
      std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
      std::atomic<uint64_t> errors{0};
      std::vector<std::thread> workers;
      for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
          mcos::v1::ResolveRequest req;
          req.set_option("default");
          for (int k = 0; k < batch; ++k) {
            auto* key = req.add_keys();
            key->set_user("bench");
            key->set_container("photos");
          }
          for (uint64_t i = static_cast<uint64_t>(t); i < total_calls;
               i += static_cast<uint64_t>(threads)) {
            const auto due =
                start +
                std::chrono::duration_cast<mcos::tools::Clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(i) / calls_per_second));
            std::this_thread::sleep_until(due);
            for (int k = 0; k < batch; ++k) {
              req.mutable_keys(k)->set_object(absl::StrCat("o/", i, "/", k));
            }
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
            mcos::v1::ResolveResponse resp;
            if (!stubs[static_cast<size_t>(t)]->Resolve(&ctx, req, &resp).ok()) errors++;
            latencies[static_cast<size_t>(t)].push_back(
                std::chrono::duration<double, std::milli>(mcos::tools::Clock::now() - due).count());
          }
        });
      }
      for (auto& w : workers) w.join();
      std::vector<double> all;
      for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
      std::sort(all.begin(), all.end());
      const double elapsed =
          std::chrono::duration<double>(mcos::tools::Clock::now() - start).count();
      if (all.empty()) continue;
      std::printf(
          "%6.0f lookups/s target, batch %4d: achieved %8.0f lookups/s  p50 %7.3f ms  p99 %7.3f "
          "ms  (%zu calls, %lu errors)\n",
          rate, batch, static_cast<double>(all.size()) * batch / elapsed, all[all.size() / 2],
          all[std::min(all.size() - 1, all.size() * 99 / 100)], all.size(),
          static_cast<unsigned long>(errors.load()));
      std::fflush(stdout);
    }
  }
  if (node) {
    node->Signal(SIGTERM);
    node->Wait();
  }
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  return 0;
}
