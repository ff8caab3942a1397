// One rank of the multi-process sharded-AdamW tests (sharded_adamw_test.cpp starts W of these
// with RANK/WORLD_SIZE/MASTER_* set). `sharded_adamw_worker OUT_DIR TIMEOUT_S BUCKET_BYTES
// [LOAD_FILE]`: every rank steps a ShardedAdamW and, beside it, a whole AdamW on a copy of the
// same parameters with the same gradients (optionally both first loading LOAD_FILE); after step 2
// rank 0 saves both optimizers (sharded.pt, whole.pt). Writes rank<R>.json with the largest
// difference between the two parameter sets after each step.
#include <torch/optim/adamw.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "grpo/dist/env.h"
#include "grpo/dist/process_group.h"
#include "grpo/train/sharded_adamw.h"
#include "sharded_adamw_model.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: sharded_adamw_worker OUT_DIR TIMEOUT_S BUCKET_BYTES [LOAD_FILE]\n";
    return 2;
  }
  const std::string out_dir = argv[1];
  const std::string load = argc > 4 ? argv[4] : "";
  try {
    const auto env = grpo::dist::env_from_process();
    grpo::dist::ProcessGroup group(env, grpo::config::DistBackend::gloo, at::kCPU,
                                   std::stod(argv[2]));
    const auto config = grpo::testing::sharded_adamw_config();
    auto params = grpo::testing::sharded_adamw_params();
    auto copy = grpo::testing::clone_params(params);
    grpo::train::ShardedAdamW sharded(params, config, &group, std::stoul(argv[3]));
    auto whole = grpo::train::make_adamw(copy, config);
    if (!load.empty()) {
      sharded.load(load);
      grpo::train::load_optimizer(*whole, load);
    }
    nlohmann::json out;
    out["owned_elements"] = sharded.layout().owned_elements;
    out["group_elements"] = sharded.layout().group_elements;
    out["state_bytes"] = sharded.state_bytes();
    for (int t = 0; t < 4; ++t) {
      sharded.zero_grad();
      whole->zero_grad();
      sharded.set_learning_rate(config.lr * (t + 1) / 4);
      grpo::train::set_learning_rate(*whole, config.lr * (t + 1) / 4);
      grpo::testing::step_both(sharded, params, *whole, copy, t);
      out["max_diff"].push_back(grpo::testing::max_param_diff(params, copy));
      if (t == 1) {
        sharded.gather_for_save();
        if (group.rank() == 0) {
          sharded.save(out_dir + "/sharded.pt");
          grpo::train::save_optimizer(*whole, out_dir + "/whole.pt");
        }
      }
    }
    group.barrier("done");
    std::ofstream(out_dir + "/rank" + std::to_string(env.rank) + ".json") << out.dump();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sharded_adamw_worker: " << e.what() << "\n";
    return 1;
  }
}
