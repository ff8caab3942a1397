// Where this process stands in a distributed run, read from the environment that `grpo launch`,
// torchrun or Slurm sets (docs/distributed.md), and the per-rank random streams derived from a
// run's seed. No LibTorch here: the launcher and the tests use it as plain data.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace grpo::dist {

struct Env {
  int rank = 0;  // global rank, 0 .. world_size - 1
  int world_size = 1;
  int local_rank = 0;  // rank within this node: the GPU index on a GPU host
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";  // host of the TCPStore (rank 0's node)
  int master_port = 29500;
  // torchrun's agent already hosts the store at master_addr:master_port (every rank is a
  // client); restart_count separates the keys of successive attempts.
  bool agent_store = false;
  int restart_count = 0;
  std::string source = "none";  // "env" (RANK/WORLD_SIZE), "slurm" (SLURM_*) or "none"

  bool distributed() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }
};

// A lookup of one environment variable (std::nullopt when unset).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Reads the variables through `lookup`:
//   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (grpo launch and
//   torchrun); otherwise SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (srun,
//   which needs MASTER_ADDR when SLURM_NTASKS > 1); otherwise a single process.
// Throws grpo::Error (usage) naming the variable and its value when one is malformed or
// inconsistent (RANK >= WORLD_SIZE, RANK without WORLD_SIZE, a port outside 1..65535, ...).
Env env_from(const EnvLookup& lookup);
// env_from(getenv).
Env env_from_process();

// A TCP port of the loopback that was free a moment ago (bound to port 0, then released): the
// rendezvous port of runs on one host.
int free_local_port();

// The seed of rank `rank`'s own random stream (things that must differ between ranks). Rank 0
// gets `seed` itself, so a single-process run is unchanged; other ranks get a splitmix64 mix.
uint64_t rank_seed(uint64_t seed, int rank);

}  // namespace grpo::dist
