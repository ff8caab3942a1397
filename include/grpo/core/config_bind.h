// Typed binding between config::Node trees and plain structs. A struct lists its keys once:
//
//   template <class V> void visit(V& v) { v("lr", lr, config::greater_than(0.0)); v("name", name);
//   }
//
// and config::bind() reads it (types, ranges, enums, unknown keys with a did-you-mean),
// config::to_node() writes it back, and config::list_keys() enumerates its key paths (the
// docs test). Optional `void check(config::Checker&) const` adds cross-field rules.
#pragma once

#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"

namespace grpo::config {

// ---- value checks -------------------------------------------------------------------------
struct AtLeast {
  double bound;
  template <class T>
  bool ok(const T& v) const {
    return static_cast<double>(v) >= bound;
  }
  std::string expected() const;
};
struct AtMost {
  double bound;
  template <class T>
  bool ok(const T& v) const {
    return static_cast<double>(v) <= bound;
  }
  std::string expected() const;
};
struct GreaterThan {
  double bound;
  template <class T>
  bool ok(const T& v) const {
    return static_cast<double>(v) > bound;
  }
  std::string expected() const;
};
struct InRange {
  double lo, hi;
  template <class T>
  bool ok(const T& v) const {
    return static_cast<double>(v) >= lo && static_cast<double>(v) <= hi;
  }
  std::string expected() const;
};
struct NonEmpty {
  template <class T>
  bool ok(const T& v) const {
    return !v.empty();
  }
  std::string expected() const { return "a non-empty value"; }
};
struct OneOf {
  std::vector<std::string> choices;
  bool ok(const std::string& v) const;
  std::string expected() const;
};
inline AtLeast at_least(double b) { return {b}; }
inline AtMost at_most(double b) { return {b}; }
inline GreaterThan greater_than(double b) { return {b}; }
inline InRange in_range(double lo, double hi) { return {lo, hi}; }
inline NonEmpty non_empty() { return {}; }
inline OneOf one_of(std::vector<std::string> c) { return {std::move(c)}; }

[[noreturn]] void fail(const Location& loc, const std::string& path, const std::string& message);
std::string join_path(const std::string& parent, const std::string& key);
// Closest candidate within a small edit distance, or "" when nothing is close.
std::string suggest(const std::string& word, const std::vector<std::string>& candidates);

// ---- trait detection ----------------------------------------------------------------------
class Checker;
namespace detail {
struct Probe {
  template <class T, class... C>
  void operator()(const char*, T&, const C&...) {}
};
template <class T, class = void>
struct has_visit : std::false_type {};
template <class T>
struct has_visit<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<Probe&>()))>>
    : std::true_type {};
template <class E, class = void>
struct has_enum_names : std::false_type {};
template <class E>
struct has_enum_names<E, std::void_t<decltype(enum_names(std::declval<E>()))>> : std::true_type {};
template <class T, class = void>
struct has_check : std::false_type {};
template <class T>
struct has_check<T, std::void_t<decltype(std::declval<const T&>().check(std::declval<Checker&>()))>>
    : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
}  // namespace detail

// Cross-field validation context given to a struct's `check()`.
class Checker {
 public:
  Checker(const Node& node, std::string path) : node_(node), path_(std::move(path)) {}
  // Fails at `key` (its line, or the section's when the key is absent) unless `ok`.
  void require(bool ok, const std::string& key, const std::string& message) const;
  const std::string& path() const { return path_; }

 private:
  const Node& node_;
  std::string path_;
};

template <class T>
void read_value(const Node& node, T& out, const std::string& path);

// Reads a struct's keys from a map node.
class Reader {
 public:
  Reader(const Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  template <class T, class... C>
  void operator()(const char* key, T& value, const C&... checks) {
    known_.emplace_back(key);
    const Node* child = node_.get(key);
    if (child == nullptr || child->kind == Node::Kind::null) return;  // keep the default
    std::string path = join_path(path_, key);
    read_value(*child, value, path);
    (apply(checks, value, *child, path), ...);
  }

  // Unknown keys are errors, with a did-you-mean suggestion.
  void finish() const;

 private:
  template <class Check, class T>
  static void apply(const Check& check, const T& value, const Node& node, const std::string& p) {
    if (!check.ok(value))
      fail(node.loc, p, "got " + node.brief() + ", expected " + check.expected());
  }
  const Node& node_;
  std::string path_;
  std::vector<std::string> known_;
};

bool parse_bool(const Node& node, const std::string& path);
long long parse_int(const Node& node, const std::string& path);
double parse_double(const Node& node, const std::string& path);
void expect_kind(const Node& node, Node::Kind kind, const std::string& path, const char* what);

template <class T>
void read_value(const Node& node, T& out, const std::string& path) {
  if constexpr (std::is_same_v<T, Node>) {
    out = node;
  } else if constexpr (std::is_same_v<T, bool>) {
    out = parse_bool(node, path);
  } else if constexpr (std::is_integral_v<T>) {
    long long v = parse_int(node, path);
    if (v < static_cast<long long>(std::numeric_limits<T>::min()) ||
        static_cast<unsigned long long>(v) >
            static_cast<unsigned long long>(std::numeric_limits<T>::max()))
      fail(node.loc, path, "got " + node.brief() + ", which is out of range for this integer");
    out = static_cast<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    out = static_cast<T>(parse_double(node, path));
  } else if constexpr (std::is_same_v<T, std::string>) {
    expect_kind(node, Node::Kind::scalar, path, "a string");
    out = node.scalar;
  } else if constexpr (std::is_enum_v<T>) {
    static_assert(detail::has_enum_names<T>::value, "declare enum_names(E) for config enums");
    expect_kind(node, Node::Kind::scalar, path, "a string");
    std::vector<std::string> names;
    for (const auto& [value, name] : enum_names(T{})) {
      if (node.scalar == name) {
        out = value;
        return;
      }
      names.push_back(name);
    }
    std::string expected;
    for (const auto& n : names) expected += (expected.empty() ? "" : ", ") + n;
    std::string hint = suggest(node.scalar, names);
    fail(node.loc, path,
         "got " + node.brief() + ", expected one of: " + expected +
             (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  } else if constexpr (detail::is_optional<T>::value) {
    typename T::value_type v{};
    read_value(node, v, path);
    out = std::move(v);
  } else if constexpr (detail::is_vector<T>::value) {
    if (node.kind == Node::Kind::scalar && !std::is_same_v<typename T::value_type, Node>) {
      fail(node.loc, path, "got " + node.brief() + ", expected a list");
    }
    expect_kind(node, Node::Kind::sequence, path, "a list");
    out.clear();
    for (size_t i = 0; i < node.items.size(); ++i) {
      typename T::value_type v{};
      read_value(node.items[i], v, path + "[" + std::to_string(i) + "]");
      out.push_back(std::move(v));
    }
  } else if constexpr (detail::is_string_map<T>::value) {
    expect_kind(node, Node::Kind::map, path, "a map");
    out.clear();
    for (const auto& [k, v] : node.fields) read_value(v, out[k], join_path(path, k));
  } else {
    static_assert(detail::has_visit<T>::value, "config types need a visit() method");
    expect_kind(node, Node::Kind::map, path, "a map of keys");
    Reader reader(node, path);
    out.visit(reader);
    reader.finish();
    if constexpr (detail::has_check<T>::value) {
      Checker checker(node, path);
      out.check(checker);
    }
  }
}

// Fills `out` from `node`; errors name `path` (e.g. "reward.functions[0].options").
template <class T>
void bind(const Node& node, T& out, const std::string& path) {
  if (node.kind == Node::Kind::null) {
    Node empty = Node::make_map(node.loc);
    read_value(empty, out, path);
    return;
  }
  read_value(node, out, path);
}

// ---- writing back ---------------------------------------------------------------------------
std::string format_double(double v);

class Writer;
template <class T>
Node to_node(const T& value);

class Writer {
 public:
  template <class T, class... C>
  void operator()(const char* key, T& value, const C&...) {
    out.fields.emplace_back(key, to_node(value));
  }
  Node out = Node::make_map({});
};

template <class T>
Node to_node(const T& value) {
  Node n;
  if constexpr (std::is_same_v<T, Node>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    n.kind = Node::Kind::scalar;
    n.scalar = value ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    n.kind = Node::Kind::scalar;
    n.scalar = std::to_string(value);
  } else if constexpr (std::is_floating_point_v<T>) {
    n.kind = Node::Kind::scalar;
    n.scalar = format_double(static_cast<double>(value));
  } else if constexpr (std::is_same_v<T, std::string>) {
    n.kind = Node::Kind::scalar;
    n.scalar = value;
  } else if constexpr (std::is_enum_v<T>) {
    n.kind = Node::Kind::scalar;
    for (const auto& [v, name] : enum_names(T{}))
      if (v == value) n.scalar = name;
  } else if constexpr (detail::is_optional<T>::value) {
    if (value) return to_node(*value);
  } else if constexpr (detail::is_vector<T>::value) {
    n.kind = Node::Kind::sequence;
    for (const auto& item : value) n.items.push_back(to_node(item));
  } else if constexpr (detail::is_string_map<T>::value) {
    n.kind = Node::Kind::map;
    for (const auto& [k, v] : value) n.fields.emplace_back(k, to_node(v));
  } else {
    Writer w;
    const_cast<T&>(value).visit(w);
    return w.out;
  }
  return n;
}

// Emits a Node as block-style YAML.
std::string to_yaml(const Node& node);

// ---- key listing (docs) ---------------------------------------------------------------------
class KeyLister {
 public:
  explicit KeyLister(std::string prefix) : prefix_(std::move(prefix)) {}
  template <class T, class... C>
  void operator()(const char* key, T& value, const C&...) {
    add(join_path(prefix_, key), value);
  }
  std::vector<std::string> keys;

 private:
  template <class T>
  void add(const std::string& path, T& value) {
    keys.push_back(path);
    if constexpr (detail::is_vector<T>::value) {
      using Item = typename T::value_type;
      if constexpr (detail::has_visit<Item>::value) {
        Item item{};
        KeyLister inner(path + "[]");
        item.visit(inner);
        keys.insert(keys.end(), inner.keys.begin(), inner.keys.end());
      }
    } else if constexpr (detail::has_visit<T>::value) {
      KeyLister inner(path);
      value.visit(inner);
      keys.insert(keys.end(), inner.keys.begin(), inner.keys.end());
    }
  }
  std::string prefix_;
};

// Every dotted key path of T (lists of structs appear as `key[].field`).
template <class T>
std::vector<std::string> list_keys(const std::string& prefix = "") {
  T value{};
  KeyLister lister(prefix);
  value.visit(lister);
  return lister.keys;
}

}  // namespace grpo::config
