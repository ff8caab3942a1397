// Each `grpo <verb>` lives in its own src/cli/<verb>.cpp and registers itself on the app here.
// A verb's callback throws grpo::Error on failure; main() maps it to one line and an exit code.
#pragma once

namespace CLI {
class App;
}

namespace grpo::cli {

void add_version_verb(CLI::App& app);
void add_config_verb(CLI::App& app);
void add_data_verb(CLI::App& app);
void add_tokenizer_verb(CLI::App& app);
void add_bench_verb(CLI::App& app);
void add_reward_verb(CLI::App& app);
void add_generate_verb(CLI::App& app);
void add_model_verb(CLI::App& app);
void add_train_verb(CLI::App& app);
void add_launch_verb(CLI::App& app);
void add_sft_verb(CLI::App& app);
void add_eval_verb(CLI::App& app);

// Thrown by a verb whose exit code is not 0, 1 or 2 (grpo launch passes on a rank's code).
struct ExitStatus {
  int code = 1;
};

// `grpo bench <what>` entries, registered by add_bench_verb (src/cli/bench.cpp).
void add_bench_tokenizer(CLI::App& bench);
void add_bench_rollout(CLI::App& bench);
void add_bench_reward(CLI::App& bench);
void add_bench_forward(CLI::App& bench);
void add_bench_train(CLI::App& bench);
void add_bench_allreduce(CLI::App& bench);
void add_bench_kernels(CLI::App& bench);
void add_bench_cpu_ops(CLI::App& bench);

}  // namespace grpo::cli
