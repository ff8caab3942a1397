// grpo: the command-line entry point. Parses the verb, runs it, and turns any exception into one
// line on stderr with exit code 2 (usage or config) or 1 (runtime).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "verbs.h"

namespace {

// A training step allocates and frees tensors of a few megabytes thousands of times. With
// glibc's defaults each comes from a fresh mmap (or a trimmed heap) and its pages fault in again
// every time: on the CPU that was 4k page faults and 8 ms of system time per step of the TRL
// comparison run (docs/training.md). Keep such blocks in the heap instead. A user's own
// GLIBC_TUNABLES malloc settings win.
void tune_malloc() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
  CLI::App app{"grpo: GRPO training of language models (R1-Zero style)", "grpo"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every verb");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // launch passes its own first
  app.parse_complete_callback([&] { grpo::log::set_level(log_level); });

  grpo::cli::add_version_verb(app);
  grpo::cli::add_config_verb(app);
  grpo::cli::add_data_verb(app);
  grpo::cli::add_tokenizer_verb(app);
  grpo::cli::add_bench_verb(app);
  grpo::cli::add_reward_verb(app);
  grpo::cli::add_generate_verb(app);
  grpo::cli::add_model_verb(app);
  grpo::cli::add_train_verb(app);
  grpo::cli::add_launch_verb(app);
  grpo::cli::add_sft_verb(app);
  grpo::cli::add_eval_verb(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const grpo::cli::ExitStatus& status) {
    return status.code;
  } catch (const grpo::Error& e) {
    std::fprintf(stderr, "grpo: error: %s\n", e.what());
    if (e.line() > 0)
      grpo::log::debug("raised at ", e.file(), ":", e.line(), " (", e.condition(), ")");
    return e.kind() == grpo::ErrorKind::runtime ? 1 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grpo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
