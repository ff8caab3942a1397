// Process plumbing of the sandbox: fork/exec with a fixed fd layout, rlimits and a dropped uid,
// and a poll loop that never deadlocks on stdin/stdout and kills the process tree on limits.
#include "sandbox_process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "grpo/core/error.h"

namespace grpo::reward::detail {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int kPidfdIdType = 3;  // P_PIDFD (Linux 5.4), absent from older glibc headers

int pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// A write to a pipe whose reader is gone raises SIGPIPE for the whole process; block it in this
// thread for the call and swallow the pending signal, so a program that closes stdin early
// costs nothing.
ssize_t write_no_sigpipe(int fd, const char* data, size_t n) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  ssize_t r = write(fd, data, n);
  int err = errno;
  if (r < 0 && err == EPIPE) {
    timespec zero{0, 0};
    sigtimedwait(&set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return r;
}

pid_t parent_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* close_paren = strrchr(buf, ')');  // comm may contain spaces
  int ppid = -1;
  char state;
  if (!close_paren || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

[[noreturn]] void child_fail(int err_fd, int err) {
  ssize_t ignored = write(err_fd, &err, sizeof err);
  (void)ignored;
  _exit(127);
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

Pipe make_pipe() {
  int p[2];
  GRPO_CHECK(pipe2(p, O_CLOEXEC) == 0, "sandbox: pipe2 failed: ", std::strerror(errno));
  return Pipe{UniqueFd(p[0]), UniqueFd(p[1])};
}

UniqueFd memfd_with(const char* name, const std::string& data) {
  UniqueFd fd(memfd_create(name, MFD_CLOEXEC));
  GRPO_CHECK(fd.get() >= 0, "sandbox: memfd_create failed: ", std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd.get(), data.data() + done, data.size() - done);
    GRPO_CHECK(w > 0 || errno == EINTR, "sandbox: writing memfd failed: ", std::strerror(errno));
    if (w > 0) done += static_cast<size_t>(w);
  }
  GRPO_CHECK(lseek(fd.get(), 0, SEEK_SET) == 0, "sandbox: lseek on memfd failed");
  return fd;
}

pid_t spawn(const ChildSpec& spec, int* exec_errno) {
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  sock_fprog prog{};
  if (spec.seccomp_bpf) {
    prog.len = static_cast<unsigned short>(spec.seccomp_bpf->size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(spec.seccomp_bpf->data()));
  }
  const int n = static_cast<int>(spec.fds.size());
  char pid_text[32] = {0};
  Pipe err_pipe = make_pipe();  // close-on-exec: EOF means exec worked

  pid_t pid = fork();
  GRPO_CHECK(pid >= 0, "sandbox: fork failed: ", std::strerror(errno));
  if (pid == 0) {
    // Child: async-signal-safe calls only (the parent may be multi-threaded).
    const int ef = err_pipe.write.get();
    if (setsid() < 0) child_fail(ef, errno);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (!spec.cgroup_procs.empty()) {
      int cg = open(spec.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (cg < 0) child_fail(ef, errno);
      // The kernel reads "0" as the writing process itself.
      pid_text[0] = '0';
      if (write(cg, pid_text, 1) != 1) child_fail(ef, errno);
      close(cg);
    }
    // Two passes so that no source fd is overwritten before it is moved: copy every source
    // above the target range, then put the copies in place. The error pipe moves up too.
    int efd = fcntl(ef, F_DUPFD_CLOEXEC, n + 1);
    if (efd < 0) child_fail(ef, errno);
    int copies[16];
    if (n > 16) child_fail(efd, E2BIG);
    for (int i = 0; i < n; ++i) {
      copies[i] = fcntl(spec.fds[i], F_DUPFD_CLOEXEC, n + 1);
      if (copies[i] < 0) child_fail(efd, errno);
    }
    for (int i = 0; i < n; ++i) {
      if (dup2(copies[i], i) < 0) child_fail(efd, errno);
    }
    for (int fd = n; fd < efd; ++fd) close(fd);
    if (syscall(SYS_close_range, efd + 1, ~0U, 0) != 0) {
      for (int fd = efd + 1; fd < 65536; ++fd) close(fd);
    }
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) child_fail(efd, errno);
    for (const auto& [resource, limit] : spec.limits) {
      if (setrlimit(resource, &limit) != 0) child_fail(efd, errno);
    }
    if (spec.uid >= 0) {
      if (setgroups(0, nullptr) != 0) child_fail(efd, errno);
      if (setgid(static_cast<gid_t>(spec.uid)) != 0) child_fail(efd, errno);
      if (setuid(static_cast<uid_t>(spec.uid)) != 0) child_fail(efd, errno);
    }
    if (spec.seccomp_bpf) {
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(efd, errno);
      if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) child_fail(efd, errno);
    }
    execve(argv[0], argv.data(), envp.data());
    child_fail(efd, errno);
  }
  err_pipe.write.reset();
  int err = 0;
  ssize_t got;
  do {
    got = read(err_pipe.read.get(), &err, sizeof err);
  } while (got < 0 && errno == EINTR);
  *exec_errno = got == static_cast<ssize_t>(sizeof err) ? err : 0;
  return pid;
}

IoResult run_io(pid_t pid, UniqueFd stdin_w, UniqueFd out_r, UniqueFd err_r, UniqueFd channel_r,
                UniqueFd status_r, const std::string& input, double timeout_s,
                size_t max_output_bytes) {
  IoResult res;
  const double start = now_s();
  const double deadline = start + timeout_s;
  UniqueFd pidfd(pidfd_open(pid));
  for (int fd : {stdin_w.get(), out_r.get(), err_r.get(), channel_r.get(), status_r.get()}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (input.empty()) stdin_w.reset();
  size_t input_pos = 0;
  bool reaped = false;
  bool killed = false;
  double drain_deadline = 0.0;
  // With bwrap, pid 1 of the sandbox's pid namespace (reported on the status fd) is killed
  // first: the kernel then ends every process inside, and bwrap reaps it, so nothing is left
  // as a zombie for a host init that may not reap. Killing bwrap itself is the fallback.
  UniqueFd init_fd;
  double force_at = 0.0;
  auto open_init = [&] {
    size_t at = res.status.find("\"child-pid\"");
    if (init_fd.get() >= 0 || at == std::string::npos) return;
    long init_pid = std::strtol(res.status.c_str() + res.status.find(':', at) + 1, nullptr, 10);
    UniqueFd fd(pidfd_open(static_cast<pid_t>(init_pid)));
    // The pidfd pins the process; check that it is still bwrap's child (not a reused pid).
    if (fd.get() >= 0 && parent_of(static_cast<pid_t>(init_pid)) == pid) init_fd = std::move(fd);
  };
  auto kill_tree = [&] {
    if (killed) return;
    killed = true;
    if (init_fd.get() >= 0 &&
        syscall(SYS_pidfd_send_signal, init_fd.get(), SIGKILL, nullptr, 0) == 0) {
      force_at = now_s() + 1.0;
    } else {
      kill(-pid, SIGKILL);
    }
  };
  auto try_reap = [&](bool block) {
    if (reaped) return;
    pid_t r;
    do {
      r = waitpid(pid, &res.wait_status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid) {
      reaped = true;
      // Whatever is left of the group (none with bwrap, whose namespace dies with it).
      kill(-pid, SIGKILL);
      drain_deadline = now_s() + 0.5;
    }
  };
  char buf[65536];
  while (true) {
    UniqueFd* readers[4] = {&out_r, &err_r, &channel_r, &status_r};
    std::string* sinks[4] = {&res.out, &res.err, &res.channel, &res.status};
    bool any_open = false;
    for (auto* r : readers) any_open = any_open || r->get() >= 0;
    double now = now_s();
    if (reaped && (!any_open || now > drain_deadline)) break;
    if (!reaped && !killed && now >= deadline) {
      res.timed_out = true;
      kill_tree();
    }
    pollfd fds[6];
    int nfds = 0;
    for (auto* r : readers) {
      if (r->get() >= 0) fds[nfds++] = pollfd{r->get(), POLLIN, 0};
    }
    if (stdin_w.get() >= 0) fds[nfds++] = pollfd{stdin_w.get(), POLLOUT, 0};
    if (!reaped && pidfd.get() >= 0) fds[nfds++] = pollfd{pidfd.get(), POLLIN, 0};
    double until = reaped ? drain_deadline : (killed ? now + 0.05 : deadline);
    if (pidfd.get() < 0 && !reaped) until = std::min(until, now + 0.01);  // no pidfd: poll
    int wait_ms = std::max(0, static_cast<int>((until - now) * 1000.0) + 1);
    int pr = poll(fds, static_cast<nfds_t>(nfds), wait_ms);
    if (pr < 0 && errno != EINTR) break;
    for (int i = 0; i < 4; ++i) {
      UniqueFd& r = *readers[i];
      if (r.get() < 0) continue;
      ssize_t got = read(r.get(), buf, sizeof buf);
      if (got > 0) {
        std::string& sink = *sinks[i];
        size_t cap = i < 2 ? max_output_bytes : 1 << 16;
        size_t keep = std::min(static_cast<size_t>(got), cap - std::min(cap, sink.size()));
        sink.append(buf, keep);
        if (keep < static_cast<size_t>(got)) {
          if (i < 2) res.output_limit = true;
          kill_tree();
          r.reset();
        }
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        r.reset();
      }
    }
    if (stdin_w.get() >= 0) {
      ssize_t w = write_no_sigpipe(stdin_w.get(), input.data() + input_pos,
                                   std::min<size_t>(input.size() - input_pos, 65536));
      if (w > 0) input_pos += static_cast<size_t>(w);
      if (input_pos >= input.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        stdin_w.reset();
      }
    }
    open_init();
    if (killed && !reaped && force_at > 0 && now_s() > force_at) {
      kill(-pid, SIGKILL);
      force_at = 0.0;
    }
    try_reap(killed && force_at == 0.0);
  }
  if (!reaped) {
    kill(-pid, SIGKILL);
    try_reap(true);
  }
  if (init_fd.get() >= 0) {
    // pid 1 of the namespace exits only after every process inside has gone. bwrap does not
    // reap it when the program ends normally; as a child subreaper we inherit and reap it.
    pollfd p{init_fd.get(), POLLIN, 0};
    while (poll(&p, 1, 2000) < 0 && errno == EINTR) {
    }
    siginfo_t info{};
    while (waitid(static_cast<idtype_t>(kPidfdIdType), static_cast<id_t>(init_fd.get()), &info,
                  WEXITED | WNOHANG) < 0 &&
           errno == EINTR) {
    }
  }
  res.wall_s = now_s() - start;
  return res;
}

void kill_uid(long uid) {
  pid_t pid = fork();
  if (pid == 0) {
    // kill(-1) from a process of that uid reaches exactly that uid's processes (and not us).
    if (setgid(static_cast<gid_t>(uid)) == 0 && setuid(static_cast<uid_t>(uid)) == 0) {
      kill(-1, SIGKILL);
    }
    _exit(0);
  }
  if (pid > 0) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace grpo::reward::detail
