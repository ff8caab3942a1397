// The seccomp filter of the code sandbox, built with libseccomp and exported as raw BPF for
// bwrap's --seccomp FD. A deny list on top of the namespaces: what a test program never needs
// and what would let it reach the network, other processes or the kernel's attack surface.
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "grpo/core/error.h"
#include "grpo/reward/sandbox.h"

namespace grpo::reward {
namespace {

using Ctx = std::unique_ptr<void, void (*)(scmp_filter_ctx)>;

void deny(scmp_filter_ctx ctx, const char* name, int err = EPERM) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return;  // not a syscall on this architecture
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0);
  GRPO_CHECK(rc == 0, "seccomp: cannot add rule for ", name, ": ", -rc);
}

}  // namespace

std::string build_seccomp_bpf() {
  // Syscalls of a foreign ABI (i386 int 0x80, x32) are killed by libseccomp's bad-arch action,
  // so the deny list below cannot be bypassed through another syscall table.
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  GRPO_CHECK(ctx != nullptr, "seccomp_init failed");
  scmp_filter_ctx c = ctx.get();

  // Network: only AF_UNIX sockets (Python's multiprocessing uses them); the empty network
  // namespace already has no route out, this also hides netlink and raw sockets.
  int rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                            SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  GRPO_CHECK(rc == 0, "seccomp: socket rule: ", -rc);
  rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
                        SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  GRPO_CHECK(rc == 0, "seccomp: socketpair rule: ", -rc);

  // New namespaces: clone with any CLONE_NEW* flag. clone3 passes its flags in memory that
  // seccomp cannot read, so it reports ENOSYS and the C library falls back to clone.
  const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
                                    CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP};
  for (unsigned long flag : ns_flags) {
    rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    GRPO_CHECK(rc == 0, "seccomp: clone rule: ", -rc);
  }
  deny(c, "clone3", ENOSYS);
  for (const char* name : {"unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen",
                           "fsmount", "fsconfig", "move_mount", "open_tree", "mount_setattr"}) {
    deny(c, name);
  }
  // Other processes' memory and tracing.
  for (const char* name : {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
                           "perf_event_open"}) {
    deny(c, name);
  }
  // Kernel attack surface that no test program needs.
  for (const char* name : {"bpf",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "io_uring_setup",
                           "io_uring_enter",
                           "io_uring_register",
                           "userfaultfd",
                           "kexec_load",
                           "kexec_file_load",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "reboot",
                           "swapon",
                           "swapoff",
                           "acct",
                           "quotactl",
                           "open_by_handle_at",
                           "name_to_handle_at",
                           "syslog",
                           "settimeofday",
                           "clock_settime",
                           "adjtimex",
                           "iopl",
                           "ioperm",
                           "lookup_dcookie",
                           "fanotify_init"}) {
    deny(c, name);
  }

  // Export through a memfd: libseccomp writes to a file descriptor, not to memory.
  int fd = memfd_create("grpo-seccomp", MFD_CLOEXEC);
  GRPO_CHECK(fd >= 0, "memfd_create for the seccomp filter failed: errno ", errno);
  rc = seccomp_export_bpf(c, fd);
  std::string bpf;
  if (rc == 0) {
    off_t size = lseek(fd, 0, SEEK_END);
    bpf.resize(static_cast<size_t>(size > 0 ? size : 0));
    ssize_t got = pread(fd, bpf.data(), bpf.size(), 0);
    if (got != static_cast<ssize_t>(bpf.size())) rc = -EIO;
  }
  close(fd);
  GRPO_CHECK(rc == 0 && !bpf.empty(), "seccomp_export_bpf failed: ", -rc);
  return bpf;
}

}  // namespace grpo::reward
