// A TCP proxy on a free loopback port that delays every byte by a fixed time in each direction:
// a slow wide-area link (200 ms each way = 400 ms round trip) for tests of clients over real
// networks. Bandwidth is not limited. With a source address (any of 127.0.0.0/8) the server sees
// the connections come from there: a client at another address. Thread-per-direction; for tests
// only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mcos::testing {

class DelayProxy {
 public:
  // Forwards connections to 127.0.0.1:`target_port`, each direction delayed by `delay`, from
  // `source` (an IPv4 loopback address; empty: the kernel's choice).
  DelayProxy(int target_port, absl::Duration delay, std::string source = "")
      : DelayProxy([target_port] { return target_port; }, delay, std::move(source)) {}
  // The same, asking `target_port` for the port at each new connection (a target that starts
  // after the proxy: tools/mcos-delay-proxy).
  DelayProxy(std::function<int()> target_port, absl::Duration delay, std::string source = "")
      : target_port_(std::move(target_port)), delay_(delay), source_(std::move(source)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    (void)bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // port 0: any free
    listen(listen_fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~DelayProxy() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    {
      absl::MutexLock lock(&mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : pumps_) t.join();
    for (int fd : fds_) close(fd);
  }
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  struct Chunk {
    absl::Time due;
    std::string bytes;
  };
  // One direction: a reader stamps what arrives, a writer sends it once due.
  struct Pipe {
    absl::Mutex mu;
    std::deque<Chunk> queue;
    bool closed = false;
  };

  void AcceptLoop() {
    while (!stop_) {
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      const int server = socket(AF_INET, SOCK_STREAM, 0);
      if (!source_.empty()) {
        sockaddr_in from{};
        from.sin_family = AF_INET;
        inet_pton(AF_INET, source_.c_str(), &from.sin_addr);
        (void)bind(server, reinterpret_cast<sockaddr*>(&from), sizeof(from));  // else: any
      }
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_()));
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        close(server);
        continue;
      }
      for (int fd : {client, server}) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      absl::MutexLock lock(&mu_);
      fds_.push_back(client);
      fds_.push_back(server);
      for (const auto& ends : {std::pair{client, server}, std::pair{server, client}}) {
        auto pipe = std::make_shared<Pipe>();
        pumps_.emplace_back([this, from = ends.first, pipe] { Read(from, *pipe); });
        pumps_.emplace_back([this, to = ends.second, pipe] { Write(to, *pipe); });
      }
    }
  }

  void Read(int fd, Pipe& pipe) {
    std::string buf(size_t{256} * 1024, '\0');
    while (true) {
      const ssize_t n = read(fd, buf.data(), buf.size());
      absl::MutexLock lock(&pipe.mu);
      if (n <= 0) {
        pipe.closed = true;
        return;
      }
      pipe.queue.push_back({absl::Now() + delay_, buf.substr(0, static_cast<size_t>(n))});
    }
  }

  void Write(int fd, Pipe& pipe) {
    while (true) {
      Chunk chunk;
      {
        absl::MutexLock lock(&pipe.mu);
        auto ready = [&pipe] { return !pipe.queue.empty() || pipe.closed; };
        pipe.mu.Await(absl::Condition(&ready));
        if (pipe.queue.empty()) {
          shutdown(fd, SHUT_WR);
          return;
        }
        chunk = std::move(pipe.queue.front());
        pipe.queue.pop_front();
      }
      absl::SleepFor(chunk.due - absl::Now());
      size_t off = 0;
      while (off < chunk.bytes.size()) {
        const ssize_t n =
            send(fd, chunk.bytes.data() + off, chunk.bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
      }
    }
  }

  const std::function<int()> target_port_;
  const absl::Duration delay_;
  const std::string source_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_;
};

}  // namespace mcos::testing
