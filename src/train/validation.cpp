// Held-out validation during training: the items once at setup, then the Evaluator of
// `grpo eval` on this rank's share at the steps the `validation:` section names.
#include "grpo/train/validation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>

#include "grpo/core/config/eval_suite.h"
#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/rollout/engine.h"

namespace grpo::train {

Validator::Validator(const config::Config& config, const text::Tokenizer& tokenizer,
                     const text::PromptTemplate& prompt_template,
                     const reward::RewardPipeline& pipeline, DataParallel& dp)
    : config_(config),
      tokenizer_(tokenizer),
      template_(prompt_template),
      pipeline_(pipeline),
      dp_(dp) {
  const auto& v = config.validation;
  GRPO_CHECK_KIND(config, v.enabled(),
                  "validation: neither files nor synthetic is set: nothing to validate on");
  pass_reward_entry(pipeline, v.pass_reward);  // throws naming the pipeline's rewards
  // Files as grpo eval reads benchmarks (gold answers as gold_answer_text gives them: GSM8K's
  // text after ####, numbers, lists), then the synthetic tasks' items.
  const auto field = [](const std::string& own, const std::string& data) {
    return own.empty() ? data : own;
  };
  EvalFields fields;
  fields.prompt = field(v.prompt_field, config.data.prompt_field);
  fields.answer = field(v.answer_field, config.data.answer_field);
  fields.tests = field(v.tests_field, config.data.tests_field);
  std::vector<EvalItem> all;
  std::vector<std::string> origin;  // where each item came from, for errors
  std::vector<size_t> source;       // each item's source
  const auto add_source = [&](std::string name) {
    const std::string base = name;
    for (int k = 2;
         std::find(source_names_.begin(), source_names_.end(), name) != source_names_.end(); ++k) {
      name = base + "_" + std::to_string(k);
    }
    source_names_.push_back(name);
  };
  // One JSONL source: its items as grpo eval reads them.
  const auto add_file = [&](const std::string& name, const std::string& path,
                            const EvalFields& file_fields, size_t limit) {
    add_source(name);
    for (auto& item : load_eval_items(path, file_fields, limit)) {
      origin.push_back(path + " item " + std::to_string(item.index + 1));
      source.push_back(source_names_.size() - 1);
      all.push_back(std::move(item));
    }
  };
  for (const auto& path : v.files) {
    std::string name = std::filesystem::path(path).filename().string();
    for (const char* ext : {".jsonl", ".json"}) {
      const std::string e(ext);
      if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
        name.resize(name.size() - e.size());
        break;
      }
    }
    add_file(name, path, fields, 0);
  }
  if (!v.suite.empty()) {
    const auto suite = config::load_eval_suite(v.suite);
    for (const auto& b : suite.benchmarks) {
      add_file(b.name, suite.path_of(b), eval_fields(b), static_cast<size_t>(b.limit));
    }
  }
  for (size_t t = 0; t < v.synthetic.size(); ++t) {
    add_source(v.synthetic[t].task);
    const auto records = data::synthetic_records(v.synthetic[t], t);
    for (size_t i = 0; i < records.size(); ++i) {
      EvalItem item;
      item.prompt = records[i].prompt;
      item.answer = records[i].answer;
      item.tests = records[i].tests;
      origin.push_back(records[i].source_file + " item " + std::to_string(i + 1));
      source.push_back(source_names_.size() - 1);
      all.push_back(std::move(item));
    }
  }
  total_items_ = all.size();
  if (v.max_items > 0) total_items_ = std::min<size_t>(total_items_, v.max_items);
  for (size_t i = 0; i < total_items_; ++i) {
    all[i].index = i;  // the position among all the validation items
    const size_t tokens = tokenizer.encode(prompt_template.render(all[i].prompt)).size();
    GRPO_CHECK_KIND(config, static_cast<int64_t>(tokens) <= config.data.max_prompt_tokens,
                    "validation: ", origin[i], ": the rendered prompt has ", tokens,
                    " tokens, more than data.max_prompt_tokens = ", config.data.max_prompt_tokens);
  }
  // Contiguous shares: rank r takes [r N / W, (r + 1) N / W).
  const auto share = data::uneven_shard_range(total_items_, dp.rank(), dp.world_size());
  shard_begin_ = static_cast<int64_t>(share.begin);
  const auto first = static_cast<std::ptrdiff_t>(share.begin);
  const auto last = static_cast<std::ptrdiff_t>(share.end);
  shard_.assign(std::make_move_iterator(all.begin() + first),
                std::make_move_iterator(all.begin() + last));
  shard_source_.assign(source.begin() + first, source.begin() + last);
  if (total_items_ < all.size()) {  // validation.max_items left later sources out
    const size_t used = total_items_ == 0 ? 0 : source[total_items_ - 1] + 1;
    source_names_.resize(used);
  }
  log::info("validation: ", total_items_, " items x ", v.n, " samples",
            v.every > 0 ? " every " + std::to_string(v.every) + " steps" : std::string(),
            v.before_train ? ", before training" : "", " and after the last step");
}

bool Validator::due(int64_t steps_done, bool last) const {
  const int every = config_.validation.every;
  return last || (every > 0 && steps_done % every == 0);
}

void Validator::run(model::CausalLM policy, int64_t steps_done, const std::string& run_dir,
                    metrics::StepMetrics& m) {
  const auto& v = config_.validation;
  const auto start = std::chrono::steady_clock::now();
  EvalOptions options;
  options.n = v.n;
  options.sampling = rollout::sampling_params_from(config_.rollout, static_cast<uint64_t>(v.seed));
  options.sampling.temperature = v.temperature;
  options.sampling.top_p = v.top_p;
  if (v.max_new_tokens > 0) options.sampling.max_new_tokens = v.max_new_tokens;
  options.sampling.first_prompt_index = shard_begin_;  // as one process would sample them
  options.engine = rollout::engine_options_from(config_.rollout);
  options.pass_reward = v.pass_reward;
  options.log_progress = false;
  Evaluator evaluator(std::move(policy), tokenizer_, template_, pipeline_, options);

  // With several sources, each one's figures too.
  const size_t sources = source_names_.size() > 1 ? source_names_.size() : 0;
  std::vector<EvalSummary> by_source(sources, evaluator.new_summary());
  std::string records;
  auto on_item = [&](const EvalItem& item, const EvalItemResult& result) {
    if (v.save_items) records += evaluator.item_json(item, result).dump() + "\n";
    if (sources > 0) {
      by_source[shard_source_[item.index - static_cast<size_t>(shard_begin_)]].add(result);
    }
  };
  EvalSummary summary = evaluator.run(shard_, on_item);
  // One collective for every sum: the whole set's, then each source's.
  std::vector<double> sums = summary.sums();
  const size_t width = sums.size();
  for (const auto& s : by_source) {
    const auto part = s.sums();
    sums.insert(sums.end(), part.begin(), part.end());
  }
  sums = dp_.sum(sums, "validation sums");
  summary.set_sums(std::vector<double>(sums.begin(), sums.begin() + static_cast<long>(width)));
  for (size_t k = 0; k < sources; ++k) {
    const auto first = sums.begin() + static_cast<long>((k + 1) * width);
    by_source[k].set_sums(std::vector<double>(first, first + static_cast<long>(width)));
  }
  if (v.save_items) {
    const std::filesystem::path dir = std::filesystem::path(run_dir) / "validation";
    std::filesystem::create_directories(dir);
    char name[64];
    if (dp_.world_size() == 1) {
      std::snprintf(name, sizeof name, "step_%06lld.jsonl", static_cast<long long>(steps_done));
    } else {
      std::snprintf(name, sizeof name, "step_%06lld.rank%d.jsonl",
                    static_cast<long long>(steps_done), dp_.rank());
    }
    jsonl::AtomicWriter out((dir / name).string());
    out.write(records);
    out.commit();
  }
  const auto set_figures = [&](const std::string& prefix, const nlohmann::json& figures) {
    for (const auto& [key, value] : figures.items()) {
      if (key == "items" || key == "n" || !value.is_number()) continue;
      m.set(prefix + key, value.get<double>());
    }
  };
  const auto figures = summary.to_json();
  set_figures("val/", figures);
  std::string per_source;
  for (size_t k = 0; k < sources; ++k) {
    set_figures("val/" + source_names_[k] + "/", by_source[k].to_json());
    per_source +=
        (k == 0 ? " (" : ", ") + source_names_[k] + " " + std::to_string(by_source[k].pass_at(1));
    if (k + 1 == sources) per_source += ")";
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.set("time/validation", seconds);
  log::info("validation after step ", steps_done, ": pass@1 ", summary.pass_at(1), per_source,
            " over ", summary.items(), " items x ", v.n, ", mean length ",
            figures.value("response_length/mean", 0.0), " tokens (", seconds, " s)");
}

}  // namespace grpo::train
