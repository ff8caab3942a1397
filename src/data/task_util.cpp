// Random expression trees and solution prose for the task generators; see task_util.h.
#include "task_util.h"

#include <algorithm>
#include <cstddef>

namespace grpo::data::detail {

std::optional<ExprTree> random_tree(const std::vector<int64_t>& leaves, const std::string& ops,
                                    Rng& rng, const Accept& accept) {
  ExprTree tree;
  std::vector<int> pool;
  for (int64_t x : leaves) {
    ExprTree::Node n;
    n.leaf = x;
    n.value = Rational{x, 1};
    tree.nodes.push_back(n);
    pool.push_back(static_cast<int>(tree.nodes.size()) - 1);
  }
  while (pool.size() > 1) {
    bool joined = false;
    for (int attempt = 0; attempt < 32 && !joined; ++attempt) {
      const size_t i = rng.below(pool.size());
      size_t j = rng.below(pool.size() - 1);
      if (j >= i) ++j;
      const char op = ops[rng.below(ops.size())];
      const Rational& a = tree.nodes[static_cast<size_t>(pool[i])].value;
      const Rational& b = tree.nodes[static_cast<size_t>(pool[j])].value;
      auto r = apply(op, a, b);
      if (!r || !accept(op, a, b, *r)) continue;
      ExprTree::Node n;
      n.op = op;
      n.left = pool[i];
      n.right = pool[j];
      n.value = *r;
      tree.nodes.push_back(n);
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
      pool.push_back(static_cast<int>(tree.nodes.size()) - 1);
      joined = true;
    }
    if (!joined) return std::nullopt;
  }
  tree.root = pool.front();
  return tree;
}

std::optional<ExprTree> chain_tree(const std::vector<int64_t>& leaves, const std::string& ops,
                                   Rng& rng, const Accept& accept) {
  ExprTree tree;
  for (size_t k = 0; k < leaves.size(); ++k) {
    ExprTree::Node leaf;
    leaf.leaf = leaves[k];
    leaf.value = Rational{leaves[k], 1};
    tree.nodes.push_back(leaf);
    const int right = static_cast<int>(tree.nodes.size()) - 1;
    if (k == 0) {
      tree.root = right;
      continue;
    }
    std::string allowed;
    const Rational& a = tree.nodes[static_cast<size_t>(tree.root)].value;
    for (char op : ops) {
      auto r = apply(op, a, leaf.value);
      if (r && accept(op, a, leaf.value, *r)) allowed += op;
    }
    if (allowed.empty()) return std::nullopt;
    ExprTree::Node n;
    n.op = allowed[rng.below(allowed.size())];
    n.left = tree.root;
    n.right = right;
    n.value = *apply(n.op, a, leaf.value);
    tree.nodes.push_back(n);
    tree.root = static_cast<int>(tree.nodes.size()) - 1;
  }
  return tree;
}

std::string list_words(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::vector<std::string> to_strings(const std::vector<int64_t>& v) {
  std::vector<std::string> out;
  for (int64_t x : v) out.push_back(std::to_string(x));
  return out;
}

std::string narrate_steps(const std::vector<std::string>& steps, int verbosity) {
  std::string out;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!out.empty()) out += " ";
    if (verbosity == 0 || steps.size() == 1) {
      out += steps[i] + ".";
    } else if (i == 0) {
      out += "First, " + steps[i] + ".";
    } else if (i + 1 == steps.size()) {
      out += "Finally, " + steps[i] + ".";
    } else {
      out += "Then " + steps[i] + ".";
    }
  }
  return out;
}

bool draw_direct(const SolutionStyle& style, Rng& rng) {
  return style.direct_rate > 0 && rng.chance(style.direct_rate);
}

std::string format_response(const std::string& thinking, const std::string& answer) {
  return "<think> " + thinking + " </think> <answer> " + answer + " </answer>";
}

}  // namespace grpo::data::detail
