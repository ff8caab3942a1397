// Config loading: every malformed input gets one error naming file:line, the full key path and
// what was expected; extends, overrides and the resolved round trip behave as documented.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "grpo/core/config.h"

namespace grpo::config {
namespace {

namespace fs = std::filesystem;

const char* kMinimal = "model:\n  init: random\n";

class TempDir {
 public:
  TempDir() {
    path_ =
        fs::temp_directory_path() /
        ("grpo_config_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return (path_ / name).string();
  }

 private:
  fs::path path_;
};

// The error message of loading `yaml` (with optional overrides), or "" if it loaded.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "test.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ErrorKind kind_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "test.yaml", overrides);
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "expected an error";
  return ErrorKind::runtime;
}

struct Malformed {
  const char* name;
  std::string yaml;
  std::vector<std::string> overrides;
  std::vector<std::string> expected;  // substrings the one error message must contain
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

class MalformedConfig : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedConfig, ErrorNamesKeyAndExpectation) {
  const Malformed& m = GetParam();
  std::string message = error_of(m.yaml, m.overrides);
  ASSERT_FALSE(message.empty()) << "config was accepted:\n" << m.yaml;
  for (const auto& part : m.expected)
    EXPECT_NE(message.find(part), std::string::npos) << "missing '" << part << "' in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line expected: " << message;
}

std::string with(const std::string& extra) { return std::string(kMinimal) + extra; }

INSTANTIATE_TEST_SUITE_P(
    Config, MalformedConfig,
    ::testing::Values(
        Malformed{"wrong_type_number",
                  with("trainer:\n  lr: abc\n"),
                  {},
                  {"test.yaml:4:7", "trainer.lr", "'abc'", "expected a finite number"}},
        Malformed{"wrong_type_integer",
                  with("rollout:\n  n: 2.5\n"),
                  {},
                  {"test.yaml:4:6", "rollout.n", "expected an integer"}},
        Malformed{"wrong_type_bool",
                  with("trainer:\n  deterministic: maybe\n"),
                  {},
                  {"trainer.deterministic", "expected true or false"}},
        Malformed{"unknown_top_level_key",
                  with("trainr:\n  steps: 3\n"),
                  {},
                  {"test.yaml:3:1", "unknown key 'trainr'", "did you mean 'trainer'?"}},
        Malformed{"unknown_nested_key",
                  with("algorithm:\n  eps_hgih: 0.28\n"),
                  {},
                  {"test.yaml:4:3", "unknown key 'algorithm.eps_hgih'",
                   "did you mean 'algorithm.eps_high'?"}},
        Malformed{"unknown_key_without_suggestion",
                  with("algorithm:\n  zzzzzz: 1\n"),
                  {},
                  {"unknown key 'algorithm.zzzzzz'"}},
        Malformed{"bad_enum",
                  with("algorithm:\n  kl_estimator: k4\n"),
                  {},
                  {"algorithm.kl_estimator", "'k4'", "expected one of: k1, k2, k3"}},
        Malformed{"bad_enum_with_suggestion",
                  with("algorithm:\n  advantage: grop\n"),
                  {},
                  {"algorithm.advantage", "did you mean 'grpo'?"}},
        Malformed{"out_of_range_probability",
                  with("rollout:\n  top_p: 1.5\n"),
                  {},
                  {"rollout.top_p", "'1.5'", "a number in [0.0, 1.0]"}},
        Malformed{
            "out_of_range_count", with("rollout:\n  n: 0\n"), {}, {"rollout.n", "a number >= 1.0"}},
        Malformed{"negative_temperature",
                  with("rollout:\n  temperature: -1\n"),
                  {},
                  {"rollout.temperature", "a number >= 0.0"}},
        Malformed{"integer_overflow",
                  with("rollout:\n  n: 99999999999\n"),
                  {},
                  {"rollout.n", "out of range"}},
        Malformed{"cross_field_dual_clip",
                  with("algorithm:\n  dual_clip: 0.5\n"),
                  {},
                  {"test.yaml:4:14", "algorithm.dual_clip", "greater than 1"}},
        Malformed{"missing_model_path",
                  "model:\n  dtype: bfloat16\n",
                  {},
                  {"model.path", "required when init is pretrained"}},
        Malformed{"heads_not_divisible",
                  "model:\n  init: random\n  architecture:\n    num_attention_heads: 4\n"
                  "    num_key_value_heads: 3\n",
                  {},
                  {"test.yaml:5:26", "model.architecture.num_key_value_heads"}},
        Malformed{"custom_template_without_prompt",
                  with("tokenizer:\n  template: custom\n  custom_template: 'Q: A:'\n"),
                  {},
                  {"tokenizer.custom_template", "{prompt}"}},
        Malformed{"bad_log_level",
                  with("logging:\n  level: loud\n"),
                  {},
                  {"logging.level", "one of: trace debug info warn error off"}},
        Malformed{
            "section_not_a_map", with("trainer: 5\n"), {}, {"trainer", "expected a map of keys"}},
        Malformed{"scalar_for_list",
                  with("data:\n  train_files: a.jsonl\n"),
                  {},
                  {"data.train_files", "expected a list"}},
        Malformed{"reward_name_missing",
                  with("reward:\n  functions:\n    - weight: 2\n"),
                  {},
                  {"reward.functions[0].name", "is required"}},
        Malformed{"reward_unknown_field",
                  with("reward:\n  functions:\n    - name: math_boxed\n      wieght: 2\n"),
                  {},
                  {"test.yaml:6:7", "unknown key 'reward.functions[0].wieght'",
                   "did you mean 'reward.functions[0].weight'?"}},
        Malformed{"yaml_syntax_error",
                  "model:\n  init: random\ntrainer: {lr: 1\n",
                  {},
                  {"test.yaml:", "YAML syntax error"}},
        Malformed{"duplicate_key",
                  "model:\n  init: random\n  init: pretrained\n",
                  {},
                  {"test.yaml:3:3", "duplicate key 'init'"}},
        Malformed{"override_bad_value",
                  kMinimal,
                  {"trainer.lr=-1"},
                  {"--set trainer.lr=-1", "trainer.lr", "a number > 0.0"}},
        Malformed{"override_unknown_key",
                  kMinimal,
                  {"trainer.lrr=1e-6"},
                  {"unknown key 'trainer.lrr'", "did you mean 'trainer.lr'?"}},
        Malformed{"override_without_equals",
                  kMinimal,
                  {"trainer.lr"},
                  {"--set expects key.path=value", "'trainer.lr'"}},
        Malformed{"override_into_scalar",
                  kMinimal,
                  {"model.init.x=1"},
                  {"'model.init.x=1'", "'x' is inside a value that is not a map"}},
        Malformed{"override_bad_index",
                  with("data:\n  train_files: [a]\n"),
                  {"data.train_files.3=b"},
                  {"'3' is not an index of a list of 1 items"}}),
    [](const ::testing::TestParamInfo<Malformed>& p) { return std::string(p.param.name); });

TEST(Config, ErrorKinds) {
  EXPECT_EQ(kind_of(with("rollout:\n  n: 0\n")), ErrorKind::config);
  EXPECT_EQ(kind_of(kMinimal, {"no_equals"}), ErrorKind::usage);
}

TEST(Config, DefaultsWhenSectionsAreAbsent) {
  Config c = parse_config(kMinimal, "t").config;
  EXPECT_EQ(c.rollout.n, 8);
  EXPECT_DOUBLE_EQ(c.algorithm.eps_low, 0.2);
  EXPECT_EQ(c.algorithm.kl_estimator, KlEstimator::k3);
  EXPECT_EQ(c.model.init, ModelInit::random);
  EXPECT_EQ(c.logging.reflection_words.front(), "wait");
}

TEST(Config, ReadsEveryKind) {
  Config c = parse_config(with("algorithm:\n  advantage: rloo\n  beta: 0\n"
                               "rollout:\n  n: 16\n  stop: ['</answer>', 'User:']\n"
                               "trainer:\n  lr: 3e-6\n  deterministic: true\n"
                               "reward:\n  functions:\n    - name: math_boxed\n      weight: 0.5\n"
                               "      options: {tolerance: 1e-6}\n"),
                          "t")
                 .config;
  EXPECT_EQ(c.algorithm.advantage, AdvantageEstimator::rloo);
  EXPECT_EQ(c.algorithm.beta, 0.0);
  EXPECT_EQ(c.rollout.n, 16);
  EXPECT_EQ(c.rollout.stop, (std::vector<std::string>{"</answer>", "User:"}));
  EXPECT_DOUBLE_EQ(c.trainer.lr, 3e-6);
  EXPECT_TRUE(c.trainer.deterministic);
  ASSERT_EQ(c.reward.functions.size(), 1u);
  EXPECT_EQ(c.reward.functions[0].name, "math_boxed");
  EXPECT_DOUBLE_EQ(c.reward.functions[0].weight, 0.5);
  ASSERT_NE(c.reward.functions[0].options.get("tolerance"), nullptr);
  EXPECT_EQ(c.reward.functions[0].options.get("tolerance")->scalar, "1e-6");
}

TEST(Config, OverridesApplyInOrderAndReachLists) {
  Config c = parse_config(with("data:\n  train_files: [a.jsonl, b.jsonl]\n"), "t",
                          {"trainer.lr=1e-5", "trainer.lr=2e-5", "data.train_files.1=c.jsonl",
                           "rollout.stop=[x, y]"})
                 .config;
  EXPECT_DOUBLE_EQ(c.trainer.lr, 2e-5);
  EXPECT_EQ(c.data.train_files, (std::vector<std::string>{"a.jsonl", "c.jsonl"}));
  EXPECT_EQ(c.rollout.stop, (std::vector<std::string>{"x", "y"}));
}

TEST(Config, ExtendsDeepMergesAndChildWins) {
  TempDir dir;
  dir.write(
      "base.yaml",
      "model:\n  init: random\n  architecture:\n    hidden_size: 32\n    "
      "num_attention_heads: 2\n    num_key_value_heads: 1\ntrainer:\n  lr: 1e-5\n  steps: 7\n");
  std::string child = dir.write("child.yaml", "extends: base.yaml\ntrainer:\n  lr: 2e-5\n");
  Config c = load_config(child).config;
  EXPECT_DOUBLE_EQ(c.trainer.lr, 2e-5);  // child wins
  EXPECT_EQ(c.trainer.steps, 7);         // base kept
  EXPECT_EQ(c.model.architecture.hidden_size, 32);
  EXPECT_EQ(c.model.architecture.num_hidden_layers, 2);  // default
}

TEST(Config, ExtendsErrorsPointAtTheRightFile) {
  TempDir dir;
  dir.write("base.yaml", "model:\n  init: random\nrollout:\n  n: -2\n");
  std::string child = dir.write("child.yaml", "extends: [base.yaml]\n");
  try {
    load_config(child);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base.yaml:4:6: rollout.n"), std::string::npos)
        << e.what();
  }
}

TEST(Config, BrokenExtendsAreErrors) {
  TempDir dir;
  auto message = [](const std::string& path) -> std::string {
    try {
      load_config(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string missing = dir.write("missing.yaml", "extends: nowhere.yaml\n");
  EXPECT_NE(message(missing).find("missing.yaml:1:10: extends: file"), std::string::npos)
      << message(missing);
  EXPECT_NE(message(missing).find("nowhere.yaml' does not exist"), std::string::npos);

  dir.write("a.yaml", "extends: b.yaml\n");
  std::string b = dir.write("b.yaml", "extends: a.yaml\n");
  EXPECT_NE(message(b).find("'extends' cycle"), std::string::npos) << message(b);

  std::string bad = dir.write("bad.yaml", "extends: {x: 1}\n");
  EXPECT_NE(message(bad).find("extends: expected a file path"), std::string::npos);

  EXPECT_NE(message((fs::temp_directory_path() / "grpo_no_such_config.yaml").string())
                .find("cannot read config file"),
            std::string::npos);
}

// config_changes lists each differing leaf with its path and both values: nested keys, list
// items of same-length lists, a list whose length changed as one change, and a key present on
// one side only (an optional section).
TEST(Config, ChangesNameEachDifferingKey) {
  const std::string rewards =
      "reward:\n  functions:\n    - name: math_boxed\n    - name: format\n      weight: 0.5\n";
  Config a = parse_config(with(rewards + "data:\n  train_files: [a.jsonl]\n"), "a").config;
  EXPECT_TRUE(config_changes(a, a).empty());
  Config b = a;
  b.trainer.lr = 2e-6;
  b.reward.functions[1].weight = 0.25;
  b.data.train_files.push_back("b.jsonl");
  const auto changes = config_changes(a, b);
  ASSERT_EQ(changes.size(), 3u);
  std::map<std::string, std::pair<std::string, std::string>> by_key;
  for (const auto& c : changes) by_key[c.key] = {c.before, c.after};
  EXPECT_EQ(by_key["trainer.lr"], std::make_pair(std::string("1e-06"), std::string("2e-06")));
  EXPECT_EQ(by_key["reward.functions[1].weight"],
            std::make_pair(std::string("0.5"), std::string("0.25")));
  EXPECT_EQ(by_key["data.train_files"],
            std::make_pair(std::string("[a.jsonl]"), std::string("[a.jsonl, b.jsonl]")));
  // The reverse direction swaps the values.
  for (const auto& c : config_changes(b, a)) EXPECT_EQ(by_key[c.key].first, c.after) << c.key;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config(with("trainer:\n  lr: 1e-6\nrollout:\n  stop: ['</answer>']\n"
                               "reward:\n  functions:\n    - name: math_boxed\n"
                               "      options: {mode: strict, extra: [1, 2]}\n"),
                          "t")
                 .config;
  std::string yaml = to_yaml(c);
  Config again = parse_config(yaml, "resolved").config;
  EXPECT_EQ(to_yaml(again), yaml);
  EXPECT_EQ(config_hash(again), config_hash(c));
  EXPECT_NE(yaml.find("lr: 1e-06"), std::string::npos) << yaml;
  again.trainer.lr = 2e-6;
  EXPECT_NE(config_hash(again), config_hash(c));
}

TEST(Config, FormatDoubleIsShortestRoundTrip) {
  EXPECT_EQ(format_double(0.1), "0.1");
  EXPECT_EQ(format_double(1e-6), "1e-06");
  EXPECT_EQ(format_double(3.0), "3.0");
  EXPECT_EQ(format_double(0.28), "0.28");
  EXPECT_EQ(format_double(600), "600.0");
  EXPECT_EQ(format_double(1e20), "1e+20");
}

TEST(Config, SuggestFindsCloseKeysOnly) {
  EXPECT_EQ(suggest("lrr", {"lr", "steps"}), "lr");
  EXPECT_EQ(suggest("temprature", {"temperature", "top_p"}), "temperature");
  EXPECT_EQ(suggest("qqqqqq", {"lr", "steps"}), "");
}

// docs/configuration.md documents every key (as `section.key` in a table row).
TEST(Config, EveryKeyIsDocumented) {
  std::ifstream in(std::string(GRPO_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md missing";
  std::stringstream text;
  text << in.rdbuf();
  std::string docs = text.str();
  for (const auto& key : list_keys<Config>()) {
    EXPECT_NE(docs.find("`" + key + "`"), std::string::npos)
        << "key not documented in docs/configuration.md: " << key;
  }
}

}  // namespace
}  // namespace grpo::config
