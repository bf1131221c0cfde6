// mcos-bench: load through the public UserService of one cluster, as applications see it.
//   * small objects: N concurrent clients (one connection each) create, stat, download and
//     delete objects of a fixed size; ops/s, p50, p99 per operation;
//   * large streams: an upload and a download of one big object through the SDK, next to the bare
//     gRPC stream of the same process (BenchService) as the reference;
//   * optionally the peak RSS of the cluster process while a huge object goes up.
// With --cluster-bin it starts its own mcos-cluster in a temp dir and stops it at the end.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <streambuf>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/sdk/client.h"
#include "common/cli.h"
#include "common/subprocess.h"
#include "common/token.h"
#include "mcos/v1/bench.grpc.pb.h"
#include "tools/bench_util.h"

namespace {

using mcos::tools::Clock;
using mcos::tools::MBps;
using mcos::tools::PrintStats;
using mcos::tools::RunConcurrent;

// An input stream of `size` bytes repeating one random 1 MiB block, without holding more.
class PatternBuf : public std::streambuf {
 public:
  PatternBuf(const std::string& block, uint64_t size) : block_(block), left_(size) {}

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, block_.size()));
    char* p = const_cast<char*>(block_.data());
    setg(p, p, p + n);
    left_ -= n;
    return traits_type::to_int_type(*p);
  }

 private:
  const std::string& block_;
  uint64_t left_;
};

// An output stream that only counts.
class CountingBuf : public std::streambuf {
 public:
  uint64_t count = 0;

 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    count += static_cast<uint64_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    ++count;
    return c;
  }
};

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"mcos-bench: throughput and latency of one MCOS cluster through UserService"};
  std::string endpoint, cluster_bin, admin_password;
  int clients = 16;
  double seconds = 5;
  size_t small_bytes = 4096;
  uint64_t large_mib = 256, rss_mib = 0;
  cli.add_option("--endpoint", endpoint, "Use a running cluster at HOST:PORT");
  std::vector<std::string> endpoints;
  cli.add_option("--endpoints", endpoints,
                 "Several clusters of one federation (HOST:PORT,...): the clients are spread over "
                 "them round-robin; the admin logs in at the first")
      ->delimiter(',');
  uint32_t list_objects = 0;
  cli.add_option("--list-objects", list_objects,
                 "Also time listing a container of this many objects (at every endpoint)");
  uint64_t list_object_bytes = 1;
  cli.add_option("--list-object-bytes", list_object_bytes,
                 "Size of each object of --list-objects (e.g. to fill a federation with data)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{64} << 20));
  int list_rounds = 5;
  cli.add_option("--list-rounds", list_rounds,
                 "Listings timed at each endpoint (the median is printed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cli.add_option("--admin-password", admin_password,
                 "Its admin password (else $MCOS_ADMIN_PASSWORD)");
  cli.add_option("--cluster-bin", cluster_bin, "Start this mcos-cluster binary instead");
  cli.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  cli.add_option("--seconds", seconds, "Duration of each small-object phase")
      ->capture_default_str();
  cli.add_option("--small-bytes", small_bytes, "Size of small objects")->capture_default_str();
  bool put = false;
  cli.add_flag("--put", put,
               "Store the objects with PutObject (create or replace) instead of CreateObject "
               "(create only, which first asks whether the object exists)");
  cli.add_option("--large-mib", large_mib, "Size of the large stream (MiB); 0 skips it")
      ->capture_default_str();
  int large_rounds = 1;
  cli.add_option("--large-rounds", large_rounds,
                 "Upload and download the large object this many times, each printed: the first "
                 "round over a new connection between clusters pays for gRPC's flow-control "
                 "window growing (as TCP's slow start); later rounds show the steady rate")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  std::string tls_ca, tls_cert, tls_key;
  cli.add_option("--tls-ca", tls_ca, "Speak TLS, verifying the cluster with this CA (PEM)");
  cli.add_option("--tls-cert", tls_cert,
                 "With --cluster-bin: the cluster serves TLS with this certificate (PEM)");
  cli.add_option("--tls-key", tls_key, "The private key of --tls-cert");
  cli.add_option("--rss-mib", rss_mib,
                 "Also upload an object this big and report the cluster's peak RSS "
                 "(needs --cluster-bin)");
  std::vector<int> server_pids;
  cli.add_option("--server-pids", server_pids,
                 "Also report the server CPU time and context switches per operation of each "
                 "small-object phase, summed over all threads of these processes (PID,...: the "
                 "clusters and their nats-servers; tools/federation.sh bench passes them; with "
                 "--cluster-bin, the cluster it starts is added). Switches of threads that end "
                 "during a phase are not counted")
      ->delimiter(',');
  mcos::common::AddVersionFlag(cli, "mcos-bench");
  MCOS_CLI_PARSE(cli, argc, argv);
  if (admin_password.empty()) {
    if (const char* pw = std::getenv("MCOS_ADMIN_PASSWORD"); pw != nullptr) admin_password = pw;
  }

  std::unique_ptr<mcos::common::Subprocess> node;
  std::string temp_dir;
  if (!cluster_bin.empty()) {
    temp_dir = mcos::tools::MakeTempDir();
    admin_password = mcos::common::RandomHex(12);
    setenv("MCOS_ADMIN_PASSWORD", admin_password.c_str(), 1);
    std::vector<std::string> args = {cluster_bin, "--data-dir",  temp_dir + "/cluster",
                                     "--listen",  "127.0.0.1:0", "--enable-bench-service"};
    if (!tls_cert.empty()) args.insert(args.end(), {"--tls-cert", tls_cert, "--tls-key", tls_key});
    auto p = mcos::tools::SpawnListening(args, temp_dir + "/cluster.log", &endpoint);
    unsetenv("MCOS_ADMIN_PASSWORD");
    if (!p.ok()) return Fail("start", p.status());
    node = std::move(*p);
    server_pids.push_back(node->pid());
  }
  if (endpoint.empty() && !endpoints.empty()) endpoint = endpoints.front();
  if (endpoints.empty()) endpoints = {endpoint};
  if (endpoint.empty()) {
    std::fprintf(stderr,
                 "error: pass --endpoint HOST:PORT, --endpoints HOST:PORT,... or --cluster-bin "
                 "PATH\n");
    return 2;
  }
  mcos::client::ClientOptions tls;
  tls.tls_ca_file = tls_ca;
  mcos::client::Client admin(endpoint, tls);
  if (auto r = admin.Login("admin", admin_password); !r.ok())
    return Fail("admin login", r.status());
  const std::string user = absl::StrCat("bench-", mcos::common::RandomHex(3));
  const std::string password = mcos::common::RandomHex(8);
  if (auto r = admin.AddUser(user, password, false); !r.ok()) return Fail("add user", r.status());
  std::vector<std::unique_ptr<mcos::client::Client>> conns;
  // The user reaches the other clusters of a federation within moments: retry for a while.
  auto retry = [](const std::function<absl::Status()>& op) {
    absl::Status s;
    for (int attempt = 0; attempt < 100; ++attempt) {
      s = op();
      if (s.ok()) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return s;
  };
  for (int c = 0; c < clients; ++c) {
    mcos::client::ClientOptions o = tls;
    o.own_connection = true;
    conns.push_back(std::make_unique<mcos::client::Client>(
        endpoints[static_cast<size_t>(c) % endpoints.size()], o));
    if (auto s = retry([&] { return conns.back()->Login(user, password).status(); }); !s.ok()) {
      return Fail("login", s);
    }
  }
  if (auto r = conns[0]->CreateContainer("bench"); !r.ok()) return Fail("container", r.status());
  for (size_t c = 1; c < std::min(conns.size(), endpoints.size()); ++c) {
    mcos::v1::ListObjectsRequest probe;
    probe.set_container("bench");
    if (auto s = retry([&] { return conns[c]->ListObjects(probe).status(); }); !s.ok()) {
      return Fail("container at another cluster", s);
    }
  }
  std::printf("mcos-bench: %s%s, %d clients, %zu-byte objects, user %s\n",
              absl::StrJoin(endpoints, ",").c_str(), tls_ca.empty() ? "" : " (TLS)", clients,
              small_bytes, user.c_str());

  std::mt19937_64 rng(7);
  std::string small(small_bytes, '\0');
  for (auto& ch : small) ch = static_cast<char>(rng());
  std::vector<uint64_t> created(static_cast<size_t>(clients), 0);
  auto name = [](int c, uint64_t i) { return absl::StrCat("s/", c, "/", i); };

  // Runs one phase and prints it, with the servers' cost per operation when their pids are known.
  auto phase = [&](const char* what, const std::function<mcos::tools::Stats()>& run) {
    const auto before = mcos::tools::ReadServerCost(server_pids);
    const mcos::tools::Stats stats = run();
    std::optional<std::pair<double, uint64_t>> cost;
    if (!server_pids.empty()) cost = mcos::tools::ReadServerCost(server_pids).Since(before);
    PrintStats(what, stats, cost);
  };
  phase(put ? "put" : "create", [&] {
    return RunConcurrent(clients, seconds, [&](int c, uint64_t i) {
      std::istringstream in(small);
      auto& conn = *conns[static_cast<size_t>(c)];
      auto r = put ? conn.PutObject("bench", name(c, i), in)
                   : conn.CreateObject("bench", name(c, i), in);
      if (r.ok()) created[static_cast<size_t>(c)] = i + 1;
      return r.ok();
    });
  });
  auto pick = [&](int c, uint64_t i) {
    const uint64_t n = std::max<uint64_t>(1, created[static_cast<size_t>(c)]);
    return name(c, (i * 7919) % n);
  };
  phase("stat", [&] {
    return RunConcurrent(clients, seconds, [&](int c, uint64_t i) {
      return conns[static_cast<size_t>(c)]->StatObject("bench", pick(c, i)).ok();
    });
  });
  phase("download", [&] {
    return RunConcurrent(clients, seconds, [&](int c, uint64_t i) {
      CountingBuf buf;
      std::ostream out(&buf);
      auto r = conns[static_cast<size_t>(c)]->DownloadObject("bench", pick(c, i), out);
      return r.ok() && buf.count == small_bytes;
    });
  });
  phase("delete (every created)", [&] {
    return mcos::tools::RunCounts(created, [&](int c, uint64_t i) {
      return conns[static_cast<size_t>(c)]->DeleteObject("bench", name(c, i)).ok();
    });
  });

  if (list_objects > 0) {
    // A container of list_objects objects, made by all clients at once, then listed in one page
    // at every endpoint (median of 5).
    if (auto r = conns[0]->CreateContainer("listing"); !r.ok())
      return Fail("container", r.status());
    std::atomic<uint32_t> next{0};
    std::atomic<int> list_failures{0};
    const std::string fill =
        mcos::common::RandomHex(std::min<uint64_t>(list_object_bytes, 1 << 20));
    std::vector<std::thread> makers;
    makers.reserve(static_cast<size_t>(clients));
    for (int c = 0; c < clients; ++c) {
      makers.emplace_back([&, c] {
        for (uint32_t i = next++; i < list_objects; i = next++) {
          const absl::Status put = retry([&] {
            PatternBuf buf(fill, list_object_bytes);
            std::istream in(&buf);
            return conns[static_cast<size_t>(c)]
                ->PutObject("listing", absl::StrCat("o/", i), in)
                .status();
          });
          if (!put.ok()) ++list_failures;
        }
      });
    }
    for (auto& t : makers) t.join();
    if (list_failures > 0)
      std::printf("listing: %d objects could not be made\n", list_failures.load());
    std::printf("listing: %u objects made; timing %d listings at each endpoint\n", list_objects,
                list_rounds);
    std::fflush(stdout);
    for (size_t e = 0; e < std::min(conns.size(), endpoints.size()); ++e) {
      std::vector<double> ms;
      int listed = 0;
      for (int round = 0; round < list_rounds; ++round) {
        mcos::v1::ListObjectsRequest req;
        req.set_container("listing");
        req.set_limit(list_objects);
        const auto t0 = Clock::now();
        auto r = conns[e]->ListObjects(req);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!r.ok()) return Fail("list", r.status());
        listed = r->objects_size();
      }
      std::sort(ms.begin(), ms.end());
      std::printf("%-28s %d objects in %.1f ms (median of %d; fastest %.1f) at %s\n",
                  "list (one page)", listed, ms[ms.size() / 2], list_rounds, ms.front(),
                  endpoints[e].c_str());
    }
  }

  std::string block(1 << 20, '\0');
  for (auto& ch : block) ch = static_cast<char>(rng());
  auto upload = [&](const std::string& object, uint64_t bytes) -> double {
    PatternBuf buf(block, bytes);
    std::istream in(&buf);
    mcos::client::PutOptions po;
    po.size = bytes;
    const auto t0 = Clock::now();
    auto r = put ? conns[0]->PutObject("bench", object, in, po)
                 : conns[0]->CreateObject("bench", object, in, po);
    if (!r.ok()) {
      Fail("upload", r.status());
      return 0;
    }
    return MBps(bytes, Clock::now() - t0);
  };
  auto download = [&](const std::string& object, uint64_t bytes) -> double {
    CountingBuf buf;
    std::ostream out(&buf);
    const auto t0 = Clock::now();
    auto r = conns[0]->DownloadObject("bench", object, out);
    if (!r.ok() || buf.count != bytes) return 0;
    return MBps(bytes, Clock::now() - t0);
  };
  if (large_mib > 0) {
    const uint64_t bytes = large_mib << 20;
    // The bare-stream reference is plaintext and one endpoint: not measured over TLS or against a
    // federation (then only the MB/s are printed).
    const auto [sink, source] =
        tls_ca.empty() && endpoints.size() == 1
            ? mcos::tools::BareStreamMBps(mcos::tools::OwnConnection(endpoint), block, bytes)
            : std::pair<double, double>{0, 0};
    for (int round = 1; round <= large_rounds; ++round) {
      const std::string suffix = large_rounds > 1 ? absl::StrCat(" #", round) : "";
      const std::string object = round == 1 ? "large" : absl::StrCat("large-", round);
      const double up = upload(object, bytes);
      const double down = download(object, bytes);
      mcos::tools::PrintStreamRatio(absl::StrCat("upload ", large_mib, " MiB", suffix), up, sink);
      mcos::tools::PrintStreamRatio(absl::StrCat("download ", large_mib, " MiB", suffix), down,
                                    source);
    }
  }
  if (rss_mib > 0 && node) {
    const uint64_t bytes = rss_mib << 20;
    const auto before = mcos::common::PeakRssBytes(node->pid());
    const double up = upload("huge", bytes);
    const auto after = mcos::common::PeakRssBytes(node->pid());
    std::printf("%-28s upload %.1f MB/s; mcos-cluster peak RSS %.1f MiB (%.1f MiB before)\n",
                absl::StrCat(rss_mib, " MiB upload").c_str(), up,
                after.ok() ? static_cast<double>(*after) / (1 << 20) : -1.0,
                before.ok() ? static_cast<double>(*before) / (1 << 20) : -1.0);
  }
  if (node) {
    node->Signal(SIGTERM);
    node->Wait();
  }
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  return 0;
}
