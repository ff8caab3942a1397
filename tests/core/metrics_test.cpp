// StepMetrics, metrics.jsonl / samples.jsonl (incl. resume truncation) and the progress line.
#include "grpo/core/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "grpo/core/error.h"

namespace fs = std::filesystem;
using grpo::metrics::StepMetrics;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_metrics_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

StepMetrics step_metrics(int64_t step) {
  StepMetrics m(step);
  m.set("reward/mean", 0.5 * static_cast<double>(step));
  m.set("loss", -1.25);
  return m;
}

}  // namespace

TEST(StepMetrics, KeepsFirstSetOrderAndOverwrites) {
  StepMetrics m(7);
  m.set("b", 1);
  m.set("a", 2);
  m.set("b", 3);
  m.add("time/generate", 0.5);
  m.add("time/generate", 0.25);
  ASSERT_EQ(m.values().size(), 3u);
  EXPECT_EQ(m.values()[0].first, "b");
  EXPECT_EQ(m.values()[0].second, 3);
  EXPECT_EQ(m.values()[1].first, "a");
  EXPECT_EQ(*m.get("time/generate"), 0.75);
  EXPECT_FALSE(m.get("missing").has_value());
  EXPECT_EQ(m.step(), 7);
}

TEST(StepMetrics, PhaseTimerAddsNonNegativeSeconds) {
  StepMetrics m(1);
  { grpo::metrics::PhaseTimer t(m, "reward"); }
  ASSERT_TRUE(m.get("time/reward").has_value());
  EXPECT_GE(*m.get("time/reward"), 0.0);
}

TEST(MetricsJsonl, OneOrderedObjectPerStepAndNullForNonFinite) {
  const fs::path path = fresh_dir("jsonl") / "metrics.jsonl";
  {
    grpo::metrics::MetricsJsonlWriter w(path.string(), std::nullopt);
    StepMetrics m = step_metrics(1);
    m.set("kl/mean", std::numeric_limits<double>::quiet_NaN());
    w.write(m);
    w.write(step_metrics(2));
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"step":1,"reward/mean":0.5,"loss":-1.25,"kl/mean":null})");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["reward/mean"].get<double>(), 1.0);
}

TEST(MetricsJsonl, ResumeDropsLaterStepsAndTornLine) {
  const fs::path path = fresh_dir("resume") / "metrics.jsonl";
  {
    grpo::metrics::MetricsJsonlWriter w(path.string(), std::nullopt);
    for (int s = 1; s <= 5; ++s) w.write(step_metrics(s));
  }
  {  // the crashed process was killed in the middle of step 6's line
    std::ofstream out(path, std::ios::app);
    out << R"({"step":6,"rew)";
  }
  {
    grpo::metrics::MetricsJsonlWriter w(path.string(), int64_t{3});
    w.write(step_metrics(4));
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(nlohmann::json::parse(lines[i])["step"].get<int>(), i + 1);
  }
}

TEST(MetricsJsonl, FreshRunStartsEmptyAndResumeWithoutFileCreatesIt) {
  const fs::path dir = fresh_dir("fresh");
  {
    grpo::metrics::MetricsJsonlWriter w((dir / "m.jsonl").string(), std::nullopt);
    w.write(step_metrics(9));
  }
  { grpo::metrics::MetricsJsonlWriter w((dir / "m.jsonl").string(), std::nullopt); }
  EXPECT_TRUE(lines_of(dir / "m.jsonl").empty());
  {
    grpo::metrics::MetricsJsonlWriter w((dir / "sub" / "n.jsonl").string(), int64_t{10});
    w.write(step_metrics(11));
  }
  EXPECT_EQ(lines_of(dir / "sub" / "n.jsonl").size(), 1u);
}

TEST(MetricsJsonl, ResumeIntoForeignFileNamesTheLine) {
  const fs::path path = fresh_dir("foreign") / "metrics.jsonl";
  {
    std::ofstream out(path);
    out << R"({"step":1})"
        << "\n"
        << "not json\n";
  }
  try {
    grpo::metrics::MetricsJsonlWriter w(path.string(), int64_t{1});
    FAIL() << "expected an error";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(SamplesJsonl, WritesEveryField) {
  const fs::path path = fresh_dir("samples") / "samples.jsonl";
  grpo::metrics::SampleRecord s;
  s.step = 3;
  s.prompt_index = 1;
  s.sample_index = 2;
  s.prompt = "What is 2+2?";
  s.completion = "<think>wait</think><answer>4</answer>\n\"q\"";
  s.reward = 1.5;
  s.reward_parts = {{"math", 1.0}, {"format", 0.5}};
  s.advantage = 0.75;
  s.completion_tokens = 12;
  s.finish_reason = "stop";
  {
    grpo::metrics::SamplesJsonlWriter w(path.string(), std::nullopt);
    w.write({s, s});
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  const auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["step"], 3);
  EXPECT_EQ(j["prompt_index"], 1);
  EXPECT_EQ(j["sample_index"], 2);
  EXPECT_EQ(j["prompt"], s.prompt);
  EXPECT_EQ(j["completion"], s.completion);
  EXPECT_EQ(j["reward"], 1.5);
  EXPECT_EQ(j["reward_parts"]["format"], 0.5);
  EXPECT_EQ(j["advantage"], 0.75);
  EXPECT_EQ(j["completion_tokens"], 12);
  EXPECT_EQ(j["finish_reason"], "stop");
}

// The Text tab's markdown: a heading per completion, the figures, the prompt once per prompt
// index and every text as an indented code block (a '#' or '*' in it stays literal).
TEST(SamplesMarkdown, HeadingFiguresAndIndentedTexts) {
  grpo::metrics::SampleRecord a;
  a.step = 3;
  a.prompt = "What is 2 + 3?";
  a.completion = "# 5\n*done*";
  a.reward = 1.1;
  a.reward_parts = {{"math_boxed", 1.0}, {"format", 0.1}};
  a.advantage = 0.8660254;
  a.completion_tokens = 7;
  a.finish_reason = "stop";
  grpo::metrics::SampleRecord b = a;
  b.sample_index = 1;
  b.completion = "6";
  b.reward = 0;
  b.reward_parts = {};
  b.advantage = -0.8660254;
  b.finish_reason = "length";
  EXPECT_EQ(grpo::metrics::samples_markdown({a, b}),
            "### prompt 0, sample 0\n\nreward 1.1 (math_boxed 1, format 0.1), advantage 0.866, "
            "7 tokens, stop\n\nprompt:\n\n    What is 2 + 3?\n\ncompletion:\n\n    # 5\n    "
            "*done*\n\n### prompt 0, sample 1\n\nreward 0, advantage -0.866, 7 tokens, "
            "length\n\ncompletion:\n\n    6\n\n");
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(grpo::metrics::format_duration(7.4), "7s");
  EXPECT_EQ(grpo::metrics::format_duration(245), "4m05s");
  EXPECT_EQ(grpo::metrics::format_duration(3723), "1h02m03s");
  EXPECT_EQ(grpo::metrics::format_duration(-1), "?");
}

TEST(Progress, LineHasBarMetricsPaceAndEta) {
  StepMetrics m(25);
  m.set("reward/mean", 0.412);
  // 5 steps in 10 s since this process started: 2 s/step, 75 steps left -> 150 s.
  const std::string line =
      grpo::metrics::progress_line(m, 100, 5, 10.0, {"reward/mean", "kl/mean"});
  EXPECT_EQ(line,
            "step 25/100 [#####...............] 25% | reward/mean 0.412 | 2.00 s/step | ETA 2m30s");
}

TEST(Progress, AlwaysModePrintsOneLinePerStepNeverModeNothing) {
  std::ostringstream always_out, never_out;
  {
    grpo::metrics::ConsoleProgress p(10, grpo::metrics::ProgressMode::always, always_out);
    grpo::metrics::ConsoleProgress q(10, grpo::metrics::ProgressMode::never, never_out);
    for (int s = 1; s <= 3; ++s) {
      p.update(step_metrics(s));
      q.update(step_metrics(s));
    }
  }
  std::istringstream in(always_out.str());
  int n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    EXPECT_EQ(line.rfind("step " + std::to_string(n + 1) + "/10 [", 0), 0u) << line;
  }
  EXPECT_EQ(n, 3);
  EXPECT_TRUE(never_out.str().empty());
}
