// `grpo launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
//  -- <verb> ...`: starts N ranks of `grpo <verb> ...` on this node with the torchrun-style
// environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
// MASTER_PORT), prefixes every line they print with "[rank R] ", forwards SIGINT/SIGTERM, stops
// every rank when one fails and exits with the failing rank's code (docs/distributed.md).
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/dist/env.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct LaunchArgs {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr;
  int master_port = 0;
  double grace_s = 10;
  std::vector<std::string> command;
  std::string log_level;  // the launcher's --log-level, when given: every rank gets it too
};

volatile std::sig_atomic_t g_signals = 0;  // SIGINT/SIGTERM received so far
volatile std::sig_atomic_t g_last_signal = 0;

void on_signal(int sig) {
  g_last_signal = sig;
  g_signals = g_signals + 1;
}

// One output stream of one rank: bytes are cut into lines and each line gets the prefix.
struct Stream {
  int fd = -1;
  FILE* sink = nullptr;
  std::string pending;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = true;
  int exit_code = 0;  // exit status, or 128 + signal
  std::array<Stream, 2> streams;
};

void emit(const Rank& r, FILE* sink, const std::string& line) {
  const std::string out = "[rank " + std::to_string(r.rank) + "] " + line + "\n";
  std::fwrite(out.data(), 1, out.size(), sink);
  std::fflush(sink);
}

// Reads what is available; returns false at end of file.
bool drain(Rank& r, Stream& s) {
  char buf[4096];
  while (true) {
    const ssize_t n = read(s.fd, buf, sizeof buf);
    if (n > 0) {
      s.pending.append(buf, static_cast<size_t>(n));
      size_t start = 0, nl;
      while ((nl = s.pending.find('\n', start)) != std::string::npos) {
        emit(r, s.sink, s.pending.substr(start, nl - start));
        start = nl + 1;
      }
      s.pending.erase(0, start);
      continue;
    }
    if (n == 0) {
      if (!s.pending.empty()) emit(r, s.sink, s.pending);
      s.pending.clear();
      close(s.fd);
      s.fd = -1;
      return false;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

std::string self_path() {
  std::vector<char> buf(4096);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  GRPO_CHECK(n > 0, "grpo launch: cannot find its own executable: ", std::strerror(errno));
  return std::string(buf.data(), static_cast<size_t>(n));
}

// fork + exec of `grpo <command>` with the rank's environment; stdout/stderr into pipes.
Rank start_rank(const std::string& exe, const LaunchArgs& a, int local_rank, int world,
                const std::vector<std::pair<std::string, std::string>>& common) {
  Rank r;
  r.rank = a.node_rank * a.nproc_per_node + local_rank;
  int out[2], err[2];
  GRPO_CHECK(pipe(out) == 0 && pipe(err) == 0, "grpo launch: pipe failed: ", std::strerror(errno));
  const pid_t parent = getpid();
  r.pid = fork();
  GRPO_CHECK(r.pid >= 0, "grpo launch: fork failed: ", std::strerror(errno));
  if (r.pid == 0) {
    // Own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it once
    // (a second SIGINT would kill a rank that is finishing its step). Die with the launcher.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    for (const auto& [k, v] : common) setenv(k.c_str(), v.c_str(), 1);
    setenv("RANK", std::to_string(r.rank).c_str(), 1);
    setenv("LOCAL_RANK", std::to_string(local_rank).c_str(), 1);
    setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    std::vector<std::string> words{exe};
    if (!a.log_level.empty()) words.insert(words.end(), {"--log-level", a.log_level});
    words.insert(words.end(), a.command.begin(), a.command.end());
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    std::fprintf(stderr, "grpo launch: cannot execute %s: %s\n", exe.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  r.streams[0] = {out[0], stdout, ""};
  r.streams[1] = {err[0], stderr, ""};
  for (auto& s : r.streams) fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
  return r;
}

void signal_all(std::vector<Rank>& ranks, int sig, bool whole_group) {
  for (auto& r : ranks) {
    if (r.running) kill(whole_group ? -r.pid : r.pid, sig);
  }
}

int launch(LaunchArgs a) {
  GRPO_CHECK_KIND(usage, a.nproc_per_node >= 1, "--nproc-per-node must be at least 1");
  GRPO_CHECK_KIND(usage, a.nnodes >= 1, "--nnodes must be at least 1");
  GRPO_CHECK_KIND(usage, a.node_rank >= 0 && a.node_rank < a.nnodes, "--node-rank ", a.node_rank,
                  " must be in 0..", a.nnodes - 1);
  GRPO_CHECK_KIND(usage, !a.command.empty(),
                  "grpo launch needs a command after --, e.g. grpo launch --nproc-per-node 2 -- "
                  "train --config run.yaml");
  GRPO_CHECK_KIND(usage, a.command.front() != "launch", "grpo launch cannot launch itself");
  GRPO_CHECK_KIND(usage, a.nnodes == 1 || !a.master_addr.empty(),
                  "--master-addr is required with --nnodes ", a.nnodes,
                  ": the address of node 0, where rank 0 hosts the rendezvous store");
  if (a.master_addr.empty()) a.master_addr = "127.0.0.1";
  if (a.master_port == 0) a.master_port = a.nnodes == 1 ? dist::free_local_port() : 29500;
  GRPO_CHECK_KIND(usage, a.master_port >= 1 && a.master_port <= 65535, "--master-port ",
                  a.master_port, " is outside 1..65535");
  const int world = a.nnodes * a.nproc_per_node;

  std::vector<std::pair<std::string, std::string>> common{
      {"LOCAL_WORLD_SIZE", std::to_string(a.nproc_per_node)},
      {"GROUP_RANK", std::to_string(a.node_rank)},
      {"MASTER_ADDR", a.master_addr},
      {"MASTER_PORT", std::to_string(a.master_port)}};
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    // N ranks on one host share its cores (CPU runs): each gets its share of threads.
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const unsigned threads = std::max(1u, cores / static_cast<unsigned>(a.nproc_per_node));
    common.emplace_back("OMP_NUM_THREADS", std::to_string(threads));
  }
  log::info("launch: ranks ", a.node_rank * a.nproc_per_node, "..",
            (a.node_rank + 1) * a.nproc_per_node - 1, " of ", world, " on this node, store at ",
            a.master_addr, ":", a.master_port);

  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction previous_int = {};
  struct sigaction previous_term = {};
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
  g_signals = 0;

  const std::string exe = self_path();
  std::vector<Rank> ranks;
  for (int local = 0; local < a.nproc_per_node; ++local) {
    ranks.push_back(start_rank(exe, a, local, world, common));
    log::info("launch: rank ", ranks.back().rank, " is pid ", ranks.back().pid);
  }

  int forwarded = 0;
  int failed_rank = -1, failed_code = 0;
  std::optional<Clock::time_point> kill_at, all_exited_at;
  while (true) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Rank*, Stream*>> owners;
    for (auto& r : ranks) {
      for (auto& s : r.streams) {
        if (s.fd >= 0) {
          fds.push_back({s.fd, POLLIN, 0});
          owners.emplace_back(&r, &s);
        }
      }
    }
    if (!fds.empty()) poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) drain(*owners[i].first, *owners[i].second);
    }
    while (forwarded < g_signals) {
      ++forwarded;
      log::warn("launch: forwarding signal ", static_cast<int>(g_last_signal), " to the ranks");
      signal_all(ranks, g_last_signal, false);
    }
    bool any_running = false;
    for (auto& r : ranks) {
      if (!r.running) continue;
      int status = 0;
      if (waitpid(r.pid, &status, WNOHANG) == r.pid) {
        r.running = false;
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r.exit_code != 0 && failed_rank < 0) {
          failed_rank = r.rank;
          failed_code = r.exit_code;
          log::error("launch: rank ", r.rank, " exited with code ", r.exit_code,
                     "; stopping the other ranks");
          signal_all(ranks, SIGTERM, false);
          kill_at =
              Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(a.grace_s * 1000));
        }
      } else {
        any_running = true;
      }
    }
    if (kill_at && Clock::now() >= *kill_at && any_running) {
      log::error("launch: ranks still running ", a.grace_s, " s after the failure: killing them");
      signal_all(ranks, SIGKILL, true);
      kill_at.reset();
    }
    bool open_streams = false;
    for (auto& r : ranks) {
      for (auto& s : r.streams) open_streams = open_streams || s.fd >= 0;
    }
    if (!any_running) {
      if (!open_streams) break;
      // A rank's own children (reward sandboxes) may still hold its pipes: give them a moment.
      if (!all_exited_at) all_exited_at = Clock::now();
      if (Clock::now() - *all_exited_at > std::chrono::seconds(1)) {
        for (auto& r : ranks) {
          for (auto& s : r.streams) {
            if (s.fd < 0) continue;
            if (!s.pending.empty()) emit(r, s.sink, s.pending);
            close(s.fd);
            s.fd = -1;
          }
        }
        break;
      }
    }
  }
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
  if (failed_rank >= 0) {
    log::error("launch: failed (rank ", failed_rank, ", exit code ", failed_code, ")");
    return failed_code;
  }
  return 0;
}

}  // namespace

void add_launch_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "launch", "Run N ranks of a grpo command on this node (data-parallel training)");
  auto a = std::make_shared<LaunchArgs>();
  cmd->add_option("--nproc-per-node", a->nproc_per_node, "Ranks on this node (one per GPU)")
      ->required();
  cmd->add_option("--nnodes", a->nnodes, "Nodes in the job")->capture_default_str();
  cmd->add_option("--node-rank", a->node_rank, "This node's index, 0 .. nnodes-1")
      ->capture_default_str();
  cmd->add_option("--master-addr", a->master_addr,
                  "Address of node 0 (default 127.0.0.1; required with --nnodes > 1)");
  cmd->add_option("--master-port", a->master_port,
                  "Rendezvous port on node 0 (default: a free port, or 29500 with --nnodes > 1)");
  cmd->add_option("--grace-s", a->grace_s,
                  "Seconds the other ranks get to stop after one fails, before SIGKILL")
      ->capture_default_str();
  cmd->add_option("command", a->command, "The grpo verb to run and its arguments, after --")
      ->required();
  cmd->callback([a, cmd] {
    const auto* level = cmd->get_parent()->get_option("--log-level");
    if (level->count() > 0) a->log_level = level->as<std::string>();
    const int code = launch(*a);
    if (code != 0) throw ExitStatus{code};
  });
}

}  // namespace grpo::cli
