// `grpo bench <what>`: benchmarks that print figures (never assert them). Each one lives in
// src/cli/bench_<what>.cpp and registers itself here.
#include <CLI/CLI.hpp>

#include "verbs.h"

namespace grpo::cli {

void add_bench_verb(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: print speeds on this machine");
  bench->require_subcommand(1);
  add_bench_tokenizer(*bench);
  add_bench_rollout(*bench);
  add_bench_reward(*bench);
  add_bench_forward(*bench);
  add_bench_train(*bench);
  add_bench_allreduce(*bench);
  add_bench_kernels(*bench);
  add_bench_cpu_ops(*bench);
}

}  // namespace grpo::cli
