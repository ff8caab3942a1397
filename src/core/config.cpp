// Loading the run configuration: file (+ extends) -> overrides -> typed structs -> validation.
#include "grpo/core/config.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "grpo/core/config/eval_suite.h"

namespace grpo::config {
namespace {

LoadedConfig finish(Node tree, const std::vector<std::string>& overrides) {
  for (const auto& assignment : overrides) apply_override(tree, assignment);
  LoadedConfig loaded;
  bind(tree, loaded.config, "");
  loaded.tree = std::move(tree);
  return loaded;
}

}  // namespace

LoadedConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return finish(load_file(path), overrides);
}

LoadedConfig parse_config(const std::string& yaml, const std::string& source,
                          const std::vector<std::string>& overrides) {
  Node tree = parse_yaml(yaml, source);
  if (tree.kind == Node::Kind::null) tree = Node::make_map({source, 1, 1});
  if (tree.kind != Node::Kind::map) fail(tree.loc, "config", "a config must be a YAML map");
  return finish(std::move(tree), overrides);
}

std::string to_yaml(const Config& config) { return to_yaml(to_node(config)); }

void EvalSuiteConfig::check(Checker& c) const {
  c.require(!benchmarks.empty(), "benchmarks", "a suite needs at least one benchmark");
  std::set<std::string> names;
  for (const auto& b : benchmarks) {
    c.require(names.insert(b.name).second, "benchmarks",
              "two benchmarks are named '" + b.name + "' (names key the figures)");
    c.require(b.name.find_first_of("/\\") == std::string::npos && b.name != "." && b.name != "..",
              "benchmarks", "name '" + b.name + "' must not be a path (it names a file)");
  }
}

std::string EvalSuiteConfig::path_of(const SuiteBenchmark& b,
                                     const std::string& root_override) const {
  const std::string& base = root_override.empty() ? root : root_override;
  const std::filesystem::path file(b.file);
  return file.is_absolute() || base.empty() ? b.file
                                            : (std::filesystem::path(base) / file).string();
}

EvalSuiteConfig load_eval_suite(const std::string& path) {
  EvalSuiteConfig suite;
  bind(load_file(path), suite, "");
  return suite;
}

std::string config_hash(const Config& config) {
  // FNV-1a over the canonical YAML: stable across runs, builds and ranks.
  std::string text = to_yaml(config);
  unsigned long long h = 1469598103934665603ULL;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", h);
  return buf;
}

namespace {

std::string shown(const Node* n) {
  if (!n) return "(absent)";
  return n->kind == Node::Kind::scalar && n->scalar.size() <= 60 ? n->scalar : n->brief();
}

void diff(const std::string& key, const Node* before, const Node* after,
          std::vector<ConfigChange>& out) {
  const auto join = [&](const std::string& sub) { return key.empty() ? sub : key + "." + sub; };
  if (before && after && before->kind == Node::Kind::map && after->kind == Node::Kind::map) {
    for (const auto& [name, value] : after->fields)
      diff(join(name), before->get(name), &value, out);
    for (const auto& [name, value] : before->fields) {
      if (!after->get(name)) diff(join(name), &value, nullptr, out);
    }
    return;
  }
  if (before && after && before->kind == Node::Kind::sequence &&
      after->kind == Node::Kind::sequence && before->items.size() == after->items.size()) {
    for (size_t i = 0; i < after->items.size(); ++i) {
      diff(key + "[" + std::to_string(i) + "]", &before->items[i], &after->items[i], out);
    }
    return;
  }
  // Maps and same-length lists were compared above; what is left is equal only as two nulls or
  // two equal scalars.
  const bool same = before && after && before->kind == after->kind &&
                    (before->kind == Node::Kind::null ||
                     (before->kind == Node::Kind::scalar && before->scalar == after->scalar));
  if (!same) out.push_back({key, shown(before), shown(after)});
}

}  // namespace

std::vector<ConfigChange> config_changes(const Config& before, const Config& after) {
  const Node a = to_node(before);
  const Node b = to_node(after);
  std::vector<ConfigChange> out;
  diff("", &a, &b, out);
  return out;
}

}  // namespace grpo::config
