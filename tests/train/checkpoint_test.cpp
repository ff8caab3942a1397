// Checkpoint folders: trainer_state.json round trip, atomic save layout, recovery from a
// simulated crash (leftover .tmp folders, truncated state), keep_last retention, --resume
// resolution and its errors; the SIGINT/SIGTERM stop flag; and which library the program's
// std::filesystem calls run.
#include "grpo/train/checkpoint.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "grpo/core/error.h"
#include "grpo/train/stop_signal.h"

namespace fs = std::filesystem;
using grpo::train::CheckpointManager;
using grpo::train::CheckpointWriters;
using grpo::train::TrainerState;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_ckpt_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The config the checkpoints below were written with.
const grpo::config::Config& base_config() {
  static const grpo::config::Config c =
      grpo::config::parse_config("model:\n  init: random\n", "base").config;
  return c;
}

TrainerState state_at(int64_t step,
                      const std::string& hash = grpo::config::config_hash(base_config())) {
  TrainerState s;
  s.step = step;
  s.config_hash = hash;
  s.data_cursor = {{"epoch", 1}, {"index", step * 8}};
  s.rng_states["torch_cpu"] = std::string("\x00\x01\xFFrng", 6);
  s.extra = {{"nonfinite_consecutive", 0}};
  return s;
}

// Stand-ins for model::save_hf and save_optimizer: files whose contents name the step.
CheckpointWriters writers_for(int64_t step) {
  CheckpointWriters w;
  w.policy = [step](const std::string& dir) {
    write(fs::path(dir) / "config.json", "{\"step\": " + std::to_string(step) + "}");
    write(fs::path(dir) / "model.safetensors", std::string(64, 'w'));
  };
  w.optimizer = [step](const std::string& path) { write(path, "adam " + std::to_string(step)); };
  return w;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const grpo::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> cases{{"", ""},
                                                               {"f", "Zg=="},
                                                               {"fo", "Zm8="},
                                                               {"foo", "Zm9v"},
                                                               {"foob", "Zm9vYg=="},
                                                               {"fooba", "Zm9vYmE="},
                                                               {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(grpo::train::base64_encode(plain), encoded);
    EXPECT_EQ(grpo::train::base64_decode(encoded, "t"), plain);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(grpo::train::base64_decode(grpo::train::base64_encode(all), "t"), all);
  EXPECT_NE(error_of([] { grpo::train::base64_decode("Zm9", "rng_states.x"); }), "");
  EXPECT_NE(error_of([] {
              grpo::train::base64_decode("Zm=v", "rng_states.x");
            }).find("rng_states.x: invalid base64 character at offset 2"),
            std::string::npos);
}

TEST(TrainerStateJson, RoundTripsAndNamesBrokenFields) {
  const TrainerState s = state_at(50);
  const TrainerState back =
      grpo::train::trainer_state_from_json(grpo::train::trainer_state_to_json(s), "x.json");
  EXPECT_EQ(back.step, 50);
  EXPECT_EQ(back.config_hash, grpo::config::config_hash(base_config()));
  EXPECT_EQ(back.data_cursor, s.data_cursor);
  EXPECT_EQ(back.rng_states, s.rng_states);
  EXPECT_EQ(back.extra, s.extra);
  const std::string text = grpo::train::trainer_state_to_json(s);
  EXPECT_NE(error_of([&] {
              grpo::train::trainer_state_from_json(text.substr(0, 40), "t.json");
            }).find("t.json: not a JSON object"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              grpo::train::trainer_state_from_json(R"({"format":1})", "t.json");
            }).find("t.json: missing field 'step'"),
            std::string::npos);
}

TEST(CheckpointManager, SaveWritesTheLayoutAtomically) {
  const fs::path run = fresh_dir("layout");
  CheckpointManager manager(run.string(), 3);
  EXPECT_FALSE(manager.latest().has_value());
  const std::string dir = manager.save(state_at(50), writers_for(50));
  EXPECT_EQ(dir, (run / "checkpoints" / "step_000050").string());
  EXPECT_EQ(names_in(run / "checkpoints"), std::vector<std::string>{"step_000050"});
  EXPECT_EQ(names_in(dir),
            (std::vector<std::string>{"optimizer.pt", "policy", "trainer_state.json"}));
  EXPECT_EQ(read(fs::path(dir) / "policy" / "config.json"), "{\"step\": 50}");
  EXPECT_EQ(read(fs::path(dir) / "optimizer.pt"), "adam 50");
  EXPECT_EQ(grpo::train::read_trainer_state(dir + "/trainer_state.json").data_cursor["index"], 400);
  ASSERT_TRUE(manager.latest().has_value());
  EXPECT_EQ(manager.latest()->step, 50);
  EXPECT_EQ(grpo::train::checkpoint_dir_name(1234567), "step_1234567");
}

TEST(CheckpointManager, SimulatedCrashResumesFromLastCompleteCheckpoint) {
  const fs::path run = fresh_dir("crash");
  CheckpointManager manager(run.string(), 3);
  manager.save(state_at(50), writers_for(50));
  // Killed while writing step 100: the policy is half written, the state truncated.
  const fs::path tmp = run / "checkpoints" / "step_000100.tmp";
  write(tmp / "policy" / "model.safetensors", "partial");
  write(tmp / "trainer_state.json",
        grpo::train::trainer_state_to_json(state_at(100)).substr(0, 30));
  // An older layout that was not atomic: a final name holding a truncated state.
  write(run / "checkpoints" / "step_000150" / "trainer_state.json", "{\"format\": 1, \"st");
  // Stray files that are not checkpoints.
  write(run / "checkpoints" / "notes.txt", "hello");
  write(run / "checkpoints" / "step_0000x0" / "trainer_state.json", "{}");

  ASSERT_TRUE(manager.latest().has_value());
  EXPECT_EQ(manager.latest()->step, 50);
  const auto resumed = grpo::train::resolve_resume("auto", run.string(), base_config(), false);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->state.step, 50);
  EXPECT_EQ(resumed->dir, (run / "checkpoints" / "step_000050").string());
  EXPECT_EQ(resumed->state.rng_states, state_at(50).rng_states);

  // The resumed run's next save completes step 100 and clears the crash debris.
  manager.save(state_at(100), writers_for(100));
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(manager.latest()->step, 100);
  EXPECT_EQ(read(run / "checkpoints" / "step_000100" / "policy" / "model.safetensors"),
            std::string(64, 'w'));
}

TEST(CheckpointManager, KeepsTheLastKAndDeletesOnlyAfterANewOneIsComplete) {
  const fs::path run = fresh_dir("keep");
  CheckpointManager manager(run.string(), 2);
  for (int64_t step : {10, 20, 30}) manager.save(state_at(step), writers_for(step));
  EXPECT_EQ(names_in(run / "checkpoints"),
            (std::vector<std::string>{"step_000020", "step_000030"}));
  // A save that fails midway (disk full, killed) deletes nothing.
  CheckpointWriters failing = writers_for(40);
  failing.optimizer = [](const std::string&) { GRPO_FAIL("disk full"); };
  EXPECT_THROW(manager.save(state_at(40), failing), grpo::Error);
  EXPECT_EQ(manager.latest()->step, 30);
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "step_000020"));
  manager.save(state_at(40), writers_for(40));
  EXPECT_EQ(names_in(run / "checkpoints"),
            (std::vector<std::string>{"step_000030", "step_000040"}));
  // Re-saving an existing step replaces it.
  TrainerState again = state_at(40);
  again.data_cursor["index"] = 7;
  manager.save(again, writers_for(40));
  EXPECT_EQ(manager.latest()->step, 40);
  EXPECT_EQ(grpo::train::read_trainer_state(manager.latest()->dir + "/trainer_state.json")
                .data_cursor["index"],
            7);
  EXPECT_EQ(names_in(run / "checkpoints"),
            (std::vector<std::string>{"step_000030", "step_000040"}));
}

TEST(Resume, ResolvesAutoPathsAndReportsErrors) {
  const fs::path run = fresh_dir("resume");
  using grpo::train::resolve_resume;
  EXPECT_FALSE(resolve_resume("", run.string(), base_config(), false).has_value());
  EXPECT_FALSE(resolve_resume("auto", run.string(), base_config(), false).has_value());
  CheckpointManager manager(run.string(), 5);
  manager.save(state_at(10), writers_for(10));
  manager.save(state_at(20), writers_for(20));
  const fs::path step10 = run / "checkpoints" / "step_000010";
  EXPECT_EQ(resolve_resume(step10.string(), "/elsewhere", base_config(), false)->state.step, 10);
  EXPECT_EQ(resolve_resume(step10.string() + "/", "/elsewhere", base_config(), false)->state.step,
            10);
  EXPECT_EQ(resolve_resume(run.string(), "/elsewhere", base_config(), false)->state.step, 20);
  EXPECT_EQ(resolve_resume((run / "checkpoints").string(), "", base_config(), false)->state.step,
            20);

  write(run / "checkpoints" / "step_000030.tmp" / "trainer_state.json", "{");
  EXPECT_NE(error_of([&] {
              resolve_resume((run / "checkpoints" / "step_000030.tmp").string(), "", base_config(),
                             false);
            }).find("incomplete checkpoint"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_resume("/no/such/dir", "", base_config(), false);
            }).find("--resume /no/such/dir: no such file or folder"),
            std::string::npos);
  const fs::path empty = fresh_dir("resume_empty");
  EXPECT_NE(error_of([&] {
              resolve_resume(empty.string(), "", base_config(), false);
            }).find("no complete checkpoint found"),
            std::string::npos);

  // These checkpoints carry no config.yaml: another config is compared by hash alone.
  grpo::config::Config other = base_config();
  other.trainer.lr = 2e-6;
  try {
    resolve_resume("auto", run.string(), other, false);
    FAIL() << "expected a config hash error";
  } catch (const grpo::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    EXPECT_NE(msg.find(grpo::config::config_hash(base_config())), std::string::npos) << msg;
    EXPECT_NE(msg.find(grpo::config::config_hash(other)), std::string::npos) << msg;
    EXPECT_NE(msg.find("--force-resume"), std::string::npos) << msg;
  }
  EXPECT_EQ(resolve_resume("auto", run.string(), other, true)->state.step, 20);
}

// With the run's config.yaml in the checkpoint, a resume compares key by key: how the work is
// spread, batched, checkpointed, validated and logged, and how long the run goes on, may change;
// anything else is refused, naming each key with both values, unless forced. An unreadable
// config.yaml falls back to the hash.
TEST(Resume, ComparesTheSavedConfigKeyByKey) {
  const fs::path run = fresh_dir("resume_config");
  using grpo::train::resolve_resume;
  const grpo::config::Config& base = base_config();
  TrainerState state = state_at(10);
  state.config_yaml = grpo::config::to_yaml(base);
  CheckpointManager(run.string(), 2).save(state, writers_for(10));
  const fs::path saved = run / "checkpoints" / "step_000010" / grpo::train::kConfigFile;
  EXPECT_EQ(read(saved), state.config_yaml);
  EXPECT_EQ(resolve_resume("auto", run.string(), base, false)->state.step, 10);

  grpo::config::Config spread = base;
  spread.distributed.shard_optimizer = true;
  spread.trainer.micro_batch_size = 3;
  spread.trainer.steps = 500;
  spread.checkpoint.every = 7;
  spread.logging.level = "debug";
  EXPECT_EQ(resolve_resume("auto", run.string(), spread, false)->state.step, 10);
  const auto drift = grpo::train::config_drift(run / "checkpoints" / "step_000010", state, spread);
  EXPECT_TRUE(drift.learned.empty());
  EXPECT_EQ(drift.allowed.size(), 5u);

  grpo::config::Config learned = spread;
  learned.trainer.lr = 3e-6;
  learned.algorithm.beta = 0.0;
  try {
    resolve_resume("auto", run.string(), learned, false);
    FAIL() << "expected a changed-config error";
  } catch (const grpo::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
    EXPECT_NE(msg.find("trainer.lr 1e-06 -> 3e-06"), std::string::npos) << msg;
    EXPECT_NE(msg.find("algorithm.beta "), std::string::npos) << msg;
    EXPECT_EQ(msg.find("shard_optimizer"), std::string::npos) << msg;  // allowed: not listed
  }
  EXPECT_EQ(resolve_resume("auto", run.string(), learned, true)->state.step, 10);

  // A run built on an SFT stage: model.path and tokenizer.path name where the stage's policy was
  // found (a moved run directory finds it elsewhere); a model given by path may not move.
  for (const bool sft : {true, false}) {
    const std::string init = sft ? "model: {init: sft, sft_config: stage.yaml, path: "
                                 : "model: {init: pretrained, path: ";
    const auto at = [&](const std::string& dir) {
      return grpo::config::parse_config(
                 init + dir + "/policy}\ntokenizer: {path: " + dir + "/policy}\n", "t")
          .config;
    };
    TrainerState s = state_at(20, grpo::config::config_hash(at("/old/run/sft")));
    s.config_yaml = grpo::config::to_yaml(at("/old/run/sft"));
    const fs::path dir = fresh_dir(sft ? "resume_sft" : "resume_pretrained");
    CheckpointManager(dir.string(), 1).save(s, writers_for(20));
    const auto moved =
        grpo::train::config_drift(dir / "checkpoints" / "step_000020", s, at("/new/run/sft"));
    EXPECT_EQ(moved.allowed.size(), sft ? 2u : 0u);
    EXPECT_EQ(moved.learned.size(), sft ? 0u : 2u);
  }

  write(saved, "trainer: {lr: [not a number]}\n");
  EXPECT_NE(
      error_of([&] { resolve_resume("auto", run.string(), spread, false); }).find("unreadable"),
      std::string::npos);
}

TEST(Resume, KeysAResumeMayChange) {
  using grpo::train::resume_may_change;
  for (const char* key :
       {"distributed.bucket_mb", "logging.tensorboard", "checkpoint.keep_last", "validation.every",
        "trainer.steps", "trainer.micro_batch_size", "trainer.max_tokens_per_micro_batch",
        "model.kernels", "sft.epochs", "reward.functions[2].options.concurrency"}) {
    EXPECT_TRUE(resume_may_change(key)) << key;
  }
  for (const char* key :
       {"trainer.lr", "trainer.minibatch_size", "rollout.n", "algorithm.beta", "data.seed",
        "model.path", "reward.functions[0].weight", "reward.functions[0].options.timeout_s",
        "trainer.stepsx", "distributedx.y"}) {
    EXPECT_FALSE(resume_may_change(key)) << key;
  }
}

TEST(StopSignal, SigtermSetsTheFlagAndHandlersAreRestored) {
  struct sigaction before {};
  sigaction(SIGTERM, nullptr, &before);
  {
    grpo::train::StopSignal stop;
    EXPECT_FALSE(stop.requested());
    EXPECT_THROW(grpo::train::StopSignal second, grpo::Error);
    std::raise(SIGTERM);  // would kill the test without the handler
    EXPECT_TRUE(stop.requested());
    EXPECT_EQ(stop.signal_number(), SIGTERM);
  }
  struct sigaction after {};
  sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  grpo::train::StopSignal again;  // a fresh instance starts clear
  EXPECT_FALSE(again.requested());
}

TEST(StopSignal, SecondSignalKillsTheProcess) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    grpo::train::StopSignal stop;
    std::raise(SIGINT);
    if (!stop.requested()) _exit(3);
    std::raise(SIGINT);  // default action: terminated by SIGINT
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

// PyPI's LibTorch exports copies of libstdc++'s std::filesystem functions, and a program whose
// NEEDED list names LibTorch first binds its own calls to them: LibTorch 2.11's remove_all jumps
// to a null address, so the first checkpoint rotation crashed `grpo train` built against it.
// cmake/GrpoDependencies.cmake names libstdc++ first; here the call's target is looked up.
TEST(CheckpointManager, FilesystemCallsRunLibstdcxx) {
  using RemoveAll = std::uintmax_t (*)(const fs::path&);
  const RemoveAll remove_all = &fs::remove_all;
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(remove_all), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_NE(std::string(info.dli_fname).find("libstdc++"), std::string::npos)
      << "std::filesystem::remove_all runs from " << info.dli_fname;
}
