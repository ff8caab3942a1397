// `grpo model inspect` end to end: on a fixture folder it reports transformers' own parameter
// count (recorded in the fixture), and bad input exits non-zero with the file named.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

namespace {

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args) {
  const std::string cmd = std::string(GRPO_CLI_PATH) + " " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe.release());
  return {WEXITSTATUS(status), out};
}

const std::string kFixtures = GRPO_SOURCE_DIR "/tests/fixtures/model/";

}  // namespace

TEST(ModelCli, InspectReportsTransformersParameterCount) {
  // Counts printed by scripts/make_model_fixtures.py (transformers' num_parameters()).
  const Result dense = run("model inspect " + kFixtures + "qwen2");
  ASSERT_EQ(dense.code, 0) << dense.output;
  EXPECT_NE(dense.output.find("38,832 total"), std::string::npos) << dense.output;
  EXPECT_NE(dense.output.find("F32"), std::string::npos) << dense.output;
  // 16 B/param in one process; 9 B/param per rank over 8 ranks with sharded AdamW moments.
  EXPECT_NE(dense.output.find("606.75 KiB for fp32 weights"), std::string::npos) << dense.output;
  EXPECT_NE(dense.output.find("341.30 KiB per rank with distributed.shard_optimizer"),
            std::string::npos)
      << dense.output;
  const Result moe = run("model inspect " + kFixtures + "qwen2_moe");
  ASSERT_EQ(moe.code, 0) << moe.output;
  EXPECT_NE(moe.output.find("70,624 total"), std::string::npos) << moe.output;
  EXPECT_NE(moe.output.find("active per token"), std::string::npos) << moe.output;
  EXPECT_NE(moe.output.find("shared expert 48 (gated)"), std::string::npos) << moe.output;
}

TEST(ModelCli, InspectFromScratchConfig) {
  const std::string yaml = testing::TempDir() + "/scratch_model.yaml";
  FILE* f = fopen(yaml.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(
      "model:\n  init: random\n  seed: 3\n  architecture:\n    model_type: mixtral\n"
      "    vocab_size: 100\n    hidden_size: 32\n    intermediate_size: 48\n"
      "    num_experts: 4\n    num_experts_per_tok: 2\n",
      f);
  fclose(f);
  const Result r = run("model inspect --config " + yaml);
  ASSERT_EQ(r.code, 0) << r.output;
  // 2 layers x (attention 3,136 + router 128 + 4 experts x 4,608) + tied 3,200 embedding + 32;
  // active: 2 of the 4 experts.
  EXPECT_NE(r.output.find("from-scratch model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("46,624 total"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("28,192 active per token"), std::string::npos) << r.output;
}

TEST(ModelCli, InspectMissingFolderFails) {
  const Result r = run("model inspect /nonexistent/model");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("/nonexistent/model"), std::string::npos) << r.output;
}
