// code_tests reward: code extraction, test parsing, output comparison, verdicts, and the slot
// pool that runs up to `concurrency` sandboxed programs at once.
#include "grpo/reward/code_tests.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "code_tests_harness.h"
#include "grpo/core/error.h"

namespace grpo::reward {
namespace {

struct TestSpec {
  bool function_mode = false;
  std::vector<std::pair<std::string, std::string>> cases;  // (stdin, expected stdout)
  std::string prefix, check, entry_point;
};

const char* const kTestsShape =
    "code_tests: a sample's tests must be [{\"input\": str, \"output\": str}, ...], "
    "{\"inputs\": [str], \"outputs\": [str]} or {\"check\": str, \"entry_point\": str, "
    "\"prefix\"?: str}";

TestSpec parse_tests(const nlohmann::json& raw) {
  nlohmann::json tests = raw;
  if (raw.is_string()) {
    tests = nlohmann::json::parse(raw.get<std::string>(), nullptr, false);
    GRPO_CHECK(!tests.is_discarded(), kTestsShape, "; got a string that is not JSON");
  }
  TestSpec spec;
  auto str = [](const nlohmann::json& j, const char* what) {
    GRPO_CHECK(j.is_string(), kTestsShape, "; '", what, "' is ", j.type_name());
    return j.get<std::string>();
  };
  if (tests.is_array()) {
    for (const auto& c : tests) {
      GRPO_CHECK(c.is_object() && c.contains("input") && c.contains("output"), kTestsShape,
                 "; got case ", c.dump().substr(0, 100));
      spec.cases.emplace_back(str(c["input"], "input"), str(c["output"], "output"));
    }
  } else if (tests.is_object() && tests.contains("check")) {
    spec.function_mode = true;
    spec.check = str(tests["check"], "check");
    GRPO_CHECK(tests.contains("entry_point"), kTestsShape, "; 'entry_point' is missing");
    spec.entry_point = str(tests["entry_point"], "entry_point");
    if (tests.contains("prefix")) spec.prefix = str(tests["prefix"], "prefix");
  } else if (tests.is_object() && tests.contains("inputs") && tests.contains("outputs")) {
    const auto &in = tests["inputs"], &out = tests["outputs"];
    GRPO_CHECK(in.is_array() && out.is_array() && in.size() == out.size(), kTestsShape,
               "; 'inputs' and 'outputs' must be arrays of the same length");
    for (size_t i = 0; i < in.size(); ++i) {
      spec.cases.emplace_back(str(in[i], "inputs[i]"), str(out[i], "outputs[i]"));
    }
  } else {
    GRPO_FAIL(kTestsShape, "; got ", tests.dump().substr(0, 100));
  }
  GRPO_CHECK(spec.function_mode || !spec.cases.empty(), kTestsShape, "; got no test case");
  return spec;
}

std::string random_token() {
  std::random_device rd;
  std::ostringstream out;
  out << std::hex;
  for (int i = 0; i < 4; ++i) out << rd();
  return out.str();
}

std::vector<std::vector<std::string>> token_lines(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> toks;
    for (std::string w; words >> w;) toks.push_back(w);
    if (!toks.empty()) lines.push_back(std::move(toks));
  }
  return lines;
}

bool parse_number(const std::string& s, double* out) {
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !s.empty();
}

// Messages carry text from the program (exception messages, truncated bytes); JSON needs UTF-8.
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok) {
      out.append(s, i, n);
      i += n;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// What the host saw decides first: these cannot be faked by the program's output.
std::optional<Verdict> host_verdict(const RunResult& r, std::string* message) {
  if (r.sandbox_error) {
    spdlog::warn("code_tests: sandbox error: {}", r.err);
    *message = "sandbox: " + r.err;
    return Verdict::RE;
  }
  if (r.output_limit) return *message = "output limit", Verdict::OLE;
  if (r.timed_out) return *message = "time limit", Verdict::TLE;
  if (r.oom_killed) return *message = "cgroup memory limit", Verdict::MLE;
  return std::nullopt;
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::AC:
      return "AC";
    case Verdict::WA:
      return "WA";
    case Verdict::TLE:
      return "TLE";
    case Verdict::MLE:
      return "MLE";
    case Verdict::RE:
      return "RE";
    case Verdict::OLE:
      return "OLE";
    case Verdict::CE:
      return "CE";
  }
  return "RE";
}

std::optional<std::string> extract_code_block(const std::string& text,
                                              const std::string& language) {
  auto tag_matches = [&](std::string tag) {
    std::transform(tag.begin(), tag.end(), tag.begin(), ::tolower);
    tag = tag.substr(0, tag.find_first_of(" \t{"));
    if (language == "python") return tag == "python" || tag == "py" || tag == "python3";
    return tag == language;
  };
  std::optional<std::string> tagged, untagged;
  std::istringstream in(text);
  bool inside = false;
  std::string tag, body;
  auto close_block = [&] {
    if (tag.empty()) {
      untagged = body;
    } else if (tag_matches(tag)) {
      tagged = body;
    }
  };
  for (std::string line; std::getline(in, line);) {
    size_t lead = line.find_first_not_of(" \t");
    bool fence = lead != std::string::npos && line.compare(lead, 3, "```") == 0;
    if (!inside && fence) {
      inside = true;
      tag = line.substr(lead + 3);
      tag.erase(0, tag.find_first_not_of(" \t"));
      tag.erase(tag.find_last_not_of(" \t\r") + 1);
      body.clear();
    } else if (inside && fence && line.find_first_not_of(" \t\r`") == std::string::npos) {
      inside = false;
      close_block();
    } else if (inside) {
      body += line;
      body += '\n';
    }
  }
  if (inside) close_block();  // a completion cut off by the length limit
  return tagged ? tagged : untagged;
}

bool outputs_match(const std::string& got, const std::string& expected, double float_tolerance) {
  auto a = token_lines(got), b = token_lines(expected);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (size_t j = 0; j < a[i].size(); ++j) {
      if (a[i][j] == b[i][j]) continue;
      double x, y;
      if (float_tolerance <= 0 || !parse_number(a[i][j], &x) || !parse_number(b[i][j], &y) ||
          !(std::fabs(x - y) <= float_tolerance * std::max(1.0, std::fabs(y)))) {
        return false;
      }
    }
  }
  return true;
}

CodeTests::CodeTests(CodeTestsOptions options)
    : options_(std::move(options)),
      concurrency_(options_.concurrency > 0
                       ? static_cast<int>(options_.concurrency)
                       : 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
      sandbox_(options_.sandbox),
      busy_(static_cast<size_t>(concurrency_), false) {
  GRPO_CHECK_KIND(config, options_.language == "python",
                  "code_tests: language must be python, got '", options_.language, "'");
  GRPO_CHECK_KIND(config, access(options_.python.c_str(), X_OK) == 0, "code_tests: python '",
                  options_.python, "' is not an executable file");
  RunRequest probe;
  probe.argv = {options_.python, "-I", "-c", "pass"};
  RunResult r = sandbox_.run(probe, 0);
  GRPO_CHECK(r.exit_code == 0, "code_tests: '", options_.python,
             "' does not start inside the sandbox (exit ", r.exit_code, "): ", r.err.substr(0, 300),
             " - if it lives outside /usr, add its prefix to ro_binds");
}

const std::string& CodeTests::name() const {
  static const std::string kName = "code_tests";
  return kName;
}

int CodeTests::acquire_slot() const {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    for (size_t i = 0; i < busy_.size(); ++i) {
      if (!busy_[i]) {
        busy_[i] = true;
        return static_cast<int>(i);
      }
    }
    slot_free_.wait(lock);
  }
}

void CodeTests::release_slot(int slot) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_[static_cast<size_t>(slot)] = false;
  }
  slot_free_.notify_one();
}

RewardResult CodeTests::score(const Sample& sample) const {
  int slot = acquire_slot();
  try {
    RewardResult r = score_in_slot(sample, slot);
    release_slot(slot);
    return r;
  } catch (...) {
    release_slot(slot);
    throw;
  }
}

std::vector<RewardResult> CodeTests::score_batch(const std::vector<Sample>& samples) const {
  std::vector<RewardResult> out(samples.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    int slot = acquire_slot();
    for (size_t i; (i = next++) < samples.size();) {
      try {
        out[i] = score_in_slot(samples[i], slot);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
    release_slot(slot);
  };
  size_t n = std::min(samples.size(), static_cast<size_t>(concurrency_));
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
  if (n > 0) worker();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

RewardResult CodeTests::score_in_slot(const Sample& sample, int slot) const {
  const auto start = std::chrono::steady_clock::now();
  TestSpec spec = parse_tests(sample.tests);
  const int total = spec.function_mode ? 1 : static_cast<int>(spec.cases.size());
  Verdict verdict = Verdict::AC;
  int passed = 0, failed_test = -1;
  std::string message;
  std::optional<std::string> code = extract_code_block(sample.completion, options_.language);
  if (!code) {
    verdict = Verdict::CE;
    failed_test = 0;
    message = "no ```" + options_.language + " code block in the completion";
  } else if (spec.function_mode) {
    RunRequest req;
    std::string program = spec.prefix;
    if (!program.empty() && program.back() != '\n') program += '\n';
    program += *code;
    req.argv = {options_.python, "-I", "{box}/harness.py", "{box}", spec.entry_point};
    req.files = {{"harness.py", detail::kFunctionHarness}, {"solution.py", program}};
    const std::string token = random_token();
    req.use_channel = true;
    req.channel_input = token + "\n" + spec.check;
    RunResult r = sandbox_.run(req, slot);
    if (auto v = host_verdict(r, &message)) {
      verdict = *v;
    } else if (r.channel.compare(0, token.size() + 1, token + " ") == 0) {
      std::string rest = r.channel.substr(token.size() + 1);
      std::string word = rest.substr(0, rest.find(' '));
      message = rest.size() > word.size() ? rest.substr(word.size() + 1) : "";
      const Verdict all[] = {Verdict::AC, Verdict::WA, Verdict::MLE, Verdict::RE, Verdict::CE};
      verdict = Verdict::RE;
      for (Verdict candidate : all) {
        if (word == verdict_name(candidate)) verdict = candidate;
      }
    } else {
      verdict = Verdict::RE;
      message = "no verdict from the harness (exit " + std::to_string(r.exit_code) + ", signal " +
                std::to_string(r.term_signal) + ")";
    }
    passed = verdict == Verdict::AC ? 1 : 0;
    if (verdict != Verdict::AC) failed_test = 0;
  } else {
    for (size_t i = 0; i < spec.cases.size(); ++i) {
      RunRequest req;
      req.argv = {options_.python, "-I", "{box}/run_stdin.py", "{box}"};
      req.files = {{"run_stdin.py", detail::kStdinWrapper}, {"solution.py", *code}};
      req.stdin_data = spec.cases[i].first;
      req.use_channel = true;
      RunResult r = sandbox_.run(req, slot);
      Verdict v = Verdict::AC;
      std::string why;
      if (auto hv = host_verdict(r, &why)) {
        v = *hv;
      } else if (r.channel.compare(0, 3, "CE ") == 0) {
        v = Verdict::CE;
        why = r.channel.substr(3);
      } else if (r.exit_code != 0) {
        // Python reports an exhausted RLIMIT_AS as MemoryError.
        bool memory = r.err.find("MemoryError") != std::string::npos;
        v = memory ? Verdict::MLE : Verdict::RE;
        why = r.term_signal ? "killed by signal " + std::to_string(r.term_signal)
                            : "exit status " + std::to_string(r.exit_code);
      } else if (!outputs_match(r.out, spec.cases[i].second, options_.float_tolerance)) {
        v = Verdict::WA;
        why = "wrong output";
      }
      if (v == Verdict::AC) {
        ++passed;
        continue;
      }
      if (failed_test < 0) {
        failed_test = static_cast<int>(i);
        verdict = v;
        message = why;
      }
      // A compile error fails every case the same way; otherwise stop unless partial credit
      // needs the count.
      if (v == Verdict::CE || !options_.partial_credit) break;
    }
  }
  RewardResult result;
  result.score = options_.partial_credit ? static_cast<double>(passed) / std::max(1, total)
                                         : (verdict == Verdict::AC ? 1.0 : 0.0);
  result.details = {
      {"verdict", verdict_name(verdict)},
      {"tests_passed", passed},
      {"tests_total", total},
      {"failed_test", failed_test},
      {"message", valid_utf8(message)},
      {"time_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  return result;
}

}  // namespace grpo::reward
