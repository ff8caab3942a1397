// Starts child processes with extra environment variables (the ranks of a distributed test),
// captures their stdout+stderr into a file, and waits for them with a deadline.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace grpo::testing {

struct Child {
  pid_t pid = -1;
  std::string log_path;
  int exit_code = -1;      // exit status, or 128 + signal
  bool timed_out = false;  // killed by wait_child's deadline
  double seconds = 0;      // from start to exit
  std::chrono::steady_clock::time_point started;

  std::string log() const {
    std::ifstream in(log_path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

// A TCP port that was free a moment ago (bound to port 0 and released).
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs `argv` with `env` added to this process's environment; output goes to log_path.
inline Child spawn(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env, const std::string& log_path) {
  Child child;
  child.log_path = log_path;
  child.started = std::chrono::steady_clock::now();
  child.pid = fork();
  if (child.pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return child;
}

// Waits until the child exits or `deadline_s` passed since it started (then SIGKILL).
inline void wait_child(Child& child, double deadline_s) {
  int status = 0;
  while (true) {
    pid_t r = waitpid(child.pid, &status, WNOHANG);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - child.started).count();
    if (r == child.pid) {
      child.seconds = elapsed;
      break;
    }
    if (elapsed > deadline_s) {
      kill(child.pid, SIGKILL);
      waitpid(child.pid, &status, 0);
      child.timed_out = true;
      child.seconds = elapsed;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  child.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The environment of rank `rank` of `world` ranks on this host.
inline std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world)},
          {"LOCAL_RANK", std::to_string(rank)},
          {"LOCAL_WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)},
          {"OMP_NUM_THREADS", "1"}};
}

}  // namespace grpo::testing
