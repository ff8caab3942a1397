// `grpo bench tokenizer`: encoding throughput of one thread on a file, a text per line, in MB/s
// of UTF-8 input. Compare with scripts/bench_tokenizer_vs_hf.py on the same file.
#include <CLI/CLI.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>

#include "grpo/core/error.h"
#include "grpo/text/tokenizer.h"
#include "verbs.h"

namespace grpo::cli {

namespace {

struct BenchOptions {
  std::string tokenizer;
  std::string input;
  int repeat = 5;
};

struct Pass {
  double wall_s;  // elapsed time
  double cpu_s;   // process CPU time: less sensitive to other load on a shared machine
};

// Encodes every line once; counts the ids produced.
Pass encode_all(const text::Tokenizer& tok, const std::vector<std::string>& lines,
                std::size_t& ids) {
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  ids = 0;
  for (const auto& line : lines) ids += tok.encode(line).size();
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), cpu};
}

}  // namespace

void add_bench_tokenizer(CLI::App& bench) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd =
      bench.add_subcommand("tokenizer", "Encoding throughput (MB/s, one thread) on a text file");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder")->required();
  cmd->add_option("--input", o->input, "Text file; each line is encoded as one text")->required();
  cmd->add_option("--repeat", o->repeat, "Timed passes after the first")->capture_default_str();
  cmd->callback([o] {
    std::ifstream in(o->input, std::ios::binary);
    GRPO_CHECK_KIND(usage, in.good(), "--input '", o->input, "' cannot be read");
    std::vector<std::string> lines;
    std::size_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
      bytes += line.size();
      lines.push_back(std::move(line));
    }
    GRPO_CHECK_KIND(usage, bytes > 0, "--input '", o->input, "' is empty");
    const auto load_start = std::chrono::steady_clock::now();
    const auto tok = text::load_tokenizer(o->tokenizer);
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    std::size_t ids = 0;
    const Pass cold = encode_all(*tok, lines, ids);  // the word cache starts empty
    Pass best = cold;
    for (int i = 0; i < o->repeat; ++i) {
      const Pass p = encode_all(*tok, lines, ids);
      best.wall_s = std::min(best.wall_s, p.wall_s);
      best.cpu_s = std::min(best.cpu_s, p.cpu_s);
    }
    const double mb = static_cast<double>(bytes) / 1e6;
    std::cout << "tokenizer " << o->tokenizer << " (load " << load_s << " s)\n"
              << "input " << o->input << ": " << lines.size() << " lines, " << mb << " MB, " << ids
              << " ids\n"
              << "encode, one thread: first pass " << mb / cold.wall_s << " MB/s (cpu "
              << mb / cold.cpu_s << "), best of " << o->repeat << " more " << mb / best.wall_s
              << " MB/s (cpu " << mb / best.cpu_s << ")\n";
  });
}

}  // namespace grpo::cli
