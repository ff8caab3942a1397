// `grpo generate`: sample completions from a model folder with the rollout engine (the same code
// path GRPO training samples with) and write them as JSONL, with a tokens/s progress bar.
#include <torch/torch.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/core/safetensors.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/torch_compat.h"
#include "verbs.h"

namespace grpo::cli {

namespace {

struct GenerateOptions {
  std::string model;
  std::string adapter;  // a PEFT LoRA adapter folder applied to the model
  std::vector<std::string> prompts;
  std::string input;
  std::string field = "prompt";
  std::string output;
  std::string template_name = "plain";
  std::string dtype = "float32";
  std::string device = "auto";
  int n = 1;
  rollout::SamplingParams sampling;
  int64_t max_tokens_in_flight = 0;
  bool logprobs = false;
};

// Prompt texts from --prompt or from the `field` of every line of a JSONL file.
std::vector<std::string> read_prompts(const GenerateOptions& o) {
  GRPO_CHECK_KIND(usage, o.prompts.empty() != o.input.empty(),
                  "give either --prompt or --input (prompts.jsonl)");
  if (o.input.empty()) return o.prompts;
  std::ifstream in(o.input);
  GRPO_CHECK_KIND(usage, in.good(), "--input '", o.input, "' cannot be read");
  std::vector<std::string> out;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      GRPO_FAIL(o.input, ":", line_no, ": not valid JSON (", e.what(), ")");
    }
    GRPO_CHECK(j.is_object() && j.contains(o.field) && j[o.field].is_string(), o.input, ":",
               line_no, ": expected an object with a string field \"", o.field, "\"");
    out.push_back(j[o.field].get<std::string>());
  }
  GRPO_CHECK(!out.empty(), o.input, ": no prompts");
  return out;
}

at::Device pick_device(const std::string& name) {
  if (name == "auto") return compat::cuda_device_count() > 0 ? at::Device("cuda") : at::kCPU;
  try {
    return at::Device(name);
  } catch (const std::exception&) {
    GRPO_CHECK_KIND(usage, false, "--device '", name, "' is not a device (cpu, cuda, cuda:N)");
  }
  return at::kCPU;
}

// One line on stderr, redrawn at most ten times a second when it is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(int64_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void update(const rollout::Progress& p, bool last = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!last && (!tty_ || now - drawn_ < std::chrono::milliseconds(100))) return;
    drawn_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    const int width = 30;
    const int filled = static_cast<int>(width * p.finished_rollouts / std::max<int64_t>(1, total_));
    std::fprintf(stderr, "%s[%s%s] %lld/%lld completions, %lld tokens, %.1f tokens/s%s",
                 tty_ ? "\r" : "", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(),
                 static_cast<long long>(p.finished_rollouts), static_cast<long long>(total_),
                 static_cast<long long>(p.generated_tokens),
                 s > 0 ? static_cast<double>(p.generated_tokens) / s : 0.0, last ? "\n" : "");
  }

 private:
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), drawn_{};
};

void run_generate(const GenerateOptions& o) {
  const std::vector<std::string> texts = read_prompts(o);
  GRPO_CHECK_KIND(usage, o.n >= 1, "--n must be >= 1, got ", o.n);
  const text::PromptTemplate tmpl(text::TemplateConfig{o.template_name, "", ""});
  const auto tok = text::load_tokenizer(o.model);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : texts) prompts.push_back(tok->encode(tmpl.render(t)));

  config::DType dtype = config::DType::float32;
  if (o.dtype == "bfloat16") {
    dtype = config::DType::bfloat16;
  } else if (o.dtype == "float16") {
    dtype = config::DType::float16;
  } else {
    GRPO_CHECK_KIND(usage, o.dtype == "float32", "--dtype must be float32, bfloat16 or float16");
  }
  model::CausalLM model = model::load_hf(o.model, model::to_scalar_type(dtype));
  if (!o.adapter.empty()) model::apply_lora_adapter(model, o.adapter);
  model->to(pick_device(o.device));
  model->eval();
  rollout::EngineOptions eo;
  eo.max_tokens_in_flight = o.max_tokens_in_flight;
  rollout::RolloutEngine engine(model, tok.get(), eo);
  ProgressBar bar(static_cast<int64_t>(prompts.size()) * o.n);
  rollout::Progress last;
  engine.set_progress_callback([&](const rollout::Progress& p) {
    last = p;
    bar.update(p);
  });
  const auto rollouts = engine.generate(prompts, o.n, o.sampling);
  bar.update(last, /*last=*/true);

  std::ostringstream lines;
  for (const auto& r : rollouts) {
    nlohmann::json j = {{"prompt_index", r.prompt_index},
                        {"sample_index", r.sample_index},
                        {"prompt", texts[r.prompt_index]},
                        {"completion", r.text},
                        {"finish_reason", rollout::finish_reason_name(r.finish_reason)},
                        {"completion_tokens", r.completion_ids.size()}};
    if (o.logprobs) {
      j["completion_ids"] = r.completion_ids;
      j["logprobs"] = r.logprobs;
    }
    lines << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  if (o.output.empty()) {
    std::cout << lines.str();
  } else {
    safetensors::write_text_atomic(o.output, lines.str());
    log::info("wrote ", rollouts.size(), " completions to ", o.output);
  }
}

}  // namespace

void add_generate_verb(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  o->sampling.max_new_tokens = 256;
  CLI::App* cmd = app.add_subcommand("generate", "Sample completions from a model folder");
  cmd->add_option("--model", o->model, "Model folder (config.json, *.safetensors, tokenizer)")
      ->required();
  cmd->add_option("--adapter", o->adapter,
                  "LoRA adapter folder (PEFT layout: adapter_config.json, "
                  "adapter_model.safetensors) applied to the model");
  cmd->add_option("--prompt", o->prompts, "Prompt text (repeatable)");
  cmd->add_option("--input", o->input, "prompts.jsonl: one JSON object per line");
  cmd->add_option("--field", o->field, "The --input field holding the prompt")
      ->capture_default_str();
  cmd->add_option("--n", o->n, "Completions per prompt (G)")->capture_default_str();
  cmd->add_option("--max-new-tokens", o->sampling.max_new_tokens, "Tokens per completion, at most")
      ->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass, (0, 1]")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "0: off")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "0: off")->capture_default_str();
  cmd->add_option("--stop", o->sampling.stop, "Stop string (repeatable)");
  cmd->add_option("--seed", o->sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--template", o->template_name,
                  "Prompt template: r1_zero, plain, chatml or llama3")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--max-tokens-in-flight", o->max_tokens_in_flight,
                  "Cap on KV positions held at once (0: none); more runs in waves")
      ->capture_default_str();
  cmd->add_flag("--logprobs", o->logprobs, "Also write completion_ids and their log-probs");
  cmd->add_option("--output", o->output, "Output JSONL (default: stdout)");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace grpo::cli
