// AdamW with its state sharded over the data-parallel ranks (ZeRO stage 1,
// `distributed.shard_optimizer`). The trainable parameters are laid end to end in flat groups
// (one per weight-decay setting and dtype, in make_adamw's order); of a group's N elements, rank r
// of W owns [r S, (r + 1) S) with S = ceil(N / W) and keeps the AdamW moments of that range
// only: the optimizer state per rank is 1/W of the whole one.
//
// The owned range is a list of pieces, each a view of part of one parameter's data, and LibTorch's
// AdamW steps those views in place from views of the (already summed and clipped) gradients; AdamW
// is element-wise, so this computes exactly what whole-tensor AdamW computes, with no copy of the
// parameters or gradients. The ranks then all-gather the updated ranges into every rank's
// parameters, bucket by bucket. Checkpoints hold the
// whole state in make_adamw's layout (save_optimizer's file): rank 0 gathers it to host memory to
// write it, and on load reads it and broadcasts each rank's range. With no process group the
// single process owns everything (the same code, W = 1).
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "grpo/core/config/trainer.h"
#include "grpo/train/optimizer.h"

namespace grpo::train {

struct ShardLayout {
  int64_t group_elements = 0;  // N summed over the flat groups
  int64_t owned_elements = 0;  // elements this rank steps and keeps moments for
  int64_t groups = 0;          // flat groups
};

class ShardedAdamW final : public Optimizer {
 public:
  // `params` in the same order on every rank; `group` null: one process. `bucket_bytes` bounds
  // each all-gather or broadcast (distributed.bucket_mb).
  ShardedAdamW(const NamedParameters& params, const config::TrainerConfig& config,
               dist::ProcessGroup* group, size_t bucket_bytes);
  ~ShardedAdamW() override;

  void set_learning_rate(double lr) override;
  void zero_grad() override;
  void step() override;
  void gather_for_save() override;
  // Rank 0, after gather_for_save(): writes the whole state as save_optimizer does.
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  int64_t state_bytes() const override;

  const ShardLayout& layout() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace grpo::train
