// Internal to the sandbox: an optional cgroup v2 per program run for memory.max and pids.max,
// used where the machine delegates a writable cgroup v2 tree (docs/sandbox.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace grpo::reward::detail {

class CgroupRun;

class Cgroup {
 public:
  // A cgroup for this process's runs under `parent` ("" = /sys/fs/cgroup), or nullptr when
  // the controllers are not available or not writable (logged at debug level).
  static std::unique_ptr<Cgroup> detect(const std::string& parent);
  explicit Cgroup(std::string dir) : dir_(std::move(dir)) {}
  ~Cgroup();
  // A fresh child cgroup with the limits set, or nullptr (logged) when it cannot be made.
  std::unique_ptr<CgroupRun> start(int64_t memory_mb, int64_t max_processes);

 private:
  std::string dir_;
  std::atomic<uint64_t> counter_{0};
};

class CgroupRun {
 public:
  explicit CgroupRun(std::string dir) : dir_(std::move(dir)) {}
  ~CgroupRun();
  std::string procs_path() const { return dir_ + "/cgroup.procs"; }
  // Kills what is left, removes the cgroup; true when the memory limit killed a process.
  bool finish();

 private:
  std::string dir_;
  bool finished_ = false;
};

}  // namespace grpo::reward::detail
