// Runs one untrusted program in a bubblewrap container with a seccomp filter, rlimits, an
// optional cgroup v2 and a wall-clock timeout that kills the whole process tree. Used by the
// code_tests reward; docs/sandbox.md explains each layer and what it blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::reward {

// bwrap: the container described in docs/sandbox.md. none: the program runs directly on the
// host with rlimits only; for machines without user namespaces, warned about on every run.
enum class Isolation { bwrap, none };
const std::vector<std::pair<Isolation, std::string>>& enum_names(Isolation);

struct SandboxOptions {
  Isolation isolation = Isolation::bwrap;
  double timeout_s = 10.0;             // wall clock per program run
  int64_t memory_mb = 1024;            // address space per process (and cgroup memory.max)
  int64_t max_output_bytes = 1 << 20;  // stdout and stderr each; more is OLE
  int64_t tmp_size_mb = 64;            // size of the private /tmp tmpfs
  int64_t file_size_mb = 16;           // RLIMIT_FSIZE
  int64_t max_processes = 64;          // RLIMIT_NPROC (per sandbox uid) and cgroup pids.max
  int64_t max_open_files = 128;        // RLIMIT_NOFILE
  std::string bwrap = "bwrap";         // bubblewrap executable (PATH lookup when no '/')
  std::vector<std::string> ro_binds;   // extra host paths bound read-only (e.g. a venv)
  // When the host runs as root, each concurrent slot of each process runs under its own
  // unused host uid, host_uid_base + (pid mod 2^20) * 1024 + slot, so RLIMIT_NPROC counts
  // only that sandbox's processes (several trainer ranks on one host do not collide).
  int64_t host_uid_base = 2000000000;
  std::string cgroup_parent;  // cgroup v2 dir with memory+pids delegated; "" = auto-detect

  template <class V>
  void visit(V& v) {
    v("isolation", isolation);
    v("timeout_s", timeout_s, config::in_range(0.001, 3600.0));
    v("memory_mb", memory_mb, config::at_least(64));  // Python alone maps ~30 MB
    v("max_output_bytes", max_output_bytes, config::at_least(1));
    v("tmp_size_mb", tmp_size_mb, config::at_least(1));
    v("file_size_mb", file_size_mb, config::at_least(1));
    v("max_processes", max_processes, config::at_least(4));  // bwrap itself takes 2
    v("max_open_files", max_open_files, config::at_least(16));
    v("bwrap", bwrap, config::non_empty());
    v("ro_binds", ro_binds);
    v("host_uid_base", host_uid_base, config::in_range(1000, 3e9));
    v("cgroup_parent", cgroup_parent);
  }
};

// A file placed read-only in the sandbox's box directory (name without '/', e.g. solution.py).
struct SandboxFile {
  std::string name;
  std::string contents;
};

struct RunRequest {
  // argv[0] is an absolute path; the text "{box}" in any argument becomes the box directory
  // holding `files` (/box in the container, a private temporary directory with isolation: none).
  std::vector<std::string> argv;
  std::string stdin_data;
  std::vector<SandboxFile> files;
  // Side channel for a trusted harness: fd 3 reads `channel_input` (then EOF) and what is
  // written to fd 4 comes back as RunResult::channel (only when use_channel is true).
  bool use_channel = false;
  std::string channel_input;
};

struct RunResult {
  int exit_code = -1;          // exit status, or -1 when killed by a signal
  int term_signal = 0;         // signal that ended the program (bwrap reports 128+sig)
  bool timed_out = false;      // wall clock or CPU limit
  bool output_limit = false;   // stdout or stderr went past max_output_bytes
  bool oom_killed = false;     // the cgroup's memory.max was hit (only with a cgroup)
  bool sandbox_error = false;  // the container could not start (details in err)
  std::string out, err, channel;
  double wall_s = 0.0;
};

class Sandbox {
 public:
  // Probes the isolation once (bwrap found, user namespaces usable) and throws a runtime error
  // that says how to fix it, unless options say isolation: none.
  explicit Sandbox(SandboxOptions options);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Thread-safe. `slot` in [0, 1024) picks the host uid (see host_uid_base); two
  // concurrent runs must use different slots.
  RunResult run(const RunRequest& request, int slot = 0) const;

  const SandboxOptions& options() const { return options_; }
  // Whether runs get a cgroup v2 (memory.max, pids.max); false where none is delegated.
  bool uses_cgroup() const;
  // The host uid a slot's processes run under, or -1 when the host is not root.
  int64_t host_uid(int slot) const;

 private:
  struct Impl;
  SandboxOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Seccomp BPF program (struct sock_filter[]) that bwrap loads before exec: docs/sandbox.md.
std::string build_seccomp_bpf();

}  // namespace grpo::reward
