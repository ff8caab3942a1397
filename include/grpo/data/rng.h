// A small, portable random generator (splitmix64) for data shuffling and synthetic tasks. The
// standard distributions are implementation-defined, so the same seed would give different
// datasets with different standard libraries; these draws are the same everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace grpo::data {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // A generator for stream `stream` of `seed` (item i of a task, epoch e of a dataset): items
  // are independent of how many others were drawn before them.
  static Rng derive(uint64_t seed, uint64_t stream);

  uint64_t next();
  // Uniform in [0, n), n > 0, without modulo bias.
  uint64_t below(uint64_t n);
  // Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi);
  // True with probability p.
  bool chance(double p);
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(below(items.size()))];
  }
  template <class T>
  void shuffle(std::vector<T>& items) {  // Fisher-Yates
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  uint64_t state_;
};

}  // namespace grpo::data
