// The environment a rank reads (grpo launch / torchrun / Slurm variables and their errors), the
// per-rank seeds, the gradient bucket plan and the backend choice; no second process needed.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "../support/gloo.h"
#include "grpo/core/error.h"
#include "grpo/dist/env.h"
#include "grpo/dist/gradient_reducer.h"
#include "grpo/dist/process_group.h"

using grpo::dist::Env;

namespace {

Env env_of(const std::map<std::string, std::string>& vars) {
  return grpo::dist::env_from([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    env_of(vars);
  } catch (const grpo::Error& e) {
    EXPECT_EQ(e.kind(), grpo::ErrorKind::usage);
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DistEnv, NothingSetIsOneProcess) {
  const Env env = env_of({});
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(env.source, "none");
}

TEST(DistEnv, TorchrunVariables) {
  const Env env = env_of({{"RANK", "5"},
                          {"WORLD_SIZE", "8"},
                          {"LOCAL_RANK", "1"},
                          {"LOCAL_WORLD_SIZE", "4"},
                          {"MASTER_ADDR", "node07"},
                          {"MASTER_PORT", "29612"},
                          {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                          {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 4);
  EXPECT_EQ(env.master_addr, "node07");
  EXPECT_EQ(env.master_port, 29612);
  EXPECT_TRUE(env.agent_store);
  EXPECT_EQ(env.restart_count, 2);
  EXPECT_EQ(env.source, "env");
}

TEST(DistEnv, SlurmVariables) {
  const Env env = env_of({{"SLURM_PROCID", "6"},
                          {"SLURM_NTASKS", "8"},
                          {"SLURM_LOCALID", "2"},
                          {"SLURM_NTASKS_PER_NODE", "4"},
                          {"MASTER_ADDR", "10.0.0.1"}});
  EXPECT_EQ(env.rank, 6);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 2);
  EXPECT_EQ(env.local_world_size, 4);
  EXPECT_EQ(env.master_port, 29500);  // the default
  EXPECT_EQ(env.source, "slurm");
  EXPECT_FALSE(env.agent_store);
}

TEST(DistEnv, TorchrunVariablesWinOverSlurm) {
  // torchrun started by srun: RANK is the worker's rank, SLURM_PROCID the agent's.
  const Env env = env_of({{"RANK", "3"},
                          {"WORLD_SIZE", "4"},
                          {"MASTER_ADDR", "a"},
                          {"SLURM_PROCID", "0"},
                          {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 4);
}

TEST(DistEnv, SingleSlurmTaskNeedsNoAddress) {
  const Env env = env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_FALSE(env.distributed());
}

TEST(DistEnv, MalformedOrInconsistentVariablesAreUsageErrors) {
  EXPECT_NE(error_of({{"RANK", "1"}})
                .find("RANK and WORLD_SIZE must be set together "
                      "(WORLD_SIZE is missing)"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}})
                .find("RANK=2 must be below WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})
                .find("environment variable RANK='x' is not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE=0 must be at least 1"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}})
          .find("MASTER_PORT=70000 is outside 1..65535"),
      std::string::npos);
  const std::string slurm = error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
  EXPECT_NE(slurm.find("MASTER_ADDR is not set (SLURM_NTASKS=2)"), std::string::npos) << slurm;
  EXPECT_NE(slurm.find("scontrol show hostnames"), std::string::npos) << slurm;
}

TEST(DistEnv, RankSeeds) {
  EXPECT_EQ(grpo::dist::rank_seed(42, 0), 42u);  // one process: the run's seed itself
  std::set<uint64_t> seen{42};
  for (int r = 1; r < 64; ++r) EXPECT_TRUE(seen.insert(grpo::dist::rank_seed(42, r)).second);
  EXPECT_NE(grpo::dist::rank_seed(42, 1), grpo::dist::rank_seed(43, 1));
  EXPECT_EQ(grpo::dist::rank_seed(42, 1), grpo::dist::rank_seed(42, 1));
}

TEST(DistBuckets, ReverseOrderSizeAndDtypeBoundaries) {
  // fp32 sizes in bytes: 40, 400, 40, 40 (fp64), 4000, 8 ; a budget of 100 bytes.
  std::vector<at::Tensor> t{at::zeros({10}),   at::zeros({100}),
                            at::zeros({10}),   at::zeros({5}, at::kDouble),
                            at::zeros({1000}), at::zeros({2})};
  const auto buckets = grpo::dist::plan_buckets(t, 100);
  // From the last: 5 (8 B); 4 (4000 B) overflows -> its own; 3 is fp64 -> its own; 2 is fp32
  // again -> new; 1 (40 + 400 > 100) -> new; 0 (400 + 40 > 100) -> new.
  const std::vector<std::vector<size_t>> expected{{5}, {4}, {3}, {2}, {1}, {0}};
  EXPECT_EQ(buckets, expected);
  const auto big = grpo::dist::plan_buckets(t, 1 << 20);
  // Only the dtype change splits: {5, 4} fp32, {3} fp64, {2, 1, 0} fp32.
  const std::vector<std::vector<size_t>> expected_big{{5, 4}, {3}, {2, 1, 0}};
  EXPECT_EQ(big, expected_big);
  const auto small_pairs = grpo::dist::plan_buckets({at::zeros({10}), at::zeros({10})}, 80);
  EXPECT_EQ(small_pairs, (std::vector<std::vector<size_t>>{{1, 0}}));  // 40 + 40 <= 80
}

TEST(DistBackend, AutoPicksByDevice) {
  GRPO_REQUIRE_GLOO();
  using grpo::config::DistBackend;
  EXPECT_EQ(grpo::dist::resolve_backend(DistBackend::automatic, at::kCPU), DistBackend::gloo);
  try {
    grpo::dist::resolve_backend(DistBackend::nccl, at::kCPU);
    FAIL() << "nccl on the CPU was accepted";
  } catch (const grpo::Error& e) {
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("distributed.backend is nccl but the run's device is cpu"),
              std::string::npos);
  }
}
