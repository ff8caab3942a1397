// `grpo eval` end to end on a tiny model folder whose weights are set by hand so that it writes
// `\boxed{5}` or `\boxed{7}` with even odds: the attention and MLP outputs are zero, so each
// position's logits depend only on its own token (a bigram table), and the table walks a chain
// of tokens that spells the box. The expected figures are counted here from the completions:
// the completions themselves equal the library engine's for the same seed, pass@k equals the
// share of k-subsets holding a correct sample, cons@k a plain count with the tie rule.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "../support/gloo.h"
#include "../support/run_cli.h"
#include "grpo/model/checkpoint.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/tokenizer.h"

namespace fs = std::filesystem;
namespace gm = grpo::model;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

const std::string kTokenizerDir = std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/text/small_qwen";
const std::string kPromptEnd = " Answer:";
constexpr int kN = 6;

double subsets_with_a_hit(int n, int c, int k) {  // samples 0..c-1 are the correct ones
  long hits = 0, total = 0;
  for (unsigned mask = 0; mask < (1U << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++total;
    hits += (mask & ((1U << c) - 1U)) != 0;
  }
  return static_cast<double>(hits) / static_cast<double>(total);
}

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("grpo_eval_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    tok_ = grpo::text::load_tokenizer(kTokenizerDir);
    grpo::config::ModelArchitecture a;
    a.hidden_size = 32;
    a.intermediate_size = 64;
    a.num_hidden_layers = 2;
    a.num_attention_heads = 4;
    a.num_key_value_heads = 2;
    a.max_position_embeddings = 1024;  // GSM8K prompts fit
    a.tie_word_embeddings = false;
    model_ = gm::random_model(gm::arch_from_config(a, tok_->vocab_size()), 1, at::kFloat);
    make_box_writer();
    gm::save_hf(model_, (dir_ / "model").string(), kTokenizerDir);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Token chain: last prompt token -> "\boxed{" pieces -> "5" | "7" -> "}" -> "!".
  void make_box_writer() {
    const auto single = [&](const std::string& s) {
      const auto ids = tok_->encode(s);
      EXPECT_EQ(ids.size(), 1u) << s;
      return ids.at(0);
    };
    std::vector<int32_t> chain = {tok_->encode(kPromptEnd).back()};
    for (int32_t id : tok_->encode(" \\boxed{")) chain.push_back(id);
    const int32_t five = single("5"), seven = single("7"), close = single("}");
    std::set<int32_t> distinct(chain.begin(), chain.end());
    distinct.insert({five, seven, close});
    ASSERT_EQ(distinct.size(), chain.size() + 3) << "the chain must not repeat a token";
    new_tokens_ = static_cast<int>(chain.size()) + 1;  // box pieces, digit, "}"

    torch::NoGradGuard no_grad;
    auto params = model_->named_parameters();
    for (auto& p : params) {
      const std::string& name = p.key();
      if (name.find("o_proj.weight") != std::string::npos ||
          name.find("down_proj.weight") != std::string::npos) {
        p.value().zero_();
      }
    }
    at::Tensor emb = params["model.embed_tokens.weight"];  // (V, H)
    at::Tensor head = params["lm_head.weight"];            // (V, H)
    head.zero_();
    const double c = 20.0;  // logit gap c * sqrt(H) ~ 113: the chain is followed surely
    int state = 0;
    auto link = [&](int32_t from, std::vector<int32_t> to) {
      emb[from].zero_();
      emb[from][state] = 1.0;
      for (int32_t t : to) head[t][state] = c;  // equal logits: even odds
      ++state;
    };
    for (size_t i = 0; i + 1 < chain.size(); ++i) link(chain[i], {chain[i + 1]});
    link(chain.back(), {five, seven});
    emb[five].zero_();
    emb[seven].zero_();
    emb[five][state] = 1.0;
    emb[seven][state] = 1.0;
    head[close][state] = c;
    // "}" -> "!", so a completion given one more token and the stop string "!" ends on its
    // own (finish reason stop) with the box as its text.
    const int32_t bang = single("!");
    ASSERT_EQ(distinct.count(bang), 0u);
    emb[close].zero_();
    emb[close][state + 1] = 1.0;
    head[bang][state + 1] = c;
  }

  fs::path dir_;
  std::unique_ptr<grpo::text::Tokenizer> tok_;
  gm::CausalLM model_{nullptr};
  int new_tokens_ = 0;
};

}  // namespace

TEST_F(EvalCli, FiguresMatchTheCompletions) {
  // Gold answers in four benchmark shapes; items 0, 2, 4, 6 expect 5, the others 7.
  const std::string data = (dir_ / "bench.jsonl").string();
  std::vector<std::string> expected;
  {
    std::ofstream f(data);
    for (int i = 0; i < 8; ++i) {
      const bool five = i % 2 == 0;
      expected.push_back(five ? "5" : "7");
      nlohmann::json line = {{"problem", "Item " + std::to_string(i) + "?" + kPromptEnd},
                             {"uid", "q" + std::to_string(i)}};
      if (i % 4 == 0) line["gold"] = five ? "5" : "7";
      if (i % 4 == 1) line["gold"] = "so the answer is\n#### 7";
      if (i % 4 == 2) line["gold"] = 5.0;
      if (i % 4 == 3) line["gold"] = nlohmann::json::array({"$7$"});
      f << line.dump() << "\n";
    }
  }
  const std::string out = (dir_ / "items.jsonl").string();
  const auto r = run_cli(
      "eval --model " + shell_quote((dir_ / "model").string()) + " --data " + shell_quote(data) +
      " --reward math_boxed --reward format_think_answer --n " + std::to_string(kN) +
      " --temperature 0.6 --top-p 0.95 --seed 11" + " --max-new-tokens " +
      std::to_string(new_tokens_) + " --prompt-field problem --answer-field gold --id-field uid" +
      " --output " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);

  // The same sampling through the library (one batch: seed + 0).
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(tok_->encode("Item " + std::to_string(i) + "?" + kPromptEnd));
  }
  grpo::rollout::SamplingParams sp;
  sp.max_new_tokens = new_tokens_;
  sp.temperature = 0.6;
  sp.top_p = 0.95;
  sp.seed = 11;
  grpo::rollout::RolloutEngine engine(model_, tok_.get());
  const auto rollouts = engine.generate(prompts, kN, sp);

  std::ifstream in(out);
  std::vector<nlohmann::json> items;
  for (std::string line; std::getline(in, line);) items.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(items.size(), 8u);
  std::vector<double> pass_sum(kN + 1, 0.0);
  double cons_hits = 0;
  int fives = 0, ties = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    EXPECT_EQ(item.at("index"), i);
    EXPECT_EQ(item.at("id"), "q" + std::to_string(i));
    EXPECT_EQ(item.at("answer").get<std::string>(),
              i % 4 == 3 ? "$7$" : (i % 4 == 2 ? "5.0" : expected[i]));
    const auto& samples = item.at("samples");
    ASSERT_EQ(samples.size(), static_cast<size_t>(kN));
    int correct = 0, n5 = 0, n7 = 0;
    std::string first;
    for (int g = 0; g < kN; ++g) {
      const auto& s = samples[static_cast<size_t>(g)];
      const std::string text = s.at("completion");
      EXPECT_EQ(text, rollouts[i * kN + static_cast<size_t>(g)].text);
      const bool is5 = text == " \\boxed{5}", is7 = text == " \\boxed{7}";
      ASSERT_TRUE(is5 || is7) << text;
      fives += is5;
      n5 += is5;
      n7 += is7;
      if (first.empty()) first = is5 ? "5" : "7";
      EXPECT_EQ(s.at("extracted"), is5 ? "5" : "7");
      const bool right = (is5 ? "5" : "7") == expected[i];
      EXPECT_EQ(s.at("correct"), right);
      EXPECT_EQ(s.at("rewards").at("math_boxed"), right ? 1.0 : 0.0);
      correct += right;
    }
    EXPECT_EQ(item.at("correct"), correct);
    for (int k = 1; k <= kN; ++k)
      pass_sum[static_cast<size_t>(k)] += subsets_with_a_hit(kN, correct, k);
    // Majority, ties to the answer seen first.
    const std::string winner = n5 > n7 ? "5" : n7 > n5 ? "7" : first;
    ties += n5 == n7;
    EXPECT_EQ(item.at("cons").at("answer"), winner) << i;
    EXPECT_EQ(item.at("cons").at("votes"), std::max(n5, n7));
    EXPECT_EQ(item.at("cons").at("correct"), winner == expected[i]);
    cons_hits += winner == expected[i];
  }
  // Both answers occur (the sampling is not stuck); the seed happens to give ties too.
  EXPECT_GT(fives, 0);
  EXPECT_LT(fives, 8 * kN);
  std::printf("eval cli: %d of %d samples wrote 5, %d tied votes\n", fives, 8 * kN, ties);

  EXPECT_EQ(summary.at("items"), 8);
  EXPECT_EQ(summary.at("n"), kN);
  for (int k : {1, 2, 4, 6}) {
    EXPECT_NEAR(summary.at("pass@" + std::to_string(k)).get<double>(),
                pass_sum[static_cast<size_t>(k)] / 8.0, 1e-12)
        << k;
  }
  EXPECT_FALSE(summary.contains("pass@3"));
  EXPECT_NEAR(summary.at("cons@6").get<double>(), cons_hits / 8.0, 1e-12);
  EXPECT_DOUBLE_EQ(summary.at("reward/format_think_answer/mean").get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(summary.at("response_length/mean").get<double>(), new_tokens_);
  EXPECT_EQ(summary.at("pass_reward"), "math_boxed");
}

// --keep writes the rejection-sampling SFT set: per item, the distinct correct completions
// (here at most one, " \\boxed{5}" or " \\boxed{7}"), counted independently from --output.
// grpo eval under grpo launch: two ranks take contiguous shares of the 7 items (3 and 4) with
// the random numbers one process gives them and add their figures; rank 0 joins the per-item
// and kept files in item order. Everything equals one process's run.
TEST_F(EvalCli, OverTwoRanksEqualsOneProcess) {
  GRPO_REQUIRE_GLOO();
  const std::string data = (dir_ / "bench7.jsonl").string();
  {
    std::ofstream f(data);
    for (int i = 0; i < 7; ++i) {
      f << nlohmann::json({{"q", "Item " + std::to_string(i) + "?" + kPromptEnd},
                           {"answer", i % 3 == 0 ? "5" : "7"}})
               .dump()
        << "\n";
    }
  }
  const auto args = [&](const std::string& tag) {
    return "eval --model " + shell_quote((dir_ / "model").string()) + " --data " +
           shell_quote(data) + " --prompt-field q --reward math_boxed --n 3 --temperature 1" +
           " --seed 5 --items-per-batch 2 --max-new-tokens " + std::to_string(new_tokens_ + 2) +
           " --stop ! --output " + shell_quote((dir_ / (tag + "_items.jsonl")).string()) +
           " --keep " + shell_quote((dir_ / (tag + "_kept.jsonl")).string()) + " --summary " +
           shell_quote((dir_ / (tag + "_summary.json")).string());
  };
  auto one = run_cli(args("one"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = run_cli("launch --nproc-per-node 2 -- " + args("two"));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto read = [&](const std::string& name) {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_EQ(read("two_items.jsonl"), read("one_items.jsonl"));
  EXPECT_EQ(read("two_kept.jsonl"), read("one_kept.jsonl"));
  EXPECT_FALSE(fs::exists(dir_ / "two_items.jsonl.rank0"));
  EXPECT_FALSE(fs::exists(dir_ / "two_items.jsonl.rank1"));
  auto s1 = nlohmann::json::parse(read("one_summary.json"));
  auto s2 = nlohmann::json::parse(read("two_summary.json"));
  for (auto* s : {&s1, &s2}) {
    s->erase("time_s");
    s->at("kept").erase("file");
  }
  EXPECT_EQ(s2, s1);
  EXPECT_EQ(s1.at("items"), 7);
  EXPECT_GT(s1.at("pass@1").get<double>(), 0.0);
  EXPECT_LT(s1.at("pass@1").get<double>(), 1.0);
}

TEST_F(EvalCli, KeepWritesCorrectSamplesAsSft) {
  const std::string data = (dir_ / "bench.jsonl").string();
  {
    std::ofstream f(data);
    for (int i = 0; i < 6; ++i) {
      f << nlohmann::json({{"q", "Item " + std::to_string(i) + "?" + kPromptEnd},
                           {"answer", i % 2 == 0 ? "5" : "7"}})
               .dump()
        << "\n";
    }
  }
  const std::string base = "eval --model " + shell_quote((dir_ / "model").string()) + " --data " +
                           shell_quote(data) +
                           " --prompt-field q --reward math_boxed --reward format_think_answer" +
                           " --n 4 --temperature 1 --seed 3 --max-new-tokens " +
                           std::to_string(new_tokens_ + 2) + " --stop !";
  const std::string items = (dir_ / "items.jsonl").string(), kept = (dir_ / "kept.jsonl").string();
  auto r = run_cli(base + " --output " + shell_quote(items) + " --keep " + shell_quote(kept));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> expected;
  {
    std::ifstream in(items);
    for (std::string line; std::getline(in, line);) {
      const auto item = nlohmann::json::parse(line);
      for (const auto& s : item.at("samples")) {
        ASSERT_EQ(s.at("finish_reason"), "stop") << s.dump();
        if (s.at("correct").get<bool>()) {
          expected.push_back({{"q", item.at("prompt")}, {"response", s.at("completion")}});
          break;  // the other correct samples are the same text
        }
      }
    }
  }
  std::vector<nlohmann::json> got;
  {
    std::ifstream in(kept);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      got.push_back({{"q", j.at("q")}, {"response", j.at("response")}});
      EXPECT_EQ(j.at("answer"), j.at("response") == " \\boxed{5}" ? "5" : "7");
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_GT(got.size(), 0u);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("kept").at("samples"), got.size());

  // The completions have no <think>/<answer> layout: requiring the format keeps nothing.
  r = run_cli(base + " --keep " + shell_quote(kept) + " --keep-require format_think_answer");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("kept").at("samples"), 0);
  r = run_cli(base + " --keep " + shell_quote(kept) + " --keep-require language_consistency");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a reward of this evaluation"), std::string::npos) << r.err;
}

TEST_F(EvalCli, BadInputIsOneClearError) {
  const std::string model = " --model " + shell_quote((dir_ / "model").string());
  const std::string data = (dir_ / "bench.jsonl").string();
  std::ofstream(data) << R"({"question": "1+1?", "answer": "2"})"
                      << "\n";
  auto r = run_cli("eval" + model + " --data " + shell_quote(data) + " --reward math_boxed");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no prompt field 'prompt'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("question"), std::string::npos) << r.err;

  r = run_cli("eval" + model + " --data " + shell_quote(data) +
              " --prompt-field question --reward format_think_answer");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no correctness reward"), std::string::npos) << r.err;

  r = run_cli("eval" + model + " --data " + shell_quote(data) + " --prompt-field question");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--reward"), std::string::npos) << r.err;
}

// A real benchmark file through its field mapping (skipped when the shared data is absent).
// --suite: two benchmarks with their own field names, counts and files, in one run of the
// model. Each benchmark's figures and per-item file equal a plain --data run of that file with
// the same options, and the average is their equal-weight mean. A bad suite stops before any
// evaluation, naming what is wrong.
TEST_F(EvalCli, SuiteEqualsOneRunPerBenchmark) {
  const auto write_items = [&](const std::string& name, const std::string& prompt_key,
                               const std::string& answer_key, int count) {
    std::ofstream f(dir_ / name);
    for (int i = 0; i < count; ++i) {
      f << nlohmann::json({{prompt_key, name + " " + std::to_string(i) + "?" + kPromptEnd},
                           {answer_key, i % 3 == 0 ? "7" : "5"}})
               .dump()
        << "\n";
    }
  };
  write_items("alpha.jsonl", "problem", "gold", 5);
  write_items("beta.jsonl", "question", "answer", 6);
  std::ofstream(dir_ / "suite.yaml") << "root: " << dir_.string() << "\n"
                                     << "benchmarks:\n"
                                     << "  - {name: alpha, file: alpha.jsonl, prompt_field: "
                                        "problem, answer_field: gold, n: 4}\n"
                                     << "  - {name: beta, file: beta.jsonl, prompt_field: "
                                        "question, limit: 4}\n";
  const std::string common = "eval --model " + shell_quote((dir_ / "model").string()) +
                             " --reward math_boxed --temperature 1 --seed 9" +
                             " --max-new-tokens " + std::to_string(new_tokens_ + 2) + " --stop !";
  const auto suite_run =
      run_cli(common + " --n 3 --suite " + shell_quote((dir_ / "suite.yaml").string()) +
              " --output " + shell_quote((dir_ / "items").string()));
  ASSERT_EQ(suite_run.exit_code, 0) << suite_run.err;
  auto suite = nlohmann::json::parse(suite_run.out);
  const auto read = [&](const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };

  const auto alpha = run_cli(common + " --data " + shell_quote((dir_ / "alpha.jsonl").string()) +
                             " --prompt-field problem --answer-field gold --n 4 --output " +
                             shell_quote((dir_ / "alpha_items.jsonl").string()));
  const auto beta = run_cli(common + " --data " + shell_quote((dir_ / "beta.jsonl").string()) +
                            " --prompt-field question --n 3 --limit 4 --output " +
                            shell_quote((dir_ / "beta_items.jsonl").string()));
  ASSERT_EQ(alpha.exit_code, 0) << alpha.err;
  ASSERT_EQ(beta.exit_code, 0) << beta.err;
  double pass_sum = 0;
  for (const auto& [name, plain] : {std::make_pair(std::string("alpha"), alpha.out),
                                    std::make_pair(std::string("beta"), beta.out)}) {
    auto expected = nlohmann::json::parse(plain);
    auto got = suite.at("benchmarks").at(name);
    EXPECT_EQ(read(dir_ / "items" / (name + ".jsonl")), read(dir_ / (name + "_items.jsonl")))
        << name;
    pass_sum += got.at("pass@1").get<double>();
    for (const char* key : {"time_s", "model", "pass_reward", "sampling"}) {
      expected.erase(key);
      got.erase(key);
    }
    EXPECT_EQ(got, expected) << name;
  }
  EXPECT_EQ(suite.at("benchmarks").at("alpha").at("items"), 5);
  EXPECT_EQ(suite.at("benchmarks").at("alpha").at("n"), 4);
  EXPECT_EQ(suite.at("benchmarks").at("beta").at("items"), 4);
  EXPECT_DOUBLE_EQ(suite.at("average").at("pass@1").get<double>(), pass_sum / 2);
  // Figures that not every benchmark has (n = 4 and 3) stay out of the average.
  EXPECT_FALSE(suite.at("average").contains("pass@4"));
  EXPECT_FALSE(suite.at("average").contains("cons@3"));
  EXPECT_NE(suite_run.err.find("average"), std::string::npos) << suite_run.err;  // the table

  // --only picks benchmarks; names it does not know, missing files, duplicate names and a suite
  // with --data are usage or config errors (exit 2) before anything is sampled.
  const std::string suite_arg = " --suite " + shell_quote((dir_ / "suite.yaml").string());
  auto only = run_cli(common + suite_arg + " --only beta --n 3");
  ASSERT_EQ(only.exit_code, 0) << only.err;
  EXPECT_FALSE(nlohmann::json::parse(only.out).at("benchmarks").contains("alpha"));
  auto r = run_cli(common + suite_arg + " --only gamma");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--only gamma: not a benchmark of"), std::string::npos) << r.err;
  r = run_cli(common + suite_arg + " --data-root " + shell_quote((dir_ / "nowhere").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("benchmark alpha: no file"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("items x"), std::string::npos) << r.err;
  r = run_cli(common + suite_arg + " --data " + shell_quote((dir_ / "alpha.jsonl").string()));
  EXPECT_EQ(r.exit_code, 2);
  std::ofstream(dir_ / "dup.yaml") << "benchmarks:\n  - {name: a, file: x.jsonl}\n"
                                   << "  - {name: a, file: y.jsonl}\n";
  r = run_cli(common + " --suite " + shell_quote((dir_ / "dup.yaml").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("two benchmarks are named 'a'"), std::string::npos) << r.err;
}

TEST_F(EvalCli, Gsm8kFormat) {
  const std::string gsm8k =
      std::string(GRPO_SOURCE_DIR) + "/../shared/data/benchmarks/qwen25math_gsm8k_test.jsonl";
  if (!fs::exists(gsm8k)) GTEST_SKIP() << gsm8k << " is absent";
  const std::string out = (dir_ / "gsm8k.jsonl").string();
  const auto r = run_cli("eval --model " + shell_quote((dir_ / "model").string()) + " --data " +
                         shell_quote(gsm8k) + " --prompt-field question --answer-field answer" +
                         " --id-field idx --reward math_boxed --n 2 --limit 3" +
                         " --max-new-tokens 4 --output " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("items"), 3);
  std::ifstream in(out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first.at("answer"), "18");  // the text after ####
  EXPECT_EQ(first.at("id"), 0);
}
