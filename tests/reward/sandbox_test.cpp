// Sandbox: the container starts, stdin/stdout/exit status/signals travel as documented, the
// timeout and output cap hold, the fd 3/4 channel works, and nothing survives a run.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <signal.h>
#include <unistd.h>

#include "grpo/reward/sandbox.h"
#include "sandbox_test_util.h"

namespace grpo::reward {
namespace {

const char* kPython = "/usr/bin/python3";

RunRequest python(const std::string& code, const std::string& input = "") {
  RunRequest r;
  r.argv = {kPython, "-I", "-c", code};
  r.stdin_data = input;
  return r;
}

SandboxOptions fast_options() {
  SandboxOptions o;
  o.timeout_s = 3.0;
  o.memory_mb = 256;
  o.max_output_bytes = 1 << 16;
  return o;
}

TEST(SandboxSeccomp, ExportsWholeBpfProgram) {
  std::string bpf = build_seccomp_bpf();
  ASSERT_FALSE(bpf.empty());
  EXPECT_EQ(bpf.size() % sizeof(sock_filter), 0u);
}

TEST(Sandbox, EchoesStdinAndReportsExitStatus) {
  Sandbox sb(fast_options());
  RunResult r = sb.run(
      python("import sys; d = sys.stdin.read(); print(d.upper()); sys.exit(3)", "hello sandbox"));
  EXPECT_EQ(r.out, "HELLO SANDBOX\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_FALSE(r.timed_out);
}

TEST(Sandbox, RunsAsNobodyWithoutNetworkOrHome) {
  Sandbox sb(fast_options());
  RunResult r = sb.run(
      python("import os, socket\n"
             "print(os.getuid(), os.getgid(), os.getpid() < 10, sorted(os.environ))\n"
             "print(os.path.exists('/root'), os.path.exists('/home'), os.path.exists('/work'))\n"
             "try:\n    socket.socket(socket.AF_INET)\n    print('inet')\n"
             "except OSError as e:\n    print('no inet', e.errno)\n"));
  EXPECT_EQ(r.out,
            "65534 65534 True ['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']\n"
            "False False False\nno inet 97\n")
      << r.err;
}

TEST(Sandbox, ReportsTheKillingSignal) {
  Sandbox sb(fast_options());
  RunResult r = sb.run(python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"));
  EXPECT_EQ(r.term_signal, SIGSEGV);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(Sandbox, TimeoutKillsTheWholeTree) {
  SandboxOptions o = fast_options();
  o.timeout_s = 1.0;
  Sandbox sb(o);
  RunResult r =
      sb.run(python("import os, time\nfor _ in range(5):\n    os.fork()\ntime.sleep(100)"), 3);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(r.wall_s, 10.0);
  EXPECT_EQ(test::processes_of_uid(sb.host_uid(3)), 0);
}

TEST(Sandbox, OutputCapStopsTheProgram) {
  Sandbox sb(fast_options());
  RunResult r = sb.run(python("while True: print('x' * 1000)"));
  EXPECT_TRUE(r.output_limit);
  EXPECT_EQ(r.out.size(), static_cast<size_t>(1 << 16));
}

TEST(Sandbox, LargeStdinAndStdoutDoNotDeadlock) {
  Sandbox sb(fast_options());
  SandboxOptions o = fast_options();
  o.max_output_bytes = 8 << 20;
  Sandbox big(o);
  std::string input(4 << 20, 'a');
  RunResult r = big.run(python("import sys; sys.stdout.write(sys.stdin.read())", input));
  EXPECT_EQ(r.out.size(), input.size());
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Sandbox, ChannelCarriesHarnessData) {
  Sandbox sb(fast_options());
  RunRequest req = python("import os; d = os.read(3, 100); os.write(4, d[::-1])");
  req.use_channel = true;
  req.channel_input = "abc123";
  RunResult r = sb.run(req);
  EXPECT_EQ(r.channel, "321cba");
}

TEST(Sandbox, FilesAppearReadOnlyInTheBox) {
  Sandbox sb(fast_options());
  RunRequest req;
  req.argv = {kPython, "-I", "{box}/main.py", "{box}"};
  req.files = {{"main.py",
                "import sys\nprint(open(sys.argv[1] + '/data.txt').read())\n"
                "try:\n    open(sys.argv[1] + '/data.txt', 'w')\nexcept OSError as e:\n"
                "    print('ro', e.errno)\n"},
               {"data.txt", "payload"}};
  RunResult r = sb.run(req);
  EXPECT_EQ(r.out, "payload\nro 30\n") << r.err;
}

TEST(Sandbox, IsolationNoneStillAppliesLimits) {
  SandboxOptions o = fast_options();
  o.isolation = Isolation::none;
  o.timeout_s = 1.0;
  Sandbox sb(o);
  RunResult ok = sb.run(python("import sys; print(sys.stdin.read()[::-1])", "abc"));
  EXPECT_EQ(ok.out, "cba\n");
  RunResult loop = sb.run(python("while True: pass"), 5);
  EXPECT_TRUE(loop.timed_out);
  EXPECT_EQ(test::processes_of_uid(sb.host_uid(5)), 0);
}

// Only where a cgroup v2 with memory+pids is delegated (not on cgroup v1 hosts): tmpfs pages
// escape RLIMIT_AS but not memory.max.
TEST(SandboxCgroup, MemoryMaxCoversTmpfs) {
  SandboxOptions o = fast_options();
  o.memory_mb = 128;
  o.tmp_size_mb = 1024;
  o.timeout_s = 10.0;
  Sandbox sb(o);
  if (!sb.uses_cgroup()) GTEST_SKIP() << "no writable cgroup v2 with memory+pids here";
  RunResult r =
      sb.run(python("f = open('/tmp/fill', 'wb')\nfor _ in range(512):\n"
                    "    f.write(b'x' * (1 << 20))\n    f.flush()\nprint('survived')"));
  EXPECT_TRUE(r.oom_killed) << r.out << r.err;
  EXPECT_EQ(r.out.find("survived"), std::string::npos);
}

TEST(Sandbox, MissingBwrapIsAClearError) {
  SandboxOptions o = fast_options();
  o.bwrap = "/nonexistent/bwrap";
  try {
    Sandbox sb(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("isolation: none"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace grpo::reward
