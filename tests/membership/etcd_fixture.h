// A real etcd for the membership tests: a process on free loopback ports with its data in a
// temporary directory, started by the fixture and killed on teardown (RAII). Stop and Start
// again keep the data directory and ports (an etcd restart). Tests skip, saying so, where the
// etcd binary is not installed (Debian: etcd-server; setup.sh installs it).
//
// GatedProxy: a TCP relay in front of etcd that a test can close (every connection cut, new
// ones refused) and open again, to lose etcd from a client's point of view while it keeps
// running (and can be written to and compacted meanwhile).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "membership/etcd_client.h"
#include "tests/common/test_dir.h"
#include "tests/common/wait.h"

namespace kvt::testing {

inline uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class EtcdProcess {
 public:
  // The etcd binary on PATH (or /usr/bin/etcd), "" when not installed.
  static std::string Binary() {
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    path += ":/usr/bin:/usr/local/bin";
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':');) {
      if (!dir.empty() && ::access((dir + "/etcd").c_str(), X_OK) == 0) return dir + "/etcd";
    }
    return "";
  }

  EtcdProcess() : client_port_(FreeLoopbackPort()), peer_port_(FreeLoopbackPort()) {}
  ~EtcdProcess() { Stop(SIGKILL); }
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Starts etcd and waits until it answers (30 s bound). False with why() on failure.
  bool Start() {
    const std::string bin = Binary();
    if (bin.empty()) return Failed("etcd is not installed");
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string data = dir_.path() + "/data", log = dir_.path() + "/etcd.log";
    pid_ = ::fork();
    if (pid_ < 0) return Failed("fork failed");
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      ::dup2(2, 1);
      ::execl(bin.c_str(), "etcd", "--name", "default", "--data-dir", data.c_str(),
              "--listen-client-urls", client.c_str(), "--advertise-client-urls", client.c_str(),
              "--listen-peer-urls", peer.c_str(), "--initial-advertise-peer-urls", peer.c_str(),
              "--initial-cluster", ("default=" + peer).c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    etcd::EtcdClient c(url(), std::chrono::milliseconds(500));
    const bool up = WaitUntil([&] {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return c.RangePrefix("/").ok();
    });
    if (pid_ < 0 || !up) return Failed("etcd did not start; its log:\n" + LogTail());
    return true;
  }

  // Stops etcd (SIGTERM: a clean stop; SIGKILL: a crash) and reaps it.
  void Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  etcd::Url url() const { return etcd::Url{"127.0.0.1", client_port_}; }
  std::string http_url() const { return url().ToString(); }
  std::string remote(const std::string& prefix) const {
    return "etcd://127.0.0.1:" + std::to_string(client_port_) + prefix;
  }
  uint16_t client_port() const { return client_port_; }
  const std::string& why() const { return why_; }

  std::string LogTail() const {
    std::ifstream in(dir_.path() + "/etcd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  }

 private:
  bool Failed(const std::string& why) {
    why_ = why;
    Stop(SIGKILL);
    return false;
  }
  TestDir dir_;
  uint16_t client_port_, peer_port_;
  pid_t pid_ = -1;
  std::string why_;
};

// A TCP relay 127.0.0.1:port() -> 127.0.0.1:upstream, one thread per direction per connection.
class GatedProxy {
 public:
  explicit GatedProxy(uint16_t upstream) : upstream_(upstream) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~GatedProxy() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    Close();
    for (auto& t : pumps_) t.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  // Cuts every relayed connection; new ones are closed at once until Open.
  void Close() {
    open_ = false;
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  void Open() { open_ = true; }

 private:
  void Accept() {
    for (;;) {
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopping_) return;
        continue;
      }
      if (!open_) {
        ::close(c);
        continue;
      }
      const int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(upstream_);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(u);
        continue;
      }
      std::lock_guard<std::mutex> l(mu_);
      fds_.insert(c);
      fds_.insert(u);
      pumps_.emplace_back([this, c, u] { Relay(c, u); });
    }
  }
  void Relay(int c, int u) {
    std::thread back([=] { Pump(u, c); });
    Pump(c, u);
    back.join();
    std::lock_guard<std::mutex> l(mu_);
    fds_.erase(c);
    fds_.erase(u);
    ::close(c);
    ::close(u);
  }
  static void Pump(int from, int to) {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      if (::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(from, SHUT_RDWR);
    ::shutdown(to, SHUT_RDWR);
  }

  uint16_t upstream_, port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> open_{true}, stopping_{false};
  std::mutex mu_;
  std::set<int> fds_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

}  // namespace kvt::testing
