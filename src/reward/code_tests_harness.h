// Internal to code_tests: the Python sources placed next to the candidate's code in the sandbox.
#pragma once

namespace grpo::reward::detail {

extern const char* const kStdinWrapper;     // run_stdin.py
extern const char* const kFunctionHarness;  // harness.py

}  // namespace grpo::reward::detail
