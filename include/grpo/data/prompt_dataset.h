// The prompt dataset the trainer draws from: JSONL files mapped onto typed records, a
// deterministic per-epoch shuffle from a seed, a cursor (epoch, index) saved in checkpoints,
// and per-rank slices of each step's global batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grpo/core/config/data.h"

namespace grpo::data {

struct PromptRecord {
  std::string prompt;
  std::string answer;    // "" when the line has no answer field (code datasets)
  nlohmann::json tests;  // null when the line has no tests field (math datasets)
  std::string response;  // SFT target; "" unless FieldMap::response names a field
  size_t source_line = 0;
  std::string source_file;
};

// Which JSONL keys hold the prompt (required, a non-empty string), the answer (optional; a
// string, or a number written as text) and the tests (optional, any JSON). An empty
// answer/tests name means "not used". `response` (SFT targets) is required on every line when
// named, and "" (not read) by default.
struct FieldMap {
  std::string prompt = "prompt";
  std::string answer = "answer";
  std::string tests = "tests";
  std::string response;
};

// Loads one JSONL file; errors name file:line and the field.
std::vector<PromptRecord> load_prompt_file(const std::string& path, const FieldMap& fields);

// The items of data.synthetic[index] as records with prompt, answer and response (the worked
// solution); source_file reads "data.synthetic[<index>] (<task>)", source_line is the item's
// 1-based number. Bad options are config errors naming the task and key.
std::vector<PromptRecord> synthetic_records(const config::SyntheticTaskConfig& task, size_t index);

// Where the dataset stands: the next prompt is position `index` of epoch `epoch`'s order.
struct DataCursor {
  uint64_t epoch = 0;
  uint64_t index = 0;
  uint64_t size = 0;  // dataset size when saved: resuming on a different dataset is an error

  nlohmann::json to_json() const;
  static DataCursor from_json(const nlohmann::json& j);
  bool operator==(const DataCursor& o) const {
    return epoch == o.epoch && index == o.index && size == o.size;
  }
};

// [begin, end) of a global batch of n that rank `rank` of `world_size` takes: contiguous,
// disjoint, covering. n must be a multiple of world_size (one clear error otherwise).
struct ShardRange {
  size_t begin = 0;
  size_t end = 0;
};
ShardRange shard_range(size_t n, int rank, int world_size);
// The same for any n (validation and evaluation items, SFT examples): [r n / W, (r + 1) n / W),
// shares that differ by at most one.
ShardRange uneven_shard_range(size_t n, int rank, int world_size);

class PromptDataset {
 public:
  // Loads every file of config.train_files in order, then generates config.synthetic's items.
  explicit PromptDataset(const config::DataConfig& config);
  PromptDataset(std::vector<PromptRecord> records, bool shuffle, uint64_t seed);

  size_t size() const { return records_.size(); }
  const PromptRecord& record(size_t i) const { return records_[i]; }  // file order

  // Epoch `epoch`'s order: a permutation of [0, size) that depends only on (seed, epoch);
  // the identity when shuffling is off.
  std::vector<size_t> epoch_order(uint64_t epoch) const;

  // The next n prompts (the global batch of a step), continuing into the next epoch's order
  // at the end of one. Every rank calls this with the same n so all cursors stay equal.
  std::vector<PromptRecord> next_batch(size_t n);
  // This rank's slice of the next global batch of n (the cursor still advances by n).
  std::vector<PromptRecord> next_batch(size_t n, int rank, int world_size);

  DataCursor cursor() const { return DataCursor{epoch_, index_, records_.size()}; }
  void restore(const DataCursor& cursor);

 private:
  std::vector<PromptRecord> records_;
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  uint64_t epoch_ = 0;
  uint64_t index_ = 0;
  std::vector<size_t> order_;  // epoch_order(epoch_)
};

}  // namespace grpo::data
