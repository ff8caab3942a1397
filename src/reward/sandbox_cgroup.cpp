// cgroup v2 limits for sandbox runs: memory.max (swap off) and pids.max on a child cgroup per
// run, removed afterwards. Skipped, with a debug log line, where no such tree is writable.
#include "sandbox_cgroup.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace grpo::reward::detail {
namespace {

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  return static_cast<bool>(f);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool has_controllers(const std::string& list) {
  std::istringstream in(list);
  bool memory = false, pids = false;
  for (std::string w; in >> w;) {
    memory = memory || w == "memory";
    pids = pids || w == "pids";
  }
  return memory && pids;
}

}  // namespace

std::unique_ptr<Cgroup> Cgroup::detect(const std::string& parent) {
  const std::string root = parent.empty() ? "/sys/fs/cgroup" : parent;
  if (!has_controllers(read_file(root + "/cgroup.controllers"))) {
    spdlog::debug(
        "code sandbox: no cgroup v2 with memory and pids controllers at {}; relying on "
        "rlimits (RLIMIT_AS, RLIMIT_NPROC) only",
        root);
    return nullptr;
  }
  // Children only get the controllers that the parent's subtree_control lists; enabling them
  // fails when the parent holds processes itself (cgroup v2's no-internal-process rule).
  if (!has_controllers(read_file(root + "/cgroup.subtree_control")) &&
      !write_file(root + "/cgroup.subtree_control", "+memory +pids")) {
    spdlog::debug(
        "code sandbox: cannot enable memory+pids in {}/cgroup.subtree_control; "
        "relying on rlimits only",
        root);
    return nullptr;
  }
  const std::string dir = root + "/grpo-sandbox-" + std::to_string(getpid());
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    spdlog::debug("code sandbox: cannot create {}; relying on rlimits only", dir);
    return nullptr;
  }
  if (!write_file(dir + "/cgroup.subtree_control", "+memory +pids")) {
    rmdir(dir.c_str());
    spdlog::debug("code sandbox: cannot delegate memory+pids to {}; relying on rlimits only", dir);
    return nullptr;
  }
  spdlog::debug("code sandbox: per-run cgroups under {}", dir);
  return std::make_unique<Cgroup>(dir);
}

Cgroup::~Cgroup() { rmdir(dir_.c_str()); }

std::unique_ptr<CgroupRun> Cgroup::start(int64_t memory_mb, int64_t max_processes) {
  const std::string dir = dir_ + "/run-" + std::to_string(counter_++);
  if (mkdir(dir.c_str(), 0755) != 0) {
    spdlog::warn("code sandbox: cannot create cgroup {}: running without it", dir);
    return nullptr;
  }
  auto run = std::make_unique<CgroupRun>(dir);
  bool ok = write_file(dir + "/memory.max", std::to_string(memory_mb << 20)) &&
            write_file(dir + "/pids.max", std::to_string(max_processes));
  write_file(dir + "/memory.swap.max", "0");  // absent without swap accounting: fine
  if (!ok) {
    spdlog::warn("code sandbox: cannot set limits on cgroup {}: running without it", dir);
    return nullptr;
  }
  return run;
}

bool CgroupRun::finish() {
  if (finished_) return false;
  finished_ = true;
  bool oom = false;
  std::istringstream events(read_file(dir_ + "/memory.events"));
  for (std::string key; events >> key;) {
    long long v = 0;
    events >> v;
    if (key == "oom_kill" && v > 0) oom = true;
  }
  // cgroup.kill (Linux 5.14) ends everything at once; older kernels: signal each member.
  if (!write_file(dir_ + "/cgroup.kill", "1")) {
    std::istringstream procs(read_file(procs_path()));
    for (long pid; procs >> pid;) kill(static_cast<pid_t>(pid), SIGKILL);
  }
  for (int i = 0; i < 200 && rmdir(dir_.c_str()) != 0 && errno == EBUSY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return oom;
}

CgroupRun::~CgroupRun() { finish(); }

}  // namespace grpo::reward::detail
