#include "run_verb.h"

#include <filesystem>

#include "grpo/core/log.h"
#include "grpo/dist/env.h"
#include "grpo/train/device.h"

namespace grpo::cli {

void add_run_options(CLI::App& cmd, RunArgs& args, const std::string& config_help,
                     const std::string& set_example) {
  cmd.add_option("--config", args.config, config_help)->required();
  cmd.add_option("--set", args.overrides, "Override a key: --set " + set_example + " (repeatable)");
  add_bare_overrides(cmd, args.bare);
  cmd.add_option("--run-dir", args.run_dir, "Output folder (default: runs/<config name>)");
  cmd.add_option("--resume", args.resume,
                 "auto (latest checkpoint of the run dir, if any) or a checkpoint/run folder");
  cmd.add_flag(
      "--force-resume", args.force_resume,
      "Resume even if the checkpoint's config differs in keys that change what is learned");
}

config::LoadedConfig load_run_config(const CLI::App& cmd, const RunArgs& args) {
  auto loaded = config::load_config(args.config, all_overrides(args.overrides, args.bare));
  if (cmd.get_parent()->get_option("--log-level")->count() == 0) {
    log::set_level(loaded.config.logging.level);
  }
  return loaded;
}

train::TrainOptions run_options(const RunArgs& args) {
  train::TrainOptions options;
  // runs/<config file stem>, next to wherever the command runs.
  options.run_dir =
      args.run_dir.empty()
          ? (std::filesystem::path("runs") / std::filesystem::path(args.config).stem()).string()
          : args.run_dir;
  options.resume = args.resume;
  options.force_resume = args.force_resume;
  options.dist = dist::env_from_process();
  return options;
}

std::unique_ptr<train::DataParallel> rank_group(const config::Config& config,
                                                const dist::Env& env) {
  return std::make_unique<train::DataParallel>(
      config.distributed, env, train::rank_device(train::pick_device(config.trainer.device), env));
}

void log_run_end(const train::TrainSummary& summary, const std::string& run_dir) {
  if (summary.stopped_by_signal) {
    log::warn("stopped by signal after step ", summary.last_step, "; resume with --resume auto");
  }
  log::info("done: ", summary.last_step, " steps in ", run_dir,
            summary.last_checkpoint.empty() ? "" : ", last checkpoint " + summary.last_checkpoint);
}

std::vector<std::string> all_overrides(std::vector<std::string> set,
                                       const std::vector<std::string>& bare) {
  set.insert(set.end(), bare.begin(), bare.end());
  return set;
}

void add_bare_overrides(CLI::App& cmd, std::vector<std::string>& bare) {
  cmd.add_option("overrides", bare,
                 "Overrides as bare key.path=value arguments, Hydra-style (same as --set)")
      ->check([](const std::string& arg) -> std::string {
        const auto eq = arg.find('=');
        if (eq != std::string::npos && eq > 0) return "";
        return "'" + arg + "' is not an override (key.path=value)";
      });
}

}  // namespace grpo::cli
