// Internal to the sandbox: starting a child with a fixed fd layout, rlimits and uid, and the
// poll loop that feeds stdin, captures output with a cap and enforces the wall clock.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace grpo::reward::detail {

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct Pipe {
  UniqueFd read, write;
};
Pipe make_pipe();  // both ends close-on-exec
UniqueFd memfd_with(const char* name, const std::string& data);

// What the forked child does before execve. Everything here is prepared in the parent so that
// the child only makes async-signal-safe calls.
struct ChildSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path of the executable
  std::vector<std::string> env;
  std::vector<int> fds;  // fds[i] becomes fd i in the child; everything else is closed
  std::vector<std::pair<int, rlimit>> limits;
  long uid = -1;  // setuid/setgid to this host uid when >= 0 (needs root)
  const std::string* seccomp_bpf = nullptr;  // loaded in the child (isolation: none only)
  std::string cwd;
  std::string cgroup_procs;  // cgroup.procs file the child moves itself into, when set
};

// fork + exec. Returns the pid; the child is the leader of a new session and process group.
// Throws when fork fails; an exec failure is reported by exec_errno (0 when exec worked).
pid_t spawn(const ChildSpec& spec, int* exec_errno);

struct IoResult {
  std::string out, err, channel, status;
  bool timed_out = false;
  bool output_limit = false;
  int wait_status = 0;
  double wall_s = 0.0;
};

// Feeds `input` to stdin_w, reads the other fds until the child exits and they reach EOF,
// kills the process tree on timeout or output overflow and reaps it. `status_r` (bwrap's
// --json-status-fd, -1 without bwrap) names the namespace's pid 1, which is killed first and
// waited for: when run_io returns, no process of the run is left.
IoResult run_io(pid_t pid, UniqueFd stdin_w, UniqueFd out_r, UniqueFd err_r, UniqueFd channel_r,
                UniqueFd status_r, const std::string& input, double timeout_s,
                size_t max_output_bytes);

// Kills every process of host uid `uid` (root only): forks, drops to that uid, kill(-1).
void kill_uid(long uid);

}  // namespace grpo::reward::detail
