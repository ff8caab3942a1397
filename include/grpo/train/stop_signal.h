// Graceful stop on SIGINT/SIGTERM: the handler only sets a flag; the training loop polls it
// between steps, finishes the step, writes a checkpoint and returns (no exit() in the library).
// A second signal while a stop is pending falls back to the default action (kill), so a stuck
// run can still be interrupted with a second Ctrl-C.
#pragma once

namespace grpo::train {

// Installs the handlers for its lifetime and restores the previous ones when destroyed. Only
// one may exist at a time (signal handlers are process-wide state).
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // True once SIGINT or SIGTERM arrived.
  bool requested() const;
  // The signal that arrived (SIGINT or SIGTERM), 0 when none.
  int signal_number() const;
};

}  // namespace grpo::train
