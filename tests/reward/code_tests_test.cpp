// code_tests: extraction, output comparison, verdicts in stdin/stdout and function-call mode,
// partial credit, the batch pool (with a printed programs/second figure), malformed tests.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"
#include "grpo/reward/code_tests.h"
#include "grpo/reward/pipeline.h"

namespace grpo::reward {
namespace {

std::string fenced(const std::string& code) { return "Reasoning...\n```python\n" + code + "```\n"; }

CodeTestsOptions fast_options() {
  CodeTestsOptions o;
  o.sandbox.timeout_s = 3.0;
  o.sandbox.memory_mb = 256;
  o.concurrency = 2;
  return o;
}

const CodeTests& runner() {
  static CodeTests r(fast_options());
  return r;
}

Sample stdin_sample(const std::string& code, nlohmann::json tests) {
  Sample s;
  s.completion = fenced(code);
  s.tests = std::move(tests);
  return s;
}

Sample function_sample(const std::string& code, const std::string& check,
                       const std::string& entry = "f", const std::string& prefix = "") {
  Sample s;
  s.completion = fenced(code);
  s.tests = {{"prefix", prefix}, {"check", check}, {"entry_point", entry}};
  return s;
}

const nlohmann::json kSumTests = nlohmann::json::parse(
    R"([{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12"},
        {"input": "-1 1\n", "output": "0\n"}])");

TEST(CodeTestsOptions, BindFromYamlWithFlatSandboxKeys) {
  config::Node node = config::parse_yaml(
      "timeout_s: 2.5\nmemory_mb: 300\nisolation: none\nfloat_tolerance: 1e-6\n"
      "concurrency: 3\nro_binds: [/opt/venv]\n",
      "opts.yaml");
  CodeTestsOptions o;
  config::bind(node, o, "reward.functions[0].options");
  EXPECT_DOUBLE_EQ(o.sandbox.timeout_s, 2.5);
  EXPECT_EQ(o.sandbox.memory_mb, 300);
  EXPECT_EQ(o.sandbox.isolation, Isolation::none);
  EXPECT_DOUBLE_EQ(o.float_tolerance, 1e-6);
  EXPECT_EQ(o.concurrency, 3);
  EXPECT_EQ(o.sandbox.ro_binds, std::vector<std::string>{"/opt/venv"});
  CodeTestsOptions bad;
  EXPECT_THROW(config::bind(config::parse_yaml("isolation: docker\n", "x.yaml"), bad, "o"), Error);
  EXPECT_THROW(config::bind(config::parse_yaml("memory_mb: 8\n", "x.yaml"), bad, "o"), Error);
  EXPECT_THROW(config::bind(config::parse_yaml("timeout: 8\n", "x.yaml"), bad, "o"), Error);
}

TEST(CodeTestsOptions, RegisteredInThePipelineByName) {
  auto fn = make_reward("code_tests", config::parse_yaml("timeout_s: 3\n", "opts.yaml"),
                        "reward.functions[0].options");
  ASSERT_EQ(fn->name(), "code_tests");
  Sample s = stdin_sample("print(int(input()) * 2)\n", R"([{"input": "21", "output": "42"}])"_json);
  RewardResult r = fn->score_batch({s}).at(0);
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
  EXPECT_THROW(make_reward("code_tests", config::parse_yaml("timeout_s: -1\n", "o.yaml"), "o"),
               Error);
}

TEST(CodeExtraction, TakesTheLastPythonBlock) {
  std::string text = "```python\nfirst\n```\ntext\n```py\nsecond\n```\n```text\nnot code\n```\n";
  EXPECT_EQ(extract_code_block(text, "python").value(), "second\n");
}

TEST(CodeExtraction, FallsBackToUntaggedAndUnclosedBlocks) {
  EXPECT_EQ(extract_code_block("```\nplain\n```", "python").value(), "plain\n");
  EXPECT_EQ(extract_code_block("```python\ncut off\nmid", "python").value(), "cut off\nmid\n");
  EXPECT_FALSE(extract_code_block("no code here", "python").has_value());
  EXPECT_FALSE(extract_code_block("```cpp\nint x;\n```", "python").has_value());
}

TEST(OutputCompare, WhitespaceTokensAndLineCount) {
  EXPECT_TRUE(outputs_match("1  2\n3\n", "1 2\n3", 0.0));
  EXPECT_TRUE(outputs_match("1 2\n\n3\n\n", "1 2\n3\n", 0.0));  // blank lines do not count
  EXPECT_FALSE(outputs_match("1 2 3\n", "1 2\n3\n", 0.0));      // same tokens, other lines
  EXPECT_FALSE(outputs_match("1 2\n", "1 2\n3\n", 0.0));
  EXPECT_FALSE(outputs_match("1.0\n", "1\n", 0.0));
}

TEST(OutputCompare, FloatTolerance) {
  EXPECT_TRUE(outputs_match("0.3333333\n", "0.333333333", 1e-6));
  EXPECT_FALSE(outputs_match("0.3334\n", "0.333333333", 1e-6));
  // Relative for large values: 1e9 * 1e-6 = 1000.
  EXPECT_TRUE(outputs_match("1000000500\n", "1e9", 1e-6));
  EXPECT_FALSE(outputs_match("abc\n", "abd", 1.0));
}

TEST(CodeTestsStdin, AcceptsACorrectProgram) {
  RewardResult r =
      runner().score(stdin_sample("a, b = map(int, input().split())\nprint(a + b)\n", kSumTests));
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
  EXPECT_EQ(r.details["tests_passed"], 3);
  EXPECT_EQ(r.details["tests_total"], 3);
  EXPECT_EQ(r.details["failed_test"], -1);
  EXPECT_EQ(r.score, 1.0);
}

TEST(CodeTestsStdin, WrongAnswerNamesTheFirstFailingCase) {
  RewardResult r = runner().score(
      stdin_sample("a, b = map(int, input().split())\nprint(a + b if a > 0 else 99)\n", kSumTests));
  EXPECT_EQ(r.details["verdict"], "WA");
  EXPECT_EQ(r.details["failed_test"], 2);
  EXPECT_EQ(r.details["tests_passed"], 2);
  EXPECT_EQ(r.score, 0.0);
}

TEST(CodeTestsStdin, CompileErrorRuntimeErrorAndMissingCode) {
  EXPECT_EQ(runner().score(stdin_sample("def broken(:\n", kSumTests)).details["verdict"], "CE");
  EXPECT_EQ(runner().score(stdin_sample("raise ValueError('x')\n", kSumTests)).details["verdict"],
            "RE");
  Sample none;
  none.completion = "I will not write code.";
  none.tests = kSumTests;
  EXPECT_EQ(runner().score(none).details["verdict"], "CE");
}

TEST(CodeTestsFunction, NonUtf8MessagesStayValidJson) {
  // A lone surrogate and 500 non-ASCII characters in the exception message of the candidate.
  RewardResult r = runner().score(
      function_sample("def f(a, b):\n    raise ValueError('\\ud800' + '\\xff' * 500)\n",
                      "def check(candidate):\n    assert candidate(1, 2) == 3\n"));
  EXPECT_EQ(r.details["verdict"], "RE");
  EXPECT_NO_THROW(r.details.dump());
  // The harness itself reported it (not "no verdict").
  EXPECT_NE(r.details["message"].get<std::string>().find("ValueError"), std::string::npos)
      << r.details.dump();
}

TEST(CodeTestsStdin, PartialCreditRunsEveryCase) {
  CodeTestsOptions o = fast_options();
  o.partial_credit = true;
  CodeTests partial(o);
  RewardResult r = partial.score(
      stdin_sample("a, b = map(int, input().split())\nprint(a + b if a != 5 else 0)\n", kSumTests));
  EXPECT_EQ(r.details["verdict"], "WA");
  EXPECT_EQ(r.details["failed_test"], 1);
  EXPECT_EQ(r.details["tests_passed"], 2);
  EXPECT_DOUBLE_EQ(r.score, 2.0 / 3.0);
}

TEST(CodeTestsStdin, AcceptsAppsStyleAndStringEncodedTests) {
  nlohmann::json apps = {{"inputs", {"2\n", "3\n"}}, {"outputs", {"4\n", "9\n"}}};
  EXPECT_EQ(
      runner().score(stdin_sample("n = int(input())\nprint(n * n)\n", apps)).details["verdict"],
      "AC");
  EXPECT_EQ(
      runner()
          .score(stdin_sample("n = int(input())\nprint(n * n)\n", nlohmann::json(apps.dump())))
          .details["verdict"],
      "AC");
}

TEST(CodeTestsStdin, MalformedTestsAreAnError) {
  EXPECT_THROW(runner().score(stdin_sample("print(1)\n", nlohmann::json::parse(R"({"x": 1})"))),
               Error);
  EXPECT_THROW(runner().score(stdin_sample("print(1)\n", nlohmann::json::array())), Error);
}

const char* kAddCheck =
    "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    "    assert candidate(-5, 5) == 0\n";

TEST(CodeTestsFunction, AcceptsACorrectFunction) {
  RewardResult r = runner().score(function_sample("def f(a, b):\n    return a + b\n", kAddCheck));
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
  EXPECT_EQ(r.score, 1.0);
}

TEST(CodeTestsFunction, HumanEvalStyleBodyAfterPrefix) {
  RewardResult r = runner().score(function_sample("    return a + b\n", kAddCheck, "f",
                                                  "def f(a, b):\n    \"\"\"Add.\"\"\"\n"));
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
}

TEST(CodeTestsFunction, VerdictsForWrongCrashingAndMissing) {
  RewardResult wa = runner().score(function_sample("def f(a, b):\n    return a - b\n", kAddCheck));
  EXPECT_EQ(wa.details["verdict"], "WA");
  EXPECT_NE(wa.details["message"].get<std::string>().find("check.py:2"), std::string::npos)
      << wa.details.dump();
  EXPECT_EQ(runner()
                .score(function_sample("def f(a, b):\n    return a / 0\n", kAddCheck))
                .details["verdict"],
            "RE");
  EXPECT_EQ(runner()
                .score(function_sample("def g(a, b):\n    return a + b\n", kAddCheck))
                .details["verdict"],
            "RE");
  EXPECT_EQ(runner()
                .score(function_sample("def f(a, b)\n    return a + b\n", kAddCheck))
                .details["verdict"],
            "CE");
}

TEST(CodeTestsFunction, ValuesKeepTheirTypesAcrossTheProcessBoundary) {
  const char* check =
      "import math\n"
      "def check(candidate):\n"
      "    r = candidate([1, 2], (3, 4), {5: 'x'}, {6}, 2.5, None, True, 10**40, b'\\x00')\n"
      "    assert r == ([1, 2], (3, 4), {5: 'x'}, {6}, 2.5, None, True, 10**40, b'\\x00'), r\n"
      "    assert type(r[1]) is tuple and type(r[6]) is bool\n"
      "    assert math.isinf(candidate(float('inf')))\n";
  RewardResult r =
      runner().score(function_sample("def f(*a):\n    return a if len(a) > 1 else "
                                     "a[0]\n",
                                     check));
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
}

TEST(CodeTestsFunction, CheckMayCallHelpersFromThePrefix) {
  const char* prefix = "def helper(x):\n    return 2 * x\n\ndef f(x):\n";
  const char* check = "def check(candidate):\n    assert candidate(3) == helper(3) + 1\n";
  RewardResult r = runner().score(function_sample("    return 2 * x + 1\n", check, "f", prefix));
  EXPECT_EQ(r.details["verdict"], "AC") << r.details.dump();
}

TEST(CodeTestsPool, BatchMatchesSingleScoresAndReportsThroughput) {
  std::vector<Sample> batch;
  for (int i = 0; i < 60; ++i) {
    batch.push_back(i % 2 ? stdin_sample("print(3)\n", R"([{"input": "", "output": "3"}])"_json)
                          : stdin_sample("print(4)\n", R"([{"input": "", "output": "3"}])"_json));
  }
  CodeTestsOptions o = fast_options();
  for (int64_t concurrency : {int64_t{1}, int64_t{0}}) {
    o.concurrency = concurrency;
    CodeTests pool(o);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<RewardResult> out = pool.score_batch(batch);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(out.size(), batch.size());
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(out[i].details["verdict"], i % 2 ? "AC" : "WA") << i;
    }
    std::printf("[code_tests] %zu trivial programs in %.2f s: %.1f programs/s (concurrency %d)\n",
                batch.size(), s, batch.size() / s, pool.concurrency());
  }
}

}  // namespace
}  // namespace grpo::reward
