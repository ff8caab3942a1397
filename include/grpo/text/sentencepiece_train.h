// Training a SentencePiece tokenizer for tiny synthetic-task models (`grpo tokenizer train`).
// The output folder (tokenizer.model + tokenizer_config.json) loads with load_tokenizer().
#pragma once

#include <string>
#include <vector>

namespace grpo::text {

struct SentencePieceTrainOptions {
  std::string input;  // .txt (one text per line) or .jsonl (one object per line)
  std::string field =
      "text";  // .jsonl: the string field to train on (a bare string line also works)
  std::string out_dir;
  int vocab_size = 1000;
  std::string model_type = "bpe";  // bpe or unigram
  // Pieces that are never split; the R1 tags by default so that tiny models see them whole.
  std::vector<std::string> user_symbols = {"<think>", "</think>", "<answer>", "</answer>"};
  // Digits as separate pieces (arithmetic generalises digit by digit); false lets frequent
  // numbers become single pieces, which tiny models learn faster on small number ranges.
  bool split_digits = true;
};

// Trains with byte fallback and no normalization, so decode(encode(x)) == x for any text.
void train_sentencepiece(const SentencePieceTrainOptions& options);

}  // namespace grpo::text
