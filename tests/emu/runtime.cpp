// The emulated device (grpo_emu/runtime.h): block-at-a-time scheduling of fibers, the PTX
// instructions of grpo_emu/ptx.h, and the CUDA runtime calls on host memory (cuBLAS: cublas.cpp).
#include "grpo_emu/runtime.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "cuda_runtime.h"
#include "grpo_emu/half.h"
#include "grpo_emu/ptx.h"

namespace {
// Kernel launches and GEMMs so far (grpo_emu::device_calls).
std::atomic<uint64_t> device_call_count{0};
}  // namespace

namespace grpo_emu {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kDefaultSmemLimit = 48 * 1024;
constexpr size_t kOptInSmemLimit = 227 * 1024;  // sm_90 (sm_80: 163 KiB; both >= what we ask)

enum class State { ready, at_block_barrier, at_warp_barrier, done };

// A cp.async copy in flight (see grpo_emu/ptx.h for when it lands).
struct AsyncCopy {
  void* dst;
  const void* src;
  size_t bytes;
};

struct Fiber {
  ucontext_t ctx;
  State state = State::ready;
  unsigned mask = 0;      // lanes a warp barrier waits for
  unsigned exchange = 0;  // warp exchanges this lane has made
  uint3 idx{0, 0, 0};
  int linear = 0;                             // idx flattened: x + dim.x * (y + dim.y * z)
  std::vector<AsyncCopy> uncommitted;         // cp.async since the last commit
  std::deque<std::vector<AsyncCopy>> groups;  // committed groups, oldest first
  std::vector<AsyncCopy> waited;  // released by a wait; land at the thread's next __syncthreads
};

void land(Fiber& f) {
  for (const AsyncCopy& c : f.waited) std::memcpy(c.dst, c.src, c.bytes);
  f.waited.clear();
}

constexpr size_t kBlobBytes = 32;  // the largest per-lane payload of a warp-collective

struct Warp {
  uint64_t slots[2][32];
  unsigned char blobs[2][32][kBlobBytes];
};

struct Device {
  std::mutex launch_mutex;  // one grid at a time
  std::vector<unsigned char*> stacks;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<unsigned char> smem;
  std::map<const void*, int> smem_limit;
  ucontext_t scheduler;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  uint3 block{0, 0, 0};
  dim3 block_dim, grid_dim;
  int threads = 0;
  // Threads run first-to-last in even blocks and last-to-first in odd ones (GRPO_EMU_REVERSE
  // swaps the two), so a race between two threads shows whichever one should have waited.
  bool reverse_odd = std::getenv("GRPO_EMU_REVERSE") == nullptr;
  bool reverse = false;
  std::string fiber_error;
  cudaError_t last_error = cudaSuccess;
};

Device& device() {
  static Device d;
  return d;
}

Fiber& self() {
  Fiber* f = device().current;
  if (f == nullptr) throw EmulationError("a device built-in was called outside a kernel");
  return *f;
}

void yield(Fiber& f) { swapcontext(&f.ctx, &device().scheduler); }

void fiber_entry() {
  Device& d = device();
  try {
    (*d.body)();
  } catch (const std::exception& e) {
    if (d.fiber_error.empty()) d.fiber_error = e.what();
  }
  land(*d.current);
  d.current->state = State::done;
  // Returning resumes uc_link: the scheduler.
}

unsigned char* stack_for(int t) {
  Device& d = device();
  while (static_cast<int>(d.stacks.size()) <= t) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw EmulationError("cannot map a fiber stack");
    mprotect(p, page, PROT_NONE);  // guard page: a fiber overflowing its stack faults
    d.stacks.push_back(static_cast<unsigned char*>(p) + page);
  }
  return d.stacks[t];
}

std::string where() {
  const Device& d = device();
  std::ostringstream os;
  os << "block (" << d.block.x << "," << d.block.y << "," << d.block.z << ") of a grid ("
     << d.grid_dim.x << "," << d.grid_dim.y << "," << d.grid_dim.z << ") x block (" << d.block_dim.x
     << "," << d.block_dim.y << "," << d.block_dim.z << ")";
  return os.str();
}

// Releases the warp barriers of warp w that can release; false when none can.
bool release_warp(int w) {
  Device& d = device();
  bool released = false;
  const int lanes = std::min(32, d.threads - 32 * w);
  const unsigned live = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  for (int l = 0; l < lanes; ++l) {
    Fiber& f = d.fibers[32 * w + l];
    if (f.state != State::at_warp_barrier) continue;
    const unsigned want = f.mask & live;
    bool all = true;
    for (int m = 0; m < lanes; ++m) {
      if (!(want >> m & 1u)) continue;
      const Fiber& o = d.fibers[32 * w + m];
      if (o.state == State::done) {
        std::ostringstream os;
        os << "warp-synchronous call with mask 0x" << std::hex << f.mask << std::dec
           << " in thread " << f.linear << " names lane " << m << ", which has exited, in "
           << where();
        throw EmulationError(os.str());
      }
      if (o.state != State::at_warp_barrier) all = false;
    }
    if (!all) continue;
    for (int m = 0; m < lanes; ++m) {
      if (want >> m & 1u) d.fibers[32 * w + m].state = State::ready;
    }
    released = true;
  }
  return released;
}

// Releases __syncthreads when every live thread waits there; false otherwise.
bool release_block() {
  Device& d = device();
  bool any_block = false;
  for (const Fiber& f : d.fibers) {
    if (f.state == State::at_block_barrier) any_block = true;
    if (f.state == State::at_warp_barrier || f.state == State::ready) return false;
  }
  if (!any_block) return false;
  for (Fiber& f : d.fibers) {
    if (f.state == State::at_block_barrier) f.state = State::ready;
  }
  return true;
}

// Runs the lanes of warp w that are ready, each until its next barrier (or its end).
void run_warp(int w) {
  Device& d = device();
  const int lanes = std::min(32, d.threads - 32 * w);
  for (int i = 0; i < lanes; ++i) {
    Fiber& f = d.fibers[32 * w + (d.reverse ? lanes - 1 - i : i)];
    if (f.state != State::ready) continue;
    d.current = &f;
    swapcontext(&d.scheduler, &f.ctx);
    d.current = nullptr;
    if (!d.fiber_error.empty()) throw EmulationError(d.fiber_error + " in " + where());
  }
}

// Between two __syncthreads the warps run one after another (first-to-last, or last-to-first
// in reversed blocks), each as far as it can go through its own warp barriers; within a warp the
// lanes run one after another between warp barriers. So a read of another warp's write without a
// __syncthreads between sees stale data in one of the two orders, however many warp-level
// collectives (shuffles, ldmatrix, mma) lie between them.
void run_block() {
  Device& d = device();
  for (int t = 0; t < d.threads; ++t) {
    Fiber& f = d.fibers[t];
    f.state = State::ready;
    f.exchange = 0;
    f.uncommitted.clear();
    f.groups.clear();  // a block that exits with copies in flight: they never land
    f.waited.clear();
    f.idx = uint3{t % d.block_dim.x, t / d.block_dim.x % d.block_dim.y,
                  t / (d.block_dim.x * d.block_dim.y)};
    f.linear = t;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack_for(t);
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &d.scheduler;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  const int warps = (d.threads + 31) / 32;
  for (;;) {
    for (int i = 0; i < warps; ++i) {
      const int w = d.reverse ? warps - 1 - i : i;
      do {
        run_warp(w);
      } while (release_warp(w));
    }
    bool live = false;
    for (const Fiber& f : d.fibers) live = live || f.state != State::done;
    if (!live) return;
    if (!release_block()) {
      std::ostringstream os;
      os << "deadlock in " << where() << ": threads wait at barriers that cannot release (";
      int shown = 0;
      for (int t = 0; t < d.threads && shown < 8; ++t) {
        const State s = d.fibers[t].state;
        if (s == State::done) continue;
        os << (shown++ ? ", " : "") << "thread " << t
           << (s == State::at_block_barrier ? " at __syncthreads" : " at a warp barrier");
      }
      os << ")";
      throw EmulationError(os.str());
    }
  }
}

}  // namespace

uint3 thread_idx() { return self().idx; }
uint3 block_idx() { return device().block; }
dim3 block_dim() { return device().block_dim; }
dim3 grid_dim() { return device().grid_dim; }
int lane_id() { return self().linear % 32; }

void sync_block() {
  Fiber& f = self();
  land(f);
  f.state = State::at_block_barrier;
  yield(f);
}

void sync_warp(unsigned mask) {
  Fiber& f = self();
  if (!(mask >> (f.linear % 32) & 1u)) {
    throw EmulationError("warp-synchronous call whose mask leaves out the calling lane");
  }
  f.state = State::at_warp_barrier;
  f.mask = mask;
  yield(f);
}

void syncwarp_builtin(unsigned mask) {
  land(self());
  sync_warp(mask);
}

// Two slot sets alternate: a lane can only start exchange n + 2 after every lane of the mask has
// reached exchange n + 1, so by then all have read exchange n.
const uint64_t* warp_exchange(unsigned mask, uint64_t value) {
  Fiber& f = self();
  Device& d = device();
  const int t = f.linear;
  uint64_t* slots = d.warps[t / 32].slots[f.exchange++ & 1u];
  slots[t % 32] = value;
  sync_warp(mask);
  return slots;
}

namespace {

// warp_exchange for payloads of up to kBlobBytes: returns lane l's bytes at l * kBlobBytes.
const unsigned char* warp_exchange_blob(unsigned mask, const void* data, size_t bytes) {
  Fiber& f = self();
  Device& d = device();
  const int t = f.linear;
  auto& blobs = d.warps[t / 32].blobs[f.exchange++ & 1u];
  std::memcpy(blobs[t % 32], data, bytes);
  sync_warp(mask);
  return &blobs[0][0];
}

// Throws unless [p, p + bytes) lies in the block's dynamic shared memory, 16-byte aligned.
void check_shared(const void* p, size_t bytes, const char* what) {
  const Device& d = device();
  const auto* c = static_cast<const unsigned char*>(p);
  const unsigned char* base = d.smem.data();
  std::ostringstream os;
  if (c < base || c + bytes > base + d.smem.size()) {
    os << what << " outside the " << d.smem.size() << " bytes of dynamic shared memory (offset "
       << (c - base) << ") in thread " << self().linear << " of " << where();
    throw EmulationError(os.str());
  }
  if ((c - base) % 16 != 0) {
    os << what << " at shared offset " << (c - base) << ", not 16-byte aligned, in thread "
       << self().linear << " of " << where();
    throw EmulationError(os.str());
  }
}

uint16_t half_of(uint32_t word, int which) {
  return static_cast<uint16_t>(which == 0 ? word & 0xffffu : word >> 16);
}

float element(uint16_t bits, bool bf16) {
  return bf16 ? __bfloat162float(__nv_bfloat16{bits}) : __half2float(__half{bits});
}

}  // namespace

void ldmatrix(uint32_t* r, int count, const void* row, bool trans) {
  if (lane_id() < 8 * count) check_shared(row, 16, "ldmatrix row address");
  const uint64_t* rows = warp_exchange(0xffffffffu, to_bits(row));
  const int lane = lane_id();
  for (int j = 0; j < count; ++j) {
    uint16_t e[2];
    for (int h = 0; h < 2; ++h) {
      // Plain: row lane / 4, column 2 (lane % 4) + h. Transposed: row 2 (lane % 4) + h, column
      // lane / 4 of the matrix as stored.
      const int mrow = trans ? 2 * (lane % 4) + h : lane / 4;
      const int mcol = trans ? lane / 4 : 2 * (lane % 4) + h;
      const auto* base = reinterpret_cast<const uint16_t*>(rows[8 * j + mrow]);
      e[h] = base[mcol];
    }
    r[j] = static_cast<uint32_t>(e[0]) | static_cast<uint32_t>(e[1]) << 16;
  }
}

void mma_m16n8k16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool bf16) {
  struct Fragments {
    uint32_t a[4], b[2];
  };
  const Fragments mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
  static_assert(sizeof(Fragments) <= kBlobBytes, "fragment payload");
  const unsigned char* all = warp_exchange_blob(0xffffffffu, &mine, sizeof mine);
  auto lane_frags = [&](int l) {
    Fragments f;
    std::memcpy(&f, all + l * kBlobBytes, sizeof f);
    return f;
  };
  // A (r, k): lane (r % 8) * 4 + (k % 8) / 2, register (r >= 8) + 2 (k >= 8), half k % 2.
  // B (k, n): lane n * 4 + (k % 8) / 2, register k >= 8, half k % 2.
  // C (r, c): lane (r % 8) * 4 + c / 2, register 2 (r >= 8) + c % 2.
  const int lane = lane_id(), g = lane / 4, t = lane % 4;
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int r = g + (e >= 2 ? 8 : 0), c = 2 * t + (e & 1);
    float acc = d[e];
    for (int k = 0; k < 16; ++k) {
      const Fragments fa = lane_frags((r % 8) * 4 + (k % 8) / 2);
      const Fragments fb = lane_frags(c * 4 + (k % 8) / 2);
      const float av = element(half_of(fa.a[(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k % 2), bf16);
      const float bv = element(half_of(fb.b[k >= 8 ? 1 : 0], k % 2), bf16);
      acc += av * bv;
    }
    out[e] = acc;
  }
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

void cp_async(void* smem, const void* gmem, size_t bytes) {
  check_shared(smem, bytes, "cp.async destination");
  if (reinterpret_cast<uintptr_t>(gmem) % bytes != 0) {
    throw EmulationError("cp.async source not aligned to its size in thread " +
                         std::to_string(self().linear) + " of " + where());
  }
  self().uncommitted.push_back(AsyncCopy{smem, gmem, bytes});
}

void cp_async_commit() {
  Fiber& f = self();
  f.groups.push_back(std::move(f.uncommitted));
  f.uncommitted.clear();
}

void cp_async_wait(int pending) {
  Fiber& f = self();
  while (static_cast<int>(f.groups.size()) > pending) {
    for (const AsyncCopy& c : f.groups.front()) f.waited.push_back(c);
    f.groups.pop_front();
  }
}

unsigned char* dynamic_smem() { return device().smem.data(); }

void set_max_dynamic_smem(const void* kernel, int bytes) { device().smem_limit[kernel] = bytes; }

uint64_t device_calls() { return device_call_count.load(); }
void count_device_call() { ++device_call_count; }

void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem,
              const std::function<void()>& body) {
  Device& d = device();
  const std::lock_guard<std::mutex> lock(d.launch_mutex);
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  auto reject = [&](const std::string& why) {
    d.last_error = cudaErrorInvalidConfiguration;
    throw EmulationError("launch rejected: " + why);
  };
  if (threads == 0 || threads > kMaxThreads || block.z > 64) reject("block size");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535) {
    reject("grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
           std::to_string(grid.z) + ")");
  }
  const auto limit = d.smem_limit.find(kernel);
  const size_t allowed = limit == d.smem_limit.end() ? kDefaultSmemLimit : limit->second;
  if (smem > allowed) {
    reject(std::to_string(smem) + " bytes of dynamic shared memory above the kernel's limit of " +
           std::to_string(allowed));
  }
  ++device_call_count;
  d.threads = static_cast<int>(threads);
  d.fibers.resize(d.threads);
  d.warps.resize((d.threads + 31) / 32);
  d.block_dim = block;
  d.grid_dim = grid;
  d.body = &body;
  d.fiber_error.clear();
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        d.block = uint3{x, y, z};
        d.reverse = ((x + y + z) % 2 == 1) == d.reverse_odd;
        d.smem.assign(std::max<size_t>(smem, 1), 0xff);
        run_block();
      }
    }
  }
}

}  // namespace grpo_emu

// ---- CUDA runtime ----------------------------------------------------------------------------

cudaError_t cudaGetLastError() {
  const cudaError_t e = grpo_emu::device().last_error;
  grpo_emu::device().last_error = cudaSuccess;
  return e;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    default:
      return "unspecified launch failure";
  }
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind,
                            cudaStream_t) {
  if (count > 0 && (dst == nullptr || src == nullptr)) return cudaErrorInvalidValue;
  if (count > 0) std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t count, cudaStream_t) {
  if (count > 0 && dst == nullptr) return cudaErrorInvalidValue;
  if (count > 0) std::memset(dst, value, count);
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttributeEmu(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > grpo_emu::kOptInSmemLimit) {
    return cudaErrorInvalidValue;
  }
  grpo_emu::set_max_dynamic_smem(func, value);
  return cudaSuccess;
}
