// `grpo config check|show FILE [--set key=value]...`: validate a run config, or print it fully
// resolved (extends merged, overrides applied, every default filled in).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct ConfigArgs {
  std::string file;
  std::vector<std::string> overrides;
};

void add_config_args(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("file", args.file, "YAML config file")->required();
  cmd->add_option("--set", args.overrides, "Override a key: --set trainer.lr=1e-6 (repeatable)")
      ->allow_extra_args(false);
}

}  // namespace

void add_config_verb(CLI::App& app) {
  auto* config = app.add_subcommand("config", "Check or print a run configuration");
  config->require_subcommand(1);
  auto args = std::make_shared<ConfigArgs>();

  auto* check = config->add_subcommand("check", "Validate a config; exit 0 or print one error");
  add_config_args(check, *args);
  check->callback([args] {
    auto loaded = config::load_config(args->file, args->overrides);
    std::printf("%s: ok (config hash %s)\n", args->file.c_str(),
                config::config_hash(loaded.config).c_str());
  });

  auto* show = config->add_subcommand("show", "Print the resolved config as YAML");
  add_config_args(show, *args);
  show->callback([args] {
    auto loaded = config::load_config(args->file, args->overrides);
    std::fputs(config::to_yaml(loaded.config).c_str(), stdout);
  });
}

}  // namespace grpo::cli
