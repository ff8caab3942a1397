// `grpo tokenizer train|encode|decode`: train a SentencePiece tokenizer for tiny synthetic-task
// models, and inspect what a model folder's tokenizer makes of a text or a list of ids.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "grpo/core/error.h"
#include "grpo/text/sentencepiece_train.h"
#include "grpo/text/tokenizer.h"
#include "verbs.h"

namespace grpo::cli {

namespace {

struct InspectOptions {
  std::string tokenizer;
  std::string text;
  std::string input;
  std::vector<int32_t> ids;
  bool add_special = false;
  bool no_parse_special = false;
  bool show_tokens = false;
  bool skip_special = false;
};

std::string read_text(const InspectOptions& o) {
  if (o.input.empty()) return o.text;
  GRPO_CHECK_KIND(usage, o.text.empty(), "give either a text or --input, not both");
  std::ifstream in(o.input, std::ios::binary);
  GRPO_CHECK_KIND(usage, in.good(), "--input '", o.input, "' cannot be read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void add_train(CLI::App& parent) {
  auto o = std::make_shared<text::SentencePieceTrainOptions>();
  auto symbols = std::make_shared<std::string>("<think>,</think>,<answer>,</answer>");
  CLI::App* cmd = parent.add_subcommand(
      "train", "Train a SentencePiece tokenizer; the output folder works as a model's tokenizer");
  cmd->add_option("--input", o->input, "Training text: .txt (a text per line) or .jsonl")
      ->required();
  cmd->add_option("--field", o->field, "For .jsonl: the string field holding the text")
      ->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "Vocabulary size")->capture_default_str();
  cmd->add_option("--model-type", o->model_type, "bpe or unigram")->capture_default_str();
  cmd->add_option("--user-symbols", *symbols, "Comma-separated pieces never split (may be empty)")
      ->capture_default_str();
  cmd->add_flag(
      "--no-split-digits", [o](int64_t) { o->split_digits = false; },
      "Let numbers merge into multi-digit pieces (default: one piece per digit)");
  cmd->add_option("--out", o->out_dir, "Output folder")->required();
  cmd->callback([o, symbols] {
    o->user_symbols.clear();
    std::stringstream in(*symbols);
    for (std::string s; std::getline(in, s, ',');) {
      if (!s.empty()) o->user_symbols.push_back(s);
    }
    text::train_sentencepiece(*o);
  });
}

void add_encode(CLI::App& parent) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = parent.add_subcommand("encode", "Print the ids of a text (one line)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder")->required();
  cmd->add_option("text", o->text, "Text to encode");
  cmd->add_option("--input", o->input, "Encode the whole content of this file instead");
  cmd->add_flag("--add-special", o->add_special, "Add what the post-processor adds (bos, ...)");
  cmd->add_flag("--no-parse-special", o->no_parse_special,
                "Treat special-token strings in the text as plain text");
  cmd->add_flag("--tokens", o->show_tokens, "Print id=token pairs, one per line");
  cmd->callback([o] {
    const auto tok = text::load_tokenizer(o->tokenizer);
    text::EncodeOptions options;
    options.add_special_tokens = o->add_special;
    options.parse_special = !o->no_parse_special;
    const auto ids = tok->encode(read_text(*o), options);
    if (o->show_tokens) {
      for (int32_t id : ids) std::cout << id << "\t" << tok->id_to_token(id) << "\n";
      return;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  });
}

void add_decode(CLI::App& parent) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = parent.add_subcommand("decode", "Print the text of ids (arguments or stdin)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder")->required();
  cmd->add_option("ids", o->ids, "Token ids; read from stdin when none are given");
  cmd->add_flag("--skip-special", o->skip_special, "Leave special tokens out");
  cmd->callback([o] {
    const auto tok = text::load_tokenizer(o->tokenizer);
    if (o->ids.empty()) {
      std::string word;
      while (std::cin >> word) {
        try {
          o->ids.push_back(std::stoi(word));
        } catch (const std::exception&) {
          GRPO_CHECK_KIND(usage, false, "stdin: '", word, "' is not a token id");
        }
      }
    }
    std::cout << tok->decode(o->ids, o->skip_special) << "\n";
  });
}

}  // namespace

void add_tokenizer_verb(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "tokenizer", "Train a SentencePiece tokenizer, or encode/decode with a model's tokenizer");
  cmd->require_subcommand(1);
  add_train(*cmd);
  add_encode(*cmd);
  add_decode(*cmd);
}

}  // namespace grpo::cli
