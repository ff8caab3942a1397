// Advantages and policy losses against tests/fixtures/algo/algo_fixtures.json, written by
// scripts/make_algo_fixtures.py from TRL's own GRPOTrainer loss and verl's published formulas:
// loss values, gradients with respect to the log-probs, and metrics, to 1e-6.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grpo/algo/advantages.h"
#include "grpo/algo/policy_loss.h"

namespace algo = grpo::algo;
namespace config = grpo::config;
using nlohmann::json;

namespace {

constexpr double kTol = 1e-6;

const json& fixtures() {
  static const json j = [] {
    const std::string path =
        std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/algo/algo_fixtures.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return j;
}

template <class E>
E parse_enum(const std::string& name) {
  for (const auto& [value, text] : config::enum_names(E{})) {
    if (text == name) return value;
  }
  throw std::runtime_error("unknown enum name " + name);
}

at::Tensor tensor(const json& j) {
  if (j.at(0).is_array()) {
    std::vector<double> flat;
    for (const auto& row : j) {
      for (const auto& v : row) flat.push_back(v.get<double>());
    }
    return at::tensor(flat, at::kDouble).reshape({static_cast<int64_t>(j.size()), -1});
  }
  return at::tensor(j.get<std::vector<double>>(), at::kDouble);
}

// Largest deviation seen, printed by each test so the agreement is a reported figure.
double g_max_deviation = 0;

void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double dev = (got.to(at::kDouble) - want).abs().max().item<double>();
  g_max_deviation = std::max(g_max_deviation, dev);
  EXPECT_LT(dev, kTol) << what;
}

void expect_near(double got, double want, const std::string& what) {
  g_max_deviation = std::max(g_max_deviation, std::abs(got - want));
  EXPECT_NEAR(got, want, kTol) << what;
}

}  // namespace

TEST(Fixtures, AdvantagesMatchTrlAndVerl) {
  g_max_deviation = 0;
  const json& cases = fixtures().at("advantages");
  ASSERT_GE(cases.size(), 6u);
  for (const json& c : cases) {
    config::AlgorithmConfig cfg;
    cfg.advantage = parse_enum<config::AdvantageEstimator>(c.at("estimator"));
    cfg.std_scaling = parse_enum<config::StdScaling>(c.at("std_scaling"));
    algo::AdvantageInputs in;
    in.rewards = tensor(c.at("rewards")).to(at::kFloat);
    in.group_size = c.at("group_size").get<int64_t>();
    if (c.contains("response_lengths")) {
      in.response_lengths = at::tensor(c.at("response_lengths").get<std::vector<int64_t>>());
    }
    const auto out = algo::compute_advantages(in, cfg);
    expect_close(out.advantages, tensor(c.at("expected")),
                 c.at("name").get<std::string>() + " (" + c.at("source").get<std::string>() + ")");
    EXPECT_DOUBLE_EQ(out.zero_variance_fraction, 0.5) << c.at("name");  // groups 2 and 4 flat
  }
  std::cout << "advantages: largest deviation from TRL/verl " << g_max_deviation << "\n";
}

TEST(Fixtures, PolicyLossesMatchTrlAndVerl) {
  g_max_deviation = 0;
  const json& cases = fixtures().at("losses");
  ASSERT_GE(cases.size(), 20u);
  for (const json& c : cases) {
    const std::string what =
        c.at("name").get<std::string>() + " (" + c.at("source").get<std::string>() + ")";
    const json& k = c.at("config");
    config::AlgorithmConfig cfg;
    cfg.loss_aggregation = parse_enum<config::LossAggregation>(k.at("loss_aggregation"));
    cfg.ratio_level = parse_enum<config::RatioLevel>(k.at("ratio_level"));
    cfg.kl_estimator = parse_enum<config::KlEstimator>(k.at("kl_estimator"));
    cfg.beta = k.at("beta");
    cfg.eps_low = k.at("eps_low");
    cfg.eps_high = k.at("eps_high");
    cfg.dual_clip = k.at("dual_clip");
    cfg.entropy_coef = k.at("entropy_coef");

    algo::PolicyLossInputs in;
    in.logprobs = tensor(c.at("logprobs")).set_requires_grad(true);
    in.old_logprobs = tensor(c.at("old_logprobs"));
    in.ref_logprobs = tensor(c.at("ref_logprobs"));
    in.advantages = tensor(c.at("advantages"));
    in.mask = tensor(c.at("mask"));
    in.entropy = tensor(c.at("entropy"));
    const algo::LossNormalizers norm{in.mask.sum().item<double>(),
                                     static_cast<double>(in.mask.size(0)),
                                     c.at("max_response_length").get<double>()};
    const auto out = algo::policy_loss(in, norm, cfg);
    out.loss.backward();

    const json& e = c.at("expected");
    expect_near(out.loss.item<double>(), e.at("loss").get<double>(), what);
    expect_close(in.logprobs.grad(), tensor(e.at("grad")), what + " gradient");
    const auto m = algo::summarize(out.stats);
    const auto metric = [&](const char* key, double got) {
      if (e.contains(key)) {
        expect_near(got, e.at(key).get<double>(), what + " " + key);
      }
    };
    metric("kl_mean", m.kl_mean);
    metric("entropy_mean", m.entropy_mean);
    metric("ratio_mean", m.ratio_mean);
    metric("clip_frac_low", m.clip_frac_low);
    metric("clip_frac_high", m.clip_frac_high);
    metric("clip_frac_dual", m.clip_frac_dual);
  }
  std::cout << "policy losses: largest deviation from TRL/verl " << g_max_deviation << "\n";
}
