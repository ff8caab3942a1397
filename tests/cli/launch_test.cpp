// grpo launch: every rank's lines come out prefixed with its rank, the exit code is the failing
// rank's, one rank dying stops the others, and bad usage is one clear line. Ranks run
// `grpo version`, `grpo config check` or `grpo bench allreduce` (no training assets needed).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/run_cli.h"
#include "support/spawn.h"

using grpo::testing::run_cli;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The pid the launcher logged for `rank`, waiting up to 30 s for the line; -1 when absent.
pid_t rank_pid(const grpo::testing::Child& launcher, int rank) {
  const std::regex line("launch: rank " + std::to_string(rank) + " is pid ([0-9]+)");
  for (int i = 0; i < 600; ++i) {
    std::smatch m;
    const std::string log = launcher.log();
    if (std::regex_search(log, m, line)) return static_cast<pid_t>(std::stoi(m[1]));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

// The parent pid of `pid` (field 4 of /proc/<pid>/stat), -1 when it is gone.
pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

TEST(Launch, PrefixesEachRanksLines) {
  const auto r = run_cli("launch --nproc-per-node 2 -- version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "[rank 0] grpo ")) << r.out;
  EXPECT_TRUE(contains(r.out, "[rank 1] grpo ")) << r.out;
}

TEST(Launch, ExitsWithTheFailingRanksCode) {
  // Both ranks fail with a config error (exit 2): the launcher passes the code on.
  const auto r = run_cli("launch --nproc-per-node 2 -- config check /nonexistent/run.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "grpo: error:")) << r.err;
  EXPECT_TRUE(contains(r.err, "] grpo: error:")) << r.err;  // prefixed by its rank
  EXPECT_TRUE(contains(r.out + r.err, "launch: failed (rank ")) << r.out << r.err;
}

// SIGKILL one rank of a long all-reduce benchmark: the launcher stops the other one and exits
// with the killed rank's code, 128 + 9.
TEST(Launch, OneRankDyingStopsTheOthers) {
  const std::string log =
      ::testing::TempDir() + "grpo_launch_kill_" + std::to_string(getpid()) + ".log";
  std::remove(log.c_str());  // never read another run's pids
  auto launcher = grpo::testing::spawn(
      {GRPO_CLI_PATH, "launch", "--nproc-per-node", "2", "--grace-s", "5", "--", "bench",
       "allreduce", "--mb", "0.01", "--repeat", "100000000", "--device", "cpu"},
      {}, log);
  const pid_t victim = rank_pid(launcher, 1);
  ASSERT_GT(victim, 0) << launcher.log();
  ASSERT_EQ(parent_of(victim), launcher.pid) << "not a rank of this launcher";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(victim, SIGKILL);
  grpo::testing::wait_child(launcher, 60);
  const std::string out = launcher.log();
  EXPECT_FALSE(launcher.timed_out) << out;
  EXPECT_EQ(launcher.exit_code, 137) << out;
  EXPECT_TRUE(contains(out, "launch: rank 1 exited with code 137; stopping the other ranks"))
      << out;
  EXPECT_TRUE(contains(out, "launch: failed (rank 1, exit code 137)")) << out;
}

TEST(Launch, UsageErrors) {
  auto r = run_cli("launch --nproc-per-node 2");
  EXPECT_EQ(r.exit_code, 2);
  r = run_cli("launch --nproc-per-node 2 --nnodes 2 --node-rank 1 -- version");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--master-addr is required with --nnodes 2")) << r.err;
  r = run_cli("launch --nproc-per-node 2 --nnodes 2 --node-rank 2 --master-addr a -- version");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--node-rank 2 must be in 0..1")) << r.err;
  r = run_cli("launch --nproc-per-node 1 -- launch --nproc-per-node 1 -- version");
  EXPECT_EQ(r.exit_code, 2);
}

// Alone, the all-reduce benchmark forms a one-rank group (a quick check of the backend).
// The launcher's --log-level reaches every rank; one given in the rank's command wins.
TEST(Launch, ForwardsItsLogLevel) {
  if (!contains(run_cli("version").out, "gloo backend: yes")) {
    GTEST_SKIP() << "no Gloo backend in this build (tests/support/gloo.h)";
  }
  const std::string bench = " -- bench allreduce --device cpu --mb 0.01 --repeat 1";
  const auto plain = run_cli("launch --nproc-per-node 2" + bench);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_TRUE(contains(plain.out + plain.err, "process group on cpu")) << plain.out << plain.err;
  const auto quiet = run_cli("--log-level warn launch --nproc-per-node 2" + bench);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_FALSE(contains(quiet.out + quiet.err, "process group on cpu")) << quiet.out << quiet.err;
  const auto inner =
      run_cli("--log-level warn launch --nproc-per-node 2 -- --log-level info" + bench.substr(3));
  ASSERT_EQ(inner.exit_code, 0) << inner.err;
  EXPECT_TRUE(contains(inner.out + inner.err, "process group on cpu")) << inner.out << inner.err;
}

TEST(Launch, BenchAllreduceAlone) {
  if (!contains(run_cli("version").out, "gloo backend: yes")) {
    GTEST_SKIP() << "no Gloo backend in this build (tests/support/gloo.h)";
  }
  const auto r = run_cli("bench allreduce --device cpu --mb 0.01 --repeat 2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "over 1 ranks, gloo backend on cpu")) << r.out;
}
