// Host-side helpers on a ProcessGroup: reducing and gathering small vectors of numbers (metrics,
// rewards, token counts), and the start-of-run checks that every rank runs the same config on
// the same parameters.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "grpo/dist/process_group.h"

namespace grpo::dist {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

enum class Reduction { sum, mean, max, min };

// Element i of the result is values[i] reduced over the ranks with ops[i] (mean: the sum over
// size()). At most three all-reduces (sum/mean, max, min), in float64.
std::vector<double> reduce_values(ProcessGroup& group, const std::vector<double>& values,
                                  const std::vector<Reduction>& ops, const std::string& what);
// The sum over ranks of one value.
double sum_value(ProcessGroup& group, double value, const std::string& what);

// Every rank's `values` (the same length on every rank), concatenated in rank order.
std::vector<double> gather_values(ProcessGroup& group, const std::vector<double>& values,
                                  const std::string& what);

// Throws on every rank (a config error) when any rank's hash differs from rank 0's, listing the
// ranks that differ and both hashes.
void check_same_config(ProcessGroup& group, const std::string& config_hash);

// Per-parameter checksums, (P, 2) int64: the wrapping sums of each element's bit pattern and of
// its square, computed on the parameter's device. Exact: equal parameters give equal checksums on
// any hardware, whatever the summation order.
at::Tensor parameter_checksums(const NamedTensors& params);

// Broadcasts rank 0's checksums and compares; throws on every rank when any rank differs,
// naming the first differing parameter and the ranks. `when` says which check this is
// ("start", "step 200").
void check_same_parameters(ProcessGroup& group, const NamedTensors& params,
                           const std::string& when);

}  // namespace grpo::dist
