// The run directory's writer lock: flock(2) on <run-dir>/.lock, with the holder's pid and host
// written into the file for the error a second process gets.
#include "grpo/train/run_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "grpo/core/error.h"
#include "grpo/core/log.h"

namespace grpo::train {

RunDirLock::RunDirLock(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  // Close-on-exec: reward sandboxes and other programs the run starts must not keep it locked.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  GRPO_CHECK(fd >= 0, "cannot open the run directory lock ", path, ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      char holder[256] = {0};
      const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      throw Error("run directory " + run_dir + " is in use by another grpo run" +
                      (who.empty() ? std::string() : " (" + who + ")") +
                      ": wait for it to finish, stop it, or choose another --run-dir",
                  ErrorKind::usage);
    }
    ::close(fd);
    log::warn("cannot lock the run directory ", run_dir, " (", std::strerror(err),
              "; a filesystem without flock?): nothing stops a second run from writing into it");
    return;
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string who = "pid " + std::to_string(::getpid()) + " on " + std::string(host) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0) {
    log::debug("could not write the holder into ", path);
  }
  fd_ = fd;
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays
}

}  // namespace grpo::train
