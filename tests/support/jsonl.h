// Reads a JSON-lines file (metrics.jsonl, samples.jsonl, ...) written by the grpo executable, or
// a gzip-compressed one through the gzip program (independently of the reader under test).
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace grpo::testing {

// One parsed object per non-empty line; a missing file gives none.
inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

// The objects of a .jsonl.gz file as `gzip -dc` decompresses it; none when it cannot run.
inline std::vector<nlohmann::json> read_jsonl_gz(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::unique_ptr<FILE, int (*)(FILE*)> in(popen(("gzip -dc '" + path + "'").c_str(), "r"), pclose);
  if (!in) return out;
  std::string line;
  for (int c; (c = std::fgetc(in.get())) != EOF;) {
    if (c != '\n') {
      line += static_cast<char>(c);
    } else if (!line.empty()) {
      out.push_back(nlohmann::json::parse(line));
      line.clear();
    }
  }
  return out;
}

}  // namespace grpo::testing
