// `grpo data make --task countdown|arithmetic|equation --n N --seed S --out FILE.jsonl
// [--difficulty easy|medium|hard] [--set key=value]... [--with-solutions]`: writes a synthetic
// task dataset as JSONL, atomically (docs/data.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/data/tasks.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

template <class E>
E enum_from(const std::string& name, const char* what) {
  std::string known;
  for (const auto& [value, n] : data::enum_names(E{})) {
    if (n == name) return value;
    known += (known.empty() ? "" : ", ") + n;
  }
  throw Error(std::string("unknown ") + what + " '" + name + "'; expected one of: " + known,
              ErrorKind::usage);
}

struct MakeArgs {
  std::string task;
  size_t n = 0;
  uint64_t seed = 0;
  std::string out;
  std::string difficulty = "medium";
  std::vector<std::string> overrides;
  bool with_solutions = false;
};

void run_make(const MakeArgs& args) {
  const auto task = enum_from<data::TaskKind>(args.task, "task");
  const auto difficulty = enum_from<data::Difficulty>(args.difficulty, "difficulty");
  GRPO_CHECK_KIND(usage, args.n > 0, "--n must be at least 1");
  const config::Node overrides = config::overrides_map(args.overrides);

  const auto items = data::generate_task(task, difficulty, overrides, args.n, args.seed);
  jsonl::Writer writer(args.out);
  for (const auto& item : items) writer.write(item.to_json(args.with_solutions));
  writer.commit();
  std::printf("wrote %zu %s items (%s, seed %llu%s) to %s\n", writer.lines(), args.task.c_str(),
              args.difficulty.c_str(), static_cast<unsigned long long>(args.seed),
              args.with_solutions ? ", with solutions" : "", args.out.c_str());
}

}  // namespace

void add_data_verb(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Make datasets");
  data->require_subcommand(1);
  auto args = std::make_shared<MakeArgs>();

  auto* make = data->add_subcommand("make", "Generate a synthetic task dataset as JSONL");
  make->add_option("--task", args->task, "countdown, arithmetic or equation")->required();
  make->add_option("--n", args->n, "Number of items")->required();
  make->add_option("--seed", args->seed, "Seed: the same seed gives the same file")->required();
  make->add_option("--out", args->out, "Output JSONL file (written atomically)")->required();
  make->add_option("--difficulty", args->difficulty, "easy, medium or hard (a preset)")
      ->capture_default_str();
  make->add_option("--set", args->overrides,
                   "Override one of the task's knobs: --set count=5 (repeatable; docs/data.md)")
      ->allow_extra_args(false);
  make->add_flag("--with-solutions", args->with_solutions,
                 "Add a worked solution as `response` (<think> ... </think> <answer> ... "
                 "</answer>) for SFT");
  make->callback([args] { run_make(*args); });
}

}  // namespace grpo::cli
