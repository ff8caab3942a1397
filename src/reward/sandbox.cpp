// Sandbox: builds the bubblewrap command line (namespaces, read-only system directories, a
// private /tmp, the seccomp filter), applies rlimits and a per-slot host uid, and turns the
// process's end into a RunResult. docs/sandbox.md describes the threat model.
#include "grpo/reward/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include <spdlog/spdlog.h>

#include "grpo/core/error.h"
#include "sandbox_cgroup.h"
#include "sandbox_process.h"

namespace grpo::reward {

using detail::UniqueFd;

const std::vector<std::pair<Isolation, std::string>>& enum_names(Isolation) {
  static const std::vector<std::pair<Isolation, std::string>> names = {{Isolation::bwrap, "bwrap"},
                                                                       {Isolation::none, "none"}};
  return names;
}

namespace {

// Whether uids [first, first + count) exist in this user namespace: inside a container whose
// root is itself mapped (rootless runtimes), setuid to an unmapped uid would fail.
bool uids_mapped(int64_t first, int64_t count) {
  std::ifstream map("/proc/self/uid_map");
  for (int64_t inside, outside, n; map >> inside >> outside >> n;) {
    if (inside <= first && first + count <= inside + n) return true;
  }
  return false;
}

std::string resolve_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string cand = dirs.substr(start, end - start) + "/" + name;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return "";
}

// The pids of the processes owned by `uid` right now (RLIMIT_NPROC counts them all, not only
// ours).
std::vector<pid_t> processes_of(uid_t uid) {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    struct stat st;
    if (stat((std::string("/proc/") + e->d_name).c_str(), &st) == 0 && st.st_uid == uid) {
      pids.push_back(static_cast<pid_t>(std::atol(e->d_name)));
    }
  }
  closedir(d);
  return pids;
}

// Waits up to `seconds` until no process of `uid` is left. Killed processes (a daemon's, the
// pid namespace's) take a moment to go, and until then RLIMIT_NPROC counts them against the
// slot's next run. Any of them that is this process's child (the namespace's pid 1, inherited
// as a child subreaper) is reaped here; waitpid on any other pid does nothing.
void wait_until_gone(uid_t uid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    const std::vector<pid_t> left = processes_of(uid);
    for (pid_t pid : left) waitpid(pid, nullptr, WNOHANG);
    if (left.empty() || std::chrono::steady_clock::now() > deadline) return;
    usleep(1000);
  }
}

// Writes what fits without blocking (the reader only starts later); returns the bytes written.
ssize_t write_all_nonblocking(int fd, const std::string& data) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  return static_cast<ssize_t>(done);
}

std::string replace_box(const std::string& arg, const std::string& box) {
  std::string out = arg;
  for (size_t pos; (pos = out.find("{box}")) != std::string::npos;) out.replace(pos, 5, box);
  return out;
}

}  // namespace

struct Sandbox::Impl {
  std::string bpf;
  std::string bwrap_path;
  std::vector<std::string> mount_args;  // system directories, computed once
  std::unique_ptr<detail::Cgroup> cgroup;
  bool drop_uid = false;  // root with the slot uid range mapped: one host uid per slot
};

Sandbox::Sandbox(SandboxOptions options) : options_(std::move(options)), impl_(new Impl) {
  for (const auto& p : options_.ro_binds) {
    GRPO_CHECK_KIND(config, !p.empty() && p[0] == '/',
                    "code sandbox: ro_binds entries must be absolute paths, got '", p, "'");
  }
  impl_->bpf = build_seccomp_bpf();
  if (geteuid() == 0) {
    impl_->drop_uid = uids_mapped(options_.host_uid_base, int64_t{1} << 30);
    if (!impl_->drop_uid) {
      spdlog::warn(
          "code sandbox: uids {}..+2^30 are not mapped in this user namespace; "
          "sandboxed programs run as this process's uid (RLIMIT_NPROC still applies "
          "inside a user namespace)",
          options_.host_uid_base);
    }
  }
  impl_->cgroup = detail::Cgroup::detect(options_.cgroup_parent);
  if (options_.isolation == Isolation::none) {
    spdlog::warn(
        "code sandbox: isolation: none - untrusted programs run on this host with only "
        "rlimits and seccomp; use it only where bubblewrap cannot work");
    return;
  }
  // bwrap leaves the namespace's pid 1 to exit after the program; it is orphaned then, and a
  // container's init may never reap it (a zombie counted by RLIMIT_NPROC). As a child
  // subreaper this process inherits it and run() reaps it (docs/sandbox.md).
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  impl_->bwrap_path = resolve_executable(options_.bwrap);
  GRPO_CHECK(!impl_->bwrap_path.empty(), "code sandbox: bubblewrap executable '", options_.bwrap,
             "' not found; install the 'bubblewrap' package (scripts/setup.sh) or set ",
             "isolation: none to run untrusted code without a container (unsafe)");
  auto& m = impl_->mount_args;
  for (const char* dir : {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (lstat(dir, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(dir, target, sizeof target - 1);
      if (n <= 0) continue;
      m.insert(m.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), dir});
    } else if (S_ISDIR(st.st_mode)) {
      m.insert(m.end(), {"--ro-bind", dir, dir});
    }
  }
  // The few /etc files the dynamic loader and Python read; not passwd, shadow, or the rest.
  std::vector<std::string> etc = {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                                  "/etc/localtime", "/etc/alternatives"};
  if (DIR* d = opendir("/etc")) {
    while (dirent* e = readdir(d)) {
      if (std::strncmp(e->d_name, "python3", 7) == 0)
        etc.push_back(std::string("/etc/") + e->d_name);
    }
    closedir(d);
  }
  for (const auto& p : etc) m.insert(m.end(), {"--ro-bind-try", p, p});
  for (const auto& p : options_.ro_binds) {
    GRPO_CHECK_KIND(config, access(p.c_str(), R_OK) == 0, "code sandbox: ro_binds path '", p,
                    "' does not exist or is not readable");
    m.insert(m.end(), {"--ro-bind", p, p});
  }
  // Probe once so that a machine without user namespaces fails here with advice, not later
  // as a wall of RE verdicts.
  RunRequest probe;
  probe.argv = {access("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true"};
  RunResult r = run(probe, 0);
  GRPO_CHECK(r.exit_code == 0 && !r.sandbox_error,
             "code sandbox: bubblewrap could not start a container (exit ", r.exit_code,
             "): ", r.err.substr(0, 300),
             " - allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, "
             "kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap), or set "
             "isolation: none to run untrusted code without a container (unsafe)");
}

Sandbox::~Sandbox() = default;

bool Sandbox::uses_cgroup() const { return impl_->cgroup != nullptr; }

int64_t Sandbox::host_uid(int slot) const {
  if (!impl_->drop_uid) return -1;
  return options_.host_uid_base + (static_cast<int64_t>(getpid()) % (1 << 20)) * 1024 + slot;
}

RunResult Sandbox::run(const RunRequest& req, int slot) const {
  GRPO_CHECK(!req.argv.empty() && req.argv[0].size() > 1 && req.argv[0][0] == '/',
             "code sandbox: argv[0] must be an absolute path");
  const bool contained = options_.isolation == Isolation::bwrap;
  if (!contained) {
    spdlog::warn("code sandbox: running an untrusted program WITHOUT isolation (isolation: none)");
  }
  GRPO_CHECK(slot >= 0 && slot < 1024, "code sandbox: slot must be in [0, 1024), got ", slot);
  const int64_t uid = host_uid(slot);

  detail::ChildSpec spec;
  const rlim_t cpu = static_cast<rlim_t>(std::ceil(options_.timeout_s)) + 1;
  long nproc = options_.max_processes;
  if (uid < 0)
    nproc +=
        static_cast<long>(processes_of(getuid()).size());  // the limit counts all of this user's
  spec.limits = {{RLIMIT_CPU, {cpu, cpu + 1}},
                 {RLIMIT_AS,
                  {static_cast<rlim_t>(options_.memory_mb) << 20,
                   static_cast<rlim_t>(options_.memory_mb) << 20}},
                 {RLIMIT_FSIZE,
                  {static_cast<rlim_t>(options_.file_size_mb) << 20,
                   static_cast<rlim_t>(options_.file_size_mb) << 20}},
                 {RLIMIT_NOFILE,
                  {static_cast<rlim_t>(options_.max_open_files),
                   static_cast<rlim_t>(options_.max_open_files)}},
                 {RLIMIT_NPROC, {static_cast<rlim_t>(nproc), static_cast<rlim_t>(nproc)}},
                 {RLIMIT_CORE, {0, 0}}};
  spec.uid = uid;

  detail::Pipe in = detail::make_pipe(), out = detail::make_pipe(), err = detail::make_pipe();
  detail::Pipe tok = detail::make_pipe(), chan = detail::make_pipe(), status;
  std::vector<UniqueFd> data_fds;
  std::unique_ptr<detail::CgroupRun> cg;
  std::string box_dir;
  spec.fds = {in.read.get(), out.write.get(), err.write.get(), tok.read.get(), chan.write.get()};
  if (contained) {
    status = detail::make_pipe();
    data_fds.push_back(detail::memfd_with("grpo-seccomp", impl_->bpf));
    spec.fds.push_back(status.write.get());     // fd 5: --json-status-fd
    spec.fds.push_back(data_fds.back().get());  // fd 6: --seccomp
    box_dir = "/box";
    spec.argv = {
        impl_->bwrap_path, "--unshare-all", "--unshare-user", "--disable-userns",  "--uid",
        "65534",           "--gid",         "65534",          "--die-with-parent", "--new-session",
        "--hostname",      "sandbox"};
    spec.argv.insert(spec.argv.end(), impl_->mount_args.begin(), impl_->mount_args.end());
    spec.argv.insert(spec.argv.end(),
                     {"--dev", "/dev", "--size", std::to_string(options_.tmp_size_mb << 20),
                      "--tmpfs", "/tmp", "--size", std::to_string(options_.tmp_size_mb << 20),
                      "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--dir", "/box"});
    for (const auto& f : req.files) {
      data_fds.push_back(detail::memfd_with("grpo-file", f.contents));
      spec.argv.insert(spec.argv.end(),
                       {"--ro-bind-data", std::to_string(spec.fds.size()), "/box/" + f.name});
      spec.fds.push_back(data_fds.back().get());
    }
    spec.argv.insert(spec.argv.end(), {"--remount-ro",
                                       "/",
                                       "--clearenv",
                                       "--setenv",
                                       "PATH",
                                       "/usr/bin:/bin",
                                       "--setenv",
                                       "HOME",
                                       "/tmp",
                                       "--setenv",
                                       "LANG",
                                       "C.UTF-8",
                                       "--setenv",
                                       "TMPDIR",
                                       "/tmp",
                                       "--chdir",
                                       "/tmp",
                                       "--json-status-fd",
                                       "5",
                                       "--seccomp",
                                       "6",
                                       "--"});
  } else {
    char tmpl[] = "/tmp/grpo-box-XXXXXX";
    GRPO_CHECK(mkdtemp(tmpl) != nullptr, "code sandbox: mkdtemp failed: ", std::strerror(errno));
    box_dir = tmpl;
    chmod(tmpl, 0755);
    for (const auto& f : req.files) {
      std::ofstream(box_dir + "/" + f.name, std::ios::binary) << f.contents;
      chmod((box_dir + "/" + f.name).c_str(), 0644);
    }
    spec.cwd = box_dir;
    spec.seccomp_bpf = &impl_->bpf;
    spec.env = {"PATH=/usr/bin:/bin", "HOME=" + box_dir, "LANG=C.UTF-8"};
  }
  for (const auto& a : req.argv) spec.argv.push_back(replace_box(a, box_dir));
  if (impl_->cgroup) {
    cg = impl_->cgroup->start(options_.memory_mb, options_.max_processes);
    if (cg) spec.cgroup_procs = cg->procs_path();
  }

  // Written before the program starts: grow the pipe so that the write never blocks.
  if (!req.channel_input.empty()) {
    if (req.channel_input.size() > 65536) {
      fcntl(tok.write.get(), F_SETPIPE_SZ, static_cast<int>(req.channel_input.size()));
    }
    ssize_t w = write_all_nonblocking(tok.write.get(), req.channel_input);
    if (w != static_cast<ssize_t>(req.channel_input.size())) {
      GRPO_FAIL("code sandbox: channel input of ", req.channel_input.size(),
                " bytes does not fit in a pipe (fs.pipe-max-size)");
    }
  }
  tok.write.reset();
  int exec_errno = 0;
  pid_t pid = detail::spawn(spec, &exec_errno);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  tok.read.reset();
  chan.write.reset();
  status.write.reset();
  data_fds.clear();
  if (!req.use_channel) chan.read.reset();

  detail::IoResult io =
      detail::run_io(pid, std::move(in.write), std::move(out.read), std::move(err.read),
                     std::move(chan.read), std::move(status.read), req.stdin_data,
                     options_.timeout_s, static_cast<size_t>(options_.max_output_bytes));
  RunResult res;
  if (!contained) {
    if (uid >= 0) detail::kill_uid(uid);  // daemons that left the process group
    for (const auto& f : req.files) unlink((box_dir + "/" + f.name).c_str());
    rmdir(box_dir.c_str());
  }
  if (uid >= 0) wait_until_gone(static_cast<uid_t>(uid), 1.0);
  if (cg) res.oom_killed = cg->finish();
  res.out = std::move(io.out);
  res.err = std::move(io.err);
  res.channel = std::move(io.channel);
  res.timed_out = io.timed_out;
  res.output_limit = io.output_limit;
  res.wall_s = io.wall_s;
  if (exec_errno != 0) {
    res.sandbox_error = true;
    res.err = std::string("cannot start ") + spec.argv[0] + ": " + std::strerror(exec_errno);
    return res;
  }
  if (WIFEXITED(io.wait_status)) {
    res.exit_code = WEXITSTATUS(io.wait_status);
    // bwrap reports a program killed by signal N as exit status 128 + N.
    if (contained && res.exit_code > 128 && res.exit_code < 128 + 65) {
      res.term_signal = res.exit_code - 128;
      res.exit_code = -1;
    }
  } else if (WIFSIGNALED(io.wait_status)) {
    res.term_signal = WTERMSIG(io.wait_status);
  }
  if (res.term_signal == SIGXCPU) res.timed_out = true;
  return res;
}

}  // namespace grpo::reward
