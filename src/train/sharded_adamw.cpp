// AdamW with its moments sharded over the data-parallel ranks (ZeRO stage 1): flat groups, the
// owned range per rank, the step with its all-gather, and the whole-state checkpoint file.
#include "grpo/train/sharded_adamw.h"

#include <torch/optim/adamw.h>

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/dist/process_group.h"
#include "grpo/torch_compat.h"

namespace grpo::train {
namespace {

using torch::optim::AdamWParamState;

// What this rank owns of one parameter: elements [offset, offset + length) of its flat data, at
// [begin, begin + length) of the flat group.
struct Piece {
  size_t member = 0;  // index into Flat::members
  int64_t offset = 0;
  int64_t begin = 0;
  int64_t length = 0;
  at::Tensor view;             // (length,) a view of the parameter's data: AdamW steps it in place
  const void* data = nullptr;  // where the view points (the parameter must stay there)
};

// The parameters of one weight-decay setting and dtype laid end to end.
struct Flat {
  bool decay = true;
  std::vector<size_t> members;   // indices into the parameters, in order
  std::vector<int64_t> offsets;  // flat start of each member
  int64_t numel = 0;             // N
  int64_t shard = 0;             // S = ceil(N / W): this rank owns [lo, lo + S), clipped to N
  int64_t lo = 0;
  std::vector<Piece> pieces;  // this rank's range, parameter by parameter
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
};

template <class Map>
AdamWParamState* find_state(Map& states, const at::Tensor& param) {
  auto it = states.find(compat::optimizer_state_key<Map>(param));
  return it == states.end() ? nullptr : static_cast<AdamWParamState*>(it->second.get());
}

template <class Map>
void set_state(Map& states, const at::Tensor& param, int64_t step, at::Tensor exp_avg,
               at::Tensor exp_avg_sq) {
  auto state = std::make_unique<AdamWParamState>();
  state->step(step);
  state->exp_avg(std::move(exp_avg));
  state->exp_avg_sq(std::move(exp_avg_sq));
  states[compat::optimizer_state_key<Map>(param)] = std::move(state);
}

// Calls fn(k, begin, offset, length) for each part [begin, begin + length) of the flat range
// [a, b) that lies in member k, starting `offset` elements into that member.
template <class F>
void for_each_piece(const Flat& f, const NamedParameters& params, int64_t a, int64_t b, F&& fn) {
  b = std::min(b, f.numel);
  if (a >= b) return;
  auto k = static_cast<size_t>(std::upper_bound(f.offsets.begin(), f.offsets.end(), a) -
                               f.offsets.begin());
  k = k == 0 ? 0 : k - 1;
  for (; k < f.members.size() && f.offsets[k] < b; ++k) {
    const int64_t size = params[f.members[k]].second.numel();
    const int64_t begin = std::max(a, f.offsets[k]), end = std::min(b, f.offsets[k] + size);
    if (begin < end) fn(k, begin, begin - f.offsets[k], end - begin);
  }
}

}  // namespace

struct ShardedAdamW::State {
  NamedParameters params;
  config::TrainerConfig config;
  dist::ProcessGroup* group = nullptr;
  int rank = 0;
  int world = 1;
  size_t bucket_bytes = 0;
  std::vector<Flat> flats;
  std::unique_ptr<torch::optim::AdamW> adamw;  // over the pieces; null when this rank owns none
  int64_t steps = 0;                           // AdamW steps taken (every piece takes each)
  ShardLayout layout;
  // Rank 0 between gather_for_save() and save(): every parameter's moments on the host.
  bool gathered = false;
  std::vector<at::Tensor> gathered_exp_avg, gathered_exp_avg_sq;

  // The flat 1-D view of parameter i's data (written in place, outside autograd).
  at::Tensor param_flat(size_t i) const { return params[i].second.detach().view(-1); }

  AdamWParamState& piece_state(const Piece& piece) const {
    auto* st = find_state(adamw->state(), piece.view);
    GRPO_CHECK(st != nullptr, "ShardedAdamW: no AdamW state for a piece of ", params[0].first);
    return *st;
  }

  // Elements [a, a + n) of this rank's shard (a relative to lo) as one tensor: `part(piece)`
  // (a tensor of the piece's length) where pieces lie, zeros past N.
  template <class Part>
  at::Tensor shard_range(const Flat& f, int64_t a, int64_t n, Part&& part) const {
    std::vector<at::Tensor> parts;
    int64_t covered = 0;
    for (const auto& piece : f.pieces) {
      const int64_t begin = std::max(a, piece.begin - f.lo);
      const int64_t end = std::min(a + n, piece.begin - f.lo + piece.length);
      if (begin >= end) continue;
      parts.push_back(part(piece).narrow(0, begin - (piece.begin - f.lo), end - begin));
      covered += end - begin;
    }
    if (covered < n) {  // padding after the group's last element
      parts.push_back(
          at::zeros({n - covered}, at::TensorOptions().dtype(f.dtype).device(f.device)));
    }
    return parts.size() == 1 ? parts[0].contiguous() : at::cat(parts);
  }

  // Elements per collective: `bucket_bytes` over what each call moves.
  int64_t chunk_elements(const Flat& f, int parts) const {
    const auto bytes = static_cast<int64_t>(c10::elementSize(f.dtype)) * parts;
    return std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes) / bytes);
  }

  at::Tensor on_group(const at::Tensor& t) const { return t.to(group->device()).contiguous(); }

  // Every rank's shard of `part` (as shard_range reads it) written into `target(parameter
  // index)` (a flat tensor of that parameter's size): on every rank for the ranges other ranks
  // own, or on rank 0 for all of them when `to_root`.
  template <class Part, class Target>
  void gather(Part&& part, Target&& target, bool to_root, const char* what) {
    for (const auto& f : flats) {
      if (world == 1) {
        if (!to_root) continue;  // the pieces are the parameters
        for (const auto& piece : f.pieces) {
          target(f.members[piece.member]).narrow(0, piece.offset, piece.length).copy_(part(piece));
        }
        continue;
      }
      const int64_t chunk = chunk_elements(f, world);
      for (int64_t c = 0; c < f.shard; c += chunk) {
        const int64_t n = std::min(chunk, f.shard - c);
        const at::Tensor rows = group->all_gather(on_group(shard_range(f, c, n, part)), what);
        if (to_root && rank != 0) continue;
        for (int r = 0; r < world; ++r) {
          if (!to_root && r == rank) continue;  // already in place
          const int64_t a = r * f.shard + c;
          const at::Tensor row = rows[r];
          for_each_piece(f, params, a, a + n, [&](size_t k, int64_t begin, int64_t off, int64_t m) {
            target(f.members[k]).narrow(0, off, m).copy_(row.narrow(0, begin - a, m));
          });
        }
      }
    }
  }

  // The pieces must still view the parameters' memory (nothing may replace a parameter's
  // tensor after the optimizer is built).
  void check_pieces() const {
    for (const auto& f : flats) {
      for (const auto& piece : f.pieces) {
        const auto& [name, p] = params[f.members[piece.member]];
        GRPO_CHECK(p.data_ptr() == nullptr ||
                       static_cast<const char*>(p.data_ptr()) +
                               piece.offset * static_cast<int64_t>(p.element_size()) ==
                           piece.data,
                   "ShardedAdamW: parameter ", name, " was replaced after the optimizer was built");
      }
    }
  }

  // An AdamW (make_adamw's groups and options) over zero-size stand-ins for the parameters: the
  // layout of the checkpoint file, without the parameters' memory.
  std::pair<NamedParameters, std::unique_ptr<torch::optim::AdamW>> stand_in() const {
    NamedParameters stand_ins;
    for (const auto& [name, p] : params) {
      stand_ins.emplace_back(name, at::empty({0}, at::TensorOptions().dtype(p.scalar_type())));
    }
    auto adamw = make_adamw(stand_ins, config);
    return {std::move(stand_ins), std::move(adamw)};
  }
};

ShardedAdamW::ShardedAdamW(const NamedParameters& params, const config::TrainerConfig& config,
                           dist::ProcessGroup* group, size_t bucket_bytes)
    : state_(std::make_unique<State>()) {
  auto& s = *state_;
  GRPO_CHECK(!params.empty(), "ShardedAdamW: no trainable parameters");
  s.params = params;
  s.config = config;
  s.group = group;
  s.rank = group ? group->rank() : 0;
  s.world = group ? group->size() : 1;
  s.bucket_bytes = bucket_bytes;
  // make_adamw's order: the decaying parameters, then the others; within each, one flat group
  // per dtype in order of first appearance.
  for (const bool decay : {true, false}) {
    const auto first = static_cast<std::ptrdiff_t>(s.flats.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& [name, p] = params[i];
      if (uses_weight_decay(name) != decay) continue;
      GRPO_CHECK(p.is_contiguous(), "ShardedAdamW: parameter ", name, " is not contiguous");
      auto it = std::find_if(s.flats.begin() + first, s.flats.end(),
                             [&](const Flat& f) { return f.dtype == p.scalar_type(); });
      if (it == s.flats.end()) {
        s.flats.emplace_back();
        s.flats.back().decay = decay;
        s.flats.back().dtype = p.scalar_type();
        s.flats.back().device = p.device();
        it = s.flats.end() - 1;
      }
      GRPO_CHECK(it->device == p.device(), "ShardedAdamW: parameters on more than one device (",
                 name, " is on ", p.device().str(), ")");
      it->members.push_back(i);
      it->offsets.push_back(it->numel);
      it->numel += p.numel();
    }
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto& f : s.flats) {
    f.shard = (f.numel + s.world - 1) / s.world;
    f.lo = s.rank * f.shard;
    for_each_piece(
        f, s.params, f.lo, f.lo + f.shard, [&](size_t k, int64_t begin, int64_t off, int64_t n) {
          Piece piece{k, off, begin, n, s.param_flat(f.members[k]).narrow(0, off, n), nullptr};
          piece.data = piece.view.data_ptr();
          f.pieces.push_back(std::move(piece));
          s.layout.owned_elements += n;
        });
    s.layout.group_elements += f.numel;
    if (f.pieces.empty()) continue;
    std::vector<at::Tensor> views;
    for (const auto& piece : f.pieces) views.push_back(piece.view);
    groups.emplace_back(views, adamw_options(config, f.decay ? config.weight_decay : 0.0));
  }
  s.layout.groups = static_cast<int64_t>(s.flats.size());
  if (!groups.empty()) s.adamw = std::make_unique<torch::optim::AdamW>(groups);
}

ShardedAdamW::~ShardedAdamW() = default;

const ShardLayout& ShardedAdamW::layout() const { return state_->layout; }

void ShardedAdamW::set_learning_rate(double lr) {
  if (state_->adamw) train::set_learning_rate(*state_->adamw, lr);
}

void ShardedAdamW::zero_grad() {
  std::vector<at::Tensor> params;
  for (const auto& item : state_->params) params.push_back(item.second);
  zero_gradients(params);
}

void ShardedAdamW::step() {
  auto& s = *state_;
  at::NoGradGuard no_grad;
  s.check_pieces();
  // Each piece's gradient is a view of its parameter's (or zeros where there is none).
  for (auto& f : s.flats) {
    for (auto& piece : f.pieces) {
      const auto& g = s.params[f.members[piece.member]].second.grad();
      piece.view.mutable_grad() = g.defined() ? g.reshape(-1).narrow(0, piece.offset, piece.length)
                                              : at::zeros_like(piece.view);
    }
  }
  if (s.adamw) s.adamw->step();
  for (auto& f : s.flats) {
    for (auto& piece : f.pieces) piece.view.mutable_grad().reset();
  }
  ++s.steps;
  s.gather([](const Piece& piece) { return piece.view; }, [&](size_t i) { return s.param_flat(i); },
           false, "optimizer shard all-gather");
}

void ShardedAdamW::gather_for_save() {
  auto& s = *state_;
  at::NoGradGuard no_grad;
  s.gathered = true;
  s.gathered_exp_avg.clear();
  s.gathered_exp_avg_sq.clear();
  if (s.steps == 0) return;  // no step taken yet: an empty state, as AdamW saves it
  if (s.rank == 0) {
    for (const auto& item : s.params) {
      const auto& p = item.second;
      s.gathered_exp_avg.push_back(at::zeros(p.sizes(), p.options().device(at::kCPU)));
      s.gathered_exp_avg_sq.push_back(at::zeros(p.sizes(), p.options().device(at::kCPU)));
    }
  }
  s.gather([&](const Piece& piece) { return s.piece_state(piece).exp_avg(); },
           [&](size_t i) { return s.gathered_exp_avg[i].view(-1); }, true,
           "optimizer state gather");
  s.gather([&](const Piece& piece) { return s.piece_state(piece).exp_avg_sq(); },
           [&](size_t i) { return s.gathered_exp_avg_sq[i].view(-1); }, true,
           "optimizer state gather");
}

void ShardedAdamW::save(const std::string& path) {
  auto& s = *state_;
  GRPO_CHECK(s.gathered && s.rank == 0,
             "ShardedAdamW::save: call gather_for_save() on every rank first, and save on rank 0");
  auto [stand_ins, adamw] = s.stand_in();
  if (!s.gathered_exp_avg.empty()) {
    auto& states = adamw->state();
    for (size_t i = 0; i < stand_ins.size(); ++i) {
      set_state(states, stand_ins[i].second, s.steps, s.gathered_exp_avg[i],
                s.gathered_exp_avg_sq[i]);
    }
  }
  save_optimizer(*adamw, path);
  s.gathered = false;
  s.gathered_exp_avg.clear();
  s.gathered_exp_avg_sq.clear();
}

void ShardedAdamW::load(const std::string& path) {
  auto& s = *state_;
  at::NoGradGuard no_grad;
  // Rank 0 reads the file and checks it against the parameters; header = {ok, has state, step}.
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
  at::Tensor header = at::zeros({3}, at::kLong);
  std::exception_ptr failure;
  if (s.rank == 0) {
    try {
      auto [stand_ins, adamw] = s.stand_in();
      load_optimizer(*adamw, path);
      auto& states = adamw->state();
      int64_t present = 0, step = 0;
      for (size_t i = 0; i < stand_ins.size(); ++i) {
        const auto* st = find_state(states, stand_ins[i].second);
        if (!st) continue;
        ++present;
        step = st->step();
        const auto& [name, p] = s.params[i];
        for (const auto& m : {st->exp_avg(), st->exp_avg_sq()}) {
          GRPO_CHECK(m.defined() && m.sizes() == p.sizes(), "optimizer state ", path, ": ", name,
                     "'s moments have shape ", m.defined() ? m.sizes() : at::IntArrayRef{},
                     " but the parameter has ", p.sizes());
        }
        exp_avg.push_back(st->exp_avg().to(p.scalar_type()).contiguous());
        exp_avg_sq.push_back(st->exp_avg_sq().to(p.scalar_type()).contiguous());
      }
      GRPO_CHECK(present == 0 || present == static_cast<int64_t>(stand_ins.size()),
                 "optimizer state ", path, " holds moments for ", present, " of ", stand_ins.size(),
                 " parameters");
      header = at::tensor({int64_t{1}, present > 0 ? int64_t{1} : int64_t{0}, step}, at::kLong);
    } catch (...) {
      failure = std::current_exception();  // after the header, so no rank waits on rank 0
    }
  }
  if (s.world > 1) {
    auto h = s.on_group(header);
    s.group->broadcast(h, 0, "optimizer state header");
    header = h.cpu();
  }
  if (failure) std::rethrow_exception(failure);
  GRPO_CHECK(header[0].item<int64_t>() == 1, "rank 0 could not read the optimizer state ", path,
             " (its log names the reason)");
  s.steps = header[1].item<int64_t>() == 0 ? 0 : header[2].item<int64_t>();
  if (s.adamw) s.adamw->state().clear();
  if (s.steps == 0) return;
  // Each flat range of the whole moments goes from rank 0 to every rank, which keeps its pieces.
  for (const auto& f : s.flats) {
    std::vector<at::Tensor> mine[2];
    for (int m = 0; m < 2; ++m) {
      const auto& whole = m == 0 ? exp_avg : exp_avg_sq;
      for (const auto& piece : f.pieces) mine[m].push_back(at::zeros_like(piece.view));
      const int64_t chunk = s.chunk_elements(f, 1);
      for (int64_t a = 0; a < f.numel; a += chunk) {
        const int64_t n = std::min(chunk, f.numel - a);
        at::Tensor buffer = at::empty({n}, at::TensorOptions().dtype(f.dtype));
        if (s.rank == 0) {
          for_each_piece(f, s.params, a, a + n,
                         [&](size_t k, int64_t begin, int64_t off, int64_t len) {
                           buffer.narrow(0, begin - a, len)
                               .copy_(whole[f.members[k]].view(-1).narrow(0, off, len));
                         });
        }
        if (s.world > 1) {
          buffer = s.on_group(buffer);
          s.group->broadcast(buffer, 0, "optimizer state broadcast");
        }
        for (size_t j = 0; j < f.pieces.size(); ++j) {
          const auto& piece = f.pieces[j];
          const int64_t begin = std::max(a, piece.begin);
          const int64_t end = std::min(a + n, piece.begin + piece.length);
          if (begin < end) {
            mine[m][j]
                .narrow(0, begin - piece.begin, end - begin)
                .copy_(buffer.narrow(0, begin - a, end - begin));
          }
        }
      }
    }
    for (size_t j = 0; j < f.pieces.size(); ++j) {
      set_state(s.adamw->state(), f.pieces[j].view, s.steps, mine[0][j], mine[1][j]);
    }
  }
}

int64_t ShardedAdamW::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& f : state_->flats) {
    for (const auto& piece : f.pieces) bytes += 2 * piece.length * piece.view.element_size();
  }
  return bytes;
}

}  // namespace grpo::train
