#include "tools/wan/wan_link.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kvt {

namespace {

// Runs the script, capturing its output (stdout and stderr); the exit status, -1 if it could not
// be started.
int RunScript(const std::string& args, std::string* out) {
  const std::string cmd = "'" + WanLink::ScriptPath() + "' " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Chomp(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::string WanLink::ScriptPath() {
  if (const char* e = std::getenv("KVT_WAN_LINK_SCRIPT"); e != nullptr && *e != 0) return e;
  return KVT_WAN_LINK_SCRIPT;
}

StatusOr<std::unique_ptr<WanLink>> WanLink::Create(const WanLinkOptions& o) {
  static std::atomic<uint64_t> counter{0};
  std::unique_ptr<WanLink> l(new WanLink());
  l->opts_ = o;
  l->name_ = "kvw-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  l->server_ns_ = l->name_ + "-s";
  l->client_ns_ = l->name_ + "-c";
  if (::geteuid() != 0) return Status::Unavailable("skip: network namespaces need root");
  std::string out;
  const int rc = RunScript("up " + l->name_ + " " + std::to_string(o.rate_mbit) + " " +
                               std::to_string(o.delay_ms),
                           &out);
  out = Chomp(out);
  if (rc == 77) {
    l->name_.clear();  // nothing to tear down
    return Status::Unavailable(out.empty() ? "skip: no network namespaces" : out);
  }
  if (rc != 0) {
    return Status::IoError("wan_link.sh up failed (" + std::to_string(rc) + "): " + out);
  }
  const size_t at = out.rfind("rate_mbit=");
  l->settings_ = at == std::string::npos ? out : out.substr(at);
  l->delay_applied_ = out.find("netem=yes") != std::string::npos;
  return l;
}

WanLink::~WanLink() {
  if (name_.empty()) return;
  std::string out;
  (void)RunScript("down " + name_, &out);
}

StatusOr<std::unique_ptr<ScopedNetns>> ScopedNetns::Enter(const std::string& name) {
  const int prev = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (prev < 0) return Status::Unavailable("cannot open this thread's network namespace");
  const std::string path = "/var/run/netns/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ::close(prev);
    return Status::NotFound("no network namespace " + name);
  }
  const int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0) {
    ::close(prev);
    return Status::Unavailable("setns into " + name + " failed");
  }
  return std::unique_ptr<ScopedNetns>(new ScopedNetns(prev));
}

ScopedNetns::~ScopedNetns() {
  (void)::setns(prev_, CLONE_NEWNET);
  ::close(prev_);
}

StatusOr<std::unique_ptr<NetnsProcess>> NetnsProcess::Start(const std::string& ns,
                                                            const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::InvalidArgument("no command");
  std::vector<std::string> full = {"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  std::vector<char*> args;
  for (auto& a : full) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return Status::Unavailable("fork failed");
  if (pid == 0) {
    ::execvp("ip", args.data());
    ::_exit(127);
  }
  return std::unique_ptr<NetnsProcess>(new NetnsProcess(pid));
}

int NetnsProcess::Wait() {
  if (!reaped_) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  return status_;
}

NetnsProcess::~NetnsProcess() {
  if (!reaped_) ::kill(pid_, SIGTERM);
  (void)Wait();
}

}  // namespace kvt
