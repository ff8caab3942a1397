// PromptDataset: field mapping and file:line errors, per-epoch shuffling, the resume cursor and
// per-rank sharding.
#include "grpo/data/prompt_dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "grpo/core/error.h"
#include "grpo/data/tasks.h"

namespace fs = std::filesystem;

namespace grpo::data {
namespace {

class PromptDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("grpo_data_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string load_error(const std::string& text, const FieldMap& fields = {}) {
    std::string path = write("bad.jsonl", text);
    try {
      load_prompt_file(path, fields);
    } catch (const grpo::Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

// n records whose prompts are "p0".."p{n-1}".
std::vector<PromptRecord> numbered(size_t n) {
  std::vector<PromptRecord> out(n);
  for (size_t i = 0; i < n; ++i) out[i].prompt = "p" + std::to_string(i);
  return out;
}

std::vector<std::string> prompts(const std::vector<PromptRecord>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.prompt);
  return out;
}

TEST_F(PromptDatasetTest, MapsFieldsAndRemembersWhereEachRecordCameFrom) {
  std::string path = write("gsm.jsonl",
                           "{\"question\": \"2+2?\", \"gold\": \"4\"}\n"
                           "\n"
                           "{\"question\": \"3*6?\", \"gold\": 18, \"extra\": [1]}\n"
                           "{\"question\": \"code\", \"cases\": [{\"input\": \"1\", \"output\": "
                           "\"2\"}]}\n");
  auto records = load_prompt_file(path, FieldMap{"question", "gold", "cases", ""});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].prompt, "2+2?");
  EXPECT_EQ(records[0].answer, "4");
  EXPECT_TRUE(records[0].tests.is_null());
  EXPECT_EQ(records[1].answer, "18");  // numbers are kept as their text
  EXPECT_EQ(records[1].source_line, 3u);
  EXPECT_EQ(records[1].source_file, path);
  EXPECT_EQ(records[2].answer, "");
  EXPECT_EQ(records[2].tests[0]["output"], "2");
}

// Training reads a gold answer as grpo eval reads a benchmark's: GSM8K's train split (the
// rationale, then "#### 72") gives "72", not the rationale, which no boxed answer would ever
// equal; a list (OlympiadBench's final_answer) is joined.
TEST_F(PromptDatasetTest, GoldAnswersAreReadAsEvalReadsThem) {
  std::string path = write("gsm8k_train.jsonl",
                           "{\"question\": \"q1\", \"answer\": \"48 / 2 = <<48/2=24>>24\\n"
                           "48 + 24 = <<48+24=72>>72\\n#### 72\"}\n"
                           "{\"question\": \"q2\", \"answer\": [\"$3$\", 4]}\n");
  auto records = load_prompt_file(path, FieldMap{"question", "answer", "", ""});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].answer, "72");
  EXPECT_EQ(records[1].answer, "$3$, 4");
}

TEST_F(PromptDatasetTest, BadLinesNameFileLineAndField) {
  EXPECT_NE(load_error("{\"prompt\": \"a\"}\n{\"question\": \"b\"}\n")
                .find("bad.jsonl:2: missing field 'prompt'"),
            std::string::npos);
  EXPECT_NE(load_error("{\"prompt\": 5}\n").find("bad.jsonl:1: field 'prompt' must be a string"),
            std::string::npos);
  EXPECT_NE(load_error("{\"prompt\": \"\"}\n").find("bad.jsonl:1: field 'prompt' is empty"),
            std::string::npos);
  EXPECT_NE(load_error("{\"prompt\": \"a\", \"answer\": {\"x\": 1}}\n")
                .find("bad.jsonl:1: field 'answer': an answer must be a string, a number or a "
                      "list, got object"),
            std::string::npos);
  EXPECT_NE(
      load_error("{\"prompt\": \"a\"}\n{\"prompt\": \"b\"\n").find("bad.jsonl:2: invalid JSON"),
      std::string::npos);
  EXPECT_NE(load_error("").find("no prompts"), std::string::npos);
}

TEST_F(PromptDatasetTest, LoadsEveryConfiguredFileInOrder) {
  config::DataConfig c;
  c.train_files = {write("a.jsonl", "{\"prompt\": \"a1\"}\n{\"prompt\": \"a2\"}\n"),
                   write("b.jsonl", "{\"prompt\": \"b1\"}\n")};
  c.shuffle = false;
  PromptDataset ds(c);
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(prompts(ds.next_batch(3)), (std::vector<std::string>{"a1", "a2", "b1"}));
  EXPECT_EQ(ds.record(2).source_file, c.train_files[1]);
  config::DataConfig empty;
  EXPECT_THROW(PromptDataset{empty}, grpo::Error);
}

TEST(PromptDatasetOrder, ShufflesPerEpochDeterministically) {
  PromptDataset a(numbered(50), true, 7), b(numbered(50), true, 7), c(numbered(50), true, 8);
  const auto e0 = a.epoch_order(0), e1 = a.epoch_order(1);
  EXPECT_EQ(e0, b.epoch_order(0));
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, c.epoch_order(0));
  for (const auto& order : {e0, e1}) {
    std::set<size_t> seen(order.begin(), order.end());
    EXPECT_EQ(seen.size(), 50u);  // a permutation
    EXPECT_EQ(*seen.rbegin(), 49u);
  }
  PromptDataset plain(numbered(5), false, 7);
  EXPECT_EQ(plain.epoch_order(3), (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(PromptDatasetOrder, BatchesWalkEpochsInOrder) {
  PromptDataset ds(numbered(5), true, 3);
  std::vector<std::string> expected;
  for (uint64_t e = 0; e < 3; ++e) {
    for (size_t i : ds.epoch_order(e)) expected.push_back("p" + std::to_string(i));
  }
  std::vector<std::string> got;
  for (int step = 0; step < 4; ++step) {  // 4 x 3 = 12: epoch 0, epoch 1, 2 of epoch 2
    auto batch = prompts(ds.next_batch(3));
    got.insert(got.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(got, std::vector<std::string>(expected.begin(), expected.begin() + 12));
  EXPECT_EQ(ds.cursor(), (DataCursor{2, 2, 5}));
}

TEST(PromptDatasetOrder, ResumedCursorContinuesTheSameSequence) {
  PromptDataset run(numbered(7), true, 11);
  run.next_batch(4);
  run.next_batch(4);  // into epoch 1
  const nlohmann::json saved = run.cursor().to_json();
  EXPECT_EQ(saved, (nlohmann::json{{"epoch", 1}, {"index", 1}, {"size", 7}}));
  const auto rest = prompts(run.next_batch(10));

  PromptDataset resumed(numbered(7), true, 11);
  resumed.restore(DataCursor::from_json(saved));
  EXPECT_EQ(prompts(resumed.next_batch(10)), rest);

  PromptDataset other(numbered(6), true, 11);
  EXPECT_THROW(other.restore(DataCursor::from_json(saved)), grpo::Error);
  EXPECT_THROW(DataCursor::from_json({{"epoch", -1}, {"index", 0}, {"size", 7}}), grpo::Error);
  EXPECT_THROW(resumed.restore(DataCursor{0, 8, 7}), grpo::Error);
}

TEST(PromptDatasetShard, RanksGetDisjointSlicesCoveringTheGlobalBatch) {
  const int world = 4;
  PromptDataset whole(numbered(10), true, 5);
  std::vector<PromptDataset> ranks(world, PromptDataset(numbered(10), true, 5));
  for (int step = 0; step < 5; ++step) {
    const auto global = prompts(whole.next_batch(8));
    std::vector<std::string> joined;
    for (int r = 0; r < world; ++r) {
      auto part = prompts(ranks[static_cast<size_t>(r)].next_batch(8, r, world));
      EXPECT_EQ(part.size(), 2u);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    EXPECT_EQ(joined, global);  // disjoint positions, in rank order, covering the batch
  }
  for (const auto& r : ranks) EXPECT_EQ(r.cursor(), whole.cursor());

  EXPECT_EQ(shard_range(12, 2, 3).begin, 8u);
  EXPECT_EQ(shard_range(12, 2, 3).end, 12u);
  try {
    shard_range(10, 0, 4);
    FAIL();
  } catch (const grpo::Error& e) {
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("10 prompts cannot be split evenly over 4"),
              std::string::npos);
  }
  EXPECT_THROW(shard_range(8, 4, 4), grpo::Error);
  // Any n: [r n / W, (r + 1) n / W).
  EXPECT_EQ(uneven_shard_range(7, 0, 2).end, 3u);
  EXPECT_EQ(uneven_shard_range(7, 1, 2).begin, 3u);
  EXPECT_EQ(uneven_shard_range(7, 1, 2).end, 7u);
  EXPECT_EQ(uneven_shard_range(5, 2, 3).begin, 3u);
  EXPECT_THROW(uneven_shard_range(5, 3, 3), grpo::Error);
}

// The benchmark files in the shared data folder load with their own field names.
TEST(PromptDatasetBenchmarks, LoadsGsm8kWhenPresent) {
  const std::string path = "/work/shared/data/benchmarks/qwen25math_gsm8k_test.jsonl";
  if (!fs::exists(path)) GTEST_SKIP() << path << " is not present on this machine";
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) lines += line.empty() ? 0 : 1;
  auto records = load_prompt_file(path, FieldMap{"question", "answer", "", ""});
  EXPECT_EQ(records.size(), lines);
  EXPECT_EQ(records[0].answer, "18");  // the text after ####, as grpo eval reads it
}

// data.synthetic: the task's items in memory, after the files, with their worked solutions.
TEST_F(PromptDatasetTest, SyntheticTasksFollowTheFiles) {
  config::DataConfig c;
  c.train_files = {write("a.jsonl", "{\"prompt\": \"p\", \"answer\": \"1\"}\n")};
  config::SyntheticTaskConfig t;
  t.task = "arithmetic";
  t.n = 5;
  t.seed = 2;
  t.difficulty = "easy";
  c.synthetic = {t};
  c.shuffle = false;
  const PromptDataset ds(c);
  ASSERT_EQ(ds.size(), 6u);
  EXPECT_EQ(ds.record(0).prompt, "p");
  const auto items =
      generate_task(TaskKind::arithmetic, Difficulty::easy, config::Node::make_map({}), 5, 2);
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& r = ds.record(i + 1);
    EXPECT_EQ(r.prompt, items[i].prompt);
    EXPECT_EQ(r.answer, items[i].answer);
    EXPECT_EQ(r.response, items[i].response);
    EXPECT_EQ(r.source_file, "data.synthetic[0] (arithmetic)");
    EXPECT_EQ(r.source_line, i + 1);
  }
  // Bad task options name the task and the key.
  c.synthetic[0].options = config::parse_yaml("{opz: 3}", "test");
  try {
    PromptDataset bad(c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("arithmetic.opz"), std::string::npos) << e.what();
  }
  // Neither files nor tasks: an error that says so.
  try {
    PromptDataset none(config::DataConfig{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.synthetic"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace grpo::data
