// YAML -> config::Node conversion (yaml-cpp), extends-merging and dotted overrides.
#include "grpo/core/config_node.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "grpo/core/error.h"

namespace grpo::config {
namespace fs = std::filesystem;

std::string Location::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

Node Node::make_map(Location loc) {
  Node n;
  n.kind = Kind::map;
  n.loc = std::move(loc);
  return n;
}

const Node* Node::get(std::string_view key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return &v;
  return nullptr;
}

Node* Node::get(std::string_view key) {
  return const_cast<Node*>(static_cast<const Node*>(this)->get(key));
}

Node& Node::set(const std::string& key, Node value) {
  if (kind == Kind::null) kind = Kind::map;
  GRPO_CHECK(kind == Kind::map, "cannot set key '", key, "' on a non-map node");
  if (Node* existing = get(key)) return *existing = std::move(value);
  fields.emplace_back(key, std::move(value));
  return fields.back().second;
}

void Node::erase(std::string_view key) {
  fields.erase(
      std::remove_if(fields.begin(), fields.end(), [&](const auto& kv) { return kv.first == key; }),
      fields.end());
}

std::string Node::brief() const {
  switch (kind) {
    case Kind::null:
      return "null";
    case Kind::scalar:
      return scalar.size() > 60 ? "'" + scalar.substr(0, 57) + "...'" : "'" + scalar + "'";
    case Kind::sequence: {
      std::string out = "[";
      for (size_t i = 0; i < items.size() && out.size() < 60; ++i)
        out += (i ? ", " : "") + (items[i].kind == Kind::scalar ? items[i].scalar : "...");
      return out + "]";
    }
    case Kind::map:
      return "a map";
  }
  return "?";
}

namespace {

[[noreturn]] void fail_at(const Location& loc, const std::string& message) {
  throw Error(loc.str() + ": " + message, ErrorKind::config);
}

Node convert(const YAML::Node& y, const std::string& source) {
  Node n;
  n.loc = {source, y.Mark().line + 1, y.Mark().column + 1};
  n.key_loc = n.loc;
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n.kind = Node::Kind::null;
      break;
    case YAML::NodeType::Scalar:
      n.kind = Node::Kind::scalar;
      n.scalar = y.Scalar();
      break;
    case YAML::NodeType::Sequence:
      n.kind = Node::Kind::sequence;
      for (const auto& item : y) n.items.push_back(convert(item, source));
      break;
    case YAML::NodeType::Map:
      n.kind = Node::Kind::map;
      for (const auto& kv : y) {
        Location key_loc{source, kv.first.Mark().line + 1, kv.first.Mark().column + 1};
        if (!kv.first.IsScalar()) fail_at(key_loc, "map keys must be plain strings");
        std::string key = kv.first.Scalar();
        if (n.get(key)) fail_at(key_loc, "duplicate key '" + key + "'");
        Node value = convert(kv.second, source);
        value.key_loc = key_loc;
        n.fields.emplace_back(key, std::move(value));
      }
      break;
  }
  return n;
}

Node load_file_chain(const fs::path& path, std::vector<fs::path>& chain) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
    std::string cycle;
    for (const auto& p : chain) cycle += p.string() + " -> ";
    throw Error("config 'extends' cycle: " + cycle + canonical.string(), ErrorKind::config);
  }
  std::ifstream in(path);
  if (!in) {
    throw Error("cannot read config file '" + path.string() + "'" +
                    (chain.empty() ? "" : " (named by 'extends' in " + chain.back().string() + ")"),
                ErrorKind::config);
  }
  std::stringstream text;
  text << in.rdbuf();
  Node root = parse_yaml(text.str(), path.string());
  if (root.kind == Node::Kind::null) root = Node::make_map({path.string(), 1, 1});
  if (root.kind != Node::Kind::map) fail_at(root.loc, "a config file must be a YAML map");

  const Node* extends = root.get("extends");
  if (!extends) return root;
  std::vector<const Node*> bases;
  if (extends->kind == Node::Kind::scalar) {
    bases.push_back(extends);
  } else if (extends->kind == Node::Kind::sequence) {
    for (const auto& item : extends->items) {
      if (item.kind != Node::Kind::scalar) fail_at(item.loc, "extends: expected a file path");
      bases.push_back(&item);
    }
  } else {
    fail_at(extends->loc, "extends: expected a file path or a list of file paths");
  }
  chain.push_back(canonical);
  Node merged = Node::make_map(root.loc);
  for (const Node* base : bases) {
    fs::path base_path = fs::path(base->scalar);
    if (base_path.is_relative()) base_path = path.parent_path() / base_path;
    if (!fs::exists(base_path)) {
      fail_at(base->loc, "extends: file '" + base_path.string() + "' does not exist");
    }
    merge(merged, load_file_chain(base_path, chain));
  }
  chain.pop_back();
  root.erase("extends");
  merge(merged, root);
  return merged;
}

}  // namespace

Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return convert(YAML::Load(text), source);
  } catch (const YAML::Exception& e) {
    fail_at({source, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg);
  }
}

Node load_file(const std::string& path) {
  std::vector<fs::path> chain;
  return load_file_chain(path, chain);
}

void merge(Node& base, const Node& over) {
  if (base.kind != Node::Kind::map || over.kind != Node::Kind::map) {
    base = over;
    return;
  }
  for (const auto& [key, value] : over.fields) {
    if (Node* existing = base.get(key)) {
      merge(*existing, value);
    } else {
      base.fields.emplace_back(key, value);
    }
  }
}

void apply_override(Node& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  GRPO_CHECK_KIND(usage, eq != std::string::npos && eq > 0, "--set expects key.path=value, got '",
                  assignment, "'");
  std::string key = assignment.substr(0, eq);
  std::string source = "--set " + assignment;
  Node value = parse_yaml(assignment.substr(eq + 1), source);
  value.loc = {source, 0, 0};

  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    GRPO_CHECK_KIND(usage, !part.empty(), "--set '", assignment, "': empty key segment");
    parts.push_back(part);
  }
  Node* node = &root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const std::string& part = parts[i];
    if (node->kind == Node::Kind::sequence) {
      char* end = nullptr;
      unsigned long index = std::strtoul(part.c_str(), &end, 10);
      GRPO_CHECK_KIND(usage, *end == '\0' && index < node->items.size(), "--set '", assignment,
                      "': '", part, "' is not an index of a list of ", node->items.size(),
                      " items");
      if (last) {
        merge(node->items[index], value);
        return;
      }
      node = &node->items[index];
      continue;
    }
    GRPO_CHECK_KIND(usage, node->kind == Node::Kind::map || node->kind == Node::Kind::null,
                    "--set '", assignment, "': '", part, "' is inside a value that is not a map");
    if (last) {
      if (Node* existing = node->get(part)) {
        merge(*existing, value);
      } else {
        node->set(part, value);
      }
      return;
    }
    Node* child = node->get(part);
    if (!child) child = &node->set(part, Node::make_map({source, 0, 0}));
    node = child;
  }
}

Node overrides_map(const std::vector<std::string>& assignments) {
  Node root = Node::make_map({"--set", 0, 0});
  for (const auto& assignment : assignments) apply_override(root, assignment);
  return root;
}

}  // namespace grpo::config
