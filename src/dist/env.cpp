// Rank, world size and rendezvous address from the environment (grpo launch, torchrun, Slurm).
#include "grpo/dist/env.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "grpo/core/error.h"

namespace grpo::dist {
namespace {

// A non-negative integer with nothing around it, or an error naming the variable.
int parse_int(const std::string& name, const std::string& value) {
  bool ok = !value.empty() && value.size() <= 9;
  for (char c : value) ok = ok && std::isdigit(static_cast<unsigned char>(c)) != 0;
  GRPO_CHECK_KIND(usage, ok, "environment variable ", name, "='", value,
                  "' is not a non-negative integer");
  return std::stoi(value);
}

std::optional<int> int_var(const EnvLookup& lookup, const std::string& name) {
  auto value = lookup(name);
  if (!value) return std::nullopt;
  return parse_int(name, *value);
}

// SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE look like "4" or "4(x2)": the leading count.
std::optional<int> leading_int(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  size_t n = 0;
  while (n < value->size() && std::isdigit(static_cast<unsigned char>((*value)[n])) != 0) ++n;
  if (n == 0 || n > 9) return std::nullopt;
  return std::stoi(value->substr(0, n));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

Env env_from(const EnvLookup& lookup) {
  Env env;
  const auto rank = int_var(lookup, "RANK");
  const auto world = int_var(lookup, "WORLD_SIZE");
  if (rank || world) {
    GRPO_CHECK_KIND(usage, rank && world, "RANK and WORLD_SIZE must be set together (",
                    rank ? "WORLD_SIZE" : "RANK", " is missing)");
    env.source = "env";
    env.rank = *rank;
    env.world_size = *world;
    env.local_rank = int_var(lookup, "LOCAL_RANK").value_or(0);
    env.local_world_size = int_var(lookup, "LOCAL_WORLD_SIZE").value_or(env.world_size);
  } else if (lookup("SLURM_PROCID") && lookup("SLURM_NTASKS")) {
    env.source = "slurm";
    env.rank = parse_int("SLURM_PROCID", *lookup("SLURM_PROCID"));
    env.world_size = parse_int("SLURM_NTASKS", *lookup("SLURM_NTASKS"));
    env.local_rank = int_var(lookup, "SLURM_LOCALID").value_or(0);
    auto per_node = leading_int(lookup("SLURM_NTASKS_PER_NODE"));
    if (!per_node) per_node = leading_int(lookup("SLURM_TASKS_PER_NODE"));
    env.local_world_size = per_node.value_or(1);
  } else {
    return env;
  }
  const std::string rank_var = env.source == "env" ? "RANK" : "SLURM_PROCID";
  const std::string world_var = env.source == "env" ? "WORLD_SIZE" : "SLURM_NTASKS";
  GRPO_CHECK_KIND(usage, env.world_size >= 1, world_var, "=", env.world_size,
                  " must be at least 1");
  GRPO_CHECK_KIND(usage, env.rank < env.world_size, rank_var, "=", env.rank, " must be below ",
                  world_var, "=", env.world_size);
  if (!env.distributed()) return env;

  // grpo launch and torchrun export it; under plain srun the batch script must.
  const auto addr = lookup("MASTER_ADDR");
  GRPO_CHECK_KIND(usage, addr && !addr->empty(), "MASTER_ADDR is not set (", world_var, "=",
                  env.world_size,
                  "): it names the host of rank 0; under Slurm export it from "
                  "the batch script, e.g. MASTER_ADDR=$(scontrol show hostnames "
                  "\"$SLURM_JOB_NODELIST\" | head -n1) (docs/distributed.md)");
  env.master_addr = *addr;
  if (auto port = int_var(lookup, "MASTER_PORT")) env.master_port = *port;
  GRPO_CHECK_KIND(usage, env.master_port >= 1 && env.master_port <= 65535,
                  "MASTER_PORT=", env.master_port, " is outside 1..65535");
  env.agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  env.restart_count = int_var(lookup, "TORCHELASTIC_RESTART_COUNT").value_or(0);
  return env;
}

Env env_from_process() {
  return env_from([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  GRPO_CHECK(fd >= 0, "cannot create a socket: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  close(fd);
  GRPO_CHECK(ok, "cannot find a free local port: ", std::strerror(error));
  return ntohs(addr.sin_port);
}

uint64_t rank_seed(uint64_t seed, int rank) {
  if (rank == 0) return seed;
  return splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(rank));
}

}  // namespace grpo::dist
