// The batch-size validator: plans for valid combinations and one config error listing every
// number and every broken rule otherwise.
#include <gtest/gtest.h>

#include <string>

#include "grpo/algo/batch_plan.h"
#include "grpo/core/error.h"

using grpo::algo::plan_batches;

TEST(BatchPlan, DefaultsTakeTheWholeRolloutBatch) {
  const auto p = plan_batches(8, 4, 0, 0, 1);
  EXPECT_EQ(p.rollout_size, 32);
  EXPECT_EQ(p.prompts_per_rank, 8);
  EXPECT_EQ(p.minibatch_size, 32);
  EXPECT_EQ(p.minibatches_per_step, 1);
  EXPECT_EQ(p.minibatch_per_rank, 32);
  EXPECT_EQ(p.micro_batch_size, 32);
  EXPECT_EQ(p.micro_batches_per_minibatch, 1);
}

TEST(BatchPlan, SplitsOverRanksMinibatchesAndMicroBatches) {
  // 8 prompts x G 4 = 32 completions; minibatches of 16 -> 2 optimizer steps; 2 ranks hold 4
  // prompts each and 8 completions of each minibatch, in micro-batches of 4 -> 2 accumulations.
  const auto p = plan_batches(8, 4, 16, 4, 2);
  EXPECT_EQ(p.prompts_per_rank, 4);
  EXPECT_EQ(p.minibatches_per_step, 2);
  EXPECT_EQ(p.minibatch_per_rank, 8);
  EXPECT_EQ(p.micro_batch_size, 4);
  EXPECT_EQ(p.micro_batches_per_minibatch, 2);
}

TEST(BatchPlan, OneErrorListsAllNumbersAndRules) {
  try {
    plan_batches(6, 4, 10, 3, 4);
    FAIL() << "6 prompts on 4 ranks accepted";
  } catch (const grpo::Error& e) {
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    const std::string m = e.what();
    for (const char* part : {"prompts_per_step = 6", "rollout.n (G) = 4", "minibatch_size = 10",
                             "micro_batch_size = 3", "world size = 4", "multiple of the world size",
                             "must divide prompts_per_step * G = 24"}) {
      EXPECT_NE(m.find(part), std::string::npos) << part << " missing in: " << m;
    }
  }
}

TEST(BatchPlan, MicroBatchMustDivideTheRankShare) {
  try {
    plan_batches(8, 4, 16, 3, 2);
    FAIL() << "micro-batch 3 of a rank share of 8 accepted";
  } catch (const grpo::Error& e) {
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("= 8)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_batches(0, 4, 0, 0, 1), grpo::Error);
  EXPECT_THROW(plan_batches(8, 4, 0, 0, 0), grpo::Error);
}
