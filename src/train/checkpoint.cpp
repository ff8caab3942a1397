// Checkpoint folders: trainer_state.json, atomic save (tmp folder, fsync, rename), retention,
// discovery of the latest complete one and --resume resolution.
#include "grpo/train/checkpoint.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/torch_compat.h"

namespace grpo::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;
constexpr const char* kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Parses "step_000050" -> 50; nullopt for anything else (including "step_000050.tmp").
std::optional<int64_t> step_of_dir_name(const std::string& name) {
  const std::string prefix = "step_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  int64_t step = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10) return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  GRPO_CHECK(fd >= 0, "cannot open ", path.string(), " to fsync: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  GRPO_CHECK(rc == 0, "fsync ", path.string(), " failed: ", std::strerror(err));
}

// Every file and folder below `root`, then `root` itself: once this returns, the contents are
// on disk before the rename that publishes them.
void fsync_tree(const fs::path& root) {
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) fsync_path(entry.path(), false);
    if (entry.is_directory()) fsync_path(entry.path(), true);
  }
  fsync_path(root, true);
}

void write_file(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  GRPO_CHECK(out, "cannot write ", path.string());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GRPO_CHECK(in, "cannot read ", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string tensor_bytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kCPU);  // (n) uint8
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.nbytes()));
}

at::Tensor bytes_tensor(const std::string& bytes) {
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);  // (n) uint8
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                       uint32_t{static_cast<uint8_t>(bytes[i + 2])};
    for (int k = 3; k >= 0; --k) out.push_back(kAlphabet[(v >> (6 * k)) & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  GRPO_CHECK(text.size() % 4 == 0, what, ": base64 length ", text.size(),
             " is not a multiple of 4");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  const size_t data_end = text.size() - pad;  // '=' is only valid from here on
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    for (size_t k = i; k < i + 4; ++k) {
      uint32_t d = 0;
      if (k < data_end) {
        const char* p = text[k] != '\0' ? std::strchr(kAlphabet, text[k]) : nullptr;
        GRPO_CHECK(p != nullptr, what, ": invalid base64 character at offset ", k);
        d = static_cast<uint32_t>(p - kAlphabet);
      }
      v = (v << 6) | d;
    }
    const size_t bytes = i + 4 <= data_end ? 3 : 3 - pad;
    for (size_t b = 0; b < bytes; ++b) out.push_back(static_cast<char>((v >> (16 - 8 * b)) & 0xFF));
  }
  return out;
}

std::string trainer_state_to_json(const TrainerState& state) {
  json j;
  j["format"] = kFormatVersion;
  j["step"] = state.step;
  j["config_hash"] = state.config_hash;
  j["data_cursor"] = state.data_cursor;
  json rng = json::object();
  for (const auto& [name, bytes] : state.rng_states) rng[name] = base64_encode(bytes);
  j["rng_states"] = rng;
  j["extra"] = state.extra;
  return j.dump(2) + "\n";
}

TrainerState trainer_state_from_json(const std::string& text, const std::string& source) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  GRPO_CHECK(j.is_object(), source, ": not a JSON object (truncated or corrupt trainer state)");
  auto field = [&](const char* key, json::value_t type, const char* expected) -> const json& {
    GRPO_CHECK(j.contains(key), source, ": missing field '", key, "'");
    const json& v = j.at(key);
    const bool ok =
        type == json::value_t::number_integer ? v.is_number_integer() : v.type() == type;
    GRPO_CHECK(ok, source, ": field '", key, "' must be ", expected);
    return v;
  };
  const int64_t format = field("format", json::value_t::number_integer, "an integer");
  GRPO_CHECK(format == kFormatVersion, source, ": trainer state format ", format,
             " is not supported (expected ", kFormatVersion, ")");
  TrainerState s;
  s.step = field("step", json::value_t::number_integer, "an integer").get<int64_t>();
  GRPO_CHECK(s.step >= 0, source, ": field 'step' must be >= 0, got ", s.step);
  s.config_hash = field("config_hash", json::value_t::string, "a string").get<std::string>();
  s.data_cursor = field("data_cursor", json::value_t::object, "an object");
  for (const auto& [name, value] :
       field("rng_states", json::value_t::object, "an object").items()) {
    GRPO_CHECK(value.is_string(), source, ": rng_states.", name, " must be a base64 string");
    s.rng_states[name] = base64_decode(value.get<std::string>(), source + ": rng_states." + name);
  }
  s.extra = field("extra", json::value_t::object, "an object");
  return s;
}

TrainerState read_trainer_state(const std::string& path) {
  return trainer_state_from_json(read_file(path), path);
}

std::map<std::string, std::string> capture_torch_rng() {
  std::map<std::string, std::string> out;
  auto capture = [&](const std::string& name, at::Generator gen) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    out[name] = tensor_bytes(gen.get_state());
  };
  capture("torch_cpu", at::globalContext().defaultGenerator(at::Device(at::kCPU)));
  for (int64_t i = 0; i < compat::cuda_device_count(); ++i) {
    const auto index = static_cast<c10::DeviceIndex>(i);
    capture("torch_cuda" + std::to_string(i),
            at::globalContext().defaultGenerator(at::Device(at::kCUDA, index)));
  }
  return out;
}

void restore_torch_rng(const std::map<std::string, std::string>& states) {
  for (const auto& [name, bytes] : states) {
    std::optional<at::Device> device;
    if (name == "torch_cpu") {
      device = at::Device(at::kCPU);
    } else if (name.rfind("torch_cuda", 0) == 0) {
      const int64_t index = std::stoll(name.substr(10));
      GRPO_CHECK(index < compat::cuda_device_count(), "checkpoint has RNG state ", name,
                 " but only ", compat::cuda_device_count(), " GPUs are visible");
      device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    if (!device) continue;
    at::Generator gen = at::globalContext().defaultGenerator(*device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(bytes_tensor(bytes));
  }
}

std::string checkpoint_dir_name(int64_t step) {
  GRPO_CHECK(step >= 0, "checkpoint step must be >= 0, got ", step);
  std::string digits = std::to_string(step);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return "step_" + digits;
}

CheckpointManager::CheckpointManager(const std::string& run_dir, int keep_last)
    : dir_((fs::path(run_dir) / "checkpoints").string()), keep_last_(keep_last) {
  GRPO_CHECK(keep_last >= 1, "checkpoint.keep_last must be >= 1, got ", keep_last);
}

std::string CheckpointManager::save(const TrainerState& state, const CheckpointWriters& writers) {
  const fs::path root(dir_);
  fs::create_directories(root);
  const fs::path final_dir = root / checkpoint_dir_name(state.step);
  const fs::path tmp = root / (checkpoint_dir_name(state.step) + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (writers.policy) {
    fs::create_directories(tmp / kPolicyDir);
    writers.policy((tmp / kPolicyDir).string());
  }
  if (writers.optimizer) writers.optimizer((tmp / kOptimizerFile).string());
  if (writers.reference) {
    fs::create_directories(tmp / kReferenceDir);
    writers.reference((tmp / kReferenceDir).string());
  }
  if (writers.adapter) {
    fs::create_directories(tmp / kAdapterDir);
    writers.adapter((tmp / kAdapterDir).string());
  }
  if (!state.config_yaml.empty()) write_file(tmp / kConfigFile, state.config_yaml);
  write_file(tmp / kTrainerStateFile, trainer_state_to_json(state));
  fsync_tree(tmp);

  // A folder of the same step (a re-save) is moved aside under a *.tmp name, which discovery
  // ignores, so there is no moment with neither version under a name that counts.
  const fs::path replaced = root / (checkpoint_dir_name(state.step) + ".replaced.tmp");
  if (fs::exists(final_dir)) {
    fs::remove_all(replaced);
    fs::rename(final_dir, replaced);
  }
  fs::rename(tmp, final_dir);
  fsync_path(root, true);
  log::info("checkpoint saved: ", final_dir.string());

  // Only now that the new checkpoint is complete: retention and crash debris.
  const auto kept = complete();
  for (size_t i = 0; i + static_cast<size_t>(keep_last_) < kept.size(); ++i) {
    log::debug("removing old checkpoint ", kept[i].dir);
    fs::remove_all(kept[i].dir);
  }
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      fs::remove_all(entry.path());
    }
  }
  return final_dir.string();
}

std::vector<CheckpointInfo> CheckpointManager::complete() const {
  std::vector<CheckpointInfo> out;
  if (!fs::is_directory(dir_)) return out;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const auto step = step_of_dir_name(entry.path().filename().string());
    if (!step || !entry.is_directory()) continue;
    const fs::path state_path = entry.path() / kTrainerStateFile;
    try {
      const TrainerState s = read_trainer_state(state_path.string());
      GRPO_CHECK(s.step == *step, state_path.string(), ": step ", s.step,
                 " does not match the folder name");
      out.push_back({*step, entry.path().string()});
    } catch (const Error& e) {
      log::warn("ignoring incomplete checkpoint ", entry.path().string(), ": ", e.what());
    }
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointInfo> CheckpointManager::latest() const {
  auto all = complete();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::optional<ResumePoint> resolve_resume(const std::string& resume, const std::string& run_dir,
                                          const config::Config& config, bool force) {
  if (resume.empty()) return std::nullopt;
  std::string dir;
  if (resume == "auto") {
    const auto latest = CheckpointManager(run_dir, 1).latest();
    if (!latest) {
      log::info("--resume auto: no complete checkpoint in ", run_dir, "; starting a fresh run");
      return std::nullopt;
    }
    dir = latest->dir;
  } else {
    fs::path path = fs::path(resume).lexically_normal();
    if (path.filename().empty()) path = path.parent_path();  // "dir/" -> "dir"
    GRPO_CHECK_KIND(usage, fs::exists(path), "--resume ", resume, ": no such file or folder");
    const std::string name = path.filename().string();
    GRPO_CHECK_KIND(usage, name.size() < 4 || name.compare(name.size() - 4, 4, ".tmp") != 0,
                    "--resume ", resume,
                    ": this is an incomplete checkpoint (its save was interrupted); resume from "
                    "a complete one, e.g. --resume auto");
    if (fs::exists(path / kTrainerStateFile)) {
      dir = path.string();
    } else {
      // A run folder, or its checkpoints/ folder.
      const fs::path run = fs::exists(path / "checkpoints") ? path : path.parent_path();
      const auto latest = CheckpointManager(run.string(), 1).latest();
      GRPO_CHECK_KIND(usage, latest.has_value(), "--resume ", resume,
                      ": no complete checkpoint found (expected a checkpoints/step_NNNNNN folder "
                      "with ",
                      kTrainerStateFile, ", or a run folder holding them)");
      dir = latest->dir;
    }
  }
  ResumePoint point{dir, read_trainer_state((fs::path(dir) / kTrainerStateFile).string())};
  const ConfigDrift drift = config_drift(dir, point.state, config);
  if (!drift.allowed.empty()) {
    log::info("resuming with changed keys that a resume may change: ",
              describe_changes(drift.allowed));
  }
  if (!drift.learned.empty()) {
    GRPO_CHECK_KIND(config, force, "checkpoint ", dir,
                    " was written with another config: ", describe_changes(drift.learned),
                    " (checkpoint -> this run); resume with the checkpoint's config (its ",
                    kConfigFile, "), or force the resume (--force-resume)");
    log::warn("resuming from ", dir, " with changed keys because the resume was forced: ",
              describe_changes(drift.learned));
  }
  log::info("resuming from ", dir, " at step ", point.state.step);
  return point;
}

bool resume_may_change(const std::string& key) {
  static const char* const kSections[] = {"distributed.", "logging.", "checkpoint.", "validation."};
  static const char* const kKeys[] = {"trainer.steps",
                                      "trainer.micro_batch_size",
                                      "trainer.max_tokens_per_micro_batch",
                                      "trainer.gradient_checkpointing",
                                      "trainer.device",
                                      "trainer.deterministic",
                                      "trainer.max_nonfinite_steps",
                                      "rollout.max_tokens_in_flight",
                                      "model.kernels",
                                      "sft.epochs"};
  for (const char* section : kSections) {
    if (key.rfind(section, 0) == 0) return true;
  }
  for (const char* k : kKeys) {
    if (key == k) return true;
  }
  // A reward function's worker count (the code sandbox's concurrency), not what it scores.
  const std::string suffix = "].options.concurrency";
  return key.rfind("reward.functions[", 0) == 0 && key.size() > suffix.size() &&
         key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ConfigDrift config_drift(const std::string& dir, const TrainerState& state,
                         const config::Config& config) {
  ConfigDrift drift;
  const std::string hash = config::config_hash(config);
  const fs::path saved_path = fs::path(dir) / kConfigFile;
  if (state.config_hash == hash) return drift;
  std::string why = "no " + std::string(kConfigFile) + " to compare";
  if (fs::is_regular_file(saved_path)) {
    try {
      const config::Config saved = config::load_config(saved_path.string()).config;
      // With an SFT stage for base model, model.path and tokenizer.path are where the stage's
      // final policy was found (checked against its config on its own), e.g. in a run
      // directory that has since moved.
      const bool stage_paths =
          saved.model.init == config::ModelInit::sft && config.model.init == config::ModelInit::sft;
      for (auto& change : config::config_changes(saved, config)) {
        const bool derived =
            stage_paths && (change.key == "model.path" || change.key == "tokenizer.path");
        (derived || resume_may_change(change.key) ? drift.allowed : drift.learned)
            .push_back(change);
      }
      return drift;
    } catch (const Error& e) {
      why = std::string(kConfigFile) + " unreadable: " + e.what();
    }
  }
  drift.learned.push_back({"config hash", state.config_hash, hash + " (" + why + ")"});
  return drift;
}

std::string describe_changes(const std::vector<config::ConfigChange>& changes) {
  std::string out;
  for (const auto& c : changes) {
    out += (out.empty() ? "" : ", ") + c.key + " " + c.before + " -> " + c.after;
  }
  return out;
}

}  // namespace grpo::train
