// `grpo tokenizer train|encode|decode` end to end through the grpo executable (which also loads
// LibTorch, so this checks that SentencePiece and LibTorch's protobuf coexist in one process).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;
};

Result run(const std::string& args) {
  const std::string command = std::string(GRPO_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  Result r{-1, ""};
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer;
  std::size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string fixture(const std::string& name) {
  return std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/text/" + name;
}

TEST(TokenizerCli, TrainEncodeDecodeSentencePiece) {
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_tokenizer_cli_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream corpus(dir / "corpus.txt");
    for (int a = 0; a < 60; ++a) {
      for (int b = 0; b < 20; ++b) {
        corpus << "what is " << a << " + " << b << "? <think> add </think> <answer>" << a + b
               << "</answer>\n";
      }
    }
  }
  const std::string tok = (dir / "tok").string();
  const Result train = run("tokenizer train --input " + (dir / "corpus.txt").string() +
                           " --vocab-size 300 --model-type bpe --out " + tok);
  ASSERT_EQ(train.status, 0) << train.out;
  const Result encoded = run("tokenizer encode --tokenizer " + tok + " 'what is 7 + 5? <think>'");
  ASSERT_EQ(encoded.status, 0) << encoded.out;
  const Result decoded = run("tokenizer decode --tokenizer " + tok + " " + encoded.out);
  ASSERT_EQ(decoded.status, 0) << decoded.out;
  EXPECT_EQ(decoded.out, "what is 7 + 5? <think>\n");
  fs::remove_all(dir);
}

TEST(TokenizerCli, EncodeDecodeTokenizerJson) {
  const std::string tok = fixture("small_qwen");
  const Result encoded = run("tokenizer encode --tokenizer " + tok + " 'Hi <|im_end|> 世界'");
  ASSERT_EQ(encoded.status, 0) << encoded.out;
  const Result decoded = run("tokenizer decode --tokenizer " + tok + " " + encoded.out);
  EXPECT_EQ(decoded.out, "Hi <|im_end|> 世界\n");
  const Result skipped =
      run("tokenizer decode --skip-special --tokenizer " + tok + " " + encoded.out);
  EXPECT_EQ(skipped.out, "Hi  世界\n");
}

TEST(TokenizerCli, ErrorsExitNonZeroWithOneLine) {
  const Result unknown = run("tokenizer decode --tokenizer " + fixture("small_qwen") + " 999999");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.out.find("999999"), std::string::npos) << unknown.out;
  const Result missing = run("tokenizer encode --tokenizer /nonexistent/tok hi");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.out.find("/nonexistent/tok"), std::string::npos) << missing.out;
}

TEST(TokenizerCli, BenchPrintsThroughput) {
  const Result bench =
      run("bench tokenizer --repeat 1 --tokenizer " + fixture("small_gpt2") + " --input " +
          std::string(GRPO_SOURCE_DIR) + "/scripts/make_tokenizer_fixtures.py");
  ASSERT_EQ(bench.status, 0) << bench.out;
  EXPECT_NE(bench.out.find("MB/s (cpu"), std::string::npos) << bench.out;
}

}  // namespace
