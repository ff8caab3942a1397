// Byte-pair merging: a merge-rank table keyed by the pair of ids, and the merge loop that turns
// one pre-token's initial symbols into vocabulary ids (lowest rank first, leftmost on ties).
#pragma once

#include <cstdint>
#include <vector>

namespace grpo::text {

class BpeMerges {
 public:
  struct Merge {
    int32_t rank = -1;    // -1: no such merge
    int32_t merged = -1;  // id of the merged token
  };

  // Merges are ranked in the order they are added. A repeated pair keeps its first rank.
  void add(int32_t left, int32_t right, int32_t merged);
  std::size_t size() const { return count_; }

  Merge find(int32_t left, int32_t right) const {
    if (slots_.empty()) return {};
    const uint64_t key = pack(left, right);
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.merge.rank < 0) return {};
      if (s.key == key) return s.merge;
    }
  }

  // Replaces `ids` (a pre-token's initial symbols) by the result of every applicable merge.
  void apply(std::vector<int32_t>& ids) const;

 private:
  struct Slot {
    uint64_t key = 0;
    Merge merge;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::size_t slot_of(uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow();
  void apply_quadratic(std::vector<int32_t>& ids) const;
  void apply_heap(std::vector<int32_t>& ids) const;

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t count_ = 0;
};

}  // namespace grpo::text
