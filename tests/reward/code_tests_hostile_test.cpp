// Hostile programs against the code_tests sandbox: each gets a sane verdict, the host is left
// unchanged (files, listener, this process), and no process of the sandbox uid survives.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "grpo/reward/code_tests.h"
#include "sandbox_test_util.h"

namespace grpo::reward {
namespace {

CodeTestsOptions hostile_options() {
  CodeTestsOptions o;
  o.sandbox.timeout_s = 2.0;
  o.sandbox.memory_mb = 256;
  o.sandbox.max_output_bytes = 1 << 16;
  o.concurrency = 1;
  return o;
}

class Hostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { runner_ = new CodeTests(hostile_options()); }
  static void TearDownTestSuite() {
    delete runner_;
    runner_ = nullptr;
  }

  // Runs `code` on one stdin case and checks the verdict is one of `allowed` and that the
  // sandbox's host uid owns no process afterwards.
  std::string run(const std::string& code, const std::set<std::string>& allowed,
                  const std::string& input = "", const std::string& expected = "ok\n") {
    Sample s;
    s.completion = "```python\n" + code + "\n```";
    s.tests = nlohmann::json::array({{{"input", input}, {"output", expected}}});
    RewardResult r = runner_->score(s);
    std::string verdict = r.details["verdict"];
    EXPECT_TRUE(allowed.count(verdict)) << "verdict " << verdict << ": " << r.details.dump();
    EXPECT_EQ(test::processes_of_uid(runner_->sandbox_host_uid(0)), 0);
    return verdict;
  }

  std::string run_function(const std::string& code, const std::string& check) {
    Sample s;
    s.completion = "```python\n" + code + "\n```";
    s.tests = {{"check", check}, {"entry_point", "f"}};
    RewardResult r = runner_->score(s);
    EXPECT_EQ(test::processes_of_uid(runner_->sandbox_host_uid(0)), 0);
    return r.details["verdict"];
  }

  static CodeTests* runner_;
};
CodeTests* Hostile::runner_ = nullptr;

const char* kCheckOne = "def check(candidate):\n    assert candidate() == 1\n";

TEST_F(Hostile, InfiniteLoop) { run("while True:\n    pass", {"TLE"}); }

TEST_F(Hostile, SleepForever) { run("import time\ntime.sleep(10**6)", {"TLE"}); }

TEST_F(Hostile, ForkBomb) {
  run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
      {"TLE", "RE"});
}

TEST_F(Hostile, ThreadBomb) {
  run("import threading, time\nwhile True:\n"
      "    threading.Thread(target=time.sleep, args=(1000,)).start()",
      {"RE", "MLE", "TLE"});
}

TEST_F(Hostile, MemoryBomb) { run("x = []\nwhile True:\n    x.append(' ' * 10**7)", {"MLE"}); }

TEST_F(Hostile, HugeStdout) {
  run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", {"OLE"});
}

TEST_F(Hostile, ReadsHostFiles) {
  // Prints ok only when every read fails: AC means nothing leaked.
  std::string repo = GRPO_SOURCE_DIR;
  run("import os\nleak = []\n"
      "for p in ['/etc/shadow', '/etc/passwd', '/etc/hostname', '/root/.bashrc', '" +
          repo +
          "/CMakeLists.txt', '/proc/1/environ', '/sys/kernel/notes']:\n"
          "    try:\n        open(p, 'rb').read(1)\n        leak.append(p)\n"
          "    except OSError:\n        pass\n"
          "for d in ['/home', '/root', '/work', '" +
          repo +
          "']:\n    if os.path.exists(d):\n        leak.append(d)\n"
          "print('ok' if not leak else leak)",
      {"AC"});
}

TEST_F(Hostile, WritesOutsideTmp) {
  std::string marker = std::string(GRPO_SOURCE_DIR) + "/build-hostile-marker";
  run("bad = []\nfor p in ['/usr/x', '/x', '/box/solution.py', '/dev/x', '/etc/x', '" + marker +
          "']:\n    try:\n        open(p, 'w').write('x')\n        bad.append(p)\n"
          "    except OSError:\n        pass\n"
          "open('/tmp/fine', 'w').write('tmp is writable')\nprint('ok' if not bad else bad)",
      {"AC"});
  struct stat st;
  EXPECT_NE(stat(marker.c_str(), &st), 0) << "the program wrote into the repository";
}

TEST_F(Hostile, DeletesFiles) {
  char dir[] = "/tmp/grpo-hostile-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string victim = std::string(dir) + "/victim";
  std::ofstream(victim) << "keep me";
  run("import os, shutil\nbad = []\nfor p in ['" + victim +
          "', '/usr/bin/python3', '/box/run_stdin.py', '/etc/ld.so.cache']:\n"
          "    try:\n        os.remove(p)\n        bad.append(p)\n    except OSError:\n"
          "        pass\nfor d in ['/usr/lib', '/usr', '/box', '/tmp']:\n    try:\n"
          "        os.rmdir(d)\n        bad.append(d)\n    except OSError:\n        pass\n"
          "print('ok' if not bad else bad)",
      {"AC"});
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "keep me");
  unlink(victim.c_str());
  rmdir(dir);
  struct stat st;
  EXPECT_EQ(stat("/usr/lib", &st), 0);
}

TEST_F(Hostile, ConnectsToHostLoopback) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  run("import socket\nbad = []\n"
      "for fam, host in [(socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')]:\n"
      "    try:\n        s = socket.socket(fam)\n        s.settimeout(1)\n"
      "        s.connect((host, " +
          std::to_string(port) +
          "))\n        bad.append(host)\n    except OSError:\n        pass\n"
          "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\n    bad.append('netlink')\n"
          "except OSError:\n    pass\nprint('ok' if not bad else bad)",
      {"AC"});
  EXPECT_LT(accept(listener, nullptr, nullptr), 0) << "the sandbox reached the host listener";
  close(listener);
}

TEST_F(Hostile, KillsItsParentAndEveryoneElse) {
  run("import os, signal\nfor pid in [os.getppid(), 1, " + std::to_string(getpid()) +
          "]:\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n"
          "        pass\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
          "print('ok')",
      {"AC", "RE"});
  // This test process survived (or the suite would not get here).
}

TEST_F(Hostile, DaemonOutlivesTheRun) {
  run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
      "        os.close(1)\n        os.close(2)\n        time.sleep(1000)\n    os._exit(0)\n"
      "print('ok')",
      {"AC"});
}

TEST_F(Hostile, CatchesSigterm) {
  run("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
      "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
      {"TLE"});
}

TEST_F(Hostile, HugeStdinIgnored) { run("print('ok')", {"AC"}, std::string(32 << 20, 'x')); }

TEST_F(Hostile, CtypesSegfault) { run("import ctypes\nctypes.string_at(0)", {"RE"}); }

TEST_F(Hostile, InfiniteRecursion) {
  run("def f(n):\n    return f(n + 1)\nf(0)", {"RE"});
  // Python 3.11 keeps Python frames off the C stack: this one grows until memory or time ends.
  run("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)",
      {"RE", "MLE", "TLE"});
}

TEST_F(Hostile, ClosedStdout) { run("import os\nos.close(1)\nprint('ok')", {"RE", "WA"}); }

TEST_F(Hostile, NamespacesAndTracingAreBlocked) {
  // Each call would succeed, or fail with another errno, without the seccomp filter.
  run("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nbad = []\n"
      "for name, call in [('unshare', lambda: libc.unshare(0x10000000)),\n"
      "                   ('ptrace', lambda: libc.ptrace(0, 0, 0, 0)),\n"
      "                   ('keyctl', lambda: libc.syscall(250, 0, 0, 0)),\n"
      "                   ('io_uring', lambda: libc.syscall(425, 1, 0)),\n"
      "                   ('perf', lambda: libc.syscall(298, 0, 0, -1, -1, 0)),\n"
      "                   ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, 0))]:\n"
      "    if call() >= 0 or ctypes.get_errno() != 1:\n        bad.append(name)\n"
      "print('ok' if not bad else bad)",
      {"AC"});
}

TEST_F(Hostile, FillsTmp) {
  run("try:\n    open('/tmp/big', 'wb').write(b'x' * (200 << 20))\nexcept (OSError, MemoryError):\n"
      "    pass\nprint('ok')",
      {"AC", "RE", "MLE"});
}

TEST_F(Hostile, ExitZeroBeforeTheCheck) {
  EXPECT_EQ(run_function("import os\nos._exit(0)\ndef f():\n    return 1", kCheckOne), "RE");
  EXPECT_EQ(run_function("import sys\nsys.exit(0)\ndef f():\n    return 1", kCheckOne), "RE");
  EXPECT_EQ(run("exit(0)\nprint('ok')", {"WA"}), "WA");
}

TEST_F(Hostile, FakedPassLines) {
  // Writes pass-looking text to stdout, stderr and every fd it can; the check must still fail.
  // Writing into its own RPC pipe garbles the protocol: RE, never AC.
  EXPECT_NE(run_function("import os, sys\nfor fd in range(3, 256):\n    try:\n"
                         "        os.write(fd, b'AC\\n')\n    except OSError:\n        pass\n"
                         "print('AC')\nprint('PASSED', file=sys.stderr)\n"
                         "def f():\n    return 0",
                         kCheckOne),
            "AC");
  EXPECT_EQ(run_function("import os\ndef f():\n    print('AC')\n    os._exit(0)", kCheckOne), "RE");
}

TEST_F(Hostile, CannotReadTheTestsOrTheToken) {
  // Returns 1 (passing) only if it can see the check code or the token in any way.
  EXPECT_EQ(run_function("import gc, os\ndef f():\n    for fd in range(3, 64):\n        try:\n"
                         "            os.set_blocking(fd, False)\n"
                         "            if os.read(fd, 1 << 16):\n                return 1\n"
                         "        except OSError:\n            pass\n"
                         "    for p in ['/box/check.py', '/box/tests.json']:\n"
                         "        if os.path.exists(p):\n            return 1\n"
                         "    for o in gc.get_objects():\n"
                         "        if isinstance(o, str) and 'candidate() ==' in o:\n"
                         "            return 1\n    return 0",
                         kCheckOne),
            "WA");
}

TEST_F(Hostile, AlwaysEqualObjectsDoNotPass) {
  EXPECT_NE(run_function("class Eq:\n    def __eq__(self, o):\n        return True\n"
                         "def f():\n    return Eq()",
                         kCheckOne),
            "AC");
}

TEST_F(Hostile, KillsOrStopsTheHarness) {
  EXPECT_EQ(run_function("import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                         "    return 1",
                         kCheckOne),
            "RE");
  EXPECT_EQ(run_function("import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
                         "    return 1",
                         kCheckOne),
            "TLE");
}

}  // namespace
}  // namespace grpo::reward
