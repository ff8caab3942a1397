// Evaluation maths and loading: pass@k against hand-computed binomials and a brute-force count
// over subsets, the summary's running means, gold answers from the benchmark formats (the
// real files in ../shared/data/benchmarks when present; skipped otherwise).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/jsonl.h"
#include "grpo/core/config/eval_suite.h"
#include "grpo/core/error.h"
#include "grpo/reward/math_answer.h"
#include "grpo/train/eval.h"

namespace fs = std::filesystem;
namespace gt = grpo::train;

namespace {

// The definition: the share of k-subsets of the n samples that hold at least one of the c
// correct ones (samples 0..c-1 correct), counted by enumerating bitmasks.
double pass_at_k_by_counting(int n, int c, int k) {
  long hits = 0, total = 0;
  for (unsigned mask = 0; mask < (1U << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++total;
    hits += (mask & ((1U << c) - 1U)) != 0;
  }
  return static_cast<double>(hits) / static_cast<double>(total);
}

const std::string kBenchmarks = std::string(GRPO_SOURCE_DIR) + "/../shared/data/benchmarks";

// The public sets' field names and sizes, read off the files by hand.
struct BenchmarkCase {
  const char* file;
  const char* prompt;
  const char* answer;
  size_t rows;
  const char* first;
};
const BenchmarkCase kBenchmarkCases[] = {
    {"simplerl_math500_test.jsonl", "problem", "answer", 500,
     "\\left( 3, \\frac{\\pi}{2} \\right)"},
    {"qwen25math_gsm8k_test.jsonl", "question", "answer", 1319, "18"},
    {"qwen25math_aime24_test.jsonl", "problem", "answer", 30, "204"},
    {"qwen25math_amc23_test.jsonl", "question", "answer", 40, "27.0"},
    {"qwen25math_olympiadbench_test.jsonl", "question", "final_answer", 675, "2"},
    {"qwen25math_minerva_math_test.jsonl", "problem", "solution", 272, nullptr},
};

}  // namespace

TEST(PassAtK, HandComputedValues) {
  EXPECT_DOUBLE_EQ(gt::pass_at_k(4, 1, 1), 0.25);            // 1 - C(3,1)/C(4,1)
  EXPECT_DOUBLE_EQ(gt::pass_at_k(4, 1, 2), 0.5);             // 1 - C(3,2)/C(4,2) = 1 - 3/6
  EXPECT_NEAR(gt::pass_at_k(4, 2, 2), 5.0 / 6.0, 1e-15);     // 1 - C(2,2)/C(4,2)
  EXPECT_NEAR(gt::pass_at_k(5, 2, 3), 0.9, 1e-15);           // 1 - C(3,3)/C(5,3)
  EXPECT_NEAR(gt::pass_at_k(10, 3, 5), 11.0 / 12.0, 1e-15);  // 1 - 21/252
  EXPECT_DOUBLE_EQ(gt::pass_at_k(4, 1, 4), 1.0);             // n - c < k
  EXPECT_DOUBLE_EQ(gt::pass_at_k(4, 0, 4), 0.0);
  EXPECT_DOUBLE_EQ(gt::pass_at_k(64, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(gt::pass_at_k(1, 1, 1), 1.0);
  // Large n without overflow: C(199,100)/C(200,100) = 100/200.
  EXPECT_NEAR(gt::pass_at_k(200, 1, 100), 0.5, 1e-12);
}

TEST(PassAtK, PassAt1IsTheShareCorrect) {
  for (int n : {1, 3, 8, 64}) {
    for (int c = 0; c <= n; ++c) {
      EXPECT_NEAR(gt::pass_at_k(n, c, 1), static_cast<double>(c) / n, 1e-12) << n << " " << c;
    }
  }
}

TEST(PassAtK, MatchesCountingSubsets) {
  for (int n = 1; n <= 10; ++n) {
    for (int c = 0; c <= n; ++c) {
      for (int k = 1; k <= n; ++k) {
        EXPECT_NEAR(gt::pass_at_k(n, c, k), pass_at_k_by_counting(n, c, k), 1e-12)
            << "n=" << n << " c=" << c << " k=" << k;
      }
    }
  }
}

TEST(PassAtK, RejectsImpossibleCounts) {
  EXPECT_THROW(gt::pass_at_k(4, 5, 1), grpo::Error);
  EXPECT_THROW(gt::pass_at_k(4, 1, 5), grpo::Error);
  EXPECT_THROW(gt::pass_at_k(4, 1, 0), grpo::Error);
}

TEST(PassAtK, ReportedKs) {
  EXPECT_EQ(gt::pass_ks(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(gt::pass_ks(4), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(gt::pass_ks(6), (std::vector<int64_t>{1, 2, 4, 6}));
  EXPECT_EQ(gt::pass_ks(64), (std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64}));
}

namespace {
// Item `item` of the hand-made pair below: n = 4 samples, 1 correct (item 0) or 4 (item 1).
gt::EvalItemResult hand_item(int item) {
  gt::EvalItemResult r;
  for (int g = 0; g < 4; ++g) {
    gt::EvalSample x;
    x.correct = item == 1 || g == 0;
    x.tokens = 10 * (g + 1);
    x.finish_reason =
        g == 3 ? grpo::rollout::FinishReason::length : grpo::rollout::FinishReason::eos;
    x.score.components = {x.correct ? 1.0 : 0.0, 0.5};
    x.score.reward = x.score.components[0] + 0.1 * 0.5;
    r.correct += x.correct;
    r.samples.push_back(x);
  }
  r.vote_correct = item == 1;  // the second item's vote is right
  return r;
}

void expect_hand_figures(const nlohmann::json& j) {
  EXPECT_EQ(j.at("items"), 2);
  EXPECT_DOUBLE_EQ(j.at("pass@1").get<double>(), (0.25 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(j.at("pass@2").get<double>(), (0.5 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(j.at("pass@4").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j.at("cons@4").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j.at("reward/math_boxed/mean").get<double>(), 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(j.at("reward/format_think_answer/mean").get<double>(), 0.5);
  EXPECT_NEAR(j.at("reward/mean").get<double>(), 5.0 / 8.0 + 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(j.at("response_length/mean").get<double>(), 25.0);
  EXPECT_DOUBLE_EQ(j.at("truncated_fraction").get<double>(), 0.25);
}
}  // namespace

TEST(EvalSummary, MeansOverItems) {
  gt::EvalSummary s(4, {"math_boxed", "format_think_answer"}, /*has_vote=*/true);
  s.add(hand_item(0));
  s.add(hand_item(1));
  expect_hand_figures(s.to_json());
  EXPECT_FALSE(gt::EvalSummary(4, {}, /*has_vote=*/false).to_json().contains("cons@4"));
}

// Two processes' summaries (one item each) add up, through their sums, to the figures of one
// summary over both items (how data-parallel validation combines its shares).
TEST(EvalSummary, SumsOfSharesAddUpToTheWhole) {
  const std::vector<std::string> names = {"math_boxed", "format_think_answer"};
  gt::EvalSummary a(4, names, true), b(4, names, true);
  a.add(hand_item(0));
  b.add(hand_item(1));
  auto sums = a.sums();
  const auto other = b.sums();
  ASSERT_EQ(sums.size(), other.size());
  for (size_t i = 0; i < sums.size(); ++i) sums[i] += other[i];
  gt::EvalSummary whole(4, names, true);
  whole.set_sums(sums);
  expect_hand_figures(whole.to_json());
  EXPECT_EQ(whole.items(), 2);
  EXPECT_THROW(whole.set_sums({1.0, 2.0}), grpo::Error);  // another summary's shape
}

TEST(GoldAnswer, BenchmarkShapes) {
  using nlohmann::json;
  EXPECT_EQ(gt::gold_answer_text(json("She makes 9 * 2 = $18.\n#### 18")), "18");
  EXPECT_EQ(gt::gold_answer_text(json("#### 1,234 ")), "1,234");
  EXPECT_EQ(gt::gold_answer_text(json("\\left( 3, \\frac{\\pi}{2} \\right)")),
            "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_EQ(gt::gold_answer_text(json(27.0)), "27.0");
  EXPECT_EQ(gt::gold_answer_text(json(18)), "18");
  EXPECT_EQ(gt::gold_answer_text(json::array({"$(1,8,19)$", "2"})), "$(1,8,19)$, 2");
  EXPECT_EQ(gt::gold_answer_text(json::array({"$\\frac{1}{2}$"})), "$\\frac{1}{2}$");
  EXPECT_EQ(gt::gold_answer_text(json(nullptr)), "");
  EXPECT_THROW(gt::gold_answer_text(json::object({{"a", 1}})), grpo::Error);
  EXPECT_THROW(gt::gold_answer_text(json::array({json::array({1})})), grpo::Error);
}

TEST(LoadEvalItems, FieldMappingLimitAndErrors) {
  const fs::path path =
      fs::temp_directory_path() / ("grpo_eval_items_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(path);
    f << R"({"question": "1+1?", "final": "#### 2", "uid": "a"})"
      << "\n\n"
      << R"({"question": "2+2?", "final": 4, "uid": 7})"
      << "\n"
      << R"({"question": "3+3?", "uid": "c"})"
      << "\n";
  }
  gt::EvalFields fields;
  fields.prompt = "question";
  fields.answer = "final";
  fields.id = "uid";
  auto items = gt::load_eval_items(path.string(), fields);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].prompt, "1+1?");
  EXPECT_EQ(items[0].answer, "2");
  EXPECT_EQ(items[1].answer, "4");
  EXPECT_EQ(items[1].id, 7);
  EXPECT_EQ(items[2].answer, "");
  EXPECT_EQ(items[2].index, 2u);
  EXPECT_EQ(gt::load_eval_items(path.string(), fields, 2).size(), 2u);

  fields.prompt = "problem";
  try {
    gt::load_eval_items(path.string(), fields);
    FAIL() << "expected an error";
  } catch (const grpo::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(":1: no prompt field 'problem'"), std::string::npos) << what;
    EXPECT_NE(what.find("question"), std::string::npos) << what;  // lists what the line has
  }
  fs::remove(path);
}

// Each benchmark format through its field mapping: every item has a prompt and a gold answer,
// the first gold is what the file says, and the math checker accepts each gold as itself.
TEST(LoadEvalItems, BenchmarkFiles) {
  if (!fs::exists(kBenchmarks)) GTEST_SKIP() << kBenchmarks << " is absent";
  for (const auto& c : kBenchmarkCases) {
    const std::string path = kBenchmarks + "/" + c.file;
    if (!fs::exists(path)) continue;
    gt::EvalFields fields;
    fields.prompt = c.prompt;
    fields.answer = c.answer;
    const auto items = gt::load_eval_items(path, fields);
    ASSERT_EQ(items.size(), c.rows) << c.file;
    if (c.first) {
      EXPECT_EQ(items[0].answer, c.first) << c.file;
    }
    size_t self_equal = 0;
    for (const auto& it : items) {
      EXPECT_FALSE(it.prompt.empty()) << c.file << " item " << it.index;
      EXPECT_FALSE(it.answer.empty()) << c.file << " item " << it.index;
      // A solution-shaped gold (Minerva) is compared through its last box.
      const auto boxed = grpo::reward::last_boxed(it.answer);
      const std::string gold = boxed ? *boxed : it.answer;
      self_equal += grpo::reward::math_answers_equal(gold, gold, grpo::reward::MathOptions{});
    }
    EXPECT_EQ(self_equal, items.size()) << c.file;
  }
}

// configs/eval/math.yaml names every public math set with the field names above; where the files
// are present, each of its benchmarks loads in full, every item with a prompt, a gold answer and
// an id.
TEST(LoadEvalItems, ShippedMathSuite) {
  const auto suite =
      grpo::config::load_eval_suite(std::string(GRPO_SOURCE_DIR) + "/configs/eval/math.yaml");
  ASSERT_EQ(suite.benchmarks.size(), std::size(kBenchmarkCases));
  for (const auto& b : suite.benchmarks) {
    const BenchmarkCase* match = nullptr;
    for (const auto& c : kBenchmarkCases) {
      if (b.file == c.file) match = &c;
    }
    ASSERT_NE(match, nullptr) << b.file;
    EXPECT_EQ(b.prompt_field, match->prompt) << b.name;
    EXPECT_EQ(b.answer_field, match->answer) << b.name;
    EXPECT_FALSE(b.id_field.empty()) << b.name;
    EXPECT_EQ(suite.root, "../shared/data/benchmarks");  // from the repository root
    const std::string path = kBenchmarks + "/" + b.file;
    if (!fs::exists(path)) continue;
    const auto items =
        gt::load_eval_items(path, {b.prompt_field, b.answer_field, "", b.id_field, {}});
    EXPECT_EQ(items.size(), match->rows) << b.name;
    for (const auto& it : items) {
      EXPECT_FALSE(it.id.is_null()) << b.name << " item " << it.index;
      EXPECT_FALSE(it.answer.empty()) << b.name << " item " << it.index;
    }
  }
}

// configs/eval/code.yaml reads HumanEval from its .gz file with the tests code_tests runs in
// function-call mode: {prefix: prompt, check: test, entry_point}, against the rows as the gzip
// program decompresses them.
TEST(LoadEvalItems, ShippedCodeSuite) {
  const auto suite =
      grpo::config::load_eval_suite(std::string(GRPO_SOURCE_DIR) + "/configs/eval/code.yaml");
  ASSERT_EQ(suite.benchmarks.size(), 1u);
  const auto& b = suite.benchmarks[0];
  const std::string path = kBenchmarks + "/" + b.file;
  if (!fs::exists(path)) GTEST_SKIP() << path << " is absent";
  const auto rows = grpo::testing::read_jsonl_gz(path);
  const auto items = gt::load_eval_items(
      path, {b.prompt_field, b.answer_field, b.tests_field, b.id_field, b.tests_from});
  ASSERT_EQ(items.size(), 164u);
  ASSERT_EQ(rows.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(items[i].id, rows[i]["task_id"]);
    EXPECT_EQ(items[i].prompt, rows[i]["prompt"]);
    EXPECT_EQ(items[i].tests, (nlohmann::json{{"prefix", rows[i]["prompt"]},
                                              {"check", rows[i]["test"]},
                                              {"entry_point", rows[i]["entry_point"]}}))
        << i;
  }
}

// Rejection sampling keeps correct, finished, distinct samples that pass the required rewards;
// the expected indices are read off the hand-made samples below.
TEST(KeptSamples, CorrectFinishedDistinctAndRequired) {
  using grpo::rollout::FinishReason;
  gt::EvalItemResult r;
  auto add = [&](const std::string& text, bool correct, FinishReason finish, double format) {
    gt::EvalSample s;
    s.completion = text;
    s.correct = correct;
    s.finish_reason = finish;
    s.score.components = {correct ? 1.0 : 0.0, format};
    r.samples.push_back(s);
  };
  add("a", true, FinishReason::eos, 1.0);     // 0: kept
  add("b", false, FinishReason::eos, 1.0);    // 1: wrong
  add("c", true, FinishReason::length, 1.0);  // 2: cut at the limit
  add("a", true, FinishReason::stop, 1.0);    // 3: same text as 0
  add("d", true, FinishReason::stop, 0.5);    // 4: kept unless format is required
  add("e", true, FinishReason::eos, 1.0);     // 5: kept
  EXPECT_EQ(gt::kept_samples(r, {}), (std::vector<size_t>{0, 4, 5}));
  EXPECT_EQ(gt::kept_samples(r, {{1}, 0}), (std::vector<size_t>{0, 5}));
  EXPECT_EQ(gt::kept_samples(r, {{1}, 1}), (std::vector<size_t>{0}));
  EXPECT_EQ(gt::kept_samples(r, {{}, 2}), (std::vector<size_t>{0, 4}));
  EXPECT_THROW(gt::kept_samples(r, {{2}, 0}), grpo::Error);
}
