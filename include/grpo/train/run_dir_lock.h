// One writer per run directory: the rank that writes a run's outputs holds an exclusive flock(2)
// on <run-dir>/.lock for the run's lifetime, so a second grpo train or grpo sft pointed at the
// same directory (a relaunch while the first still runs, two jobs with one --run-dir) stops at
// once with an error naming the process that holds it, instead of both overwriting metrics and
// checkpoints. The kernel releases the lock when the holder exits, however it exits.
#pragma once

#include <string>

namespace grpo::train {

class RunDirLock {
 public:
  // Takes the lock (the directory must exist). Held elsewhere: a usage error naming the holder's
  // pid and host. On a filesystem without flock (some parallel filesystems) it warns and goes on
  // unlocked.
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  bool locked() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace grpo::train
