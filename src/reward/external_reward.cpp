// The external reward process: fork/exec /bin/sh -c COMMAND with stdin and stdout on pipes,
// feed and drain both with poll() so a program that writes before reading cannot deadlock us,
// and kill its whole process group at the deadline.
#include "grpo/reward/external_reward.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include "grpo/core/error.h"

namespace grpo::reward {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { GRPO_CHECK(pipe2(fd, O_CLOEXEC) == 0, "external reward: pipe: ", std::strerror(errno)); }
  ~Pipe() {
    close_end(0);
    close_end(1);
  }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

// Writing to a pipe whose reader exited raises SIGPIPE; block it on this thread and swallow
// the pending signal so the error surfaces as EPIPE instead of killing the trainer.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_;
  sigset_t old_;
};

struct RunResult {
  std::string out;
  int status = 0;
  bool timed_out = false;
};

RunResult run_command(const std::string& command, const std::string& input, double timeout_s) {
  Pipe in, out;
  SigpipeGuard guard;
  pid_t pid = fork();
  GRPO_CHECK(pid >= 0, "external reward: fork: ", std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in.fd[0], STDIN_FILENO);
    dup2(out.fd[1], STDOUT_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before any kill
  in.close_end(0);
  out.close_end(1);
  fcntl(in.fd[1], F_SETFL, O_NONBLOCK);
  fcntl(out.fd[0], F_SETFL, O_NONBLOCK);
  RunResult r;
  size_t written = 0;
  if (input.empty()) in.close_end(1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buf[65536];
  while (out.fd[0] >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd fds[2];
    int n = 0;
    fds[n++] = {out.fd[0], POLLIN, 0};
    if (in.fd[1] >= 0) fds[n++] = {in.fd[1], POLLOUT, 0};
    int ready =
        poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in.fd[1], input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        in.close_end(1);  // all fed, or the program stopped reading
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = ::read(out.fd[0], buf, sizeof(buf));
      if (got > 0) {
        r.out.append(buf, static_cast<size_t>(got));
        GRPO_CHECK(r.out.size() < (256u << 20), "external reward: more than 256 MiB of output");
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        out.close_end(0);
      }
    }
  }
  kill(-pid, SIGKILL);  // the group: children the command left behind go too
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

}  // namespace

RewardResult ExternalReward::score(const Sample& sample) const {
  return score_batch({sample}).front();
}

std::vector<RewardResult> ExternalReward::score_batch(const std::vector<Sample>& samples) const {
  if (samples.empty()) return {};
  std::string input;
  for (const auto& s : samples) {
    nlohmann::json line = {{"prompt", s.prompt},
                           {"completion", s.completion},
                           {"answer", s.answer},
                           {"tests", s.tests}};
    input += line.dump() + "\n";
  }
  const std::string& cmd = options_.command;
  RunResult run = run_command(cmd, input, options_.timeout_s);
  GRPO_CHECK(!run.timed_out, "external reward '", cmd, "' timed out after ", options_.timeout_s,
             " s on a batch of ", samples.size(), " samples (options.timeout_s)");
  GRPO_CHECK(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "external reward '", cmd,
             "' failed (",
             WIFEXITED(run.status) ? "exit code " + std::to_string(WEXITSTATUS(run.status))
                                   : "killed by signal " + std::to_string(WTERMSIG(run.status)),
             ")");
  std::vector<RewardResult> results;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    size_t n = results.size() + 1;
    GRPO_CHECK(n <= samples.size(), "external reward '", cmd, "' wrote more than ", samples.size(),
               " lines");
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    RewardResult r;
    if (j.is_number()) {
      r.score = j.get<double>();
    } else {
      GRPO_CHECK(j.is_object() && j.contains("score") && j["score"].is_number(),
                 "external reward '", cmd, "': output line ", n,
                 " is neither a number nor {\"score\": number, ...}: ", line.substr(0, 200));
      r.score = j["score"].get<double>();
      j.erase("score");
      r.details = std::move(j);
    }
    results.push_back(std::move(r));
  }
  GRPO_CHECK(results.size() == samples.size(), "external reward '", cmd, "' wrote ", results.size(),
             " lines for ", samples.size(), " samples");
  return results;
}

}  // namespace grpo::reward
