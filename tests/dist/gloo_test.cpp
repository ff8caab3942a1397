// Two ranks on this host over Gloo (dist_worker processes): collectives against hand-derived
// values, the bucketed gradient all-reduce against a single-process run on the whole batch, the
// config and parameter agreement checks, and a dead or stuck rank turning into an error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/gloo.h"
#include "../support/spawn.h"
#include "dist_worker_model.h"
#include "grpo/dist/process_group.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Ranks {
  std::vector<grpo::testing::Child> children;
  std::vector<json> out;  // rank<R>.json, null when missing
};

// Starts ranks 0 and 1 of `scenario`; `stop_rank1` kills rank 1 once rank 0 is done (a rank that
// was told to hang).
Ranks run_ranks(const std::string& scenario, double timeout_s, double deadline_s = 60,
                bool stop_rank1 = false) {
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_dist_" + scenario + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int port = grpo::testing::free_port();
  Ranks ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.children.push_back(grpo::testing::spawn(
        {GRPO_DIST_WORKER_PATH, scenario, dir.string(), std::to_string(timeout_s)},
        grpo::testing::rank_env(r, 2, port),
        (dir / ("rank" + std::to_string(r) + ".log")).string()));
  }
  grpo::testing::wait_child(ranks.children[0], deadline_s);
  if (stop_rank1) kill(ranks.children[1].pid, SIGKILL);
  grpo::testing::wait_child(ranks.children[1], deadline_s);
  for (int r = 0; r < 2; ++r) {
    std::ifstream in(dir / ("rank" + std::to_string(r) + ".json"));
    ranks.out.push_back(in ? json::parse(in) : json());
    const auto& child = ranks.children[static_cast<size_t>(r)];
    if (child.exit_code != 0 && !child.log().empty()) {
      std::cerr << "rank " << r << " log:\n" << child.log();
    }
  }
  return ranks;
}

}  // namespace

TEST(Gloo, BuiltIn) {
  if (GRPO_TORCH_HAS_CUDA) GRPO_REQUIRE_GLOO();
  EXPECT_TRUE(grpo::dist::gloo_available());
}

TEST(Gloo, CollectivesMatchHandDerivedValues) {
  GRPO_REQUIRE_GLOO();
  auto ranks = run_ranks("collectives", 30);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks.children[static_cast<size_t>(r)].exit_code, 0) << "rank " << r;
    const auto& o = ranks.out[static_cast<size_t>(r)];
    // Rank r contributes (r + 1, 10 (r + 1)).
    EXPECT_EQ(o["sum"], json({3.0, 30.0}));
    EXPECT_EQ(o["max"], json({2.0, 20.0}));
    EXPECT_EQ(o["min"], json({1.0, 10.0}));
    EXPECT_EQ(o["reduce_values"], json({3.0, 1.5, 2.0, 1.0}));
    EXPECT_EQ(o["gather"], json({1.0, 1.5, 2.0, 2.5}));
    EXPECT_EQ(o["broadcast_from_1"], json({1.0, 1.0, 1.0}));
    EXPECT_EQ(o["bf16_sum"], json({4.5, 258.0}));
    EXPECT_EQ(o["bf16_dtype"], "BFloat16");
    EXPECT_EQ(o["bf16_broadcast_from_1"], json({2.25, 2.25}));
    EXPECT_EQ(o["bf16_gather"], json({1.5, 2.5}));
    EXPECT_EQ(o["bf16_gather_dtype"], "BFloat16");
    EXPECT_EQ(o["checks"], "passed");
  }
}

// Two ranks with 5 rows each end where one process with all 10 rows does: the loss shares are
// normalised by the global batch, so the summed gradients are the full-batch gradients.
TEST(Gloo, BucketedAllReduceEqualsOneProcessOnTheWholeBatch) {
  GRPO_REQUIRE_GLOO();
  grpo::testing::TinyNet net;
  torch::optim::SGD sgd(net->parameters(),
                        torch::optim::SGDOptions(grpo::testing::kLr).momentum(0.9));
  const auto data = grpo::testing::make_data();
  for (int step = 0; step < grpo::testing::kSteps; ++step) {
    sgd.zero_grad();
    grpo::testing::loss_share(net, data, 0, grpo::testing::kGlobalBatch).backward();
    sgd.step();
  }
  const auto reference = grpo::testing::flat_params(net).to(at::kDouble);
  const auto initial = grpo::testing::flat_params(grpo::testing::TinyNet()).to(at::kDouble);
  ASSERT_GT((reference - initial).abs().max().item<double>(), 1e-3) << "the net did not train";

  auto ranks = run_ranks("reducer", 30);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks.children[static_cast<size_t>(r)].exit_code, 0) << "rank " << r;
    for (const char* mode : {"overlap", "no_overlap"}) {
      const auto& o = ranks.out[static_cast<size_t>(r)][mode];
      const auto got = at::tensor(o["params"].get<std::vector<double>>(), at::kDouble);
      ASSERT_EQ(got.numel(), reference.numel());
      const double diff = (got - reference).abs().max().item<double>();
      std::cout << "rank " << r << " " << mode << ": max |param - reference| = " << diff << ", "
                << o["buckets"] << " buckets, " << o["launched_during_backward"]
                << " started during the last backward\n";
      EXPECT_LT(diff, 1e-6) << mode;
      EXPECT_GE(o["buckets"].get<int>(), 3);
      // Every gradient accumulated straight into its bucket (6 parameters: 3 weights, 3 biases)
      // and is a view of it.
      EXPECT_EQ(o["grads_in_buckets"], 6) << mode;
      EXPECT_TRUE(o["grad_is_bucket_view"].get<bool>()) << mode;
    }
    // Armed: buckets started from the hooks; unarmed: all of them in finish().
    EXPECT_GT(ranks.out[static_cast<size_t>(r)]["overlap"]["launched_during_backward"].get<int>(),
              0);
    EXPECT_EQ(ranks.out[static_cast<size_t>(r)]["no_overlap"]["launched_during_backward"], 0);
  }
}

// Different configs, then different parameters: every rank stops, told what differs.
TEST(Gloo, MismatchesAreErrorsOnEveryRank) {
  GRPO_REQUIRE_GLOO();
  auto ranks = run_ranks("mismatches", 30);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks.children[static_cast<size_t>(r)].exit_code, 0);
    const auto& o = ranks.out[static_cast<size_t>(r)];
    const std::string config_error = o["config_error"];
    EXPECT_NE(config_error.find(
                  "rank(s) 1 have config hash ffffffffffffffff, rank 0 has 0123456789abcdef"),
              std::string::npos)
        << config_error;
    EXPECT_TRUE(o["config_kind"].get<bool>());
    const std::string param_error = o["param_error"];
    EXPECT_NE(param_error.find("parameters differ between ranks (start): fc2.bias"),
              std::string::npos)
        << param_error;
    EXPECT_NE(param_error.find("on rank(s) 1"), std::string::npos) << param_error;
  }
}

// A rank that exits: the survivor's next collective fails at once, naming itself and the
// collective, instead of hanging.
TEST(Gloo, DeadRankIsAnErrorWithinTheTimeout) {
  GRPO_REQUIRE_GLOO();
  const double timeout_s = 5;
  auto ranks = run_ranks("dead_peer", timeout_s, 60);
  EXPECT_EQ(ranks.children[1].exit_code, 3);
  ASSERT_EQ(ranks.children[0].exit_code, 0) << "rank 0 did not report the failure";
  const auto& o = ranks.out[0];
  const std::string error = o["error"];
  std::cout << "survivor: " << error << " (after " << o["seconds"] << " s)\n";
  EXPECT_NE(error.find("distributed gradient bucket 0 failed on rank 0 of 2 (gloo"),
            std::string::npos)
      << error;
  EXPECT_LT(o["seconds"].get<double>(), timeout_s + 10);
}

// A rank that stays alive but stops taking part: the survivor gives up after timeout_s.
TEST(Gloo, StuckRankIsAnErrorAfterTheTimeout) {
  GRPO_REQUIRE_GLOO();
  const double timeout_s = 2;
  auto ranks = run_ranks("stuck_peer", timeout_s, 30, /*stop_rank1=*/true);
  ASSERT_EQ(ranks.children[0].exit_code, 0) << "rank 0 did not report the failure";
  const auto& o = ranks.out[0];
  const std::string error = o["error"];
  std::cout << "survivor: " << error << " (after " << o["seconds"] << " s)\n";
  EXPECT_NE(error.find("distributed gradient bucket 0 failed on rank 0 of 2"), std::string::npos)
      << error;
  EXPECT_GE(o["seconds"].get<double>(), timeout_s * 0.9);
  EXPECT_LT(o["seconds"].get<double>(), timeout_s + 10);
}
