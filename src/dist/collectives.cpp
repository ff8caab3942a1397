// Reductions of host values across ranks and the config / parameter agreement checks.
#include "grpo/dist/collectives.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "grpo/core/error.h"

namespace grpo::dist {
namespace {

at::Tensor to_group(ProcessGroup& group, const std::vector<double>& values) {
  auto host = at::tensor(values, at::TensorOptions().dtype(at::kDouble));
  return host.to(group.device()).contiguous();
}

std::vector<double> to_host(const at::Tensor& tensor) {
  auto host = tensor.to(at::kCPU, at::kDouble).contiguous();
  const double* p = host.data_ptr<double>();
  return std::vector<double>(p, p + host.numel());
}

// The wrapping int64 sums of a tensor's bit pattern (and of its square, or its high halves for
// 8-byte types): exact, so independent of how the device orders the summation.
at::Tensor bit_checksum(const at::Tensor& param) {
  auto flat = param.detach().contiguous().view(-1);
  at::Tensor bits;
  switch (flat.element_size()) {
    case 1:
      bits = flat.view(at::kByte).to(at::kLong);
      break;
    case 2:
      bits = flat.view(at::kShort).to(at::kLong);
      break;
    case 4:
      bits = flat.view(at::kInt).to(at::kLong);
      break;
    case 8: {
      auto whole = flat.view(at::kLong);
      auto low = at::bitwise_and(whole, at::Scalar(static_cast<int64_t>(0xFFFFFFFF)));
      auto high = at::bitwise_right_shift(whole, at::Scalar(static_cast<int64_t>(32)));
      return at::stack({low.sum(), high.sum()});
    }
    default:
      GRPO_FAIL("parameter checksum: unsupported element size ", flat.element_size());
  }
  return at::stack({bits.sum(), (bits * bits).sum()});
}

std::string join_ranks(const std::vector<int>& ranks) {
  std::ostringstream out;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

}  // namespace

std::vector<double> reduce_values(ProcessGroup& group, const std::vector<double>& values,
                                  const std::vector<Reduction>& ops, const std::string& what) {
  GRPO_CHECK(values.size() == ops.size(), "reduce_values: ", values.size(), " values but ",
             ops.size(), " reductions");
  std::vector<double> out = values;
  struct Pass {
    ReduceOp op;
    bool (*takes)(Reduction);
  };
  const Pass passes[] = {
      {ReduceOp::sum, [](Reduction r) { return r == Reduction::sum || r == Reduction::mean; }},
      {ReduceOp::max, [](Reduction r) { return r == Reduction::max; }},
      {ReduceOp::min, [](Reduction r) { return r == Reduction::min; }},
  };
  for (const auto& pass : passes) {
    std::vector<size_t> index;
    std::vector<double> part;
    for (size_t i = 0; i < values.size(); ++i) {
      if (pass.takes(ops[i])) {
        index.push_back(i);
        part.push_back(values[i]);
      }
    }
    if (index.empty()) continue;
    auto tensor = to_group(group, part);
    group.all_reduce(tensor, pass.op, what);
    const auto reduced = to_host(tensor);
    for (size_t k = 0; k < index.size(); ++k) {
      out[index[k]] = reduced[k];
      if (ops[index[k]] == Reduction::mean) out[index[k]] /= group.size();
    }
  }
  return out;
}

double sum_value(ProcessGroup& group, double value, const std::string& what) {
  return reduce_values(group, {value}, {Reduction::sum}, what)[0];
}

std::vector<double> gather_values(ProcessGroup& group, const std::vector<double>& values,
                                  const std::string& what) {
  return to_host(group.all_gather(to_group(group, values), what));
}

void check_same_config(ProcessGroup& group, const std::string& config_hash) {
  constexpr size_t kWidth = 64;
  GRPO_CHECK(config_hash.size() <= kWidth, "config hash longer than ", kWidth, " characters");
  auto bytes = at::zeros({static_cast<int64_t>(kWidth)}, at::kByte);
  std::memcpy(bytes.data_ptr<uint8_t>(), config_hash.data(), config_hash.size());
  auto all = group.all_gather(bytes.to(group.device()), "config hash check").cpu().contiguous();
  std::vector<std::string> hashes;
  for (int r = 0; r < group.size(); ++r) {
    const auto* p = all[r].data_ptr<uint8_t>();
    hashes.emplace_back(reinterpret_cast<const char*>(p),
                        strnlen(reinterpret_cast<const char*>(p), kWidth));
  }
  std::vector<int> differ;
  for (int r = 1; r < group.size(); ++r) {
    if (hashes[static_cast<size_t>(r)] != hashes[0]) differ.push_back(r);
  }
  GRPO_CHECK_KIND(config, differ.empty(), "the ranks run different configs: rank(s) ",
                  join_ranks(differ), " have config hash ",
                  hashes[static_cast<size_t>(differ.empty() ? 0 : differ[0])], ", rank 0 has ",
                  hashes[0], "; start every rank with the same config file and --set overrides");
}

at::Tensor parameter_checksums(const NamedTensors& params) {
  std::vector<at::Tensor> rows;
  rows.reserve(params.size());
  for (const auto& item : params) rows.push_back(bit_checksum(item.second).cpu());
  if (rows.empty()) return at::zeros({0, 2}, at::kLong);
  return at::stack(rows);
}

void check_same_parameters(ProcessGroup& group, const NamedTensors& params,
                           const std::string& when) {
  const std::string what = "parameter check (" + when + ")";
  const auto counts = gather_values(group, {static_cast<double>(params.size())}, what);
  for (int r = 1; r < group.size(); ++r) {
    GRPO_CHECK(counts[static_cast<size_t>(r)] == counts[0], "parameter check (", when, "): rank ",
               r, " has ", counts[static_cast<size_t>(r)], " parameters, rank 0 has ", counts[0]);
  }
  const auto local = parameter_checksums(params).to(group.device());  // (P, 2) int64
  auto reference = local.clone();
  group.broadcast(reference, 0, what);
  const int64_t n = static_cast<int64_t>(params.size());
  int64_t first = n;  // the first parameter that differs from rank 0's, n when none
  if (n > 0) {
    const auto differs = (local != reference).any(1).cpu();  // (P,) bool
    const auto* d = differs.data_ptr<bool>();
    for (int64_t i = 0; i < n && first == n; ++i) {
      if (d[i]) first = i;
    }
  }
  const auto firsts = gather_values(group, {static_cast<double>(first)}, what);
  std::vector<int> differ;
  int64_t earliest = n;
  for (int r = 1; r < group.size(); ++r) {
    const auto f = static_cast<int64_t>(firsts[static_cast<size_t>(r)]);
    if (f < n) {
      differ.push_back(r);
      earliest = std::min(earliest, f);
    }
  }
  GRPO_CHECK(differ.empty(), "parameters differ between ranks (", when,
             "): ", params[static_cast<size_t>(std::min(earliest, n - 1))].first,
             " (and possibly more) on rank(s) ", join_ranks(differ),
             " differs from rank 0. Every rank must load the same weights (model.path) or build "
             "them from the same model.seed, and apply the same updates");
}

}  // namespace grpo::dist
