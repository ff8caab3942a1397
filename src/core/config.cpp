// Loading the run configuration: file (+ extends) -> overrides -> typed structs -> validation.
#include "grpo/core/config.h"

#include <cstdio>

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

}  // namespace grpo::config
