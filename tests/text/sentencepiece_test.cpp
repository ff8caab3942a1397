// SentencePiece: train on a synthetic corpus (BPE and unigram), then encode -> decode must give
// the text back exactly, and our piece-by-piece decoding must equal libsentencepiece's DecodeIds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "grpo/text/sentencepiece_train.h"
#include "grpo/text/tokenizer.h"
#include "sp_tokenizer.h"

namespace grpo::text {
namespace {

namespace fs = std::filesystem;

// Arithmetic prompts and answers in the R1 format, plus characters the model never saw.
std::vector<std::string> synthetic_corpus(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  const char* words[] = {"add", "the", "numbers", "what", "is", "sum", "of", "and", "answer"};
  for (int i = 0; i < n; ++i) {
    const int a = static_cast<int>(rng() % 1000), b = static_cast<int>(rng() % 1000);
    std::string s = std::string(words[rng() % 9]) + " " + words[rng() % 9] + ": " +
                    std::to_string(a) + " + " + std::to_string(b) + " = ? <think> " +
                    std::to_string(a) + " plus " + std::to_string(b) + " </think> <answer>" +
                    std::to_string(a + b) + "</answer>";
    if (i % 7 == 0) s += "  double  spaces\tand tab";
    out.push_back(s);
  }
  return out;
}

class SentencePieceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("grpo_sp_test_" + GetParam() + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::create_directories(dir_);
    const auto texts = synthetic_corpus(3000, 1);
    std::ofstream out(dir_ / "corpus.jsonl");
    for (const auto& t : texts) out << "{\"text\": \"" << t.substr(0, t.find('\t')) << "\"}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(SentencePieceTest, TrainEncodeDecodeRoundTrip) {
  SentencePieceTrainOptions options;
  options.input = (dir_ / "corpus.jsonl").string();
  options.out_dir = (dir_ / "tok").string();
  options.vocab_size = 400;
  options.model_type = GetParam();
  train_sentencepiece(options);
  ASSERT_TRUE(fs::exists(dir_ / "tok/tokenizer.model"));
  ASSERT_TRUE(fs::exists(dir_ / "tok/tokenizer_config.json"));

  const auto tok = load_tokenizer((dir_ / "tok").string());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 3);
  // The R1 tags are single pieces.
  const auto think = tok->token_to_id("<think>");
  ASSERT_TRUE(think.has_value());
  const auto tagged = tok->encode("x <think> y");
  EXPECT_NE(std::find(tagged.begin(), tagged.end(), *think), tagged.end());

  const auto& sp = dynamic_cast<const SpTokenizer&>(*tok);
  auto texts = synthetic_corpus(500, 2);
  // Unseen characters go through byte fallback; leading, trailing and repeated spaces stay.
  texts.insert(texts.end(), {"", " ", "  leading", "trailing  ", "naïve café 日本語 😀",
                             "line\nbreak", "x\ty", "<s>hello</s>", "\xE2\x82\xAC 5"});
  for (const auto& text : texts) {
    const auto ids = tok->encode(text);
    EXPECT_EQ(tok->decode(ids), text) << GetParam() << ": '" << text << "'";
    // The library hides control pieces; we show them unless skip_special (as HF does).
    EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), sp.reference_decode(ids)) << text;
    IncrementalDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    EXPECT_EQ(streamed + stream.finish(), text);
  }
  EncodeOptions with_special;
  with_special.add_special_tokens = true;
  const auto ids = tok->encode("1 + 2", with_special);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "1 + 2");
}

INSTANTIATE_TEST_SUITE_P(ModelTypes, SentencePieceTest, ::testing::Values("bpe", "unigram"));

TEST(SentencePieceTrain, RejectsBadOptions) {
  SentencePieceTrainOptions options;
  options.input = "/nonexistent/corpus.txt";
  options.out_dir = "/tmp/unused";
  EXPECT_THROW(train_sentencepiece(options), std::exception);
  options.input = "corpus.csv";
  EXPECT_THROW(train_sentencepiece(options), std::exception);
}

}  // namespace
}  // namespace grpo::text
