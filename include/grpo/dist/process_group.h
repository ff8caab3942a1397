// A c10d process group over a TCPStore rendezvous: Gloo for CPU tensors, NCCL for CUDA tensors
// (one GPU per rank, cuda:LOCAL_RANK). Every collective waits at most distributed.timeout_s and
// turns any failure (a rank that died, stopped answering or disagrees) into one grpo::Error that
// says which collective failed on which rank. c10d itself stays behind this header, so callers
// see no LibTorch-version differences (docs/distributed.md).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "grpo/core/config/distributed.h"
#include "grpo/dist/env.h"

namespace grpo::dist {

enum class ReduceOp { sum, max, min };

// Whether this build can create each backend: Gloo needs c10d's Gloo support and the gloo
// headers, NCCL a CUDA LibTorch built with it.
bool gloo_available();
bool nccl_available();

// The backend for tensors on `device`: `auto` picks nccl for CUDA and gloo for the CPU. A config
// error when the choice cannot serve that device or is not built in.
config::DistBackend resolve_backend(config::DistBackend requested, const at::Device& device);
const char* backend_name(config::DistBackend backend);

class ProcessGroup {
 public:
  // Joins the other env.world_size - 1 ranks through a TCPStore at master_addr:master_port
  // (hosted by rank 0, or by torchrun's agent) and creates the backend for `device` (for NCCL,
  // also makes it the current CUDA device). Blocks until every rank has joined; an error after
  // timeout_s.
  ProcessGroup(const Env& env, config::DistBackend backend, const at::Device& device,
               double timeout_s);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  const Env& env() const;
  // Where tensors handed to collectives must live: the CPU for Gloo, cuda:LOCAL_RANK for NCCL.
  const at::Device& device() const;
  config::DistBackend backend() const;
  double timeout_s() const;

  // Blocking collectives on a contiguous tensor on device(). `what` names the collective in
  // error messages ("gradient bucket 3", "metrics", ...).
  void all_reduce(at::Tensor& tensor, ReduceOp op, const std::string& what);
  void broadcast(at::Tensor& tensor, int root, const std::string& what);
  // (size(), *tensor.sizes()): every rank's tensor, in rank order.
  at::Tensor all_gather(const at::Tensor& tensor, const std::string& what);
  void barrier(const std::string& what);

  // An all-reduce in flight (gradient buckets overlap it with the backward pass).
  class Pending {
   public:
    Pending();
    ~Pending();
    Pending(Pending&&) noexcept;
    Pending& operator=(Pending&&) noexcept;
    bool active() const;

   private:
    friend class ProcessGroup;
    struct State;
    std::unique_ptr<State> state_;
  };
  // Starts a sum/max/min all-reduce of `tensor` in place; the tensor must stay alive and
  // untouched until wait() returns.
  Pending all_reduce_async(at::Tensor& tensor, ReduceOp op, const std::string& what);
  void wait(Pending& pending);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace grpo::dist
