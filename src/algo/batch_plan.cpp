// The batch-size validator: every divisibility rule between prompts, G, minibatch, micro-batch
// and world size, checked together so one error shows all the numbers and all the broken rules.
#include "grpo/algo/batch_plan.h"

#include <sstream>
#include <string>
#include <vector>

#include "grpo/core/error.h"

namespace grpo::algo {

BatchPlan plan_batches(int64_t prompts_per_step, int64_t group_size, int64_t minibatch_size,
                       int64_t micro_batch_size, int64_t world_size) {
  std::ostringstream numbers;
  numbers << "trainer.prompts_per_step = " << prompts_per_step << ", rollout.n (G) = " << group_size
          << ", trainer.minibatch_size = " << minibatch_size
          << ", trainer.micro_batch_size = " << micro_batch_size << ", world size = " << world_size;
  std::vector<std::string> broken;
  const auto rule = [&](bool ok, const std::string& what) {
    if (!ok) broken.push_back(what);
  };
  rule(prompts_per_step >= 1, "prompts_per_step must be at least 1");
  rule(group_size >= 1, "G must be at least 1");
  rule(world_size >= 1, "world size must be at least 1");
  rule(minibatch_size >= 0 && micro_batch_size >= 0, "batch sizes must not be negative");

  BatchPlan p;
  if (broken.empty()) {
    p.rollout_size = prompts_per_step * group_size;
    p.minibatch_size = minibatch_size == 0 ? p.rollout_size : minibatch_size;
    rule(prompts_per_step % world_size == 0,
         "prompts_per_step must be a multiple of the world size (each rank scores whole groups)");
    rule(p.rollout_size % p.minibatch_size == 0,
         "minibatch_size must divide prompts_per_step * G = " + std::to_string(p.rollout_size));
    rule(p.minibatch_size % world_size == 0,
         "minibatch_size must be a multiple of the world size (equal shares per rank)");
    if (broken.empty()) {
      p.prompts_per_rank = prompts_per_step / world_size;
      p.minibatches_per_step = p.rollout_size / p.minibatch_size;
      p.minibatch_per_rank = p.minibatch_size / world_size;
      p.micro_batch_size = micro_batch_size == 0 ? p.minibatch_per_rank : micro_batch_size;
      rule(p.minibatch_per_rank % p.micro_batch_size == 0,
           "micro_batch_size must divide each rank's minibatch share (minibatch_size / world "
           "size = " +
               std::to_string(p.minibatch_per_rank) + ")");
      if (broken.empty()) p.micro_batches_per_minibatch = p.minibatch_per_rank / p.micro_batch_size;
    }
  }
  if (!broken.empty()) {
    std::ostringstream msg;
    msg << "batch sizes do not fit together (" << numbers.str() << "): ";
    for (size_t i = 0; i < broken.size(); ++i) msg << (i ? "; " : "") << broken[i];
    GRPO_CHECK_KIND(config, false, msg.str());
  }
  return p;
}

}  // namespace grpo::algo
