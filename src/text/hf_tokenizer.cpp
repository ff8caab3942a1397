// Loading and running a Hugging Face tokenizer.json (byte-level BPE). The vocabulary is kept
// as raw bytes (the GPT-2 byte-to-character mapping is undone once, at load time), so
// encoding never builds the mapped strings and decoding is a table lookup.
#include "hf_tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "grpo/core/error.h"
#include "utf8.h"

namespace grpo::text {

namespace {

using nlohmann::json;

constexpr std::size_t kCacheMaxWords = 200000;
constexpr std::size_t kCacheMaxWordBytes = 256;

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68
// bytes for U+0100.. in order. char_to_byte[cp] undoes it; -1 for other code points.
std::array<int16_t, 324> char_to_byte_table() {
  std::array<int16_t, 324> table;
  table.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    table[printable ? b : next++] = static_cast<int16_t>(b);
  }
  return table;
}

// The bytes a token stands for under the ByteLevel decoder: its characters mapped back to bytes
// when all of them are in the alphabet, else the token's own UTF-8 (as Hugging Face does).
std::string byte_level_bytes(const std::string& token, bool* mapped = nullptr) {
  static const std::array<int16_t, 324> table = char_to_byte_table();
  std::string out;
  for (std::size_t pos = 0; pos < token.size();) {
    const utf8::Step s = utf8::next(token, pos);
    if (s.code_point < 0 || s.code_point >= 324 || table[s.code_point] < 0) {
      if (mapped) *mapped = false;
      return token;
    }
    out += static_cast<char>(table[s.code_point]);
    pos += s.length;
  }
  if (mapped) *mapped = true;
  return out;
}

std::string type_of(const json& j) { return j.is_object() ? j.value("type", "") : ""; }

std::optional<unicode::NormalForm> normal_form(const std::string& path, const json& j) {
  if (j.is_null()) return std::nullopt;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    std::optional<unicode::NormalForm> form;
    for (const auto& n : j.at("normalizers")) {
      GRPO_CHECK(!form, path, ": normalizer Sequence with more than one step is not supported");
      form = normal_form(path, n);
    }
    return form;
  }
  if (type == "NFC") return unicode::NormalForm::nfc;
  if (type == "NFD") return unicode::NormalForm::nfd;
  if (type == "NFKC") return unicode::NormalForm::nfkc;
  if (type == "NFKD") return unicode::NormalForm::nfkd;
  GRPO_FAIL(path, ": normalizer type '", type, "' is not supported (NFC, NFD, NFKC, NFKD)");
}

void check_decoder(const std::string& path, const json& j) {
  const std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& d : j.at("decoders")) check_decoder(path, d);
    return;
  }
  GRPO_CHECK(type == "ByteLevel", path, ": decoder type '", j.is_null() ? "null" : type,
             "' is not supported (ByteLevel)");
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::from_file(const std::string& path) {
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  t->load(path);
  return t;
}

bool HfTokenizer::is_byte_level_bpe(const std::string& path) {
  std::ifstream in(path);
  GRPO_CHECK(in.good(), "cannot open ", path);
  json j;
  try {
    j = json::parse(in);
    return type_of(j.at("model")) == "BPE" &&
           PreTokenizer::from_json(j.at("pre_tokenizer")).byte_level();
  } catch (const json::exception& e) {
    GRPO_FAIL(path, ": malformed tokenizer.json: ", e.what());
  } catch (const Error&) {
    return false;
  }
}

void HfTokenizer::set_token(int32_t id, const std::string& token) {
  GRPO_CHECK(id >= 0 && id < (1 << 30), "token '", token, "' has an invalid id ", id);
  if (static_cast<std::size_t>(id) >= id_to_token_.size()) {
    id_to_token_.resize(id + 1);
    id_bytes_.resize(id + 1);
    special_.resize(id + 1, false);
  }
  id_to_token_[id] = token;
  token_ids_[token] = id;
}

void HfTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GRPO_CHECK(in.good(), "cannot open ", path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    GRPO_FAIL(path, ": malformed or truncated tokenizer.json: ", e.what());
  }
  try {
    const json& model = j.at("model");
    GRPO_CHECK(type_of(model) == "BPE", path, ": model type '", type_of(model),
               "' is not supported (BPE)");
    pre_tokenizer_ = PreTokenizer::from_json(j.value("pre_tokenizer", json()));
    GRPO_CHECK(pre_tokenizer_.byte_level(), path,
               ": only byte-level BPE is supported (the pre_tokenizer has no ByteLevel step); "
               "for SentencePiece-style files load the folder's tokenizer.model");
    normal_form_ = normal_form(path, j.value("normalizer", json()));
    check_decoder(path, j.value("decoder", json()));
    load_model(path, model);
    std::vector<AddedToken> raw, normalized;
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedToken t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.single_word = a.value("single_word", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.normalized = a.value("normalized", !t.special);
      GRPO_CHECK(utf8::find_invalid(t.content) == utf8::kValid, path, ": added token ", t.id,
                 " is not valid UTF-8");
      set_token(t.id, t.content);
      id_bytes_[t.id] = byte_level_bytes(t.content);
      special_[t.id] = t.special;
      added_.push_back(t);
      if (t.normalized && normal_form_) {
        std::string n;
        unicode::normalize(*normal_form_, t.content, n);
        t.content = n;
      }
      (t.normalized ? normalized : raw).push_back(t);
    }
    raw_matcher_ = AddedTokenMatcher(std::move(raw));
    normalized_matcher_ = AddedTokenMatcher(std::move(normalized));
    load_post_processor(path, j.value("post_processor", json()));
  } catch (const json::exception& e) {
    GRPO_FAIL(path, ": malformed tokenizer.json: ", e.what());
  }
}

void HfTokenizer::load_model(const std::string& path, const json& model) {
  GRPO_CHECK(model.value("dropout", json()).is_null(), path, ": BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    GRPO_CHECK(v.is_null() || v.get<std::string>().empty(), path, ": BPE ", key,
               " is not supported");
  }
  ignore_merges_ = model.value("ignore_merges", false);
  fuse_unk_ = model.value("fuse_unk", false);
  byte_ids_.fill(-1);
  for (const auto& [token, id_json] : model.at("vocab").items()) {
    const int32_t id = id_json.get<int32_t>();
    set_token(id, token);
    bool mapped = false;
    id_bytes_[id] = byte_level_bytes(token, &mapped);
    // Tokens outside the byte alphabet can never come out of merging bytes.
    if (!mapped) continue;
    word_ids_[id_bytes_[id]] = id;
    if (id_bytes_[id].size() == 1) byte_ids_[static_cast<unsigned char>(id_bytes_[id][0])] = id;
  }
  const json unk = model.value("unk_token", json());
  if (!unk.is_null()) {
    auto it = token_ids_.find(unk.get<std::string>());
    GRPO_CHECK(it != token_ids_.end(), path, ": unk_token '", unk.get<std::string>(),
               "' is not in the vocabulary");
    unk_id_ = it->second;
  }
  const json& merges = model.at("merges");
  for (std::size_t i = 0; i < merges.size(); ++i) {
    std::string left, right;
    if (merges[i].is_string()) {  // legacy "left right"
      const std::string m = merges[i].get<std::string>();
      const auto space = m.find(' ');
      GRPO_CHECK(space != std::string::npos && m.find(' ', space + 1) == std::string::npos, path,
                 ": merge #", i, " '", m, "' is not two tokens separated by one space");
      left = m.substr(0, space);
      right = m.substr(space + 1);
    } else {
      GRPO_CHECK(merges[i].is_array() && merges[i].size() == 2, path, ": merge #", i,
                 " is neither \"a b\" nor [\"a\", \"b\"]");
      left = merges[i][0].get<std::string>();
      right = merges[i][1].get<std::string>();
    }
    auto a = token_ids_.find(left), b = token_ids_.find(right), ab = token_ids_.find(left + right);
    GRPO_CHECK(a != token_ids_.end() && b != token_ids_.end() && ab != token_ids_.end(), path,
               ": merge #", i, " ('", left, "', '", right, "') uses a token not in the vocabulary");
    merges_.add(a->second, b->second, ab->second);
  }
}

void HfTokenizer::load_post_processor(const std::string& path, const json& j) {
  const std::string type = type_of(j);
  if (j.is_null() || type == "ByteLevel") return;  // ByteLevel only trims offsets
  if (type == "Sequence") {
    for (const auto& p : j.at("processors")) load_post_processor(path, p);
    return;
  }
  GRPO_CHECK(type == "TemplateProcessing", path, ": post_processor type '", type,
             "' is not supported (ByteLevel, TemplateProcessing, Sequence)");
  GRPO_CHECK(prefix_ids_.empty() && suffix_ids_.empty(), path,
             ": more than one TemplateProcessing post-processor");
  bool seen_text = false;
  for (const auto& item : j.at("single")) {
    if (item.contains("Sequence")) {
      GRPO_CHECK(!seen_text, path, ": TemplateProcessing with the text twice");
      seen_text = true;
      continue;
    }
    const std::string name = item.at("SpecialToken").at("id").get<std::string>();
    const json& ids = j.at("special_tokens").at(name).at("ids");
    for (const auto& id : ids) (seen_text ? suffix_ids_ : prefix_ids_).push_back(id.get<int32_t>());
  }
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  auto it = token_ids_.find(std::string(token));
  if (it == token_ids_.end()) return std::nullopt;
  return it->second;
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  GRPO_CHECK(id >= 0 && id < vocab_size() && !id_to_token_[id].empty(), "token id ", id,
             " is not in the vocabulary (size ", vocab_size(), ")");
  return id_to_token_[id];
}

bool HfTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

void HfTokenizer::append_bytes(int32_t id, bool& at_start, std::string& out) const {
  GRPO_CHECK(id >= 0 && id < vocab_size() && !id_to_token_[id].empty(), "cannot decode id ", id,
             ": not in the vocabulary (size ", vocab_size(), ")");
  out += id_bytes_[id];
  at_start = false;
}

void HfTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    auto it = word_ids_.find(std::string(word));
    if (it != word_ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      symbols.push_back(id);
    } else if (unk_id_ && !(fuse_unk_ && !symbols.empty() && symbols.back() == *unk_id_)) {
      symbols.push_back(*unk_id_);
    }
  }
  merges_.apply(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void HfTokenizer::encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out,
                              WordCache* cache) const {
  std::vector<Segment> raw, segments;
  std::deque<std::string> arena;
  std::vector<std::string_view> words;
  raw_matcher_.split(text, parse_special, raw);
  for (const Segment& r : raw) {
    if (r.id >= 0) {
      out.push_back(r.id);
      continue;
    }
    std::string_view normalized = r.text;
    if (normal_form_) {
      arena.emplace_back();
      unicode::normalize(*normal_form_, r.text, arena.back());
      normalized = arena.back();
    }
    segments.clear();
    normalized_matcher_.split(normalized, parse_special, segments);
    for (const Segment& s : segments) {
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      if (s.text.empty()) continue;
      words.clear();
      pre_tokenizer_.split(s.text, words, arena);
      for (std::string_view word : words) {
        if (cache == nullptr || word.size() > kCacheMaxWordBytes) {
          encode_word(word, out);
          continue;
        }
        auto it = cache->index.find(word);
        if (it != cache->index.end()) {
          const auto [offset, count] = it->second;
          out.insert(out.end(), cache->ids.begin() + offset, cache->ids.begin() + offset + count);
          continue;
        }
        const std::size_t before = out.size();
        encode_word(word, out);
        if (cache->index.size() < kCacheMaxWords) {
          cache->keys.emplace_back(word);
          const auto offset = static_cast<uint32_t>(cache->ids.size());
          cache->ids.insert(cache->ids.end(), out.begin() + before, out.end());
          cache->index.emplace(cache->keys.back(),
                               std::make_pair(offset, static_cast<uint32_t>(out.size() - before)));
        }
      }
    }
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text,
                                         const EncodeOptions& options) const {
  const std::size_t bad = utf8::find_invalid(text);
  GRPO_CHECK(bad == utf8::kValid, "cannot encode: the text is not valid UTF-8 (byte offset ", bad,
             ")");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_special_tokens) out = prefix_ids_;
  // One thread fills the cache at a time; the others encode without it rather than wait.
  std::unique_lock<std::mutex> lock(cache_mutex_, std::try_to_lock);
  encode_text(text, options.parse_special, out, lock.owns_lock() ? &cache_ : nullptr);
  if (options.add_special_tokens) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

}  // namespace grpo::text
