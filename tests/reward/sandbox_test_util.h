// Test helpers for the sandbox suites: counting leftover processes on the host.
#pragma once

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace grpo::reward::test {

// Processes (zombies included) owned by host uid `uid` (none for -1, a non-root host): a slot uid
// must own none once a run has returned.
inline int processes_of_uid(int64_t uid) {
  int n = 0;
  DIR* d = opendir("/proc");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    struct stat st;
    if (stat((std::string("/proc/") + e->d_name).c_str(), &st) == 0 &&
        static_cast<int64_t>(st.st_uid) == uid) {
      ++n;
    }
  }
  closedir(d);
  return n;
}

}  // namespace grpo::reward::test
