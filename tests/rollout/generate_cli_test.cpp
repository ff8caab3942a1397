// `grpo generate` and `grpo bench rollout` end to end on a tiny model folder (random weights saved
// with the fixture tokenizer): the CLI's completions equal the library's for the same seed, and
// bad input exits with one clear line.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/run_cli.h"
#include "grpo/model/checkpoint.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/template.h"

namespace fs = std::filesystem;
namespace gm = grpo::model;
namespace gr = grpo::rollout;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

const std::string kTokenizerDir = std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/text/small_qwen";

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("grpo_generate_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    tok_ = grpo::text::load_tokenizer(kTokenizerDir);
    grpo::config::ModelArchitecture a;
    a.hidden_size = 32;
    a.intermediate_size = 64;
    a.num_hidden_layers = 2;
    a.num_attention_heads = 4;
    a.num_key_value_heads = 2;
    a.max_position_embeddings = 256;
    model_ = gm::random_model(gm::arch_from_config(a, tok_->vocab_size()), 3, at::kFloat);
    gm::save_hf(model_, (dir_ / "model").string(), kTokenizerDir);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::unique_ptr<grpo::text::Tokenizer> tok_;
  gm::CausalLM model_{nullptr};
};

}  // namespace

TEST_F(GenerateCli, WritesTheLibrarysCompletions) {
  const std::string out = (dir_ / "out.jsonl").string();
  const auto r = run_cli("generate --model " + shell_quote((dir_ / "model").string()) +
                         " --prompt 'hello world' --prompt '2+2=' --n 3 --max-new-tokens 8" +
                         " --temperature 0.8 --top-p 0.9 --seed 5 --template chatml --logprobs" +
                         " --output " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;

  // The same call through the library.
  const grpo::text::PromptTemplate tmpl(grpo::text::TemplateConfig{"chatml", "", ""});
  const std::vector<std::vector<int32_t>> prompts = {tok_->encode(tmpl.render("hello world")),
                                                     tok_->encode(tmpl.render("2+2="))};
  gr::SamplingParams sp;
  sp.max_new_tokens = 8;
  sp.temperature = 0.8;
  sp.top_p = 0.9;
  sp.seed = 5;
  gr::RolloutEngine engine(model_, tok_.get());
  const auto expected = engine.generate(prompts, 3, sp);

  std::ifstream in(out);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), expected.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& j = lines[i];
    EXPECT_EQ(j.at("prompt_index").get<int64_t>(), expected[i].prompt_index);
    EXPECT_EQ(j.at("sample_index").get<int64_t>(), expected[i].sample_index);
    EXPECT_EQ(j.at("completion_ids").get<std::vector<int32_t>>(), expected[i].completion_ids);
    EXPECT_EQ(j.at("completion").get<std::string>(), expected[i].text);
    EXPECT_EQ(j.at("finish_reason").get<std::string>(),
              gr::finish_reason_name(expected[i].finish_reason));
    EXPECT_EQ(j.at("logprobs").size(), expected[i].completion_ids.size());
  }
  EXPECT_EQ(lines[3].at("prompt").get<std::string>(), "2+2=");
}

TEST_F(GenerateCli, BadInputIsOneClearError) {
  const std::string model = " --model " + shell_quote((dir_ / "model").string());
  auto r = run_cli("generate" + model);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--prompt or --input"), std::string::npos) << r.err;

  const std::string input = (dir_ / "prompts.jsonl").string();
  std::ofstream(input) << "{\"prompt\": \"ok\"}\n{\"question\": \"no prompt field\"}\n";
  r = run_cli("generate" + model + " --input " + shell_quote(input));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("prompts.jsonl:2"), std::string::npos) << r.err;

  r = run_cli("generate" + model + " --prompt hi --top-p 1.5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;
}

TEST_F(GenerateCli, BenchRolloutPrintsFigures) {
  const auto r = run_cli("bench rollout --model " + shell_quote((dir_ / "model").string()) +
                         " --prompts 2 --n 2 --prompt-len 4 --new-tokens 4 --repeat 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak memory: RSS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"generated_tokens\":16"), std::string::npos) << r.out;
}
