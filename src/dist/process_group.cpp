// c10d process group: TCPStore rendezvous, Gloo or NCCL backend, collectives with a timeout whose
// failures become one clear grpo::Error.
#include "grpo/dist/process_group.h"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>

#include "c10d_compat.h"
#include "grpo/core/error.h"
#include "grpo/core/log.h"

namespace grpo::dist {
namespace {

using Millis = std::chrono::milliseconds;

Millis to_millis(double seconds) { return Millis(static_cast<int64_t>(seconds * 1000.0)); }

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return c10d::ReduceOp::SUM;
    case ReduceOp::max:
      return c10d::ReduceOp::MAX;
    case ReduceOp::min:
      return c10d::ReduceOp::MIN;
  }
  GRPO_FAIL("unknown reduce op");
}

// The first line of an exception's message, without c10's backtrace.
std::string describe(const std::exception& e) {
  std::string text = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    text = c10_error->what_without_backtrace();
  }
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  while (!text.empty() && (text.back() == '.' || text.back() == '!' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

#if GRPO_DIST_GLOO
// GLOO_SOCKET_IFNAME (as in PyTorch) picks the network interface; a single-node run uses the
// loopback; otherwise Gloo binds to the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const Env& env) {
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && *ifname != '\0') {
    std::string first = ifname;
    first = first.substr(0, first.find(','));
    return c10d::ProcessGroupGloo::createDeviceForInterface(first);
  }
  if (is_loopback(env.master_addr)) {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

}  // namespace

bool gloo_available() { return GRPO_DIST_GLOO != 0; }
bool nccl_available() { return GRPO_DIST_NCCL != 0; }

const char* backend_name(config::DistBackend backend) {
  switch (backend) {
    case config::DistBackend::automatic:
      return "auto";
    case config::DistBackend::nccl:
      return "nccl";
    case config::DistBackend::gloo:
      return "gloo";
  }
  return "?";
}

config::DistBackend resolve_backend(config::DistBackend requested, const at::Device& device) {
  const bool cuda = device.is_cuda();
  config::DistBackend backend = requested;
  if (backend == config::DistBackend::automatic) {
    backend = cuda ? config::DistBackend::nccl : config::DistBackend::gloo;
  }
  GRPO_CHECK_KIND(config, backend != config::DistBackend::nccl || cuda,
                  "distributed.backend is nccl but the run's device is ", device.str(),
                  ": NCCL reduces CUDA tensors (use gloo or auto on the CPU)");
  GRPO_CHECK_KIND(config, backend != config::DistBackend::gloo || !cuda,
                  "distributed.backend is gloo but the run's device is ", device.str(),
                  ": gradients are reduced where they live, so use nccl or auto on GPUs");
  GRPO_CHECK_KIND(config, backend != config::DistBackend::nccl || nccl_available(),
                  "distributed.backend nccl: this build's LibTorch has no NCCL support");
  GRPO_CHECK_KIND(config, backend != config::DistBackend::gloo || gloo_available(),
                  "distributed.backend gloo: this build has no Gloo support (LibTorch without "
                  "c10d Gloo, or no gloo headers: install libgloo-dev and reconfigure)");
  return backend;
}

struct ProcessGroup::Impl {
  Env env;
  at::Device device{at::kCPU};
  config::DistBackend backend = config::DistBackend::gloo;
  double timeout_s = 0;
  c10::intrusive_ptr<c10d::Store> store;
  compat::BackendPtr group;
  bool broken = false;

  // `started`: the collective was under way (a failure then is usually another rank's);
  // otherwise the backend refused it here (a tensor it does not take, a group already broken).
  [[noreturn]] void fail(const std::string& what, const std::string& detail, bool started) {
    broken = true;
    GRPO_FAIL("distributed ", what, " failed on rank ", env.rank, " of ", env.world_size, " (",
              backend_name(backend), ", distributed.timeout_s = ", timeout_s, "): ", detail,
              started ? ". Another rank has probably exited or stopped responding: see its log"
                      : " (the backend refused to start it)");
  }

  template <class Start>
  c10::intrusive_ptr<c10d::Work> start(const std::string& what, Start&& start_work) {
    GRPO_CHECK(!broken, "distributed ", what, " on rank ", env.rank,
               ": the process group failed earlier");
    try {
      return start_work();
    } catch (const std::exception& e) {
      fail(what, describe(e), false);
    }
  }

  void wait(const std::string& what, const c10::intrusive_ptr<c10d::Work>& work) {
    try {
      work->wait(to_millis(timeout_s));
    } catch (const std::exception& e) {
      fail(what, describe(e), true);
    }
  }

  // Gloo (LibTorch 1.13's at least) has no bfloat16 collectives: such tensors travel as float32,
  // which holds every bfloat16 value exactly (sums are rounded back once, after the reduction).
  // Returns the tensor to hand to the backend: `tensor` itself, or its float32 copy.
  at::Tensor on_wire(const at::Tensor& tensor) const {
    if (backend == config::DistBackend::gloo && tensor.scalar_type() == at::kBFloat16) {
      return tensor.to(at::kFloat);
    }
    return tensor;
  }

  void check_tensor(const at::Tensor& tensor, const std::string& what) const {
    GRPO_CHECK(tensor.defined() && tensor.device() == device && tensor.is_contiguous(),
               "distributed ", what, ": expected a contiguous tensor on ", device.str(), ", got ",
               tensor.defined() ? tensor.device().str() : std::string("an undefined tensor"));
  }
};

struct ProcessGroup::Pending::State {
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;
  at::Tensor tensor;  // kept alive until the reduction is done
  at::Tensor wire;    // what the backend reduces: `tensor`, or a float32 copy copied back on wait
};

ProcessGroup::Pending::Pending() = default;
ProcessGroup::Pending::~Pending() = default;
ProcessGroup::Pending::Pending(Pending&&) noexcept = default;
ProcessGroup::Pending& ProcessGroup::Pending::operator=(Pending&&) noexcept = default;
bool ProcessGroup::Pending::active() const { return state_ != nullptr; }

ProcessGroup::ProcessGroup(const Env& env, config::DistBackend backend, const at::Device& device,
                           double timeout_s)
    : impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  s.env = env;
  s.backend = resolve_backend(backend, device);
  s.device = device;
  s.timeout_s = timeout_s;
  GRPO_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size, "rank ", env.rank,
             " outside a world of ", env.world_size);
  const Millis timeout = to_millis(timeout_s);
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);

  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port);
  store_options.isServer = !env.agent_store && env.rank == 0;
  store_options.numWorkers = static_cast<size_t>(env.world_size);
  store_options.waitWorkers = false;  // the backend's rendezvous waits for everyone below
  store_options.timeout = timeout;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
    // Keys of successive torchrun attempts (and of anything else in an agent's store) apart.
    s.store = c10::make_intrusive<c10d::PrefixStore>(
        "grpo/attempt_" + std::to_string(env.restart_count), tcp);
  } catch (const std::exception& e) {
    GRPO_FAIL("rank ", env.rank, " of ", env.world_size, ": cannot ",
              store_options.isServer ? "host" : "reach", " the rendezvous store at ", where,
              " (MASTER_ADDR:MASTER_PORT) within ", timeout_s, " s: ", describe(e));
  }

  try {
    if (s.backend == config::DistBackend::gloo) {
#if GRPO_DIST_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(gloo_device(env));
      options->threads = 2;
      s.group =
          c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, env.rank, env.world_size, options);
#endif
    } else {
#if GRPO_DIST_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device.index()));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      s.group =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(s.store, env.rank, env.world_size, options);
#endif
    }
  } catch (const std::exception& e) {
    GRPO_FAIL("rank ", env.rank, " of ", env.world_size, ": the ", backend_name(s.backend),
              " process group did not form within ", timeout_s, " s (store at ", where,
              "): ", describe(e), ". Are all ", env.world_size, " ranks started?");
  }
  GRPO_CHECK(s.group, "no ", backend_name(s.backend), " support in this build");
  // Every rank passes here only once all have joined: a first collective proves the links work.
  try {
    barrier("start-up barrier");
  } catch (...) {
    // No destructor runs for a half-built object: leave the backend's threads alone here too.
    (void)s.group.release();
    (void)s.store.release();
    throw;
  }
  const std::string message =
      detail::concat("rank ", env.rank, " of ", env.world_size, ": ", backend_name(s.backend),
                     " process group on ", device.str(), ", store at ", where);
  if (env.is_main()) {
    log::info(message);
  } else {
    log::debug(message);
  }
}

ProcessGroup::~ProcessGroup() {
  if (impl_ && impl_->broken) {
    // A failed collective may still run on a backend thread that waits for a dead peer, and
    // destroying the backend would join it: leave both to the process exit that follows.
    (void)impl_->group.release();
    (void)impl_->store.release();
    return;
  }
#if GRPO_DIST_NCCL && GRPO_TORCH_AT_LEAST(2, 4)
  // A normal end: PyTorch 2.x's NCCL backend otherwise aborts its communicators in its destructor
  // while its watchdog thread still checks the last work, and prints a warning and an "unhandled
  // system error" with a stack trace at every run's exit (seen on an H200 with 2.11). Not while an
  // exception unwinds: shutdown() waits for the rank's outstanding collectives (2.6+), which a
  // stopped peer may never finish; the destructor's abort is the right end there.
  if (impl_ && impl_->group && impl_->backend == config::DistBackend::nccl &&
      std::uncaught_exceptions() == 0) {
    try {
      static_cast<c10d::ProcessGroupNCCL*>(impl_->group.get())->shutdown();
    } catch (const std::exception& e) {
      log::debug("NCCL shutdown: ", e.what());
    }
  }
#endif
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::size() const { return impl_->env.world_size; }
const Env& ProcessGroup::env() const { return impl_->env; }
const at::Device& ProcessGroup::device() const { return impl_->device; }
config::DistBackend ProcessGroup::backend() const { return impl_->backend; }
double ProcessGroup::timeout_s() const { return impl_->timeout_s; }

void ProcessGroup::all_reduce(at::Tensor& tensor, ReduceOp op, const std::string& what) {
  auto pending = all_reduce_async(tensor, op, what);
  wait(pending);
}

ProcessGroup::Pending ProcessGroup::all_reduce_async(at::Tensor& tensor, ReduceOp op,
                                                     const std::string& what) {
  impl_->check_tensor(tensor, what);
  Pending pending;
  pending.state_ = std::make_unique<Pending::State>();
  pending.state_->what = what;
  pending.state_->tensor = tensor;
  pending.state_->wire = impl_->on_wire(tensor);
  pending.state_->work = impl_->start(what, [&] {
    std::vector<at::Tensor> tensors{pending.state_->wire};
    c10d::AllreduceOptions options;
    options.reduceOp = to_c10d(op);
    options.timeout = to_millis(impl_->timeout_s);
    return impl_->group->allreduce(tensors, options);
  });
  return pending;
}

void ProcessGroup::wait(Pending& pending) {
  if (!pending.state_) return;
  auto state = std::move(pending.state_);
  impl_->wait(state->what, state->work);
  if (!state->wire.is_same(state->tensor)) state->tensor.copy_(state->wire);
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root, const std::string& what) {
  impl_->check_tensor(tensor, what);
  at::Tensor wire = impl_->on_wire(tensor);
  auto work = impl_->start(what, [&] {
    std::vector<at::Tensor> tensors{wire};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.rootTensor = 0;
    options.timeout = to_millis(impl_->timeout_s);
    return impl_->group->broadcast(tensors, options);
  });
  impl_->wait(what, work);
  if (!wire.is_same(tensor)) tensor.copy_(wire);
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& tensor, const std::string& what) {
  impl_->check_tensor(tensor, what);
  const at::Tensor wire = impl_->on_wire(tensor);
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < size(); ++r) outputs[0].push_back(at::empty_like(wire));
  std::vector<at::Tensor> inputs{wire};
  auto work = impl_->start(what, [&] {
    c10d::AllgatherOptions options;
    options.timeout = to_millis(impl_->timeout_s);
    return impl_->group->allgather(outputs, inputs, options);
  });
  impl_->wait(what, work);
  return at::stack(outputs[0]).to(tensor.scalar_type());
}

void ProcessGroup::barrier(const std::string& what) {
  // An all-reduce rather than c10d's barrier, which under NCCL guesses the device.
  auto token = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(impl_->device));
  all_reduce(token, ReduceOp::sum, what);
}

}  // namespace grpo::dist
