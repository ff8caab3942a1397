// `grpo config check|show FILE [--set key=value]...`: validate a run config, or print it fully
// resolved (extends merged, overrides applied, every default filled in).
// `grpo config diff A B [--set key=value]...`: the keys whose resolved values differ (the
// overrides apply to B), e.g. two runs' config.resolved.yaml or a checkpoint's config.yaml.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "run_verb.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct ConfigArgs {
  std::string file;
  std::vector<std::string> overrides;
  std::vector<std::string> bare;
  std::vector<std::string> all() const { return all_overrides(overrides, bare); }
};

void add_config_args(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("file", args.file, "YAML config file")->required();
  cmd->add_option("--set", args.overrides, "Override a key: --set trainer.lr=1e-6 (repeatable)")
      ->allow_extra_args(false);
  add_bare_overrides(*cmd, args.bare);
}

}  // namespace

void add_config_verb(CLI::App& app) {
  auto* config = app.add_subcommand("config", "Check, print or compare run configurations");
  config->require_subcommand(1);
  auto args = std::make_shared<ConfigArgs>();

  auto* check = config->add_subcommand("check", "Validate a config; exit 0 or print one error");
  add_config_args(check, *args);
  check->callback([args] {
    auto loaded = config::load_config(args->file, args->all());
    std::printf("%s: ok (config hash %s)\n", args->file.c_str(),
                config::config_hash(loaded.config).c_str());
  });

  auto* show = config->add_subcommand("show", "Print the resolved config as YAML");
  add_config_args(show, *args);
  show->callback([args] {
    auto loaded = config::load_config(args->file, args->all());
    std::fputs(config::to_yaml(loaded.config).c_str(), stdout);
  });

  auto* diff = config->add_subcommand(
      "diff", "Print the keys whose resolved values differ between two configs");
  auto before = std::make_shared<std::string>();
  diff->add_option("before", *before, "YAML config file")->required();
  add_config_args(diff, *args);
  diff->callback([args, before] {
    const auto a = config::load_config(*before).config;
    const auto b = config::load_config(args->file, args->all()).config;
    const auto changes = config::config_changes(a, b);
    for (const auto& c : changes) {
      std::printf("%s: %s -> %s\n", c.key.c_str(), c.before.c_str(), c.after.c_str());
    }
    if (changes.empty()) std::printf("no differences\n");
  });
}

}  // namespace grpo::cli
