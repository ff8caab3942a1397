// The BPE merge loop. Short pre-tokens (almost all of them) use a plain scan for the best pair;
// long ones (a run of CJK letters, a long number) use a heap over a linked list of symbols so
// that they stay O(n log n). Both apply the lowest-ranked pair first, leftmost on ties, which
// is the order Hugging Face tokenizers uses.
#include "bpe.h"

#include <queue>

namespace grpo::text {

void BpeMerges::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  const std::size_t capacity = old.empty() ? 1024 : old.size() * 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  for (const Slot& s : old) {
    if (s.merge.rank < 0) continue;
    std::size_t i = slot_of(s.key);
    while (slots_[i].merge.rank >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void BpeMerges::add(int32_t left, int32_t right, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = pack(left, right);
  std::size_t i = slot_of(key);
  while (slots_[i].merge.rank >= 0) {
    if (slots_[i].key == key) return;
    i = (i + 1) & mask_;
  }
  slots_[i] = Slot{key, Merge{static_cast<int32_t>(count_), merged}};
  ++count_;
}

void BpeMerges::apply(std::vector<int32_t>& ids) const {
  if (ids.size() < 2) return;
  if (ids.size() <= 48) {
    apply_quadratic(ids);
  } else {
    apply_heap(ids);
  }
}

void BpeMerges::apply_quadratic(std::vector<int32_t>& ids) const {
  std::size_t n = ids.size();
  // ranks[i]: the merge of (ids[i], ids[i+1]); recomputed only next to a merge.
  Merge pairs[48];
  for (std::size_t i = 0; i + 1 < n; ++i) pairs[i] = find(ids[i], ids[i + 1]);
  while (n > 1) {
    std::size_t best = n;
    int32_t best_rank = INT32_MAX;
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (pairs[i].rank >= 0 && pairs[i].rank < best_rank) {
        best_rank = pairs[i].rank;
        best = i;
      }
    }
    if (best == n) break;
    ids[best] = pairs[best].merged;
    for (std::size_t i = best + 1; i + 1 < n; ++i) {
      ids[i] = ids[i + 1];
      pairs[i] = pairs[i + 1];
    }
    --n;
    if (best > 0) pairs[best - 1] = find(ids[best - 1], ids[best]);
    if (best + 1 < n) pairs[best] = find(ids[best], ids[best + 1]);
  }
  ids.resize(n);
}

void BpeMerges::apply_heap(std::vector<int32_t>& ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  // (rank, left position): smallest rank first, then leftmost.
  using Entry = std::pair<int32_t, int32_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (int32_t i = 0; i + 1 < n; ++i) {
    const Merge m = find(ids[i], ids[i + 1]);
    if (m.rank >= 0) heap.push({m.rank, i});
  }
  std::vector<bool> dead(n, false);
  while (!heap.empty()) {
    const auto [rank, pos] = heap.top();
    heap.pop();
    // Stale entries: the left symbol was merged away or its right neighbour changed.
    if (dead[pos] || next[pos] < 0) continue;
    const int32_t right = next[pos];
    const Merge m = find(ids[pos], ids[right]);
    if (m.rank != rank) continue;
    ids[pos] = m.merged;
    dead[right] = true;
    next[pos] = next[right];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    if (prev[pos] >= 0) {
      const Merge left = find(ids[prev[pos]], ids[pos]);
      if (left.rank >= 0) heap.push({left.rank, prev[pos]});
    }
    if (next[pos] >= 0) {
      const Merge after = find(ids[pos], ids[next[pos]]);
      if (after.rank >= 0) heap.push({after.rank, pos});
    }
  }
  int32_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) ids[out++] = ids[i];
  ids.resize(out);
}

}  // namespace grpo::text
