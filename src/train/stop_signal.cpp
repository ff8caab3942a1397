// SIGINT/SIGTERM -> a flag. Signal handlers can only touch lock-free atomics or volatile
// sig_atomic_t globals, so the flag is file-level state; StopSignal scopes its lifetime.
#include "grpo/train/stop_signal.h"

#include <csignal>

#include "grpo/core/error.h"

namespace grpo::train {

namespace {

volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_installed = 0;
struct sigaction g_previous_int;
struct sigaction g_previous_term;

void on_stop_signal(int sig) {
  if (g_signal != 0) {
    // Second signal: the user insists. Default action (terminate) via async-signal-safe calls.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

}  // namespace

StopSignal::StopSignal() {
  GRPO_CHECK(g_installed == 0, "StopSignal: another instance is already installed");
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads/writes in the step continue, not EINTR
  GRPO_CHECK(sigaction(SIGINT, &action, &g_previous_int) == 0, "cannot install SIGINT handler");
  GRPO_CHECK(sigaction(SIGTERM, &action, &g_previous_term) == 0, "cannot install SIGTERM handler");
  g_installed = 1;
}

StopSignal::~StopSignal() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  g_installed = 0;
  g_signal = 0;
}

bool StopSignal::requested() const { return g_signal != 0; }

int StopSignal::signal_number() const { return static_cast<int>(g_signal); }

}  // namespace grpo::train
