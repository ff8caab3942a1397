// ShardedAdamW (distributed.shard_optimizer) against whole-tensor AdamW (make_adamw, itself
// checked against the published formula in optimizer_test.cpp): in one process, and over 2 and
// 3 Gloo ranks (sharded_adamw_worker processes) with buckets small enough to split every
// collective; the checkpoint file it writes is the one whole AdamW writes, and either loads the
// other's, across world sizes.
#include "grpo/train/sharded_adamw.h"

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/gloo.h"
#include "../support/spawn.h"
#include "grpo/core/error.h"
#include "grpo/torch_compat.h"
#include "sharded_adamw_model.h"

namespace fs = std::filesystem;
using grpo::train::NamedParameters;
using grpo::train::ShardedAdamW;
using nlohmann::json;

namespace {

// Every parameter's AdamW moments and step from a state file (loaded into whole AdamW).
struct Moments {
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
  std::vector<int64_t> step;
};

Moments read_state(const std::string& path) {
  auto params = grpo::testing::sharded_adamw_params();
  auto adamw = grpo::train::make_adamw(params, grpo::testing::sharded_adamw_config());
  grpo::train::load_optimizer(*adamw, path);
  Moments m;
  auto& states = adamw->state();
  using Map = std::remove_reference_t<decltype(states)>;
  for (const auto& item : params) {
    auto it = states.find(grpo::compat::optimizer_state_key<Map>(item.second));
    EXPECT_TRUE(it != states.end()) << item.first;
    if (it == states.end()) continue;
    const auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    m.exp_avg.push_back(s.exp_avg());
    m.exp_avg_sq.push_back(s.exp_avg_sq());
    m.step.push_back(s.step());
  }
  return m;
}

void expect_same_state(const std::string& a, const std::string& b) {
  const auto x = read_state(a), y = read_state(b);
  ASSERT_EQ(x.exp_avg.size(), y.exp_avg.size());
  for (size_t i = 0; i < x.exp_avg.size(); ++i) {
    EXPECT_TRUE(at::equal(x.exp_avg[i], y.exp_avg[i])) << i;
    EXPECT_TRUE(at::equal(x.exp_avg_sq[i], y.exp_avg_sq[i])) << i;
    EXPECT_EQ(x.step[i], y.step[i]);
  }
}

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("grpo_sharded_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Runs `world` worker ranks; returns their rank<R>.json (null where missing).
std::vector<json> run_ranks(int world, const fs::path& dir, size_t bucket_bytes,
                            const std::string& load = "") {
  const int port = grpo::testing::free_port();
  std::vector<grpo::testing::Child> children;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> argv{GRPO_SHARDED_WORKER_PATH, dir.string(), "20",
                                  std::to_string(bucket_bytes)};
    if (!load.empty()) argv.push_back(load);
    children.push_back(
        grpo::testing::spawn(argv, grpo::testing::rank_env(r, world, port),
                             (dir / ("rank" + std::to_string(r) + ".log")).string()));
  }
  std::vector<json> out;
  for (int r = 0; r < world; ++r) {
    auto& child = children[static_cast<size_t>(r)];
    grpo::testing::wait_child(child, 60);
    std::ifstream in(dir / ("rank" + std::to_string(r) + ".json"));
    out.push_back(in ? json::parse(in) : json());
    if (child.exit_code != 0) std::cerr << "rank " << r << " log:\n" << child.log();
  }
  return out;
}

}  // namespace

// One process owns every element: each step is whole AdamW's, to the bit.
TEST(ShardedAdamW, OneProcessStepsAsWholeAdamW) {
  const auto config = grpo::testing::sharded_adamw_config();
  auto params = grpo::testing::sharded_adamw_params();
  auto copy = grpo::testing::clone_params(params);
  ShardedAdamW sharded(params, config, nullptr, 1 << 20);
  auto whole = grpo::train::make_adamw(copy, config);
  EXPECT_EQ(sharded.layout().groups, 2);
  EXPECT_EQ(sharded.layout().group_elements, 73);
  EXPECT_EQ(sharded.state_bytes(), 73 * 2 * 4);
  const auto start = grpo::testing::clone_params(params);
  for (int t = 0; t < 5; ++t) {
    sharded.zero_grad();
    for (const auto& item : params) {
      EXPECT_TRUE(!item.second.grad().defined() || item.second.grad().eq(0).all().item<bool>());
    }
    grpo::testing::step_both(sharded, params, *whole, copy, t);
    EXPECT_EQ(grpo::testing::max_param_diff(params, copy), 0.0) << "step " << t;
  }
  EXPECT_GT(grpo::testing::max_param_diff(params, start), 1e-3);
}

// The file it saves is whole AdamW's file; it resumes from whole AdamW's file and keeps stepping
// as whole AdamW does; a state saved before any step is empty and loads as such.
TEST(ShardedAdamW, SavesAndLoadsWholeAdamWFiles) {
  const auto dir = temp_dir("files");
  const auto config = grpo::testing::sharded_adamw_config();
  auto params = grpo::testing::sharded_adamw_params();
  auto copy = grpo::testing::clone_params(params);
  ShardedAdamW sharded(params, config, nullptr, 64);
  auto whole = grpo::train::make_adamw(copy, config);

  sharded.gather_for_save();
  sharded.save((dir / "empty.pt").string());
  for (int t = 0; t < 3; ++t) {
    grpo::testing::step_both(sharded, params, *whole, copy, t);
  }
  sharded.gather_for_save();
  sharded.save((dir / "sharded.pt").string());
  grpo::train::save_optimizer(*whole, (dir / "whole.pt").string());
  expect_same_state((dir / "sharded.pt").string(), (dir / "whole.pt").string());

  // A fresh sharded optimizer resumed from whole AdamW's file continues exactly as whole AdamW.
  auto resumed_params = grpo::testing::clone_params(params);
  ShardedAdamW resumed(resumed_params, config, nullptr, 64);
  resumed.load((dir / "whole.pt").string());
  for (int t = 3; t < 5; ++t) {
    grpo::testing::step_both(resumed, resumed_params, *whole, copy, t);
  }
  EXPECT_EQ(grpo::testing::max_param_diff(resumed_params, copy), 0.0);

  // The empty state loads into whole AdamW, and back into a sharded one (which then steps as a
  // fresh one).
  auto fresh_copy = grpo::testing::sharded_adamw_params();
  auto fresh_whole = grpo::train::make_adamw(fresh_copy, config);
  grpo::train::load_optimizer(*fresh_whole, (dir / "empty.pt").string());
  EXPECT_TRUE(fresh_whole->state().empty());
  auto fresh = grpo::testing::sharded_adamw_params();
  ShardedAdamW from_empty(fresh, config, nullptr, 64);
  from_empty.load((dir / "sharded.pt").string());
  from_empty.load((dir / "empty.pt").string());
  grpo::testing::step_both(from_empty, fresh, *fresh_whole, fresh_copy, 0);
  EXPECT_EQ(grpo::testing::max_param_diff(fresh, fresh_copy), 0.0);
  fs::remove_all(dir);
}

// A state file of another model is one error naming the parameter, the file and both shapes.
TEST(ShardedAdamW, StateOfAnotherModelIsAnError) {
  const auto dir = temp_dir("mismatch");
  const auto config = grpo::testing::sharded_adamw_config();
  auto params = grpo::testing::sharded_adamw_params();
  ShardedAdamW sharded(params, config, nullptr, 64);
  grpo::testing::set_sharded_adamw_grads(params, 0);
  sharded.step();
  sharded.gather_for_save();
  sharded.save((dir / "state.pt").string());

  auto other = grpo::testing::sharded_adamw_params();
  other[2].second = at::zeros({5, 7}, at::kFloat).requires_grad_(true);  // transposed shape
  ShardedAdamW wrong(other, config, nullptr, 64);
  try {
    wrong.load((dir / "state.pt").string());
    FAIL() << "expected an error";
  } catch (const grpo::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("state.pt"), std::string::npos) << what;
    EXPECT_NE(what.find("[7, 5]"), std::string::npos) << what;
    EXPECT_NE(what.find("[5, 7]"), std::string::npos) << what;
  }
  EXPECT_THROW(wrong.load((dir / "missing.pt").string()), grpo::Error);
  fs::remove_all(dir);
}

// 3 ranks with 32-byte buckets (every all-gather split into pieces) step as whole AdamW does,
// each holding a third of the moments; rank 0's file is whole AdamW's. 2 ranks then resume from
// that file (another world size) and still step as whole AdamW resumed from it.
TEST(ShardedAdamW, RanksStepAsWholeAdamWAndResumeAcrossWorldSizes) {
  GRPO_REQUIRE_GLOO();
  const auto three = temp_dir("three");
  const auto out3 = run_ranks(3, three, 32);
  for (int r = 0; r < 3; ++r) {
    const auto& o = out3[static_cast<size_t>(r)];
    ASSERT_FALSE(o.is_null()) << "rank " << r;
    EXPECT_EQ(o["group_elements"], 73);
    // ceil(61 / 3) = 21 decaying elements per rank (the last one holds 19) and 12 / 3 = 4 others.
    const int owned = (r < 2 ? 21 : 19) + 4;
    EXPECT_EQ(o["owned_elements"], owned);
    EXPECT_EQ(o["state_bytes"], owned * 2 * 4);
    ASSERT_EQ(o["max_diff"].size(), 4u);
    for (const auto& d : o["max_diff"]) EXPECT_EQ(d.get<double>(), 0.0) << "rank " << r;
  }
  expect_same_state((three / "sharded.pt").string(), (three / "whole.pt").string());

  const auto two = temp_dir("two");
  const auto out2 = run_ranks(2, two, 1 << 20, (three / "sharded.pt").string());
  for (int r = 0; r < 2; ++r) {
    const auto& o = out2[static_cast<size_t>(r)];
    ASSERT_FALSE(o.is_null()) << "rank " << r;
    EXPECT_EQ(o["owned_elements"], (r == 0 ? 31 : 30) + 6);
    for (const auto& d : o["max_diff"]) EXPECT_EQ(d.get<double>(), 0.0) << "rank " << r;
  }
  expect_same_state((two / "sharded.pt").string(), (two / "whole.pt").string());
  fs::remove_all(three);
  fs::remove_all(two);
}

// A file rank 0 cannot read stops every rank at once with an error, not at the timeout.
TEST(ShardedAdamW, UnreadableStateStopsEveryRank) {
  GRPO_REQUIRE_GLOO();
  const auto dir = temp_dir("unreadable");
  std::ofstream(dir / "broken.pt") << "not a state file";
  const auto start = std::chrono::steady_clock::now();
  const auto out = run_ranks(2, dir, 1 << 20, (dir / "broken.pt").string());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(out[0].is_null());
  EXPECT_TRUE(out[1].is_null());
  std::ifstream log0(dir / "rank0.log"), log1(dir / "rank1.log");
  const std::string l0((std::istreambuf_iterator<char>(log0)), {});
  const std::string l1((std::istreambuf_iterator<char>(log1)), {});
  EXPECT_NE(l0.find("broken.pt"), std::string::npos) << l0;
  EXPECT_NE(l1.find("rank 0 could not read the optimizer state"), std::string::npos) << l1;
  EXPECT_LT(seconds, 15.0);  // the workers' collective timeout is 20 s
  fs::remove_all(dir);
}
