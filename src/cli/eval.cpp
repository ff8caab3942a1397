// `grpo eval`: K sampled completions per benchmark item from a model folder, scored with the
// reward pipeline; pass@1 (mean over K), pass@k, cons@K, per-item JSONL and a summary JSON.
// The work is train::Evaluator (grpo/train/eval.h); docs/evaluation.md describes the figures.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "eval_suite.h"
#include "grpo/core/config/eval_suite.h"
#include "grpo/core/config/tokenizer.h"
#include "grpo/core/config_node.h"
#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/core/safetensors.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/dist/env.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"
#include "grpo/reward/pipeline.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/torch_compat.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/eval.h"
#include "reward_setup.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct EvalArgs {
  std::string model;
  std::string adapter;  // a PEFT LoRA adapter folder applied to the model
  std::string data;
  std::string suite;      // an evaluation suite YAML (config/eval_suite.h) instead of --data
  std::string data_root;  // the suite's root, overridden
  std::vector<std::string> only;        // the suite's benchmarks to run; empty: all
  std::vector<std::string> tests_from;  // KEY=FIELD
  std::string config_file;
  std::vector<std::string> rewards;
  train::EvalFields fields;
  std::string template_name = "plain";
  std::string custom_template;
  std::string system;
  std::string output;
  std::string summary;
  std::string keep;                       // rejection sampling: kept samples as SFT JSONL
  std::vector<std::string> keep_require;  // rewards a kept sample must also score >= 1 on
  int64_t keep_per_item = 0;
  std::string dtype = "float32";
  std::string device = "auto";
  size_t limit = 0;
  int threads = 0;
  train::EvalOptions eval;
  // Set when the option was given on the command line (it then wins over --config).
  CLI::Option* prompt_field = nullptr;
  CLI::Option* answer_field = nullptr;
  CLI::Option* tests_field = nullptr;
  CLI::Option* template_option = nullptr;
  CLI::Option* limit_option = nullptr;
};

at::Device pick_device(const std::string& name) {
  if (name == "auto") return compat::cuda_device_count() > 0 ? at::Device("cuda") : at::kCPU;
  try {
    return at::Device(name);
  } catch (const std::exception&) {
    GRPO_CHECK_KIND(usage, false, "--device '", name, "' is not a device (cpu, cuda, cuda:N)");
  }
  return at::kCPU;
}

at::ScalarType pick_dtype(const std::string& name) {
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  GRPO_CHECK_KIND(usage, name == "float32", "--dtype must be float32, bfloat16 or float16");
  return at::kFloat;
}

// The config file's `data:` field names and `tokenizer:` template, unless the command line
// names them.
void apply_config(EvalArgs& a, const config::DataConfig& data) {
  if (a.config_file.empty()) return;
  if (a.prompt_field->count() == 0) a.fields.prompt = data.prompt_field;
  if (a.answer_field->count() == 0) a.fields.answer = data.answer_field;
  if (a.tests_field->count() == 0) a.fields.tests = data.tests_field;
  config::Node root = config::load_file(a.config_file);
  if (const config::Node* t = root.get("tokenizer"); t && a.template_option->count() == 0) {
    config::TokenizerConfig tc;
    config::bind(*t, tc, "tokenizer");
    a.template_name = tc.template_name;
    a.custom_template = tc.custom_template;
    a.system = tc.system;
  }
}

// --keep-require names -> pipeline entries; every name must be one of the pipeline's.
train::KeepRule make_keep_rule(const EvalArgs& a, const reward::RewardPipeline& pipeline) {
  train::KeepRule rule;
  rule.max_per_item = a.keep_per_item;
  GRPO_CHECK_KIND(usage, a.keep_per_item >= 0, "--keep-per-item must be >= 0");
  GRPO_CHECK_KIND(usage, !a.keep.empty() || (a.keep_require.empty() && a.keep_per_item == 0),
                  "--keep-require and --keep-per-item need --keep FILE");
  for (const std::string& name : a.keep_require) {
    std::string known;
    bool found = false;
    for (size_t e = 0; e < pipeline.entries().size(); ++e) {
      known += (known.empty() ? "" : ", ") + pipeline.entries()[e].name;
      if (pipeline.entries()[e].name == name) {
        rule.required.push_back(e);
        found = true;
      }
    }
    GRPO_CHECK_KIND(usage, found, "--keep-require ", name, ": not a reward of this evaluation (",
                    known, ")");
  }
  return rule;
}

// One kept sample as an SFT example: the item's prompt (before the template, as grpo sft
// expects it) and the completion as the response.
nlohmann::json kept_json(const EvalArgs& a, const train::EvalItem& item, const train::EvalSample& s,
                         size_t sample) {
  nlohmann::json j = {{a.fields.prompt, item.prompt}, {"response", s.completion}};
  if (!a.fields.answer.empty()) j[a.fields.answer] = item.answer;
  if (!item.tests.is_null() && !a.fields.tests.empty()) j[a.fields.tests] = item.tests;
  if (!item.id.is_null()) j["id"] = item.id;
  j["index"] = item.index;
  j["sample"] = sample;
  j["reward"] = s.score.reward;
  return j;
}

// Under several ranks each wrote `path`.rank<R>; rank 0 joins the parts in rank order into
// `path` (atomically) once every rank has written its own.
void join_rank_parts(train::DataParallel& dp, const std::string& path) {
  dp.sum({0.0}, "eval outputs written");  // a barrier
  if (!dp.is_main()) return;
  jsonl::AtomicWriter out(path);
  for (int r = 0; r < dp.world_size(); ++r) {
    const std::string part = path + ".rank" + std::to_string(r);
    std::ifstream in(part, std::ios::binary);
    GRPO_CHECK(in.good(), "eval: rank ", r, "'s part ", part,
               " is missing (the ranks must share a filesystem)");
    std::stringstream text;
    text << in.rdbuf();
    out.write(text.str());
  }
  out.commit();
  for (int r = 0; r < dp.world_size(); ++r)
    std::remove((path + ".rank" + std::to_string(r)).c_str());
}

// One benchmark of the run: its file, field names and counts (one of a suite's, or --data's).
struct Benchmark {
  std::string name;  // "" for --data alone
  std::string file;
  train::EvalFields fields;
  size_t limit = 0;
  int64_t n = 1;
  int64_t max_new_tokens = 0;
  std::string output;  // per-item JSONL; "": none
};

// What every benchmark of the run shares: the model, the prompt template, the rewards, the
// ranks and the rejection-sampling output.
struct EvalRun {
  model::CausalLM model{nullptr};
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<text::PromptTemplate> prompt_template;
  std::unique_ptr<reward::RewardPipeline> pipeline;
  std::unique_ptr<train::DataParallel> dp;
  train::KeepRule keep_rule;
  std::optional<jsonl::Writer> keep;
  int64_t kept = 0, kept_items = 0;
  std::string pass_reward;  // the reward that marks a sample correct
};

// Samples and scores one benchmark (each rank its contiguous share of the items, with the random
// numbers one process would give them), writes its per-item results and returns its summary
// (the figures summed over the ranks) with "data" and "time_s".
nlohmann::json eval_benchmark(const EvalArgs& a, EvalRun& run, const Benchmark& b) {
  const auto all_items = train::load_eval_items(b.file, b.fields, b.limit);
  train::DataParallel& dp = *run.dp;
  const size_t total = all_items.size();
  const auto share = data::uneven_shard_range(total, dp.rank(), dp.world_size());
  const std::vector<train::EvalItem> items(
      all_items.begin() + static_cast<std::ptrdiff_t>(share.begin),
      all_items.begin() + static_cast<std::ptrdiff_t>(share.end));
  train::EvalOptions options = a.eval;
  options.n = b.n;
  options.sampling.max_new_tokens = b.max_new_tokens;
  options.sampling.first_prompt_index = static_cast<int64_t>(share.begin);
  const std::string suffix = dp.active() ? ".rank" + std::to_string(dp.rank()) : "";

  train::Evaluator evaluator(run.model, *run.tokenizer, *run.prompt_template, *run.pipeline,
                             options);
  if (dp.is_main()) {
    log::info("eval", b.name.empty() ? "" : " " + b.name, ": ", total, " items x ", b.n,
              " samples, pass reward '", run.pass_reward, "'",
              dp.active() ? ", over " + std::to_string(dp.world_size()) + " ranks" : "");
  }
  std::optional<jsonl::Writer> out;
  if (!b.output.empty()) out.emplace(b.output + suffix);
  const auto start = std::chrono::steady_clock::now();
  train::EvalSummary summary =
      evaluator.run(items, [&](const train::EvalItem& item, const train::EvalItemResult& r) {
        if (out) out->write(evaluator.item_json(item, r));
        if (!run.keep) return;
        const auto chosen = train::kept_samples(r, run.keep_rule);
        for (size_t g : chosen) run.keep->write(kept_json(a, item, r.samples[g], g));
        run.kept += static_cast<int64_t>(chosen.size());
        run.kept_items += chosen.empty() ? 0 : 1;
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (out) out->commit();
  if (dp.active()) {
    summary.set_sums(dp.sum(summary.sums(), "eval sums"));
    if (out) join_rank_parts(dp, b.output);
  }
  nlohmann::json j = summary.to_json();
  j["data"] = b.file;
  j["time_s"] = seconds;
  if (out && dp.is_main()) log::info("wrote ", total, " per-item results to ", b.output);
  return j;
}

// The suite's benchmarks with the command's defaults filled in; --only picks some by name.
std::vector<Benchmark> suite_benchmarks(const EvalArgs& a) {
  const auto suite = config::load_eval_suite(a.suite);
  const std::string root = a.data_root.empty() ? suite.root : a.data_root;
  std::vector<Benchmark> out;
  for (const auto& s : suite.benchmarks) {
    if (!a.only.empty() && std::find(a.only.begin(), a.only.end(), s.name) == a.only.end()) {
      continue;
    }
    Benchmark b;
    b.name = s.name;
    b.file = suite.path_of(s, a.data_root);
    b.fields = train::eval_fields(s);
    b.limit = a.limit_option->count() > 0 ? a.limit : static_cast<size_t>(s.limit);
    b.n = s.n > 0 ? s.n : a.eval.n;
    b.max_new_tokens = s.max_new_tokens > 0 ? s.max_new_tokens : a.eval.sampling.max_new_tokens;
    if (!a.output.empty())
      b.output = (std::filesystem::path(a.output) / (s.name + ".jsonl")).string();
    out.push_back(std::move(b));
  }
  for (const auto& name : a.only) {
    const bool known = std::any_of(suite.benchmarks.begin(), suite.benchmarks.end(),
                                   [&](const config::SuiteBenchmark& s) { return s.name == name; });
    std::string names;
    for (const auto& s : suite.benchmarks) names += (names.empty() ? "" : ", ") + s.name;
    GRPO_CHECK_KIND(usage, known, "--only ", name, ": not a benchmark of ", a.suite, " (", names,
                    ")");
  }
  // Every file is checked before the first is evaluated: a typo fails now, not an hour in.
  for (const auto& b : out) {
    GRPO_CHECK_KIND(usage, std::filesystem::is_regular_file(b.file), a.suite, ": benchmark ",
                    b.name, ": no file ", b.file,
                    root.empty() ? "" : " (root " + root + "; --data-root moves it)");
  }
  return out;
}

void run_eval(EvalArgs& a) {
  log::use_stderr();  // stdout carries the summary JSON
  GRPO_CHECK_KIND(usage, a.data.empty() != a.suite.empty(),
                  "give the benchmark as --data FILE or a suite as --suite FILE (one of them)");
  GRPO_CHECK_KIND(usage, !a.suite.empty() || (a.only.empty() && a.data_root.empty()),
                  "--only and --data-root need --suite");
  config::RewardConfig rc;
  config::DataConfig data;
  load_reward_setup(a.config_file, a.rewards, rc, data);
  apply_config(a, data);
  for (const auto& spec : a.tests_from) {
    const auto eq = spec.find('=');
    GRPO_CHECK_KIND(usage, eq != std::string::npos && eq > 0 && eq + 1 < spec.size(),
                    "--tests-from expects KEY=FIELD, got '", spec, "'");
    a.fields.tests_from[spec.substr(0, eq)] = spec.substr(eq + 1);
  }

  std::vector<Benchmark> benchmarks;
  if (a.suite.empty()) {
    Benchmark b;
    b.file = a.data;
    b.fields = a.fields;
    b.limit = a.limit;
    b.n = a.eval.n;
    b.max_new_tokens = a.eval.sampling.max_new_tokens;
    b.output = a.output;
    benchmarks.push_back(b);
  } else {
    benchmarks = suite_benchmarks(a);
    GRPO_CHECK_KIND(usage, a.output.empty() || !std::filesystem::is_regular_file(a.output),
                    "--output with --suite names a folder (one <benchmark>.jsonl each), but ",
                    a.output, " is a file");
    if (!a.output.empty()) std::filesystem::create_directories(a.output);
  }

  EvalRun run;
  run.pipeline = std::make_unique<reward::RewardPipeline>(rc, a.threads);
  run.pass_reward =
      run.pipeline->entries()[train::pass_reward_entry(*run.pipeline, a.eval.pass_reward)].name;
  run.prompt_template = std::make_unique<text::PromptTemplate>(
      text::TemplateConfig{a.template_name, a.custom_template, a.system});
  // Under grpo launch (torchrun, Slurm) the ranks share every benchmark's items.
  const dist::Env env = dist::env_from_process();
  const at::Device device = train::rank_device(pick_device(a.device), env);
  run.dp = std::make_unique<train::DataParallel>(config::DistributedConfig{}, env, device);
  train::DataParallel& dp = *run.dp;
  run.tokenizer = text::load_tokenizer(a.model);
  run.model = model::load_hf(a.model, pick_dtype(a.dtype));
  if (!a.adapter.empty()) model::apply_lora_adapter(run.model, a.adapter);
  run.model->to(device);
  run.model->eval();
  run.keep_rule = make_keep_rule(a, *run.pipeline);
  const std::string suffix = dp.active() ? ".rank" + std::to_string(dp.rank()) : "";
  if (!a.keep.empty()) run.keep.emplace(a.keep + suffix);

  nlohmann::json per_benchmark = nlohmann::json::object();  // --data alone: under ""
  for (const auto& b : benchmarks) per_benchmark[b.name] = eval_benchmark(a, run, b);
  if (run.keep) run.keep->commit();
  if (dp.active()) {
    const auto counts = dp.sum({static_cast<double>(run.kept), static_cast<double>(run.kept_items)},
                               "eval kept counts");
    run.kept = static_cast<int64_t>(counts[0]);
    run.kept_items = static_cast<int64_t>(counts[1]);
    if (run.keep) join_rank_parts(dp, a.keep);
    if (!dp.is_main()) return;  // rank 0 reports
  }

  nlohmann::json j;
  if (a.suite.empty()) {
    j = std::move(per_benchmark[""]);
  } else {
    j["suite"] = a.suite;
    j["average"] = suite_average(per_benchmark);
    j["benchmarks"] = per_benchmark;
    double seconds = 0;
    for (const auto& b : per_benchmark) seconds += b.value("time_s", 0.0);
    j["time_s"] = seconds;
    log_suite_table(per_benchmark, j["average"]);
  }
  j["model"] = a.model;
  j["pass_reward"] = run.pass_reward;
  j["sampling"] = {{"temperature", a.eval.sampling.temperature},
                   {"top_p", a.eval.sampling.top_p},
                   {"top_k", a.eval.sampling.top_k},
                   {"min_p", a.eval.sampling.min_p},
                   {"max_new_tokens", a.eval.sampling.max_new_tokens},
                   {"seed", a.eval.sampling.seed},
                   {"template", a.template_name}};
  if (run.keep) {
    j["kept"] = {{"samples", run.kept}, {"items", run.kept_items}, {"file", a.keep}};
    log::info("kept ", run.kept, " samples of ", run.kept_items, " items in ", a.keep);
  }
  const std::string text = j.dump(2) + "\n";
  if (a.summary.empty()) {
    std::cout << text;
  } else {
    safetensors::write_text_atomic(a.summary, text);
    log::info("wrote the summary to ", a.summary);
  }
}

}  // namespace

void add_eval_verb(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  a->eval.sampling.temperature = 0.6;
  a->eval.sampling.top_p = 0.95;
  a->eval.sampling.max_new_tokens = 1024;
  CLI::App* cmd = app.add_subcommand(
      "eval", "pass@1, pass@k and cons@k of a model folder on a JSONL benchmark");
  cmd->add_option("--model", a->model, "Model folder (config.json, *.safetensors, tokenizer)")
      ->required();
  cmd->add_option("--adapter", a->adapter,
                  "LoRA adapter folder (PEFT layout: adapter_config.json, "
                  "adapter_model.safetensors) applied to the model");
  cmd->add_option("--data", a->data, "Benchmark JSONL, one item per line");
  cmd->add_option("--suite", a->suite,
                  "Evaluation suite YAML: several benchmark files with their own field names, "
                  "averaged (instead of --data)");
  cmd->add_option("--data-root", a->data_root, "With --suite: the folder of its files");
  cmd->add_option("--only", a->only, "With --suite: run this benchmark only (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--reward", a->rewards,
                  "Reward function by name (repeatable); with --config: picks among its functions")
      ->allow_extra_args(false);
  cmd->add_option(
      "--config", a->config_file,
      "YAML whose reward:, data: (field names) and tokenizer: (template) sections apply");
  cmd->add_option("--n", a->eval.n, "Samples per item (K)")->capture_default_str();
  cmd->add_option("--temperature", a->eval.sampling.temperature, "0: greedy")
      ->capture_default_str();
  cmd->add_option("--top-p", a->eval.sampling.top_p, "Nucleus sampling mass, (0, 1]")
      ->capture_default_str();
  cmd->add_option("--top-k", a->eval.sampling.top_k, "0: off")->capture_default_str();
  cmd->add_option("--min-p", a->eval.sampling.min_p, "0: off")->capture_default_str();
  cmd->add_option("--max-new-tokens", a->eval.sampling.max_new_tokens,
                  "Tokens per completion, at most")
      ->capture_default_str();
  cmd->add_option("--stop", a->eval.sampling.stop, "Stop string (repeatable)");
  cmd->add_option("--seed", a->eval.sampling.seed, "Sampling seed")->capture_default_str();
  a->template_option = cmd->add_option("--template", a->template_name,
                                       "Prompt template: r1_zero, plain, chatml, llama3 or custom")
                           ->capture_default_str();
  cmd->add_option("--custom-template", a->custom_template,
                  "With --template custom: text with {prompt} (and optionally {system})");
  cmd->add_option("--system", a->system, "System message for chatml/llama3/custom");
  a->prompt_field = cmd->add_option("--prompt-field", a->fields.prompt, "Field holding the prompt")
                        ->capture_default_str();
  a->answer_field =
      cmd->add_option("--answer-field", a->fields.answer,
                      "Field holding the gold answer (text after `####` taken; lists joined)")
          ->capture_default_str();
  a->tests_field = cmd->add_option("--tests-field", a->fields.tests, "Field holding code tests")
                       ->capture_default_str();
  cmd->add_option("--id-field", a->fields.id, "Field copied into the per-item results as id");
  cmd->add_option("--tests-from", a->tests_from,
                  "Build the code tests from fields: KEY=FIELD (repeatable; HumanEval: "
                  "prefix=prompt check=test entry_point=entry_point)")
      ->allow_extra_args(false);
  a->limit_option = cmd->add_option("--limit", a->limit, "Evaluate the first N items only (0: all)")
                        ->capture_default_str();
  cmd->add_option("--pass-reward", a->eval.pass_reward,
                  "Reward whose score >= 1 marks a sample correct (default: the first of "
                  "math_boxed, countdown, code_tests)");
  cmd->add_option("--items-per-batch", a->eval.items_per_batch, "Items sampled per engine call")
      ->capture_default_str();
  cmd->add_option("--max-tokens-in-flight", a->eval.engine.max_tokens_in_flight,
                  "Cap on KV positions held at once (0: none); more runs in waves")
      ->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "float32, bfloat16 or float16")->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Reward scoring threads; 0 = one per core")
      ->capture_default_str();
  cmd->add_option("--output", a->output,
                  "Per-item results, JSONL (written atomically); with --suite a folder");
  cmd->add_option("--summary", a->summary, "Summary JSON file (default: stdout)");
  cmd->add_option("--keep", a->keep,
                  "Rejection sampling: write the correct, finished samples (distinct per item) "
                  "as SFT JSONL (prompt, response, answer)");
  cmd->add_option("--keep-require", a->keep_require,
                  "With --keep: a reward a kept sample must also score >= 1 on (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--keep-per-item", a->keep_per_item,
                  "With --keep: at most N samples per item (0: all)")
      ->capture_default_str();
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace grpo::cli
