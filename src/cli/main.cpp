// grpo: the command-line entry point. Parses the verb, runs it, and turns any exception into one
// line on stderr with exit code 2 (usage or config) or 1 (runtime).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "verbs.h"

int main(int argc, char** argv) {
  CLI::App app{"grpo: GRPO training of language models (R1-Zero style)", "grpo"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every verb");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
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
