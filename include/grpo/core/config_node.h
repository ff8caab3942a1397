// A parsed YAML document that remembers where every value was written (file:line:column), so
// config errors can point at the offending line after `extends:` merges and `--set` overrides.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace grpo::config {

struct Location {
  std::string file;  // a path, or "--set key=value" for overrides
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based
  std::string str() const;
};

class Node {
 public:
  enum class Kind { null, scalar, sequence, map };

  Kind kind = Kind::null;
  std::string scalar;                                // Kind::scalar
  std::vector<std::pair<std::string, Node>> fields;  // Kind::map, in file order
  std::vector<Node> items;                           // Kind::sequence
  Location loc;                                      // where this value was written
  Location key_loc;  // where its key was written, for map entries (else = loc)

  static Node make_map(Location loc);

  const Node* get(std::string_view key) const;
  Node* get(std::string_view key);
  // Inserts or replaces `key` (this node becomes a map if it was null).
  Node& set(const std::string& key, Node value);
  void erase(std::string_view key);
  // Short rendering of the value for error messages: `-3`, `[1, 2]`, `{...}`.
  std::string brief() const;
};

// Parses YAML text; `source` names it in errors. Throws grpo::Error (config) on syntax errors.
Node parse_yaml(const std::string& text, const std::string& source);

// Loads a config file, resolving `extends:` (a path or list of paths, relative to the file that
// names them) by deep-merging the file over its bases. Cycles and missing files are errors.
Node load_file(const std::string& path);

// Deep merge: maps merge key by key, anything else in `over` replaces what `base` had.
void merge(Node& base, const Node& over);

// Applies one `--set a.b.c=value` override (value parsed as YAML, so lists and maps work; a
// numeric segment indexes a sequence). Throws grpo::Error (usage) when malformed.
void apply_override(Node& root, const std::string& assignment);

// A map of the `--set` assignments alone (located at "--set" in errors), for options that are
// given only on the command line (e.g. `grpo data make`'s task knobs).
Node overrides_map(const std::vector<std::string>& assignments);

}  // namespace grpo::config
