// Non-template parts of the config binder: scalar parsing, error text, suggestions, YAML output.
#include "grpo/core/config_bind.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace grpo::config {
namespace {

std::string number(double v) { return format_double(v); }

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

void emit(YAML::Emitter& out, const Node& node) {
  switch (node.kind) {
    case Node::Kind::null:
      out << YAML::Null;
      break;
    case Node::Kind::scalar:
      out << node.scalar;
      break;
    case Node::Kind::sequence:
      if (node.items.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : node.items) emit(out, item);
      out << YAML::EndSeq;
      break;
    case Node::Kind::map:
      out << YAML::BeginMap;
      for (const auto& [k, v] : node.fields) {
        out << YAML::Key << k << YAML::Value;
        emit(out, v);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

std::string AtLeast::expected() const { return "a number >= " + number(bound); }
std::string AtMost::expected() const { return "a number <= " + number(bound); }
std::string GreaterThan::expected() const { return "a number > " + number(bound); }
std::string InRange::expected() const {
  return "a number in [" + number(lo) + ", " + number(hi) + "]";
}
bool OneOf::ok(const std::string& v) const {
  return std::find(choices.begin(), choices.end(), v) != choices.end();
}
std::string OneOf::expected() const {
  std::string out = "one of:";
  for (const auto& c : choices) out += " " + c;
  return out;
}

void fail(const Location& loc, const std::string& path, const std::string& message) {
  throw Error(loc.str() + ": " + path + ": " + message, ErrorKind::config);
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string suggest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

void Checker::require(bool ok, const std::string& key, const std::string& message) const {
  if (ok) return;
  const Node* at = node_.get(key);
  fail(at ? at->loc : node_.loc, join_path(path_, key), message);
}

void Reader::finish() const {
  for (const auto& [key, value] : node_.fields) {
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    std::string hint = suggest(key, known_);
    std::string message = "unknown key '" + join_path(path_, key) + "'";
    if (!hint.empty()) message += "; did you mean '" + join_path(path_, hint) + "'?";
    throw Error((value.key_loc.file.empty() ? value.loc : value.key_loc).str() + ": " + message,
                ErrorKind::config);
  }
}

void expect_kind(const Node& node, Node::Kind kind, const std::string& path, const char* what) {
  if (node.kind != kind) fail(node.loc, path, "got " + node.brief() + ", expected " + what);
}

bool parse_bool(const Node& node, const std::string& path) {
  expect_kind(node, Node::Kind::scalar, path, "true or false");
  const std::string& s = node.scalar;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  fail(node.loc, path, "got " + node.brief() + ", expected true or false");
}

long long parse_int(const Node& node, const std::string& path) {
  expect_kind(node, Node::Kind::scalar, path, "an integer");
  const std::string& s = node.scalar;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0' && errno == 0) return v;
  // Accept integral values written as floats (1e6, 1000.0) but nothing fractional.
  char* fend = nullptr;
  double d = std::strtod(s.c_str(), &fend);
  if (!s.empty() && *fend == '\0' && std::isfinite(d) && d == std::floor(d) &&
      std::fabs(d) < 9.0e18) {
    return static_cast<long long>(d);
  }
  fail(node.loc, path, "got " + node.brief() + ", expected an integer");
}

double parse_double(const Node& node, const std::string& path) {
  expect_kind(node, Node::Kind::scalar, path, "a number");
  const std::string& s = node.scalar;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    fail(node.loc, path, "got " + node.brief() + ", expected a finite number");
  }
  return v;
}

std::string format_double(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep a float-looking spelling so the YAML reads back as a number, not an integer.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string to_yaml(const Node& node) {
  YAML::Emitter out;
  emit(out, node);
  return std::string(out.c_str()) + "\n";
}

}  // namespace grpo::config
