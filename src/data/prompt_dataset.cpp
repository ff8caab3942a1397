// JSONL prompt loading, per-epoch shuffling, cursor and sharding; see prompt_dataset.h.
#include "grpo/data/prompt_dataset.h"

#include <numeric>

#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/data/answer_text.h"
#include "grpo/data/rng.h"
#include "grpo/data/tasks.h"

namespace grpo::data {

std::vector<PromptRecord> load_prompt_file(const std::string& path, const FieldMap& fields) {
  std::vector<PromptRecord> out;
  size_t with_answer = 0, with_tests = 0;
  jsonl::for_each_object(path, [&](const nlohmann::json& o, const jsonl::Location& where) {
    PromptRecord r;
    r.prompt = jsonl::require_string(o, fields.prompt, where);
    GRPO_CHECK(!r.prompt.empty(), where.str(), ": field '", fields.prompt, "' is empty");
    if (!fields.answer.empty()) {
      auto it = o.find(fields.answer);
      if (it != o.end() && !it->is_null()) {
        // As grpo eval reads benchmarks: GSM8K's text after ####, numbers, lists joined.
        try {
          r.answer = gold_answer_text(*it);
        } catch (const Error& e) {
          GRPO_FAIL(where.str(), ": field '", fields.answer, "': ", e.what());
        }
        ++with_answer;
      }
    }
    if (!fields.tests.empty()) {
      auto it = o.find(fields.tests);
      if (it != o.end() && !it->is_null()) {
        r.tests = *it;
        ++with_tests;
      }
    }
    if (!fields.response.empty()) r.response = jsonl::require_string(o, fields.response, where);
    r.source_line = where.line;
    r.source_file = path;
    out.push_back(std::move(r));
  });
  GRPO_CHECK(!out.empty(), path, ": no prompts (the file is empty)");
  // Rewards need an answer or tests; a file with neither usually means a wrong field name.
  if (with_answer == 0 && with_tests == 0 && fields.response.empty())
    log::warn(path, ": no line has an '", fields.answer, "' or '", fields.tests,
              "' field; check data.answer_field / data.tests_field");
  return out;
}

nlohmann::json DataCursor::to_json() const {
  return {{"epoch", epoch}, {"index", index}, {"size", size}};
}

DataCursor DataCursor::from_json(const nlohmann::json& j) {
  GRPO_CHECK(j.is_object(), "data cursor must be a JSON object, got ", j.dump());
  DataCursor c;
  for (auto [key, field] :
       {std::pair{"epoch", &c.epoch}, std::pair{"index", &c.index}, std::pair{"size", &c.size}}) {
    auto it = j.find(key);
    GRPO_CHECK(it != j.end() && it->is_number_unsigned(), "data cursor field '", key,
               "' must be a whole number >= 0, got ", j.dump());
    *field = it->get<uint64_t>();
  }
  return c;
}

ShardRange uneven_shard_range(size_t n, int rank, int world_size) {
  GRPO_CHECK_KIND(config, world_size >= 1 && rank >= 0 && rank < world_size, "rank ", rank,
                  " is outside world size ", world_size);
  const size_t w = static_cast<size_t>(world_size), r = static_cast<size_t>(rank);
  return ShardRange{n * r / w, n * (r + 1) / w};
}

ShardRange shard_range(size_t n, int rank, int world_size) {
  const ShardRange range = uneven_shard_range(n, rank, world_size);
  GRPO_CHECK_KIND(config, n % static_cast<size_t>(world_size) == 0, "a batch of ", n,
                  " prompts cannot be split evenly over ", world_size,
                  " ranks; make the prompts per step a multiple of the world size");
  return range;
}

std::vector<PromptRecord> synthetic_records(const config::SyntheticTaskConfig& task, size_t index) {
  const auto lookup = [](const auto& names, const std::string& name) {
    for (const auto& [value, n] : names)
      if (n == name) return value;
    throw Error("data.synthetic: unknown name '" + name + "'", ErrorKind::config);
  };
  const auto kind = lookup(enum_names(TaskKind{}), task.task);
  const auto difficulty = lookup(enum_names(Difficulty{}), task.difficulty);
  const auto items = generate_task(kind, difficulty, task.options, static_cast<size_t>(task.n),
                                   static_cast<uint64_t>(task.seed));
  const std::string source = "data.synthetic[" + std::to_string(index) + "] (" + task.task + ")";
  std::vector<PromptRecord> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    PromptRecord r;
    r.prompt = items[i].prompt;
    r.answer = items[i].answer;
    r.response = items[i].response;
    r.source_file = source;
    r.source_line = i + 1;
    out.push_back(std::move(r));
  }
  return out;
}

static std::vector<PromptRecord> load_all(const config::DataConfig& config) {
  GRPO_CHECK_KIND(config, !config.train_files.empty() || !config.synthetic.empty(),
                  "data.train_files and data.synthetic are both empty: name at least one JSONL "
                  "file or synthetic task");
  FieldMap fields{config.prompt_field, config.answer_field, config.tests_field, ""};
  std::vector<PromptRecord> all;
  for (const auto& file : config.train_files) {
    auto records = load_prompt_file(file, fields);
    log::info("loaded ", records.size(), " prompts from ", file);
    all.insert(all.end(), std::make_move_iterator(records.begin()),
               std::make_move_iterator(records.end()));
  }
  for (size_t i = 0; i < config.synthetic.size(); ++i) {
    auto records = synthetic_records(config.synthetic[i], i);
    log::info("generated ", records.size(), " ", config.synthetic[i].task, " prompts (seed ",
              config.synthetic[i].seed, ")");
    all.insert(all.end(), std::make_move_iterator(records.begin()),
               std::make_move_iterator(records.end()));
  }
  return all;
}

PromptDataset::PromptDataset(const config::DataConfig& config)
    : PromptDataset(load_all(config), config.shuffle, static_cast<uint64_t>(config.seed)) {}

PromptDataset::PromptDataset(std::vector<PromptRecord> records, bool shuffle, uint64_t seed)
    : records_(std::move(records)), shuffle_(shuffle), seed_(seed) {
  GRPO_CHECK(!records_.empty(), "the prompt dataset is empty");
  order_ = epoch_order(0);
}

std::vector<size_t> PromptDataset::epoch_order(uint64_t epoch) const {
  std::vector<size_t> order(records_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (shuffle_) {
    Rng rng = Rng::derive(seed_, epoch);
    rng.shuffle(order);
  }
  return order;
}

std::vector<PromptRecord> PromptDataset::next_batch(size_t n) {
  std::vector<PromptRecord> out;
  out.reserve(n);
  while (out.size() < n) {
    if (index_ == records_.size()) {
      ++epoch_;
      index_ = 0;
      order_ = epoch_order(epoch_);
    }
    out.push_back(records_[order_[index_++]]);
  }
  return out;
}

std::vector<PromptRecord> PromptDataset::next_batch(size_t n, int rank, int world_size) {
  const ShardRange r = shard_range(n, rank, world_size);
  std::vector<PromptRecord> all = next_batch(n);
  return std::vector<PromptRecord>(std::make_move_iterator(all.begin() + r.begin),
                                   std::make_move_iterator(all.begin() + r.end));
}

void PromptDataset::restore(const DataCursor& c) {
  GRPO_CHECK(c.size == records_.size(), "the checkpoint's data cursor was saved with ", c.size,
             " prompts but the dataset now has ", records_.size(),
             "; resume with the same data files");
  GRPO_CHECK(c.index <= records_.size(), "data cursor index ", c.index, " is past the dataset (",
             records_.size(), " prompts)");
  epoch_ = c.epoch;
  index_ = c.index;
  order_ = epoch_order(epoch_);
}

}  // namespace grpo::data
