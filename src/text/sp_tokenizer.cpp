// SentencePiece tokenizer. Decoding is done piece by piece (append_bytes) so that streaming and
// whole-sequence decoding share one path; tests check it against the library's DecodeIds.
#include "sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include "grpo/core/error.h"
#include "utf8.h"

namespace grpo::text {

namespace {
constexpr const char* kSpace = "\xE2\x96\x81";             // U+2581, SentencePiece's space
constexpr const char* kUnknownSurface = " \xE2\x81\x87 ";  // " ⁇ ", the library's <unk> text
}  // namespace

SpTokenizer::SpTokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SpTokenizer::~SpTokenizer() = default;

std::unique_ptr<SpTokenizer> SpTokenizer::from_file(const std::string& path, bool add_bos,
                                                    bool add_eos) {
  std::unique_ptr<SpTokenizer> t(new SpTokenizer());
  const auto status = t->sp_->Load(path);
  GRPO_CHECK(status.ok(), "cannot load SentencePiece model ", path, ": ", status.ToString());
  t->add_bos_ = add_bos && t->sp_->bos_id() >= 0;
  t->add_eos_ = add_eos && t->sp_->eos_id() >= 0;
  for (int id = 0; id < t->sp_->GetPieceSize(); ++id) {
    if (!t->sp_->IsControl(id)) continue;
    AddedToken a;
    a.id = id;
    a.content = t->sp_->IdToPiece(id);
    a.special = true;
    t->added_.push_back(a);
  }
  t->matcher_ = AddedTokenMatcher(t->added_);
  auto id_or_none = [](int id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; };
  t->set_special_ids(id_or_none(t->sp_->bos_id()), id_or_none(t->sp_->eos_id()),
                     id_or_none(t->sp_->pad_id()));
  // The library strips the first piece's leading space when the model adds a dummy prefix or
  // removes extra whitespace; both show as "a" encoding to a piece that starts with U+2581.
  const auto pieces = t->sp_->EncodeAsPieces("a");
  t->strip_first_space_ = !pieces.empty() && pieces[0].rfind(kSpace, 0) == 0;
  return t;
}

std::vector<int32_t> SpTokenizer::encode(std::string_view text,
                                         const EncodeOptions& options) const {
  const std::size_t bad = utf8::find_invalid(text);
  GRPO_CHECK(bad == utf8::kValid, "cannot encode: the text is not valid UTF-8 (byte offset ", bad,
             ")");
  std::vector<int32_t> out;
  if (options.add_special_tokens && add_bos_) out.push_back(sp_->bos_id());
  std::vector<Segment> segments;
  matcher_.split(text, options.parse_special, segments);
  for (const Segment& s : segments) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    const std::vector<int> ids = sp_->EncodeAsIds(absl::string_view(s.text.data(), s.text.size()));
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (options.add_special_tokens && add_eos_) out.push_back(sp_->eos_id());
  return out;
}

void SpTokenizer::append_bytes(int32_t id, bool& at_start, std::string& out) const {
  GRPO_CHECK(id >= 0 && id < vocab_size(), "cannot decode id ", id,
             ": not in the vocabulary (size ", vocab_size(), ")");
  if (sp_->IsControl(id)) return;
  if (sp_->IsUnknown(id)) {
    out += kUnknownSurface;
    at_start = false;
    return;
  }
  const std::string piece = sp_->IdToPiece(id);
  if (sp_->IsByte(id)) {  // "<0xAB>"
    out += static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16));
    at_start = false;
    return;
  }
  std::size_t pos = 0;
  if (at_start && strip_first_space_ && piece.rfind(kSpace, 0) == 0) pos = 3;
  for (; pos < piece.size(); ++pos) {
    if (piece.compare(pos, 3, kSpace) == 0) {
      out += ' ';
      pos += 2;
    } else {
      out += piece[pos];
    }
  }
  at_start = false;
}

int32_t SpTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::optional<int32_t> SpTokenizer::token_to_id(std::string_view token) const {
  const int id = sp_->PieceToId(absl::string_view(token.data(), token.size()));
  // PieceToId answers unk_id for unknown pieces; only <unk> itself maps there.
  if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::string SpTokenizer::id_to_token(int32_t id) const {
  GRPO_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is not in the vocabulary (size ",
             vocab_size(), ")");
  return sp_->IdToPiece(id);
}

bool SpTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && sp_->IsControl(id);
}

std::string SpTokenizer::reference_decode(const std::vector<int32_t>& ids) const {
  return sp_->DecodeIds(std::vector<int>(ids.begin(), ids.end()));
}

}  // namespace grpo::text
