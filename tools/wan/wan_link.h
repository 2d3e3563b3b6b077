// WanLink: a rate-limited link between two network namespaces, for the limited-link tests and
// kvtier-bench's wan/ rows. It runs tests/wan/wan_link.sh (veth pair, tbf on both ends, netem
// delay where the kernel has it) and tears the link down in its destructor. Names are unique per
// process and link (kvw-PID-N), so parallel runs never collide; a link left by a crashed process
// is removed by the next `up`.
//
// ScopedNetns moves the calling thread into one side of the link until it is destroyed. Threads
// started meanwhile inherit that namespace, and a socket keeps the namespace it was created in, so
// a Server started (or a Store opened) inside the scope keeps serving (or fetching) across the
// link after the scope ends.
//
// Thread safety: a WanLink is used from one thread; ScopedNetns affects only its own thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace kvt {

struct WanLinkOptions {
  uint32_t rate_mbit = 1000;  // tbf rate on both ends; 0: unshaped
  uint32_t delay_ms = 0;      // netem delay on both ends, only where the kernel has netem
};

class WanLink {
 public:
  static constexpr const char* kServerAddr = "10.77.0.1";
  static constexpr const char* kClientAddr = "10.77.0.2";

  // Unavailable: namespaces cannot be made here (not root, no tc/tbf, no netns); the message
  // starts with "skip:" and says why. Other errors: the script failed.
  static StatusOr<std::unique_ptr<WanLink>> Create(const WanLinkOptions& o);
  ~WanLink();
  WanLink(const WanLink&) = delete;
  WanLink& operator=(const WanLink&) = delete;

  const std::string& server_ns() const { return server_ns_; }
  const std::string& client_ns() const { return client_ns_; }
  const WanLinkOptions& options() const { return opts_; }
  // Whether the requested delay is in effect (false when the kernel lacks netem).
  bool delay_applied() const { return delay_applied_; }
  // The settings that ran, e.g. "rate_mbit=1000 delay_ms=5 netem=no".
  const std::string& settings() const { return settings_; }

  // The script's path (compiled in; KVT_WAN_LINK_SCRIPT overrides it at run time).
  static std::string ScriptPath();

 private:
  WanLink() = default;
  std::string name_, server_ns_, client_ns_, settings_;
  WanLinkOptions opts_;
  bool delay_applied_ = false;
};

class ScopedNetns {
 public:
  // Enters the named namespace (/var/run/netns/NAME) on the calling thread.
  static StatusOr<std::unique_ptr<ScopedNetns>> Enter(const std::string& name);
  ~ScopedNetns();  // back to the thread's previous namespace
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

 private:
  explicit ScopedNetns(int prev) : prev_(prev) {}
  int prev_;
};

// A process started inside a namespace (`ip netns exec NS argv...`); SIGTERM and reaped on
// destruction.
class NetnsProcess {
 public:
  static StatusOr<std::unique_ptr<NetnsProcess>> Start(const std::string& ns,
                                                       const std::vector<std::string>& argv);
  ~NetnsProcess();
  pid_t pid() const { return pid_; }
  // Waits for the exit; the exit status (128+signal when killed).
  int Wait();

 private:
  explicit NetnsProcess(pid_t p) : pid_(p) {}
  pid_t pid_;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace kvt
